"""Every text search matches what was typed literally: ``%`` and ``_`` are not wildcards.

An attacker (or a curious user) typing ``_`` into a search box must not list every record; a
person searching for ``team_a`` must not also get ``teamXa``. One helper (``dr_panel.search``)
builds every LIKE; these tests go through the pages a person uses.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role
from dr_panel.cases.services import Lookups, create_notification, parse_notification
from dr_panel.extensions import db
from dr_panel.search import contains, escape_like, starts_with
from tests.alerts.support import make_subscriber
from tests.api.conftest import notification
from tests.conftest import PASSWORD

REFERENCE = re.compile(r"\b(?:DRD|NFO)-\d{4}-\d{4}\b")


def test_escape_like_escapes_wildcards_and_the_escape_character() -> None:
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"
    assert escape_like("plain") == "plain"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("_", {"team_a"}),
        ("%", {"50% club"}),
        ("\\", {"back\\slash"}),
        ("m_", {"team_a"}),
        ("team", {"team_a", "teamxa"}),
    ],
)
def test_contains_matches_literally_on_this_engine(app: Flask, typed: str, expected: set) -> None:
    names = ["team_a", "teamxa", "50% club", "50 club", "back\\slash", "backslash"]
    for name in names:
        make_subscriber(name=name)
    db.session.flush()
    from dr_panel.alerts.models import Subscriber

    found = set(db.session.scalars(db.select(Subscriber.name).where(contains(Subscriber.name,
                                                                                typed))))
    assert found == expected
    prefixed = set(db.session.scalars(db.select(Subscriber.name).where(
        starts_with(Subscriber.name, "50%"))))
    assert prefixed == {"50% club"}
    ignoring = set(db.session.scalars(db.select(Subscriber.name).where(
        contains(Subscriber.name, "TEAM_", ignore_case=True))))
    assert ignoring == {"team_a"}


def _cases(client: Any, q: str) -> set[str]:
    page = client.get(f"/cases?q={quote(q)}")
    assert page.status_code == 200
    return set(REFERENCE.findall(page.get_data(as_text=True)))


def test_case_reference_search_treats_wildcards_literally(
    app: Flask, create_user: Any, login: Any
) -> None:
    coordinator = create_user(Role.COORDINATOR)
    made = set()
    for _ in range(3):
        n, errors = parse_notification(
            notification(), lookups=Lookups(), allowed_areas=coordinator.area_ids
        )
        assert n is not None, errors
        made.add(create_notification(n, by=coordinator, source="test").reference)
    db.session.commit()
    client = app.test_client()
    login(client, coordinator)

    assert _cases(client, "") == made
    assert _cases(client, "-") == made  # the search works at all
    assert _cases(client, "_") == set()  # was: every case
    assert _cases(client, "%") == set()
    assert _cases(client, "%-%") == set()
    one = sorted(made)[0]
    assert _cases(client, one) == {one}
    assert _cases(client, one[:-1] + "_") == set()  # "_" does not stand for the last digit


def test_subscriber_search_treats_wildcards_literally(
    app: Flask, create_user: Any, login: Any
) -> None:
    coordinator = create_user(Role.COORDINATOR)
    for name in ("Team_A outreach", "TeamXA outreach", "50% club"):
        make_subscriber(name=name)
    db.session.commit()
    client = app.test_client()
    login(client, coordinator)

    def names(q: str) -> set[str]:
        html = client.get(f"/ldis/subscribers?q={quote(q)}").get_data(as_text=True)
        return {n for n in ("Team_A outreach", "TeamXA outreach", "50% club") if n in html}

    assert names("outreach") == {"Team_A outreach", "TeamXA outreach"}
    assert names("m_a") == {"Team_A outreach"}
    assert names("_") == {"Team_A outreach"}
    assert names("%") == {"50% club"}


def test_admin_user_search_treats_wildcards_literally(
    app: Flask, create_user: Any, login: Any
) -> None:
    admin = create_user(Role.ADMIN)
    for email, name in (("ann_lee@example.org", "Ann Lee"), ("annxlee@example.org", "Ann X")):
        accounts.create_user(
            accounts.AccountDetails(
                email=email, display_name=name, role=Role.LEAD, area_codes=("E06000009",)
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
    db.session.commit()
    client = app.test_client()
    login(client, admin)

    def emails(q: str) -> set[str]:
        html = client.get(f"/admin/users?q={quote(q)}").get_data(as_text=True)
        return {e for e in ("ann_lee@example.org", "annxlee@example.org") if e in html}

    assert emails("ann") == {"ann_lee@example.org", "annxlee@example.org"}
    assert emails("n_l") == {"ann_lee@example.org"}
    assert emails("%") == set()


def test_audit_actor_filter_treats_wildcards_literally(
    app: Flask, create_user: Any, login: Any
) -> None:
    admin = create_user(Role.ADMIN, email="admin@example.org")
    for email in ("ops_lead@example.org", "opsxlead@example.org"):
        user = create_user(Role.LEAD, email=email)
        login(app.test_client(), user)  # signing in is audited under their e-mail
    client = app.test_client()
    login(client, admin)

    def actors(q: str) -> set[str]:
        html = client.get(f"/admin/audit?actor={quote(q)}").get_data(as_text=True)
        return {e for e in ("ops_lead@example.org", "opsxlead@example.org") if e in html}

    assert actors("lead@") == {"ops_lead@example.org", "opsxlead@example.org"}
    assert actors("s_l") == {"ops_lead@example.org"}
    assert actors("%") == set()
