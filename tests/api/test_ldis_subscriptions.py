"""Subscriptions and an alert's deliveries in the JSON API: the same services and rules as the
pages; a webhook's secret is in the answer once; errors are problem details."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select
from standardwebhooks import Webhook

from dr_panel.alerts import broadcast
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import Subscriber
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.alerts.support import make_alert, make_subscriber

HOOK = {
    "channel": "webhook",
    "name": "Trust alerting system",
    "organisation": "Blackpool Teaching Hospitals",
    "address": "https://alerts.partner.example.org/inbound",
    "areas": ["E06000009"],
    "audiences": ["emergency_departments"],
}


def test_create_read_update_disable_and_rotate(app: Flask, client: Any, create_user: Any,
                                               bearer: Any) -> None:
    headers = bearer(create_user())
    made = client.post("/api/v1/subscriptions", json=HOOK, headers=headers)
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and Webhook(secret)  # a valid Standard Webhooks secret
    assert made.headers["Cache-Control"] == "no-store"
    url = made.headers["Location"]
    assert url.endswith(f"/api/v1/subscriptions/{body['uuid']}")

    read = client.get(url, headers=headers).get_json()
    assert "secret" not in read and read["areas"] == ["E06000009"] and read["active"] is True
    listed = client.get("/api/v1/subscriptions", headers=headers).get_json()
    assert [s["uuid"] for s in listed["items"]] == [body["uuid"]]

    changed = client.patch(url, json={"audiences": [], "name": "Trust system"}, headers=headers)
    assert changed.status_code == 200
    assert changed.get_json()["audiences"] == [] and changed.get_json()["name"] == "Trust system"
    assert changed.get_json()["address"] == HOOK["address"]  # not given: unchanged

    rotated = client.post(f"{url}/rotate-secret", headers=headers).get_json()
    assert rotated["secret"] != secret and rotated["previous_secret_until"]
    sub = db.session.scalars(select(Subscriber)).one()
    assert subs.secrets_for(sub) == [rotated["secret"], secret]

    gone = client.delete(url, headers=headers)
    assert gone.status_code == 200 and gone.get_json()["active"] is False
    assert gone.get_json()["disabled_reason"] == "disabled through the API"
    again = client.delete(url, headers=headers)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    back = client.patch(url, json={"active": True}, headers=headers).get_json()
    assert back["active"] is True and back["disabled_reason"] is None


def test_mistakes_are_problem_details(app: Flask, client: Any, create_user: Any,
                                      bearer: Any) -> None:
    headers = bearer(create_user())
    cases = [
        ({**HOOK, "address": "http://partner.example.org/in"}, "address", "https://"),
        ({**HOOK, "channel": "email", "address": "nope"}, "address", "name@example.org"),
        ({**HOOK, "areas": ["E06000008"]}, "areas", "areas you coordinate"),
        ({**HOOK, "audiences": ["nobody"]}, "audiences", "from:"),
        ({**HOOK, "colour": "red"}, "colour", "Unknown field"),
        ({k: v for k, v in HOOK.items() if k != "name"}, "name", "required"),
    ]
    for body, field, words in cases:
        answer = client.post("/api/v1/subscriptions", json=body, headers=headers)
        assert answer.status_code == 400, body
        assert answer.mimetype == "application/problem+json"
        assert words in answer.get_json()["errors"][field], answer.get_json()
    assert db.session.scalars(select(Subscriber)).all() == []
    email = client.post("/api/v1/subscriptions", json={**HOOK, "channel": "email",
                                                       "address": "ed@example.org"},
                        headers=headers)
    assert email.status_code == 201 and "secret" not in email.get_json()
    rotate = client.post(f"/api/v1/subscriptions/{email.get_json()['uuid']}/rotate-secret",
                         headers=headers)
    assert rotate.status_code == 400


def test_only_coordinators_of_the_area(app: Flask, client: Any, create_user: Any,
                                       bearer: Any) -> None:
    sub = make_subscriber(email="hostel@example.org", areas=("E06000008",))
    db.session.commit()
    mine = bearer(create_user(areas=("E06000009",)))
    assert client.get(f"/api/v1/subscriptions/{sub.uuid}", headers=mine).status_code == 404
    assert client.get("/api/v1/subscriptions", headers=mine).get_json()["items"] == []
    lead = bearer(create_user(Role.LEAD, areas=("E06000008",)))
    assert client.get("/api/v1/subscriptions", headers=lead).status_code == 403


def test_alert_deliveries(app: Flask, client: Any, create_user: Any, bearer: Any) -> None:
    user = create_user()
    for n in range(5):
        make_subscriber(email=f"team{n}@example.org", name=f"Team {n}")
    version = make_alert(user)
    broadcast.queue_deliveries(version)
    db.session.commit()
    headers = bearer(user)
    url = f"/api/v1/alerts/{version.alert.uuid}/deliveries"
    body = client.get(f"{url}?per_page=2", headers=headers).get_json()
    assert body["total"] == 5 and len(body["items"]) == 2 and body["next"]
    assert body["counts"] == [{"version": 1, "event": "issued", "total": 5, "queued": 5,
                               "sent": 0, "failed": 0, "gave_up": 0, "acknowledged": 0}]
    assert body["items"][0]["status"] == "queued"
    assert client.get(body["next"], headers=headers).get_json()["page"] == 2
    bad = client.get(f"{url}?status=lost", headers=headers)
    assert bad.status_code == 400 and "status" in bad.get_json()["errors"]
    other = bearer(create_user(areas=("E06000008",)))
    assert client.get(url, headers=other).status_code == 404
