"""A dataset built to contain small cells, made through the intake service the pages and the API
call, so the trend counts come from the real hooks. Every person is made up; no NHS numbers.

Blackpool (E06000009), events in 2025:
  January   3 non-fatal overdoses          (a lead sees "*")
  February  12 non-fatal overdoses         (a lead sees "10" or "15": perturbed, then rounded)
  March     none                           ("0" for everyone)
  April     13 suspected deaths            (a lead sees "10" or "15")
  total 28                                 (a lead sees "25" or "30", a cell of its own)
Blackburn with Darwen (E06000008): 1 non-fatal overdose in January 2025.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dr_panel.cases.models import Case
from dr_panel.cases.services import Lookups, create_notification, parse_notification
from dr_panel.extensions import db
from dr_panel.reference import services as reference
from dr_panel.trends.populations import import_csv, sample_csv_path

BIRTHS = ["1990-03-01", "1980-07-15", "1972-11-30", "2001-05-20"]  # ages 34, 44, 52, 23 in 2025
SEXES = ["female", "male", "male", "female"]
BLACKPOOL_2025 = {1: ("nfo", 3), 2: ("nfo", 12), 4: ("death", 13)}
RAW = {"2025-01": 3, "2025-02": 12, "2025-03": 0, "2025-04": 13}
SMALL_AND_UNROUNDED = {1, 2, 3, 4, 5, 6, 7, 12, 13, 28, 29}


def notification(n: int, case_type: str, day: str, area: str = "E06000009") -> dict[str, Any]:
    data = {
        "case_type": case_type,
        "area": area,
        "notified_on": max("2025-06-30", day),
        "event_date": day,
        "setting": ["home", "street", "hostel"][n % 3],
        "substances": [["heroin"], ["crack"], ["heroin", "crack"]][n % 3],
        "treatment_status": ["in_treatment", "left_6m", "never"][n % 3],
        "full_name": f"Synthetic Person {n}",
        "date_of_birth": BIRTHS[n % len(BIRTHS)],
        "sex": SEXES[n % len(SEXES)],
    }
    if case_type == "nfo":
        data["nfo_outcome"] = "conveyed"
    return data


def make(user: Any, n: int, case_type: str, day: str, area: str = "E06000009") -> Case:
    parsed, errors = parse_notification(
        notification(n, case_type, day, area), lookups=Lookups(), allowed_areas=user.area_ids
    )
    assert parsed is not None, errors
    return create_notification(parsed, by=user, source="test")


def build(coordinator: Any) -> list[Case]:
    """The dataset above, by a coordinator of both areas."""
    made = []
    n = 0
    for month, (case_type, count) in BLACKPOOL_2025.items():
        for i in range(count):
            made.append(make(coordinator, n, case_type, f"2025-{month:02d}-{i % 27 + 1:02d}"))
            n += 1
    made.append(make(coordinator, n, "nfo", "2025-01-10", area="E06000008"))
    db.session.commit()
    return made


def add_lancashire() -> None:
    reference.save_area(None, ons_code="E10000017", name="Lancashire", network="Pan-Lancashire")
    db.session.commit()


def load_sample_populations() -> None:
    """The demo's synthetic mid-year estimates (all three demo areas, 2020-2026)."""
    add_lancashire()
    with sample_csv_path().open("rb") as fh:
        result = import_csv(fh, by=None, source="test")
    assert result.saved, result.problems[:3]
    db.session.commit()


def sample_population(code: str, year: int, *, sex: str | None = None,
                      ages: range = range(0, 91)) -> int:
    """Straight from the sample CSV (not through dr-panel), for expected values."""
    import csv

    total = 0
    with Path(sample_csv_path()).open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["ladcode23"] != code or int(row["age"]) not in ages:
                continue
            if sex is not None and row["sex"] != {"male": "1", "female": "2"}[sex]:
                continue
            total += int(row[f"population_{year}"])
    return total
