"""Fixtures for the JSON API: bearer headers for a user, a valid notification, and a case made
through the same service the API calls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from dr_panel.auth.models import User
from dr_panel.auth.tokens import create_token
from dr_panel.cases.models import Case
from dr_panel.cases.services import Lookups, create_notification, parse_notification
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db

# A person who does not exist. 999 000 0034 (the test range) has a valid modulus-11 check digit.
NAME = "Siân O'Brien-Smith"
NHS = "9990000034"
ADDRESS = "12 Example Terrace, Blackpool"
POSTCODE = "FY1 1AA"
DOB = "1985-06-02"


def days_ago(n: int) -> str:
    return (utcnow().date() - timedelta(days=n)).isoformat()


def notification(**changes: Any) -> dict[str, Any]:
    """A valid non-fatal overdose notification as JSON, with every identifier filled in."""
    data: dict[str, Any] = {
        "case_type": "nfo",
        "area": "E06000009",
        "notifying_agency": "POLICE",
        "notified_on": days_ago(1),
        "event_date": days_ago(2),
        "event_time": "23:15",
        "date_is_found": False,
        "setting": "home",
        "substances": ["heroin", "crack"],
        "route": "injected",
        "naloxone_given": "yes",
        "naloxone_by": "peer",
        "naloxone_doses": 2,
        "nfo_outcome": "conveyed",
        "treatment_status": "left_6m",
        "recent_prison_release": "no",
        "housing_status": "hostel_supported",
        "children_in_household": "unknown",
        "previous_overdoses": 3,
        "full_name": NAME,
        "date_of_birth": DOB,
        "sex": "female",
        "nhs_number": NHS,
        "address": ADDRESS,
        "postcode": POSTCODE,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


@pytest.fixture
def bearer(app: Flask) -> Callable[[User], dict[str, str]]:
    """``bearer(user)``: the Authorization header of a new token of theirs."""

    def make(user: User, name: str = "test") -> dict[str, str]:
        _, plaintext = create_token(user, name, by=user)
        db.session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    return make


@pytest.fixture
def create_case(app: Flask) -> Callable[..., Case]:
    """``create_case(user, **fields)``: a case made by the service the API and pages call."""

    def make(user: User, **changes: Any) -> Case:
        n, errors = parse_notification(
            notification(**changes), lookups=Lookups(), allowed_areas=user.area_ids
        )
        assert n is not None, errors
        case = create_notification(n, by=user, source="test")
        db.session.commit()
        return case

    return make
