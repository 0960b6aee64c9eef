"""The LDIS in the JSON API: signals, drug-concern reports and assessments, with the same rules
and services as the pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import signals as sig
from dr_panel.alerts.models import Assessment, DrugReport, ItemStatus, Signal
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from dr_panel.trends.models import DailyCount

TODAY = utcnow().date()


def report_body(**changes: Any) -> dict[str, Any]:
    body = {
        "area": "E06000009",
        "seen_on": (TODAY - timedelta(days=1)).isoformat(),
        "is_urgent": False,
        "substance": "Green tablets, suspected benzodiazepine",
        "sold_as": "diazepam",
        "effects": "Heavy sedation lasting a day",
        "place": "near the bus station",
    }
    body.update(changes)
    return body


def make_signal() -> Signal:
    area = db.session.scalar(select(Area).where(Area.ons_code == "E06000009"))
    assert area is not None
    for back in range(30, 0, -1):
        db.session.add(DailyCount(area_id=area.id, day=TODAY - timedelta(days=back),
                                  case_type="nfo", substance_group="benzodiazepines", n=1))
    db.session.add(DailyCount(area_id=area.id, day=TODAY, case_type="nfo",
                              substance_group="benzodiazepines", n=9))
    db.session.commit()
    sig.scan(TODAY)
    db.session.commit()
    found = db.session.scalars(select(Signal)).first()
    assert found is not None
    return found


def test_signals_list_and_one_with_its_evidence(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    s = make_signal()
    headers = bearer(create_user(Role.COORDINATOR))
    listed = client.get("/api/v1/signals?status=new", headers=headers)
    assert listed.status_code == 200
    assert str(s.uuid) in {i["uuid"] for i in listed.get_json()["items"]}
    one = client.get(f"/api/v1/signals/{s.uuid}", headers=headers).get_json()
    assert one["observed"] == 9 and one["area"]["code"] == "E06000009"
    assert one["evidence"]["series"]["counts"][-1] == 9
    assert client.get("/api/v1/signals?status=closed", headers=headers).get_json()["items"] == []
    bad = client.get("/api/v1/signals?colour=red", headers=headers)
    assert bad.status_code == 400 and "colour" in bad.get_json()["errors"]
    other = bearer(create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert client.get(f"/api/v1/signals/{s.uuid}", headers=other).status_code == 404
    lead = bearer(create_user(Role.LEAD))
    assert client.get("/api/v1/signals", headers=lead).status_code == 403


def test_a_partner_reports_and_only_the_coordinator_reads_it(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    member = bearer(create_user(Role.PANEL_MEMBER))
    made = client.post("/api/v1/reports", json=report_body(), headers=member)
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["reference"] == f"DC-{utcnow().year}-0001" and "content" not in body
    assert client.get(f"/api/v1/reports/{body['uuid']}", headers=member).status_code == 403
    coordinator = bearer(create_user(Role.COORDINATOR))
    listed = client.get("/api/v1/reports", headers=coordinator).get_json()["items"]
    assert [r["reference"] for r in listed] == [body["reference"]]
    one = client.get(f"/api/v1/reports/{body['uuid']}", headers=coordinator).get_json()
    assert one["content"]["sold_as"] == "diazepam"
    assert db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "drug_report.viewed")
    ) is not None


def test_a_report_with_an_identifier_is_refused_and_nothing_saved(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    headers = bearer(create_user(Role.AGENCY_CONTRIBUTOR))
    refused = client.post(
        "/api/v1/reports",
        json=report_body(effects="Call him on 07700 900123"),
        headers=headers,
    )
    assert refused.status_code == 400
    assert refused.mimetype == "application/problem+json"
    assert "phone number" in refused.get_json()["errors"]["effects"]
    future = (TODAY + timedelta(days=2)).isoformat()
    late = client.post("/api/v1/reports", json=report_body(seen_on=future), headers=headers)
    assert "future" in late.get_json()["errors"]["seen_on"]
    unknown = client.post("/api/v1/reports", json=report_body(name="x"), headers=headers)
    assert unknown.status_code == 400 and "name" in unknown.get_json()["errors"]
    assert db.session.scalar(select(DrugReport)) is None
    admin = bearer(create_user(Role.ADMIN))
    assert client.post("/api/v1/reports", json=report_body(), headers=admin).status_code == 403


def test_assessing_through_the_api(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    s = make_signal()
    headers = bearer(create_user(Role.COORDINATOR))
    grading = {
        "signal": str(s.uuid), "reliability": "c", "plausibility": "high",
        "local_relevance": "medium", "severity": "severe", "decision": "drug_alert",
        "rationale": "Nine overdoses in a day against one a day before.",
    }
    both = client.post(
        "/api/v1/assessments", json={**grading, "report": str(s.uuid)}, headers=headers
    )
    assert both.status_code == 400 and "exactly one" in both.get_json()["errors"]["signal"]
    made = client.post("/api/v1/assessments", json=grading, headers=headers)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["item"] == {"type": "signal", "uuid": str(s.uuid), "status": "assessed"}
    db.session.refresh(s)
    assert s.status is ItemStatus.ASSESSED
    closed = client.post(
        "/api/v1/assessments", json={**grading, "decision": "no_further_action"}, headers=headers
    )
    assert closed.status_code == 201
    again = client.post("/api/v1/assessments", json=grading, headers=headers)
    assert again.status_code == 409
    assert len(db.session.scalars(select(Assessment)).all()) == 2
    other = bearer(create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert client.post("/api/v1/assessments", json=grading, headers=other).status_code == 404
