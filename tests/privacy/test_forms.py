"""Forms that never tell who is held: the public "report a drug concern" form, the signed-in
form and ``POST /api/v1/reports`` answer a stored person's name or NHS number exactly as a
made-up one, for everyone who may not see that person's cases; the report is held for the
coordinator, whose page marks the words. Written as an attacker would probe the form."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from dr_panel.alerts import reports as rep
from dr_panel.alerts.models import DrugReport
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role, User
from dr_panel.auth.tokens import create_token
from dr_panel.cases import services as cases
from dr_panel.cases import visibility
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage

HOME = "E06000009"  # the stored person's cases are here
OTHER = "E06000008"

# Synthetic people. Each stored value has a made-up twin of the same length and shape, so the
# pages can be compared byte for byte once the probe itself is blanked.
STORED_NAME, MADE_UP_NAME = "Marigold Thistlewaite", "Rosalind Fennimoreton"
STORED_NHS, MADE_UP_NHS = "999 000 0018", "999 000 0026"
PROBES = {
    "name": (STORED_NAME, MADE_UP_NAME),
    "reversed name": ("Thistlewaite, Marigold", "Fennimoreton, Rosalind"),
    "nhs number": (STORED_NHS, MADE_UP_NHS),
    "name and nhs": (f"{STORED_NAME} {STORED_NHS}", f"{MADE_UP_NAME} {MADE_UP_NHS}"),
}


def report_form(effects: str, **changes: str) -> dict[str, str]:
    data = {
        "area": HOME,
        "place": "town centre",
        "seen_on": (utcnow().date() - timedelta(days=1)).isoformat(),
        "substance": "Brown powder, suspected heroin",
        "effects": effects,
    }
    data.update(changes)
    return data


def says(probe: str) -> str:
    return f"{probe} took some of it and collapsed; needed naloxone."


@pytest.fixture
def held_app(app_factory: Callable[..., Flask]) -> Iterator[Flask]:
    """Mail stays in the outbox (delivered by the test when it wants), and the public form's
    rate limit does not get in the way of the probes."""
    app = app_factory(MAIL_SEND_AFTER_REQUEST=False, DRUG_REPORT_LIMIT="1000 per hour")
    with app.app_context():
        yield app


@pytest.fixture
def stored_person(held_app: Flask, create_user: Callable[..., User]) -> int:
    """A person with a case in HOME, made by the real intake service; their internal id."""
    coordinator = create_user(Role.COORDINATOR, areas=(HOME,))
    parsed, errors = cases.parse_notification(
        {
            "case_type": "nfo",
            "area": HOME,
            "event_date": (utcnow().date() - timedelta(days=20)).isoformat(),
            "setting": "street",
            "full_name": STORED_NAME,
            "nhs_number": STORED_NHS.replace(" ", ""),
            "date_of_birth": "1980-03-14",
        },
        lookups=cases.Lookups(),
        allowed_areas=coordinator.area_ids,
    )
    assert parsed is not None, errors
    case = cases.create_notification(parsed, by=coordinator)
    db.session.commit()
    return case.person_id


def _blank(text: str, probe: str) -> str:
    text = text.replace(probe, "<PROBE>")
    for part in re.findall(r"[A-Za-z][A-Za-z, ]*[A-Za-z]|\d[\d ]*\d", probe):  # split by <mark>
        text = text.replace(part, "<PART>")
    text = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+"', r'\1"', text)
    text = re.sub(r"DC-\d{4}-\d{4}", "DC-REF", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "TIME", text)


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs (the work a request does)."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def answer(send: Callable[[str], Any], probe: str) -> tuple[Any, ...]:
    """What the sender can observe: the status, the body (probe, CSRF token, reference, UUIDs
    and timestamps blanked), the e-mails queued, and which statements the request sent."""
    last = db.session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc())) or 0
    with counting_statements() as statements:
        response = send(probe)
    db.session.rollback()
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id > last)).all()
    return (
        response.status_code,
        response.mimetype,
        _blank(response.get_data(as_text=True), probe),
        [(m.kind, _blank(m.subject, probe), _blank(m.body_text, probe), m.recipient_label)
         for m in mails],
        sorted(statements),
    )


def newest_report() -> DrugReport | None:
    db.session.rollback()
    return db.session.scalar(select(DrugReport).order_by(DrugReport.id.desc()))


# -- the doors an attacker can knock at -------------------------------------------------------


def _door(
    kind: str, held_app: Flask, create_user: Callable[..., User], login: Callable[..., Any]
) -> Callable[[str], Any]:
    client = held_app.test_client()
    if kind == "public":
        return lambda probe: client.post(
            "/report-a-drug-concern",
            data=report_form(says(probe), contact="someone@example.org"),
        )
    roles = {
        "contributor in the person's area": (Role.AGENCY_CONTRIBUTOR, HOME),
        "lead in the person's area": (Role.LEAD, HOME),
        "panel member of another area": (Role.PANEL_MEMBER, OTHER),
        "coordinator of another area": (Role.COORDINATOR, OTHER),
        "api: panel member of another area": (Role.PANEL_MEMBER, OTHER),
    }
    role, area = roles[kind]
    user = create_user(role, areas=(area,))
    if kind.startswith("api"):
        _, token = create_token(user, "probe", by=user)
        db.session.commit()
        headers = {"Authorization": f"Bearer {token}"}

        def post_api(probe: str) -> Any:
            body = report_form(says(probe))
            return client.post("/api/v1/reports", json=body, headers=headers)

        return post_api
    login(client, user)
    return lambda probe: client.post("/ldis/reports/new", data=report_form(says(probe)))


DOORS = (
    "public",
    "contributor in the person's area",
    "lead in the person's area",
    "panel member of another area",
    "coordinator of another area",
    "api: panel member of another area",
)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("probe", list(PROBES))
def test_a_stored_person_and_a_made_up_one_get_the_same_answer(
    held_app: Flask,
    stored_person: int,
    create_user: Callable[..., User],
    login: Callable[..., Any],
    door: str,
    probe: str,
) -> None:
    send = _door(door, held_app, create_user, login)
    stored, made_up = PROBES[probe]
    first_made_up = answer(send, made_up)
    again_made_up = answer(send, made_up)
    assert first_made_up == again_made_up  # the comparison is deterministic
    real = answer(send, stored)
    assert real[:4] == first_made_up[:4], "the answer tells who is held"
    assert real[4] == first_made_up[4], "the work done tells who is held"
    if "nhs" in probe:  # the shape of an NHS number is refused for everyone, held or not
        assert real[0] == 400 and "NHS number" in real[2]
        assert newest_report() is None or not newest_report().is_held  # type: ignore[union-attr]
    else:  # accepted as any other report, and held for the coordinator
        assert real[0] in (200, 201)
        report = newest_report()
        assert report is not None and report.is_held


def test_the_held_report_is_marked_for_the_coordinator_and_audited_without_the_words(
    held_app: Flask,
    stored_person: int,
    create_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    client = held_app.test_client()
    response = client.post(
        "/report-a-drug-concern", data=report_form(says(STORED_NAME), place="near the station")
    )
    assert response.status_code == 200
    report = newest_report()
    assert report is not None and report.is_held
    assert STORED_NAME not in (report.held_enc or "") and "Thistle" not in (report.held_enc or "")
    [span] = rep.held_of(report)
    assert (span.field, span.start, span.end) == ("effects", 0, len(STORED_NAME))

    filed = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "drug_report.filed")
    ).all()
    assert len(filed) == 1 and json.loads(filed[0].details)["held"] == 1
    every_entry = " ".join(
        f"{e.reason} {e.details}" for e in db.session.scalars(select(AuditEntry))
    )
    assert "Thistlewaite" not in every_entry and "Marigold" not in every_entry

    coordinator = create_user(Role.COORDINATOR, areas=(HOME,))
    login(client, coordinator)
    listing = client.get("/ldis/reports").get_data(as_text=True)
    assert "Held" in listing
    page = client.get(f"/ldis/reports/{report.uuid}").get_data(as_text=True)
    assert 'data-testid="held-report"' in page
    assert f"<mark>{STORED_NAME}</mark>" in page
    assert "Do not copy the marked words into an alert" in page


def test_a_coordinator_who_may_not_see_the_person_is_not_told_they_are_held(
    held_app: Flask,
    stored_person: int,
    create_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    """The report is about OTHER, where the person has no case: its coordinator sees the words
    marked as possibly identifying, not as a match."""
    client = held_app.test_client()
    client.post("/report-a-drug-concern", data=report_form(says(STORED_NAME), area=OTHER))
    report = newest_report()
    assert report is not None and report.is_held
    login(client, create_user(Role.COORDINATOR, areas=(OTHER,)))
    page = client.get(f"/ldis/reports/{report.uuid}").get_data(as_text=True)
    assert f"<mark>{STORED_NAME}</mark>" in page
    assert rep.HELD_NOTE in page and rep.HELD_NOTE_VISIBLE not in page


def test_a_report_with_no_stored_match_is_not_held(
    held_app: Flask, stored_person: int
) -> None:
    held_app.test_client().post("/report-a-drug-concern", data=report_form(says(MADE_UP_NAME)))
    report = newest_report()
    assert report is not None and not report.is_held and rep.held_of(report) == []


# -- who may see the match: the one rule -----------------------------------------------------


class _Found:
    def __init__(self, kind: str, person_ids: frozenset[int], stored: bool) -> None:
        self.field, self.start, self.end, self.kind, self.message = "effects", 0, 4, kind, "m"
        self.person_ids, self.stored = person_ids, stored


def test_only_case_roles_of_the_persons_areas_may_see_a_match(
    held_app: Flask, stored_person: int, create_user: Callable[..., User]
) -> None:
    home_coordinator = create_user(Role.COORDINATOR, areas=(HOME,))
    home_member = create_user(Role.PANEL_MEMBER, areas=(HOME,))
    both = create_user(Role.PANEL_MEMBER, areas=(OTHER, HOME))
    assert visibility.may_see_person(home_coordinator, stored_person)
    assert visibility.may_see_person(home_member, stored_person)
    assert visibility.may_see_person(both, stored_person)
    for outsider in (
        None,
        create_user(Role.COORDINATOR, areas=(OTHER,)),
        create_user(Role.AGENCY_CONTRIBUTOR, areas=(HOME,)),
        create_user(Role.LEAD, areas=(HOME,)),
        create_user(Role.ADMIN, areas=(HOME,)),
    ):
        assert not visibility.may_see_person(outsider, stored_person)

    match = _Found("person_name", frozenset({stored_person}), stored=True)
    unknown = _Found("person_name", frozenset(), stored=True)  # the detector did not say who
    pattern = _Found("nhs_number", frozenset(), stored=False)
    assert visibility.split_findings([match, unknown, pattern], home_coordinator) == (
        [match, pattern], [unknown]
    )
    assert visibility.split_findings([match, pattern], None) == ([pattern], [match])


def test_a_coordinator_of_the_persons_area_is_shown_the_match(
    held_app: Flask,
    stored_person: int,
    create_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    """Needs the detector to say which person matched (``Finding.person_ids``)."""
    client = held_app.test_client()
    login(client, create_user(Role.COORDINATOR, areas=(HOME,)))
    response = client.post("/ldis/reports/new", data=report_form(says(STORED_NAME)))
    assert response.status_code == 400
    assert f"<mark>{STORED_NAME}</mark>" in response.get_data(as_text=True)
    assert newest_report() is None
    ok = client.post("/ldis/reports/new", data=report_form(says(MADE_UP_NAME)))
    assert ok.status_code == 200


def test_the_api_gives_the_coordinator_the_held_spans_and_the_reporter_nothing(
    held_app: Flask, stored_person: int, create_user: Callable[..., User]
) -> None:
    client = held_app.test_client()
    member = create_user(Role.PANEL_MEMBER, areas=(OTHER,))
    _, token = create_token(member, "probe", by=member)
    coordinator = create_user(Role.COORDINATOR, areas=(HOME,))
    _, coordinator_token = create_token(coordinator, "reading", by=coordinator)
    db.session.commit()
    made = client.post(
        "/api/v1/reports",
        json=report_form(says(STORED_NAME)),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201 and "held" not in made.get_json()
    uuid = made.get_json()["uuid"]
    read = client.get(
        f"/api/v1/reports/{uuid}", headers={"Authorization": f"Bearer {coordinator_token}"}
    ).get_json()
    assert read["held"] == [
        {"field": "effects", "start": 0, "end": len(STORED_NAME), "note": rep.HELD_NOTE_VISIBLE}
    ]
    assert read["content"]["effects"][: len(STORED_NAME)] == STORED_NAME


def test_a_refusal_is_audited_with_the_kinds_not_the_words(held_app: Flask) -> None:
    response = held_app.test_client().post(
        "/report-a-drug-concern", data=report_form(says(MADE_UP_NHS), place="near FY1 4AB")
    )
    assert response.status_code == 400 and newest_report() is None
    [entry] = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "drug_report.refused")
    ).all()
    assert entry.actor_label == "public"
    details = json.loads(entry.details)
    assert details["fields"] == ["effects", "place"] and details["kinds"]
    assert "0026" not in entry.details and "4AB" not in entry.details
