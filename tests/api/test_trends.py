"""GET /api/v1/trends: the dashboard's figures as JSON, with the same disclosure control."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.trends import protection, t2_data
from tests.trends.t2_data import RAW, SMALL_AND_UNROUNDED

WINDOW = "from=2025-01&to=2025-04"


@pytest.fixture
def data(app: Any, create_user: Any) -> Any:
    coordinator = create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))
    t2_data.build(coordinator)
    return coordinator


def conforms(client: Any, body: Any) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/TrendResult", "components": doc["components"]}
    Draft202012Validator(schema).validate(body)


def walk_numbers(body: Any) -> list[tuple[Any, Any]]:
    rows = [*body["rows"], *([body["total"]] if body["total"] else [])]
    return [(r["value"], r["display"]) for r in rows]


def test_a_lead_gets_only_protected_counts(
    client: Any, data: Any, create_user: Any, bearer: Any
) -> None:
    headers = bearer(create_user(Role.LEAD, areas=("E06000009", "E06000008")))
    for query in (
        f"{WINDOW}",
        f"{WINDOW}&by=period,case_type",
        f"{WINDOW}&by=area,sex",
        f"{WINDOW}&by=substance,age_band&area=E06000009&area=E06000008",
        f"{WINDOW}&by=setting&measure=rate",
        f"{WINDOW}&by=",
        "from=2024-06&to=2025-06&grain=rolling12",
    ):
        response = client.get(f"/api/v1/trends?{query}", headers=headers)
        assert response.status_code == 200, (query, response.get_json())
        body = response.get_json()
        conforms(client, body)
        assert body["exact"] is False and "nearest 5" in body["note"]
        for value, display in walk_numbers(body):
            if display == "*":
                assert value is None
            else:
                assert value == int(display)
                assert value == 0 or (value % 5 == 0 and value not in SMALL_AND_UNROUNDED), query
    body = client.get(f"/api/v1/trends?{WINDOW}&area=E06000009", headers=headers).get_json()
    rows = {r["period"]: r for r in body["rows"]}
    assert rows["2025-01"] == {**rows["2025-01"], "value": None, "display": "*",
                               "suppressed": True}
    # Perturbed by their cell keys, then rounded: as the published method gives them.
    for month in (2, 4):
        expected = protection.shown(areas=("E06000009",), **protection.month(2025, month))
        assert rows[f"2025-{month:02d}"]["display"] == expected.text in ("10", "15")
    expected = protection.shown(areas=("E06000009",), **protection.year(2025))
    assert body["total"]["display"] == expected.text in ("25", "30")
    # A lead's months are whole calendar years of the grid, and the answer says which.
    assert (body["from"], body["to"]) == ("2025-01", "2025-12")
    assert "from Jan 2025 to Dec 2025" in body["describes"]


def test_a_coordinator_of_the_area_gets_exact_counts_and_rates_are_withheld_below_ten(
    client: Any, data: Any, bearer: Any
) -> None:
    t2_data.load_sample_populations()
    headers = bearer(data)
    body = client.get(f"/api/v1/trends?{WINDOW}&area=E06000009&measure=rate",
                      headers=headers).get_json()
    assert body["exact"] is True
    rows = {r["period"]: r for r in body["rows"]}
    assert {k: r["value"] for k, r in rows.items()} == RAW
    jan = rows["2025-01"]
    assert jan["rate"] is None and jan["rate_suppressed"] is True
    assert jan["rate_note"] == "Fewer than 10 events: no rate is given."
    feb = rows["2025-02"]
    assert feb["rate"] is not None and feb["ci_low"] < feb["rate"] < feb["ci_high"]
    assert body["total"]["value"] == 28


def test_the_query_is_audited(client: Any, data: Any, bearer: Any) -> None:
    headers = bearer(data)
    assert client.get(f"/api/v1/trends?{WINDOW}&by=sex", headers=headers).status_code == 200
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry.action == "trends.query" and '"by":"sex"' in entry.details


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("measure=mean", "measure"),
        ("by=period,sex,setting", "by"),
        ("by=colour", "by"),
        ("from=2025-1", "from"),
        ("to=2025-13", "to"),
        ("from=0000-01", "from"),
        ("from=2025-06&to=2025-01", "from"),
        ("area=E10000017", "area"),
        ("area=Blackpool", "area"),
        ("case_type=both", "case_type"),
        ("substance=tea", "substance"),
        ("grain=week", "grain"),
        ("measure=dsr&by=age_band", "by"),
        ("colour=red", "colour"),  # an unknown parameter is refused, not ignored
        ("by2=sex", "by2"),  # the dashboard's second select is not an API parameter
        ("area=", "area"),  # the page's "all"; the API wants the parameter left out
        ("measure=count&measure=rate", "measure"),
    ],
)
def test_bad_parameters_are_named_with_how_to_fix_them(
    client: Any, data: Any, bearer: Any, query: str, param: str
) -> None:
    response = client.get(f"/api/v1/trends?{query}", headers=bearer(data))
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert list(body["errors"]) == [param]
    assert body["errors"][param].endswith(".")


def test_asking_for_an_area_not_granted_is_audited_as_refused(
    client: Any, data: Any, create_user: Any, bearer: Any
) -> None:
    lead = create_user(Role.LEAD, areas=("E06000009",))
    response = client.get("/api/v1/trends?area=E06000008", headers=bearer(lead))
    assert response.status_code == 400 and "your own areas" in response.get_json()["errors"][
        "area"]
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry.action == "access.denied" and entry.outcome == "denied"
    assert "trends:area not granted" in entry.details


@pytest.mark.parametrize("role", [Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.ADMIN])
def test_other_roles_are_refused(client: Any, app: Any, create_user: Any, bearer: Any,
                                 role: Role) -> None:
    response = client.get("/api/v1/trends", headers=bearer(create_user(role)))
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert client.get("/api/v1/trends").status_code == 401
