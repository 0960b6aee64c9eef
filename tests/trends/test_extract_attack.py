"""Attacks on the record-level extract, as a lead who also knows someone would run them.

The acquaintance knows every quasi-identifier of one event (when, where, the postcode district,
age band, sex, case type, setting, the substances, the overdose's outcome, treatment status) and
looks for the rows that could be that event. The demo data is loaded through the real demo
loader (``dr-panel demo load``), so the figures printed here are the ones the README quotes.

What each row's generalised value may stand for is written out here, independently of
``dr_panel.trends.extract``: a label this file does not know counts as *not* covering the true
value, so an unknown label can only make these tests fail, never pass by mistake.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pandas as pd
from flask import Flask
from pycanon import anonymity
from sqlalchemy import select

from dr_panel.auth.models import Role
from dr_panel.cases.models import Case, CaseStatus, CaseType
from dr_panel.cases.services import SUBSTANCES
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.trends.t3_data import make_cases, person_name

FULL_QI = ["period", "area", "postcode_district", "age_band", "sex", "case_type", "setting",
           "substances", "nfo_outcome", "treatment_status"]
WIDER_AGE = {"under 18": "under 25", "18-24": "under 25", "25-34": "25-44", "35-44": "25-44",
             "45-54": "45-64", "55-64": "45-64", "65+": "65+"}
GROUP = {code: group for code, _name, group in SUBSTANCES}


def _substances_cover(shown: str, truth: str) -> bool:
    codes = [] if truth == "none" else truth.split(";")
    if shown.startswith("groups:"):
        return shown == "groups:" + (";".join(sorted({GROUP[c] for c in codes})) or "none")
    if shown in ("any opioid", "no opioid"):
        return (shown == "any opioid") == any(GROUP[c] == "opioids" for c in codes)
    return False


def covers(column: str, shown: str, truth: str) -> bool:
    """Could a row showing ``shown`` in ``column`` be an event whose true value is ``truth``?"""
    if shown in ("*", truth):
        return True
    if column == "period":  # truth is YYYY-MM
        year, month = truth.split("-")
        return shown in (year, f"{year}-Q{(int(month) - 1) // 3 + 1}")
    if column == "age_band":
        return WIDER_AGE.get(truth) == shown
    if column == "substances":
        return _substances_cover(shown, truth)
    if "/" in shown:  # a group of recorded values, written out: "home/hostel"
        return truth in shown.split("/")
    return False


def true_events(area_codes: dict[int, str], start: date, end: date) -> list[dict[str, str]]:
    """What an acquaintance could know about each event in the extract, read from the cases."""
    cases = db.session.scalars(
        select(Case).where(Case.area_id.in_(area_codes), Case.event_date >= start,
                           Case.event_date <= end, Case.status != CaseStatus.DUPLICATE)
    )
    out = []
    for c in cases:
        out.append({
            "period": f"{c.event_date:%Y-%m}",
            "area": area_codes[c.area_id],
            "postcode_district": c.postcode_district or "unknown",
            "age_band": c.age_band or "unknown",
            "sex": c.person.sex.value,
            "case_type": c.case_type.value,
            "setting": c.setting.value,
            "substances": ";".join(sorted(s.code for s in c.substances)) or "none",
            "nfo_outcome": "not_applicable" if c.case_type is CaseType.DEATH
            else (c.nfo_outcome.value if c.nfo_outcome else "unknown"),
            "treatment_status": c.treatment_status.value,
        })
    return out


def read_csv(content: bytes) -> tuple[pd.DataFrame, dict[str, str]]:
    text = content.decode("utf-8-sig")
    meta = {}
    comments = "\n".join(line[1:].lstrip() for line in text.splitlines() if line.startswith("#"))
    for row in csv.reader(io.StringIO(comments)):
        if row:
            meta[row[0]] = ",".join(row[1:])
    frame = pd.read_csv(io.StringIO(text), comment="#", dtype=str, keep_default_na=False)
    return frame, meta


def extract_as_lead(client: Any, areas: list[str], start: date, end: date,
                    case_type: str = "") -> tuple[pd.DataFrame, dict[str, str]]:
    response = client.post("/trends/extract", data={
        "areas": areas, "date_from": f"{start:%Y-%m}", "date_to": f"{end:%Y-%m}",
        "case_type": case_type, "file_format": "csv"})
    assert response.status_code == 200, response.data[:300]
    return read_csv(response.data)


def figures(frame: pd.DataFrame, events: int) -> dict[str, float]:
    """The utility figures the lead quotes: shares of the events (not only of the rows kept)."""
    period = frame["period"].astype(str)
    month = period.str.fullmatch(r"\d{4}-\d{2}")
    quarter_or_month = month | period.str.fullmatch(r"\d{4}-Q\d")
    area = frame["area"] != "*"
    district = ~frame["postcode_district"].isin(["*"])
    return {
        "month": month.sum() / events,
        "quarter or finer": quarter_or_month.sum() / events,
        "area": area.sum() / events,
        "postcode district": district.sum() / events,
        "quarter or finer and area": (quarter_or_month & area).sum() / events,
        "suppressed": 1 - len(frame) / events,
    }


def test_demo_extract_survives_an_acquaintance_and_keeps_period_and_area(
    app: Flask, runner: Any, client: Any, create_user: Callable[..., Any], login: Any
) -> None:
    assert runner.invoke(main, ["demo", "load"]).exit_code == 0
    areas = ["E06000009", "E06000008", "E10000017"]
    lead = create_user(Role.LEAD, areas=tuple(areas))
    login(client, lead)
    today = utcnow().date()
    # Whole calendar years: a lead's months are widened to them (the next test).
    start = (today - timedelta(days=740)).replace(month=1, day=1)
    frame, meta = extract_as_lead(client, areas, start, today)
    from dr_panel.reference.models import Area

    codes = {a.id: a.ons_code for a in db.session.scalars(select(Area))}
    truth = true_events(codes, start, today)
    assert len(truth) > 300

    k = anonymity.k_anonymity(frame, FULL_QI) if len(frame) else 0
    shares = figures(frame, len(truth))
    print(f"\ndemo extract: {len(truth)} events, {len(frame)} rows, k = {k} over "
          f"{len(FULL_QI)} quasi-identifiers; "
          + "; ".join(f"{name} {share:.1%}" for name, share in shares.items()))
    print("detail kept:", meta["Detail kept"])
    # k over the full set, and never below the count the aggregate rule would hide (1-7).
    assert k >= max(app.config["EXTRACT_K"], app.config["DISCLOSURE_SUPPRESS_BELOW"])
    assert shares["quarter or finer and area"] >= 0.80

    # The acquaintance: for each event, the rows that could be it.
    rows = frame[FULL_QI].astype(str).to_dict("records")
    smallest = min(
        sum(all(covers(q, row[q], known[q]) for q in FULL_QI) for row in rows)
        for known in truth
    )
    print(f"the acquaintance's smallest candidate set: {smallest} rows")
    assert smallest >= k


def test_small_counts_leave_no_exact_trace_in_rows_or_metadata(
    app: Flask, client: Any, create_user: Callable[..., Any], login: Any
) -> None:
    """Six events alike in every way in one month of one area: the aggregate rule shows that
    cell as *, so the extract must not give 6 rows, and no metadata may state 6 (or 6 with
    anything added to it that the lead can see: rows, suppressed)."""
    coordinator = create_user(Role.COORDINATOR, areas=("E06000008",))
    make_cases(coordinator, [
        {"full_name": person_name(i), "area": "E06000008", "postcode": "BB1 1AA",
         "event_date": "2026-03-1" + str(i % 9), "date_of_birth": "1980-02-02", "sex": "male"}
        for i in range(6)
    ])
    lead = create_user(Role.LEAD, areas=("E06000008",))
    login(client, lead)
    frame, meta = extract_as_lead(client, ["E06000008"], date(2026, 3, 1), date(2026, 3, 31))
    assert len(frame) == 0 or len(frame) >= app.config["DISCLOSURE_SUPPRESS_BELOW"]
    assert len(frame) != 6
    told = {key: value for key, value in meta.items() if key != "Generated at"}  # a clock
    numbers = Counter(int(n) for value in told.values() for n in re.findall(r"\b\d+\b", value))
    assert 6 not in numbers, {k: v for k, v in told.items() if re.search(r"\b6\b", v)}
    assert not any("before suppression" in key.lower() for key in meta)


def test_a_lead_cannot_subtract_two_extracts_to_single_out_a_month(
    app: Flask, client: Any, create_user: Callable[..., Any], login: Any
) -> None:
    """Extracts for January-March and January-April would differ by exactly April's events,
    with whatever detail the larger file kept. For a lead both are widened to the whole year,
    so they are the same file (up to the throw-away person ids); a coordinator of the area,
    who sees the cases anyway, gets the months asked for."""
    coordinator = create_user(Role.COORDINATOR, areas=("E06000008",))
    make_cases(coordinator, [
        {"full_name": person_name(i), "area": "E06000008", "postcode": "BB1 1AA",
         "event_date": f"2026-0{1 + i % 6}-1{i % 9}", "date_of_birth": "1980-02-02",
         "sex": "male"}
        for i in range(60)
    ])
    lead = create_user(Role.LEAD, areas=("E06000008",))
    login(client, lead)
    first, meta = extract_as_lead(client, ["E06000008"], date(2026, 1, 1), date(2026, 3, 31))
    second, _ = extract_as_lead(client, ["E06000008"], date(2026, 1, 1), date(2026, 4, 30))
    columns = [c for c in first.columns if c != "person_pseudo_id"]
    as_rows = sorted(map(tuple, first[columns].to_numpy().tolist()))
    assert as_rows == sorted(map(tuple, second[columns].to_numpy().tolist()))
    assert len(first) == 60
    assert "1 January 2026 to 31 December 2026" in " ".join(meta.values())

    other = app.test_client()
    login(other, coordinator)
    own, _ = extract_as_lead(other, ["E06000008"], date(2026, 1, 1), date(2026, 3, 31))
    assert len(own) == 30
