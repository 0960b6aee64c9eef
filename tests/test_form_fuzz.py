"""No HTML form answers 500 (or shows a stack trace) to garbage.

Every POST route the app serves outside ``/api/`` is fuzzed: signed in as a role that may post
there (anonymous for public forms), with CSRF on as in production and the session's real token,
against real records (a case at each stage, a meeting with the case on its agenda, a request, an
action, alerts, a subscriber, a signal and a report, a token, users, areas and agencies). The
bodies are garbage a person or an attacker could send: text with control characters, very long
strings, numbers and dates where words are expected, unknown choices, repeated fields, missing
fields, the fields of the wrong form. A clear 4xx, a redirect or the form again with its errors
are all fine; a 500 is not.

Hypothesis is deterministic here (``derandomize``, no example database) and bounded, so the run
is repeatable and takes well under a minute. Because sampling rarely lands one bad value in one
hidden field, a second test sweeps every field of every form with number-shaped garbage: that is
how the ``int(x) if x.isdigit()`` class of 500s (``"²"``, 5,000 digits) was found. File uploads
(bulk import, populations CSV) are posted without a file here: tests/cases/test_import.py
and tests/trends/test_populations.py test their parsers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from dr_panel.alerts import drafting as dr
from dr_panel.alerts.models import Delivery
from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.auth.tokens import create_token
from dr_panel.cases.models import Case, CaseStatus
from dr_panel.cases.services import Lookups, create_notification, parse_notification
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.forms import whole_number
from dr_panel.privacy.identity import nhs_number_problem
from dr_panel.reference.models import Agency, Area
from tests.alerts.drafting_helpers import draft_input, drafted, issued, make_assessment
from tests.alerts.support import make_subscriber
from tests.api.conftest import notification
from tests.conftest import PASSWORD, csrf_token_from
from tests.test_access import MATRIX, PUBLIC, SIGNED_IN

EXAMPLES_PER_FORM = 20
Body = list[tuple[str, str]]
# Routes that end the session are fuzzed last, each example signing in again first.
ENDS_SESSION = {"auth.logout", "auth.end_other_sessions"}
ROLE_PREFERENCE = (
    Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.LEAD, Role.ADMIN
)
TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")

# -- garbage ------------------------------------------------------------------------------------

_control = st.characters(min_codepoint=0, max_codepoint=31)
_any_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40
)
GARBAGE = st.one_of(
    st.just(""),
    _any_text,
    st.text(alphabet=_control, min_size=1, max_size=10),
    st.builds(lambda c, n: c * n, st.sampled_from("x9%_'\"<\u00e9\U0001f600"),
              st.integers(10_000, 120_000)),  # very long
    st.integers(-(2**70), 2**70).map(str),  # numbers out of every range
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from([
        "not-a-choice", "ADMIN", "admin", "0", "-1", "true", "on", "None", "null", "[]", "{}",
        "2026-02-30", "9999-99-99", "31/12/2026", "1e309", str(uuid.uuid4()), "E06000009",
        "<script>alert(1)</script>", "' OR 1=1 --", "%", "_", "\x00", "\r\n", "\ud7ff",
        "\u00b2", "\u0661\u0662", "\uff11", "1" * 5000, "2147483648", "-0", " 7 ",
    ]),
)
EXTRA_NAMES = ["role", "area", "areas", "agency", "status", "decision", "reason", "to", "cases",
               "due_on", "held_on", "level", "scope", "channel", "members", "minutes", "code"]


def _body(form: list[tuple[str, str]], offered: list[str]) -> st.SearchStrategy[Body]:
    """The form as a person would send it, then broken: fields replaced with garbage or with
    another of the page's values (a valid choice beside an invalid one), dropped, repeated, and
    strangers added. Starting from a valid form reaches past the first validation error."""
    value = st.one_of(GARBAGE, st.sampled_from(offered)) if offered else GARBAGE
    names = sorted({n for n, _ in form} | {"submit"})
    change = st.tuples(
        st.sampled_from(names),
        st.sampled_from(["garbage", "garbage", "drop", "repeat"]),
        st.lists(value, min_size=1, max_size=3),
    )
    strangers = st.lists(st.tuples(st.sampled_from(EXTRA_NAMES), GARBAGE), max_size=2)

    def apply(parts: tuple[list[tuple[str, str, list[str]]], Body]) -> Body:
        body = list(form)
        for name, how, values in parts[0]:
            kept = [(n, v) for n, v in body if n != name]
            if how == "drop":
                body = kept
            elif how == "repeat":
                body = body + [(name, v) for v in values]
            else:
                body = kept + [(name, v) for v in values]
        return body + parts[1]

    return st.tuples(st.lists(change, max_size=4), strangers).map(apply)


# -- the world ----------------------------------------------------------------------------------


def _user(role: Role, email: str, agency: str | None = None) -> User:
    user, _ = accounts.create_user(
        accounts.AccountDetails(
            email=email, display_name=f"Fuzz {role.value}", role=role,
            area_codes=("E06000009", "E06000008"), agency_code=agency,
        ),
        password=PASSWORD, by=None, must_change=False,
    )
    return user


def _case(by: User, status: CaseStatus) -> Case:
    n, errors = parse_notification(notification(), lookups=Lookups(), allowed_areas=by.area_ids)
    assert n is not None, errors
    case = create_notification(n, by=by, source="test")
    case.status = status  # a fixture: the stage the form expects, not a walk through triage
    db.session.flush()
    return case


def _world(
    app: Flask,
) -> tuple[dict[Role, User], Callable[[str, str, str], str], dict[str, str]]:
    """Records for every kind of URL, and ``args(endpoint, arg)`` naming the right one."""
    from dr_panel.reviews import meetings as mt
    from dr_panel.reviews.actions import create_action
    from dr_panel.reviews.services import send_requests

    users = {
        Role.ADMIN: _user(Role.ADMIN, "admin@example.org"),
        Role.COORDINATOR: _user(Role.COORDINATOR, "coordinator@example.org"),
        Role.PANEL_MEMBER: _user(Role.PANEL_MEMBER, "panel@example.org", "POLICE"),
        Role.AGENCY_CONTRIBUTOR: _user(Role.AGENCY_CONTRIBUTOR, "contrib@example.org",
                                       "TREATMENT"),
        Role.LEAD: _user(Role.LEAD, "lead@example.org"),
    }
    spare = _user(Role.LEAD, "spare@example.org")
    coordinator = users[Role.COORDINATOR]
    db.session.commit()
    treatment = db.session.scalar(db.select(Agency).where(Agency.code == "TREATMENT"))
    area = db.session.scalar(db.select(Area).where(Area.ons_code == "E06000009"))
    assert treatment is not None and area is not None

    gathering = _case(coordinator, CaseStatus.INFORMATION_GATHERING)
    request = send_requests(gathering, [treatment], due_on=utcnow().date() + timedelta(days=14),
                            note="Contact history, please.", by=coordinator)[0]
    ready = _case(coordinator, CaseStatus.READY_FOR_PANEL)
    reviewed = _case(coordinator, CaseStatus.REVIEWED)
    action = create_action(reviewed, description="Offer naloxone at discharge.", agency=treatment,
                           due_on=utcnow().date() + timedelta(days=30), by=coordinator)
    meeting = mt.schedule(area, utcnow().date() + timedelta(days=7), "Town hall",
                          by=coordinator)
    mt.add_to_agenda(meeting, [ready], by=coordinator)
    subscriber = make_subscriber(name="Fuzz outreach")
    db.session.commit()
    signal = make_assessment(coordinator).signal
    report = make_assessment(coordinator, report=True).report
    submitted = drafted(coordinator)
    draft = dr.start_draft(make_assessment(coordinator), by=coordinator)
    dr.edit_draft(draft, draft_input(), by=coordinator, expected_revision=None)
    fresh = make_assessment(coordinator)  # graded, no alert yet: "start a draft" from it
    live = issued(coordinator, users[Role.LEAD])
    delivery = db.session.scalar(db.select(Delivery).order_by(Delivery.id))
    agency = treatment
    db.session.commit()
    token_uuid: Any = uuid.uuid4()
    try:
        token_uuid = create_token(coordinator, "fuzz", by=coordinator)[0].uuid
        db.session.commit()
    except Exception:  # noqa: BLE001 -- the token model is changing under issue 13's token part
        db.session.rollback()

    by_prefix = {
        "/cases/": gathering.uuid, "/meetings/": meeting.uuid, "/actions/": action.uuid,
        "/requests/": request.uuid, "/ldis/subscribers/": subscriber.uuid,
        "/ldis/signals/": signal.uuid, "/ldis/reports/": report.uuid,
        "/ldis/signal-settings/": area.uuid, "/admin/users/": spare.uuid,
        "/admin/areas/": area.uuid, "/admin/agencies/": agency.uuid,
        "/account/tokens/": token_uuid,
        "/ldis/ack/": delivery.uuid if delivery else uuid.uuid4(), "/ldis/alerts/": draft.uuid,
    }
    by_endpoint = {
        "alerts.update": live.uuid, "alerts.cancel": live.uuid, "alerts.approve": submitted.uuid,
        "reviews.findings": reviewed.uuid, "reviews.add_action": reviewed.uuid,
        "reviews.safety_plan": reviewed.uuid,
    }

    def args(endpoint: str, rule: str, name: str) -> str:
        if name == "case_uuid":
            return str(ready.uuid)
        if endpoint in by_endpoint:
            return str(by_endpoint[endpoint])
        for prefix, value in by_prefix.items():
            if rule.startswith(prefix):
                return str(value)
        return str(uuid.uuid4())  # e.g. an acknowledgement link: the unknown-record path

    queries = {"alerts.new_draft": f"?assessment={fresh.uuid}"}
    return users, args, queries


# Who would really post there: the second person approves; the owner agency updates its action.
ROLE_FOR = {"alerts.approve": Role.LEAD, "reviews.action": Role.AGENCY_CONTRIBUTOR}


def _role_for(endpoint: str) -> Role | None:
    if endpoint in ROLE_FOR:
        return ROLE_FOR[endpoint]
    rule = MATRIX[endpoint]
    if rule == PUBLIC:
        return None
    if rule == SIGNED_IN:
        return Role.COORDINATOR
    return next(r for r in ROLE_PREFERENCE if r in rule)


def _sign_in(app: Flask, user: User | None) -> tuple[FlaskClient, str]:
    client = app.test_client()
    if user is not None:
        token = csrf_token_from(client.get("/login").data)
        signed = client.post(
            "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
        )
        assert signed.status_code == 302, signed.status_code
    return client, csrf_token_from(client.get("/login" if user is None else "/account").data)


class _Forms(HTMLParser):
    """Each form on a page, as a browser would submit it untouched: its action and fields."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self.offered: set[str] = set()
        self._select: str | None = None
        self._chosen: str | None = None
        self._first: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("action", ""), []))
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            self.offered.add(a.get("value", ""))
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button", "file", "image", "reset"):
                self.forms[-1][1].append((a["name"], a.get("value", "")))
        elif tag == "select" and a.get("name"):
            self._select, self._chosen, self._first = a["name"], None, None
        elif tag == "option" and self._select is not None:
            self.offered.add(a.get("value", ""))
            if self._first is None:
                self._first = a.get("value", "")
            if "selected" in a:
                self._chosen = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None and self.forms:
            chosen = self._chosen if self._chosen is not None else self._first
            if chosen is not None:
                self.forms[-1][1].append((self._select, chosen))
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self.forms:
            self.forms[-1][1].append((self._textarea, self._text))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data


def _form_of(client: FlaskClient, url: str, can_get: bool) -> tuple[Body, list[str]]:
    """The form that posts to ``url`` as its page shows it (the page itself, or the record's
    page for a bare button), and every value the page offers."""
    path = url.split("?")[0]
    pages = ([url] if can_get else []) + [path.rsplit("/", 1)[0] or "/"]
    for page in pages:
        parser = _Forms()
        parser.feed(client.get(page).get_data(as_text=True))
        for action, fields in parser.forms:
            if (action or page).split("?")[0] == path:
                return [(n, v) for n, v in fields if n != "csrf_token"], sorted(parser.offered)
    return [], []


def _fuzz(app: Flask, endpoint: str, url: str, user: User | None, can_get: bool) -> str | None:
    """Post garbage to one form; the smallest body that makes it fail, or None."""
    state: dict[str, Any] = {}
    state["client"], state["token"] = _sign_in(app, user)
    form, offered = _form_of(state["client"], url, can_get)
    failed: list[str] = []

    @settings(max_examples=EXAMPLES_PER_FORM, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(body=_body(form, offered))
    def post(body: Body) -> None:
        if endpoint in ENDS_SESSION:
            state["client"], state["token"] = _sign_in(app, user)
        data = MultiDict([("csrf_token", state["token"]), *body])
        response = state["client"].post(url, data=data)
        if response.status_code >= 500 or TRACEBACK.search(response.data):
            failed.append(f"{endpoint}: {response.status_code} for {body!r:.300}")
            raise AssertionError(failed[-1])

    try:
        post()
    except AssertionError:
        return failed[-1]  # hypothesis replays the smallest failing body last
    return None


# -- the test -----------------------------------------------------------------------------------


def _forms(app: Flask, args: Callable[[str, str, str], str],
           queries: dict[str, str]) -> list[tuple[bool, str, str, bool]]:
    """Every HTML form's route (POST outside /api/), those that end the session last."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or "POST" not in rule.methods:  # type: ignore[operator]
            continue
        values = {name: args(rule.endpoint, rule.rule, name) for name in rule.arguments}
        url = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
        url += queries.get(rule.endpoint, "")
        routes.append((rule.endpoint in ENDS_SESSION, rule.endpoint, url,
                       "GET" in rule.methods))  # type: ignore[operator]
    assert len(routes) > 40, "the walk found too few forms"
    return sorted(routes)


def test_no_html_form_answers_500_to_garbage(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        users, args, queries = _world(app)
        routes = _forms(app, args, queries)

        failures = []
        for _, endpoint, url, can_get in routes:
            role = _role_for(endpoint)
            failure = _fuzz(app, endpoint, url, users[role] if role else None, can_get)
            if failure:
                failures.append(failure)  # go on, so one run lists every form that fails
        assert not failures, "\n".join(failures)


# Values that once reached ``int()`` past ``str.isdigit`` (hidden version fields) answered 500.
NUMBER_SHAPED = ["\u00b2", "1" * 5000, "99999999999999999999", "-1", "\u0661", "1e309"]


def test_every_field_of_every_form_survives_number_shaped_garbage(app_factory: Any) -> None:
    """Exhaustive where the fuzz samples: each field of each form, in an otherwise untouched
    form, gets each value that looks like a number to one check and not to the next."""
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        users, args, queries = _world(app)
        failures = []
        for _, endpoint, url, can_get in _forms(app, args, queries):
            role = _role_for(endpoint)
            user = users[role] if role else None
            client, token = _sign_in(app, user)
            form, _ = _form_of(client, url, can_get)
            for name in sorted({n for n, _ in form}):
                for bad in NUMBER_SHAPED:
                    if endpoint in ENDS_SESSION:
                        client, token = _sign_in(app, user)
                    body = [(n, v) for n, v in form if n != name] + [(name, bad)]
                    response = client.post(url, data=MultiDict([("csrf_token", token), *body]))
                    if response.status_code >= 500 or TRACEBACK.search(response.data):
                        failures.append(f"{endpoint} {name}={bad[:12]!r}: {response.status_code}")
        assert not failures, "\n".join(failures)


def test_whole_number_reads_only_plain_digits() -> None:
    assert whole_number("12") == 12 and whole_number(" 7 ") == 7
    for bad in ("", None, "\u00b2", "\u0661", "\uff11", "1" * 5000, "-1", "1e3", "2147483648"):
        assert whole_number(bad) is None, bad
    assert whole_number("x", default=-1) == -1


def test_an_nhs_number_in_other_digits_is_refused_not_a_crash() -> None:
    assert nhs_number_problem("\u00b2" * 10) is not None  # int() refuses these
    assert nhs_number_problem("9990000018") is None
    # The same number in Arabic-Indic digits would be stored unlike its ASCII twin (no linking).
    assert nhs_number_problem("\u0669\u0669\u0669\u0660\u0660\u0660\u0660\u0660\u0661\u0668")


def test_list_pages_read_a_tampered_page_number_as_the_first_page(
    app: Flask, create_user: Any, login: Any
) -> None:
    client = app.test_client()
    login(client, create_user(Role.COORDINATOR))
    for raw in ("\u00b2", "1" * 5000, "0", "-3", "99999999999"):
        assert client.get(f"/cases?page={raw}").status_code == 200, raw
