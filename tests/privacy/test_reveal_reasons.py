"""Reveal reasons go to the append-only audit log for good, so one that carries an identifier is
refused before anything is revealed or stored, on the page and in the API; the refusal is audited
without the reason. A name the user may not see is never refused (that would say the person is
held): the reveal goes ahead and those words are not stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role, User
from dr_panel.auth.tokens import create_token
from dr_panel.cases import reasons
from dr_panel.cases import services as cases
from dr_panel.cases.models import Case
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db

HOME, OTHER = "E06000009", "E06000008"
NAME, NHS = "Marigold Thistlewaite", "9990000018"
OTHER_NAME = "Peregrine Ashcombe"  # held, but only in OTHER

REFUSED_REASONS = {
    "nhs number of the person": "checking 999 000 0018 before the panel",
    "a made-up nhs number": "checking 9990000026 against our own list",
    "a date of birth": "born 14/03/1980, checking our records",
    "a written date of birth": "born 14 March 1980, checking our records",
    "a postcode": "lives near FY1 4AB, checking the records",
    "a phone number": "she rang from 07700 900123 about this",
    "an e-mail address": "asked by worried.parent@example.net",
}
GOOD = "Checking our records before the panel meeting"


def make_case(user: User, area: str, name: str, nhs: str) -> Case:
    parsed, errors = cases.parse_notification(
        {
            "case_type": "nfo",
            "area": area,
            "event_date": (utcnow().date() - timedelta(days=20)).isoformat(),
            "setting": "street",
            "full_name": name,
            "nhs_number": nhs,
            "date_of_birth": "1980-03-14",
        },
        lookups=cases.Lookups(),
        allowed_areas=user.area_ids,
    )
    assert parsed is not None, errors
    case = cases.create_notification(parsed, by=user)
    db.session.commit()
    return case


@pytest.fixture
def coordinator(app: Flask, create_user: Callable[..., User]) -> User:
    return create_user(Role.COORDINATOR, areas=(HOME,))


@pytest.fixture
def case(coordinator: User, create_user: Callable[..., User]) -> Case:
    elsewhere = create_user(Role.COORDINATOR, areas=(OTHER,))
    make_case(elsewhere, OTHER, OTHER_NAME, "9990000034")
    return make_case(coordinator, HOME, NAME, NHS)


def reveal_entries() -> list[AuditEntry]:
    db.session.rollback()
    return list(
        db.session.scalars(select(AuditEntry).where(AuditEntry.action == "case.reveal"))
    )


def assert_refused_and_audited_without_the_reason(reason: str) -> None:
    [entry] = reveal_entries()
    assert entry.outcome == Outcome.DENIED and entry.reason is None
    details = json.loads(entry.details)
    assert details["why"] == "identifier in reason" and details["kinds"]
    stored = f"{entry.reason} {entry.details}"
    for word in reason.split():
        if any(c.isdigit() for c in word) or "@" in word:
            assert word.strip(",") not in stored


@pytest.mark.parametrize("what", list(REFUSED_REASONS))
def test_the_page_refuses_a_reason_carrying_an_identifier(
    client: Any, login: Callable[..., Any], coordinator: User, case: Case, what: str
) -> None:
    reason = REFUSED_REASONS[what]
    login(client, coordinator)
    response = client.post(f"/cases/{case.uuid}/reveal", data={"reason": reason})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert reasons.REFUSED in html
    assert 'data-testid="full-name"' not in html and NAME not in html  # nothing revealed
    assert_refused_and_audited_without_the_reason(reason)


@pytest.mark.parametrize("what", list(REFUSED_REASONS))
def test_the_api_refuses_a_reason_carrying_an_identifier(
    client: Any, coordinator: User, case: Case, what: str
) -> None:
    reason = REFUSED_REASONS[what]
    _, token = create_token(coordinator, "t", by=coordinator)
    db.session.commit()
    response = client.get(
        f"/api/v1/cases/{case.uuid}?reveal=1",
        headers={"Authorization": f"Bearer {token}", "X-Reveal-Reason": reason},
    )
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["errors"]["reason"] == reasons.REFUSED and "identifiers" not in body
    assert NAME not in response.get_data(as_text=True)
    assert_refused_and_audited_without_the_reason(reason)


def test_a_plain_reason_reveals_and_is_stored_as_written(
    client: Any, login: Callable[..., Any], coordinator: User, case: Case
) -> None:
    login(client, coordinator)
    response = client.post(f"/cases/{case.uuid}/reveal", data={"reason": GOOD})
    assert response.status_code == 200 and NAME in response.get_data(as_text=True)
    [entry] = reveal_entries()
    assert entry.outcome == Outcome.SUCCESS and entry.reason == GOOD


def test_a_name_the_user_may_not_see_is_not_refused_and_not_stored(
    client: Any, login: Callable[..., Any], coordinator: User, case: Case
) -> None:
    """Refusing it would tell the coordinator that someone of that name is held elsewhere."""
    login(client, coordinator)
    reason = f"asked about {OTHER_NAME} by the family, checking ours"
    response = client.post(f"/cases/{case.uuid}/reveal", data={"reason": reason})
    assert response.status_code == 200 and NAME in response.get_data(as_text=True)
    [entry] = reveal_entries()
    assert entry.outcome == Outcome.SUCCESS
    assert "Ashcombe" not in (entry.reason or "") and reasons.REMOVED in (entry.reason or "")


def test_a_name_the_user_may_see_is_refused(
    client: Any, login: Callable[..., Any], coordinator: User, case: Case
) -> None:
    """Needs the detector to say which person matched (``Finding.person_ids``)."""
    login(client, coordinator)
    reason = f"checking {NAME} before the panel"
    response = client.post(f"/cases/{case.uuid}/reveal", data={"reason": reason})
    assert response.status_code == 400 and reasons.REFUSED in response.get_data(as_text=True)
    [entry] = reveal_entries()
    assert entry.outcome == Outcome.DENIED and "Thistlewaite" not in f"{entry.details}"
