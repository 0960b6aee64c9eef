"""An area's spike-scan settings in the JSON API: the same rules as the page (its coordinators,
the same ranges, a stale revision refused, every change audited); errors are problem details."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import signals as sig
from dr_panel.alerts.models import SignalSettings
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.reference.models import Area


def _area(code: str = "E06000009") -> Area:
    found = db.session.scalar(select(Area).where(Area.ons_code == code))
    assert found is not None
    return found


def test_read_change_and_reset_an_areas_settings(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    headers = bearer(create_user(Role.COORDINATOR, areas=("E06000009",)))
    listing = client.get("/api/v1/signal-settings", headers=headers).get_json()
    assert [i["area"] for i in listing["items"]] == ["E06000009"]
    first = listing["items"][0]
    assert first["settings"]["min_count"] == 3 and first["set_here"] == []
    assert first["revision"] == 0
    url = f"/api/v1/signal-settings/{first['area_uuid']}"

    changed = client.patch(url, json={"revision": 0, "min_count": 11, "c2": False,
                                      "alpha": 0.0001}, headers=headers)
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["set_here"] == ["alpha", "c2", "min_count"] and body["revision"] == 1
    assert body["settings"]["min_count"] == 11 and body["settings"]["threshold"] == 3.0
    db.session.expire_all()
    assert sig.settings_for("E06000009").min_count == 11  # the next scan uses it
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "signals.settings.changed")
    ).one()
    assert json.loads(entry.details or "{}")["changed"]["min_count"] == [3, 11]

    # The same change again from the old revision: refused, nothing saved.
    stale = client.patch(url, json={"revision": 0, "min_count": 5}, headers=headers)
    assert stale.status_code == 409 and stale.mimetype == "application/problem+json"
    assert "revision" in stale.get_json()["errors"]
    assert client.get(url, headers=headers).get_json()["settings"]["min_count"] == 11

    reset = client.delete(url, headers=headers)
    assert reset.status_code == 200
    assert reset.get_json()["set_here"] == [] and reset.get_json()["revision"] == 0
    assert reset.get_json()["settings"]["min_count"] == 3


def test_bad_values_are_named_with_their_range_and_nothing_is_saved(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    headers = bearer(create_user(Role.COORDINATOR, areas=("E06000009",)))
    url = f"/api/v1/signal-settings/{_area().uuid}"
    refused = client.patch(url, json={
        "revision": 0, "min_count": 2.5, "alpha": 1, "threshold": True, "c1": "yes",
        "colour": "red",
    }, headers=headers)
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    errors = refused.get_json()["errors"]
    assert errors["min_count"] == "min_count: give a whole number from 1 to 1000."
    assert errors["alpha"] == "alpha: give a number from 0.000001 to 0.1."
    assert errors["threshold"] == "threshold: give a number from 0.5 to 10."
    assert errors["c1"] == "c1: give true or false."
    assert "Unknown field" in errors["colour"]
    missing = client.patch(url, json={"min_count": 5}, headers=headers)
    assert missing.status_code == 400 and "revision" in missing.get_json()["errors"]
    assert db.session.scalars(select(SignalSettings)).all() == []


def test_other_areas_and_roles_are_refused(
    app: Flask, client: Any, create_user: Any, bearer: Any
) -> None:
    other = bearer(create_user(Role.COORDINATOR, areas=("E06000008",)))
    url = f"/api/v1/signal-settings/{_area('E06000009').uuid}"
    assert client.get(url, headers=other).status_code == 404
    assert client.patch(url, json={"revision": 0, "min_count": 5},
                        headers=other).status_code == 404
    assert client.delete(url, headers=other).status_code == 404
    lead = bearer(create_user(Role.LEAD, areas=("E06000009",)))
    assert client.get("/api/v1/signal-settings", headers=lead).status_code == 403
    assert db.session.scalars(select(SignalSettings)).all() == []
