"""Synthetic cases for the charts, exports, extract and measures tests, made through the same
intake service the pages and the API call (so the trend counts are kept by the real hooks).
Every person is made up; NHS numbers, where given, are from the 999 test range."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from dr_panel.cases.models import Case
from dr_panel.cases.services import Lookups, create_notification, parse_notification
from dr_panel.extensions import db

SURNAMES = ["Ashdown", "Birch", "Calder", "Dunmore", "Ellery", "Fenwick", "Garside", "Holt"]
FORENAMES = ["Alex", "Bryn", "Cal", "Dee", "Eli", "Fran", "Gail", "Hal", "Ira", "Jo"]


def person_name(i: int) -> str:
    return f"{FORENAMES[i % len(FORENAMES)]} {SURNAMES[(i // len(FORENAMES)) % len(SURNAMES)]}-{i}"


def notification(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "case_type": "nfo",
        "area": "E06000009",
        "event_date": "2026-03-14",
        "setting": "home",
        "substances": ["heroin"],
        "treatment_status": "unknown",
        "full_name": "Test Person",
        "date_of_birth": "1985-06-02",
        "sex": "female",
        "postcode": "FY1 1AA",
    }
    data.update(fields)
    data.setdefault("notified_on", data["event_date"])
    if data["case_type"] == "death":
        data.pop("nfo_outcome", None)
    return data


def make_case(user: Any, **fields: Any) -> Case:
    n, errors = parse_notification(
        notification(**fields), lookups=Lookups(), allowed_areas=user.area_ids,
        today=date(2026, 11, 1),
    )
    assert n is not None, errors
    return create_notification(n, by=user, source="test")


def make_cases(user: Any, specs: Iterable[dict[str, Any]]) -> list[Case]:
    made = [make_case(user, **spec) for spec in specs]
    db.session.commit()
    return made


def varied(count: int, *, start: int = 0, **common: Any) -> list[dict[str, Any]]:
    """``count`` distinct people with spread-out months, ages, sexes and postcodes: a dataset
    with plenty of small cells."""
    out = []
    districts = ["FY1 1AA", "FY2 9AB", "FY3 7CD", "FY4 2EF", "BB1 5GH"]
    births = ["2003-02-01", "1995-05-05", "1988-08-08", "1979-09-09", "1968-01-10", "1955-11-11"]
    sexes = ["female", "male", "male", "female", "unknown"]
    for i in range(start, start + count):
        spec = {
            "full_name": person_name(i),
            "event_date": f"2026-{(i * 7) % 9 + 1:02d}-{(i * 5) % 27 + 1:02d}",
            "date_of_birth": births[(i * 5) % len(births)],
            "sex": sexes[i % len(sexes)],
            "postcode": districts[(i * 11) % len(districts)],
            "substances": [["heroin"], ["crack"], ["heroin", "crack"]][i % 3],
        }
        spec.update(common)
        out.append(spec)
    return out
