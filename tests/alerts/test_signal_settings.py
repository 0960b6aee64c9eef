"""An area's spike-scan settings on a page: coordinators of the area change them, the next scan
uses them, every change is audited, bad input and stale pages lose nothing."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import signals as sig
from dr_panel.alerts.models import SignalSettings
from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.alerts.test_signals import TODAY, area, flat_with_spike

FORM = {
    "c1": "y", "c2": "y", "c3": "y", "poisson": "y", "threshold": "3", "c3_threshold": "2",
    "min_sigma": "0.5", "min_count": "3", "alpha": "0.001", "poisson_baseline": "28",
    "lookback": "14", "revision": "0",
}


def _url(code: str = "E06000009") -> str:
    return f"/ldis/signal-settings/{area(code).uuid}"


def test_a_coordinator_raises_an_areas_bar_and_the_next_scan_uses_it(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    coordinator = create_user(Role.COORDINATOR, areas=("E06000009",))
    login(client, coordinator)
    listing = client.get("/ldis/signal-settings").get_data(as_text=True)
    assert "Blackpool" in listing and "Blackburn" not in listing and "Standard" in listing
    page = client.get(_url()).get_data(as_text=True)
    assert 'value="3"' in page and "Fewest events on the day to flag" in page

    # A spike of 10 on a flat 2 a day: the standard settings flag it; with at least 11 events
    # needed on the day and C2 off, the next scan does not.
    response = client.post(_url(), data=FORM | {"min_count": "11", "c2": ""})
    assert response.status_code == 302
    assert "2 settings changed for Blackpool" in client.get(response.location).get_data(
        as_text=True)
    db.session.expire_all()
    assert sig.settings_for("E06000009").min_count == 11
    assert not sig.settings_for("E06000009").c2
    assert sig.settings_for("E06000008").min_count == 3  # other areas untouched
    flat_with_spike()
    assert sig.scan(TODAY).new_spikes == 0
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "signals.settings.changed")
    ).one()
    assert json.loads(entry.details or "{}")["changed"] == {"c2": [True, False],
                                                            "min_count": [3, 11]}
    assert entry.object_uuid == str(area("E06000009").uuid)
    listing = client.get("/ldis/signal-settings").get_data(as_text=True)
    assert re.search(r"Blackpool</th>\s*<td>C1, C3, Poisson</td>", listing)
    rows = listing.split("<tbody>")[1].split("</tbody>")[0]
    assert "2 settings" in rows and "Standard" not in rows

    # Back to the standard settings: the same spike is found.
    response = client.post(_url() + "/reset")
    assert "uses the standard settings again" in client.get(response.location).get_data(
        as_text=True)
    db.session.expire_all()
    assert db.session.scalars(select(SignalSettings)).all() == []
    assert sig.scan(TODAY).new_spikes == 1


def test_bad_numbers_are_explained_and_nothing_is_saved(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user(Role.COORDINATOR, areas=("E06000009",)))
    response = client.post(_url(), data=FORM | {
        "threshold": "lots", "lookback": "0", "alpha": "nan", "min_count": "2.5"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter a number from 0.5 to 10." in page
    assert "Enter a whole number from 1 to 90." in page
    assert "Enter a number from 0.000001 to 0.1." in page
    assert "Enter a whole number from 1 to 1000." in page
    assert 'value="lots"' in page  # what was typed stays in the form
    assert db.session.scalars(select(SignalSettings)).all() == []


def test_a_page_opened_before_a_colleagues_save_is_refused_with_the_input_kept(
    app: Flask, create_user: Any, login: Any
) -> None:
    alice, bob = app.test_client(), app.test_client()
    login(alice, create_user(Role.COORDINATOR, areas=("E06000009",)))
    login(bob, create_user(Role.COORDINATOR, areas=("E06000009",)))
    assert alice.post(_url(), data=FORM | {"min_count": "4"}).status_code == 302
    stale = bob.post(_url(), data=FORM | {"min_count": "6"})
    page = stale.get_data(as_text=True)
    assert stale.status_code == 409 and "Someone else saved this area" in page
    assert re.search(r'name="min_count"[^>]*value="6"|value="6"[^>]*name="min_count"', page)
    db.session.expire_all()
    assert sig.settings_for("E06000009").min_count == 4
    # A page whose hidden revision was tampered with is refused the same way, not a 500.
    assert bob.post(_url(), data=FORM | {"revision": "x"}).status_code == 409


def test_configuration_still_applies_to_what_the_page_did_not_change(
    app_factory: Any, create_user: Any, login: Any
) -> None:
    app = app_factory(SIGNAL_AREA_SETTINGS={"E06000009": {"min_sigma": 1.5}})
    with app.app_context():
        client = app.test_client()
        login(client, create_user(Role.COORDINATOR, areas=("E06000009",)))
        page = client.get(_url()).get_data(as_text=True)
        assert 'value="1.5"' in page
        assert client.post(_url(), data=FORM | {"min_sigma": "1.5", "lookback": "21"}
                           ).status_code == 302
        row = db.session.scalars(select(SignalSettings)).one()
        assert json.loads(row.overrides) == {"lookback": 21}
        assert sig.settings_for("E06000009").min_sigma == 1.5


def test_other_areas_and_other_roles_are_refused(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert client.get(_url("E06000009")).status_code == 404
    assert client.post(_url("E06000009"), data=FORM).status_code == 404
    assert client.post(_url("E06000009") + "/reset").status_code == 404
    assert db.session.scalars(select(SignalSettings)).all() == []
    denied = db.session.scalars(
        select(AuditEntry).where(AuditEntry.outcome == Outcome.DENIED)
    ).all()
    assert len(denied) == 3
    lead = app.test_client()
    login(lead, create_user(Role.LEAD, areas=("E06000009",)))
    assert lead.get("/ldis/signal-settings").status_code == 403
