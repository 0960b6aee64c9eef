"""Charts: SVG that parses, carries a title and a description, and never shows a lead a count
from 1 to 7 or an unrounded count, whether as a label, a tick or in its description."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.privacy.disclosure import shown_count
from dr_panel.reference.models import Area
from dr_panel.trends import charts
from dr_panel.trends.models import Population
from dr_panel.trends.queries import TrendRow, TrendTable
from tests.trends import protection
from tests.trends.t3_data import make_cases, varied

SVG = "{http://www.w3.org/2000/svg}"
RANGE = "from=2026-01&to=2026-12"


def small_cells() -> list[dict[str, Any]]:
    """23 overdoses in March, 3 in April, 12 in May, 9 in July; fentanyl in 2 of them."""
    specs = []
    for month, n in ((3, 23), (4, 3), (5, 12), (7, 9)):
        specs += varied(n, start=month * 100, event_date=f"2026-{month:02d}-10")
    for spec in specs[:2]:
        spec["substances"] = ["fentanyl", "heroin"]
    return specs


@pytest.fixture
def data(app: Flask, create_user: Any) -> Any:
    coordinator = create_user(Role.COORDINATOR)
    make_cases(coordinator, small_cells())
    return coordinator


def texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)  # noqa: S314  (our own output, parsed in a test)
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def assert_protected(svg: bytes) -> None:
    """No text in the chart, and no figure in its description, is a count from 1 to 7 or a
    count that is not a multiple of 5."""
    root = ET.fromstring(svg)  # noqa: S314
    assert root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text
    assert desc is not None and "Disclosure control" in (desc.text or "")
    for text in texts(svg):
        if re.fullmatch(r"[0-9]+", text):
            assert int(text) % 5 == 0, f"unrounded count {text!r} in a lead's chart"
    figures = (desc.text or "").split("Figures (count):", 1)[1].split(". Disclosure", 1)[0]
    for value in re.findall(r": ([^;]+)", figures):
        assert value == "*" or int(value) % 5 == 0, value


@pytest.mark.parametrize(
    ("kind", "extra"), [("series", ""), ("substance", ""), ("age_band", ""),
                        ("series", "&by=period&by2=sex")]
)
def test_a_leads_charts_never_show_small_or_unrounded_counts(
    data: Any, client: Any, create_user: Any, login: Any, kind: str, extra: str
) -> None:
    login(client, create_user(Role.LEAD))
    response = client.get(f"/trends/chart/{kind}.svg?{RANGE}{extra}")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert_protected(response.data)
    assert "*" in texts(response.data)  # the small cells are drawn as '*', not left out


def test_series_labels_suppressed_months_and_rounds_the_rest(
    data: Any, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user(Role.LEAD))
    svg = client.get(f"/trends/chart/series.svg?{RANGE}").data
    desc = ET.fromstring(svg).find(f"{SVG}desc").text  # noqa: S314
    # Each month as the published method gives it for its cases (perturbed by their cell key,
    # then rounded): 23 may show as 20 or 25, 12 as 10 or 15, 9 as * or 10; 3 is always *.
    for m, name in ((3, "Mar"), (5, "May"), (7, "Jul")):
        assert f"{name} 2026: {protection.shown(**protection.month(2026, m)).text};" in desc
    assert "Apr 2026: *" in desc and "Jun 2026: 0" in desc
    assert "Mar 2026" in texts(svg)


def test_a_coordinator_sees_exact_counts_in_their_own_area(
    data: Any, client: Any, login: Any
) -> None:
    login(client, data)
    svg = client.get(f"/trends/chart/substance.svg?{RANGE}").data
    assert "2" in texts(svg)  # fentanyl, exactly
    assert "Exact counts" in ET.fromstring(svg).find(f"{SVG}desc").text  # noqa: S314


def test_rate_chart_draws_the_confidence_band(
    data: Any, client: Any, create_user: Any, login: Any
) -> None:
    area = db.session.scalar(select(Area).where(Area.ons_code == "E06000009"))
    at = datetime(2026, 6, 1, tzinfo=UTC)
    db.session.add_all(
        Population(area_id=area.id, year=2026, sex=sex, age=age, population=1500, imported_at=at)
        for sex in ("female", "male") for age in range(91)
    )
    db.session.commit()
    login(client, create_user(Role.LEAD))
    svg = client.get(f"/trends/chart/series.svg?{RANGE}&measure=rate&grain=quarter").data
    found = texts(svg)
    assert "95% confidence interval" in found and "Rate per 100,000 (95% CI)" in found
    # Rate ticks carry a decimal, so none reads as a count.
    ticks = [t for t in found if re.fullmatch(r"[0-9.]+", t)]
    assert ticks and all("." in t for t in ticks)


def test_bad_parameters_answer_a_clear_400(
    data: Any, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user(Role.LEAD))
    bad = client.get("/trends/chart/series.svg?from=2026-13")
    assert bad.status_code == 400
    assert b"YYYY-MM" in bad.data
    dsr_by_age = client.get(f"/trends/chart/age_band.svg?{RANGE}&measure=dsr")
    assert dsr_by_age.status_code == 400
    assert b"age band" in dsr_by_age.data
    assert client.get("/trends/chart/pie.svg").status_code == 404
    other_area = client.get(f"/trends/chart/series.svg?{RANGE}&area=E06000008")
    assert other_area.status_code == 400 and b"your own areas" in other_area.data


def test_downloading_a_chart_is_audited(
    data: Any, client: Any, create_user: Any, login: Any
) -> None:
    lead = create_user(Role.LEAD)
    login(client, lead)
    shown = client.get(f"/trends/chart/series.svg?{RANGE}")
    assert "Content-Disposition" not in shown.headers
    saved = client.get(f"/trends/chart/series.svg?{RANGE}&download=1")
    assert saved.headers["Content-Disposition"] == 'attachment; filename="dr-panel-series.svg"'
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "trends.chart_exported")
    ).one()
    assert entry.actor_uuid == lead.uuid and json.loads(entry.details)["chart"] == "series"


def test_chart_from_a_table_without_a_database() -> None:
    """A table built by hand: suppressed cells become '*' stubs, not their values."""
    rows = [
        TrendRow(keys={"age_band": b}, labels={"age_band": b}, count=shown_count(n, exact=False))
        for b, n in (("18-24", 3), ("25-34", 41), ("35-44", 0))
    ]
    table = TrendTable(columns=["age_band"], rows=rows, total=None,
                       note="Disclosure control (test).", describes="Test.", exact=False)
    svg = charts.chart("age_band", table, measure="count")
    assert_protected(svg)
    found = texts(svg)
    assert "*" in found and "40" in found and "0" in found and "3" not in found
    with pytest.raises(charts.ChartError):
        charts.chart("series", table, measure="count")
