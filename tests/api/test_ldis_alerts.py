"""Alerts through the JSON API: the same services and rules as the pages (draft from an
assessment, the leak gate, second-person approval, update, cancel, the archive)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dr_panel.alerts.models import AlertStatus, Channel, Delivery
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from tests.alerts.drafting_helpers import CLEAN, make_assessment
from tests.alerts.support import make_subscriber


@pytest.fixture
def people(create_user: Any) -> dict[str, User]:
    return {
        "drafter": create_user(Role.COORDINATOR),
        "second": create_user(Role.COORDINATOR),
        "lead": create_user(Role.LEAD),
        "member": create_user(Role.PANEL_MEMBER),
        "elsewhere": create_user(Role.COORDINATOR, areas=("E06000008",)),
    }


Bearer = Callable[[User], dict[str, str]]


def body(**changes: Any) -> dict[str, Any]:
    return {"content": {**CLEAN, "counts": "Fewer than 8 people needed hospital care."},
            "scope": "public", "areas": ["E06000009"], "audiences": ["outreach"], **changes}


def draft(app: Flask, bearer: Bearer, user: User, **changes: Any) -> dict[str, Any]:
    a = make_assessment(user)
    response = app.test_client().post(
        "/api/v1/alerts", json={"assessment": str(a.uuid), **body(**changes)},
        headers=bearer(user),
    )
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"].endswith(response.get_json()["uuid"])
    return response.get_json()  # type: ignore[no-any-return]


def test_draft_submit_approve_and_list(
    app: Flask, bearer: Bearer, people: dict[str, User]
) -> None:
    make_subscriber(Channel.WEBHOOK, url="https://partner.example.org/hook")
    db.session.commit()
    client = app.test_client()
    made = draft(app, bearer, people["drafter"])
    assert made["status"] == "draft" and made["reference"].startswith("LDIS-")
    (v1,) = made["versions"]
    assert v1["content"]["title"] == CLEAN["title"] and v1["scope"] == "public"
    assert v1["state"] == "draft" and v1["cap_url"] is None
    url = f"/api/v1/alerts/{made['uuid']}"
    sent = client.post(f"{url}/submit", json={"revision": v1["revision"]},
                       headers=bearer(people["drafter"]))
    assert sent.status_code == 200 and sent.get_json()["status"] == "awaiting_approval"
    # The drafter cannot approve: 403, audited.
    own = client.post(f"{url}/approve", json={}, headers=bearer(people["drafter"]))
    assert own.status_code == 403 and own.mimetype == "application/problem+json"
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "access.denied")) == 1
    # A coordinator of another area does not even see it.
    assert client.post(f"{url}/approve", json={},
                       headers=bearer(people["elsewhere"])).status_code == 404
    done = client.post(f"{url}/approve", json={}, headers=bearer(people["lead"]))
    assert done.status_code == 200, done.get_json()
    answer = done.get_json()
    assert answer["status"] == "issued" and answer["deliveries"] == 1
    assert answer["versions"][0]["cap_url"].endswith(f"/feeds/cap/{v1['uuid']}.xml")
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 1
    listed = client.get("/api/v1/alerts?q=nitazene&status=issued",
                        headers=bearer(people["member"]))
    assert listed.status_code == 200
    assert [a["reference"] for a in listed.get_json()["items"]] == [made["reference"]]
    seen = client.get(url, headers=bearer(people["member"])).get_json()
    assert [v["state"] for v in seen["versions"]] == ["issued"]


def test_the_gate_blocks_with_the_spans(
    app: Flask, bearer: Bearer, people: dict[str, User]
) -> None:
    dirty = {**CLEAN, "advice": "Call 07700 900123 or write to x@example.org."}
    made = draft(app, bearer, people["drafter"], content=dirty)
    response = app.test_client().post(f"/api/v1/alerts/{made['uuid']}/submit", json={},
                                      headers=bearer(people["drafter"]))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    problem = response.get_json()
    spans = [(f["field"], dirty["advice"][f["start"]:f["end"]], f["kind"])
             for f in problem["findings"]]
    assert spans == [("advice", "07700 900123", "phone"), ("advice", "x@example.org", "email")]
    assert "content.advice" in problem["errors"]
    assert "07700" not in response.get_data(as_text=True)  # spans, never the text itself
    again = app.test_client().get(f"/api/v1/alerts/{made['uuid']}",
                                  headers=bearer(people["drafter"]))
    assert again.get_json()["status"] == "draft"


def test_update_and_cancel(app: Flask, bearer: Bearer, people: dict[str, User]) -> None:
    client = app.test_client()
    d, s = bearer(people["drafter"]), bearer(people["second"])
    made = draft(app, bearer, people["drafter"])
    url = f"/api/v1/alerts/{made['uuid']}"
    client.post(f"{url}/submit", json={}, headers=d)
    client.post(f"{url}/approve", json={}, headers=s)
    update = client.post(f"{url}/update", json={"content": {"note": "Also in Blackburn."},
                                                "areas": ["E06000009", "E06000008"]}, headers=d)
    assert update.status_code == 200, update.get_json()
    versions = update.get_json()["versions"]
    assert [v["msg_type"] for v in versions] == ["Alert", "Update"]
    assert versions[1]["references"] == versions[0]["uuid"]
    # A stale revision is refused.
    stale = client.post(f"{url}/update", json={"content": {"title": "x"}, "revision": 1},
                        headers=d)
    assert stale.status_code == 409
    client.post(f"{url}/submit", json={}, headers=d)
    issued = client.post(f"{url}/approve", json={}, headers=s)
    assert issued.get_json()["current_version"] == 2
    busy = client.post(f"{url}/cancel", json={"reason": "Withdrawn."}, headers=d)
    assert busy.status_code == 200 and busy.get_json()["status"] == "issued"
    twice = client.post(f"{url}/cancel", json={"reason": "Again."}, headers=d)
    assert twice.status_code == 409
    client.post(f"{url}/approve", json={}, headers=s)
    final = client.get(url, headers=d).get_json()
    assert final["status"] == AlertStatus.CANCELLED.value
    assert final["versions"][2]["references"] == final["versions"][1]["uuid"]


def test_wrong_input_is_explained(app: Flask, bearer: Bearer, people: dict[str, User]) -> None:
    client = app.test_client()
    d = bearer(people["drafter"])
    unknown = client.post("/api/v1/alerts", json={"assessment": str(uuid.uuid4())}, headers=d)
    assert unknown.status_code == 400 and "assessment" in unknown.get_json()["errors"]
    a = make_assessment(people["drafter"])
    far = client.post("/api/v1/alerts", json={"assessment": str(a.uuid)},
                      headers=bearer(people["elsewhere"]))
    assert far.status_code == 404
    extra = client.post("/api/v1/alerts", json={"assessment": str(a.uuid), "colour": "red"},
                        headers=d)
    assert extra.status_code == 400 and "colour" in extra.get_json()["errors"]
    made = client.post("/api/v1/alerts", json={"assessment": str(a.uuid)}, headers=d)
    assert made.status_code == 201
    twice = client.post("/api/v1/alerts", json={"assessment": str(a.uuid)}, headers=d)
    assert twice.status_code == 409
    bad = client.get("/api/v1/alerts?level=loud&since=yesterday", headers=d)
    assert bad.status_code == 400 and set(bad.get_json()["errors"]) == {"level", "since"}
    url = f"/api/v1/alerts/{made.get_json()['uuid']}"
    empty = client.post(f"{url}/submit", json={}, headers=d)
    assert empty.status_code == 400 and "content.title" in empty.get_json()["errors"]
    assert client.post(f"{url}/approve", json={},
                       headers=bearer(people["member"])).status_code == 403
