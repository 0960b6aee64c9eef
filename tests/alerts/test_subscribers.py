"""Subscriber pages and services: coordinators of an area manage its subscribers; a webhook's
secret is shown once and stored encrypted; disabling and enabling; the delivery dashboard."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, text, update

from dr_panel.alerts import broadcast
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import (
    AlertStatus,
    AlertVersion,
    Channel,
    Delivery,
    DeliveryStatus,
    MsgType,
    Subscriber,
)
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.alerts.support import make_alert, make_subscriber

SECRET = re.compile(r'data-testid="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<')


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": "email",
        "name": "Outreach team",
        "organisation": "Blackpool Council",
        "address": "outreach@example.org",
        "areas": ["E06000009"],
        "audiences": ["outreach"],
        "receives_restricted": "y",
    }
    data.update(overrides)
    return data


def _actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_a_coordinator_adds_an_email_subscriber(app: Flask, client: Any, create_user: Any,
                                               login: Any) -> None:
    login(client, create_user())
    page = client.get("/ldis/subscribers/new")
    assert page.status_code == 200 and "Add a subscriber" in page.get_data(as_text=True)
    response = client.post("/ldis/subscribers/new", data=_form())
    assert response.status_code == 302
    sub = db.session.scalars(select(Subscriber)).one()
    assert sub.email == "outreach@example.org" and [a.ons_code for a in sub.areas] == [
        "E06000009"
    ]
    assert subs.audiences_of(sub) == ["outreach"] and sub.secret_enc is None
    listing = client.get("/ldis/subscribers").get_data(as_text=True)
    assert "Outreach team" in listing and "Outreach and harm-reduction teams" in listing
    assert "alerts.subscriber.created" in _actions()
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "alerts.subscriber.created")
    ).one()
    assert "outreach@example.org" not in (entry.details or "")


def test_mistakes_are_explained_and_nothing_is_saved(app: Flask, client: Any, create_user: Any,
                                                    login: Any) -> None:
    login(client, create_user())
    page = client.post("/ldis/subscribers/new", data=_form(address="not-an-address"))
    assert page.status_code == 200
    assert "write it like name@example.org" in page.get_data(as_text=True)
    page = client.post("/ldis/subscribers/new",
                       data=_form(channel="webhook", address="http://partner.example.org/h"))
    assert "must use https://" in page.get_data(as_text=True)
    page = client.post("/ldis/subscribers/new", data=_form(areas=[]))
    assert "Choose at least one area" in page.get_data(as_text=True)
    # An area the coordinator does not hold is not offered, and not accepted.
    page = client.post("/ldis/subscribers/new", data=_form(areas=["E06000008"]))
    assert page.status_code == 200
    assert db.session.scalars(select(Subscriber)).all() == []


def test_a_webhook_secret_is_shown_once_and_stored_encrypted(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user())
    response = client.post(
        "/ldis/subscribers/new",
        data=_form(channel="webhook", address="https://partner.example.org/hooks/alerts"),
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    secret = SECRET.search(body).group(1)  # type: ignore[union-attr]
    assert "shown only this once" in body
    sub = db.session.scalars(select(Subscriber)).one()
    raw = db.session.execute(text("SELECT secret_enc FROM subscribers")).scalar_one()
    assert secret not in raw and raw.startswith("v1:")
    assert subs.secrets_for(sub) == [secret]
    page = client.get(f"/ldis/subscribers/{sub.uuid}").get_data(as_text=True)
    assert secret not in page and "shown only when made or rotated" in page
    assert secret not in str(db.session.scalars(select(AuditEntry.details)).all())

    # Rotation: a new secret, shown once; the old one signs too for 24 hours.
    rotated = client.post(f"/ldis/subscribers/{sub.uuid}/rotate-secret")
    new = SECRET.search(rotated.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert new != secret and "keeps signing" in rotated.get_data(as_text=True)
    db.session.expire_all()
    assert subs.secrets_for(sub) == [new, secret]
    page = client.get(f"/ldis/subscribers/{sub.uuid}").get_data(as_text=True)
    assert "the previous secret also signs until" in page
    assert "alerts.subscriber.secret_rotated" in _actions()


def test_local_http_webhooks_only_outside_production(app_factory: Any, create_user: Any) -> None:
    app = app_factory(WEBHOOK_ALLOW_LOOPBACK=False)
    with app.app_context():
        user = create_user()
        details = subs.Details(channel=Channel.WEBHOOK, name="Local", organisation=None,
                               address="http://127.0.0.1:9000/hook", area_codes=["E06000009"],
                               audiences=[])
        try:
            subs.create(details, by=user)
        except subs.SubscriberError as err:
            assert "must use https://" in str(err)
        else:
            raise AssertionError("plain http was accepted with the flag off")


def _issue(version: Any, status: AlertStatus = AlertStatus.ISSUED) -> Any:
    version.alert.status = status
    db.session.flush()
    return version


def _next_version(version: Any, msg_type: MsgType) -> Any:
    alert = version.alert
    later = AlertVersion(
        number=version.number + 1, msg_type=msg_type, level=version.level, scope=version.scope,
        content=version.content, audiences=version.audiences, drafted_by_id=version.drafted_by_id,
        issued_at=utcnow(),
    )
    later.areas = list(version.areas)
    alert.versions.append(later)
    db.session.flush()
    return later


def test_enabling_again_resends_what_still_matters_and_nothing_superseded(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    user = create_user()
    sub = make_subscriber(email="hostel@example.org", name="Hostel")
    in_force = _issue(make_alert(user))
    updated = _issue(make_alert(user))
    update_ = _next_version(updated, MsgType.UPDATE)
    known = _issue(make_alert(user), AlertStatus.CANCELLED)
    for version in (in_force, updated, update_, known):
        broadcast.queue_deliveries(version)
    db.session.commit()
    # The hostel had received the first version of the alert later cancelled.
    db.session.execute(update(Delivery).where(Delivery.version_id == known.id).values(
        status=DeliveryStatus.SENT, sent_at=utcnow()))
    cancel = _next_version(known, MsgType.CANCEL)
    broadcast.queue_deliveries(cancel)
    lapsed = _issue(make_alert(user))
    lapsed.expires_at = utcnow() - timedelta(hours=1)  # past its expiry, not yet marked
    broadcast.queue_deliveries(lapsed)
    never_heard = _issue(make_alert(user), AlertStatus.CANCELLED)
    ended = _next_version(never_heard, MsgType.CANCEL)
    broadcast.queue_deliveries(ended)
    db.session.commit()

    login(client, user)
    client.post(f"/ldis/subscribers/{sub.uuid}/disable", data={"reason": "Inbox full"})
    response = client.post(f"/ldis/subscribers/{sub.uuid}/enable")
    page = client.get(response.location).get_data(as_text=True)
    assert "3 messages they missed that still matter will be sent again now" in page
    db.session.expire_all()
    status = {d.version_id: d.status for d in db.session.scalars(select(Delivery))}
    assert status == {
        in_force.id: DeliveryStatus.QUEUED,  # still in force
        updated.id: DeliveryStatus.GAVE_UP,  # superseded by its update...
        update_.id: DeliveryStatus.QUEUED,  # ...which is sent
        known.id: DeliveryStatus.SENT,
        cancel.id: DeliveryStatus.QUEUED,  # they knew of it, so they hear it was cancelled
        lapsed.id: DeliveryStatus.GAVE_UP,  # expired
        ended.id: DeliveryStatus.GAVE_UP,  # cancelled before they heard of it
    }
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "alerts.subscriber.enabled")
    ).one()
    assert json.loads(entry.details or "{}")["resent"] == 3


def test_disable_shows_the_reason_and_enable_clears_it(app: Flask, client: Any,
                                                      create_user: Any, login: Any) -> None:
    user = create_user()
    sub = make_subscriber(email="hostel@example.org", name="Hostel")
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    login(client, user)
    response = client.post(f"/ldis/subscribers/{sub.uuid}/disable",
                           data={"reason": "Left the service"})
    page = client.get(response.location).get_data(as_text=True)
    assert "Hostel is disabled" in page and "1 waiting deliveries were cancelled" in page
    assert "Left the service" in page
    db.session.expire_all()
    assert db.session.scalars(select(Delivery)).one().status == DeliveryStatus.GAVE_UP
    listing = client.get("/ldis/subscribers?status=disabled").get_data(as_text=True)
    assert "Hostel" in listing and "Left the service" in listing

    response = client.post(f"/ldis/subscribers/{sub.uuid}/enable")
    page = client.get(response.location).get_data(as_text=True)
    assert "enabled again" in page and "Left the service" not in page
    db.session.expire_all()
    assert db.session.get(Subscriber, sub.id).disabled_reason is None
    assert _actions()[-2:] == ["alerts.subscriber.disabled", "alerts.subscriber.enabled"]


def test_editing_keeps_areas_the_coordinator_does_not_hold(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    sub = make_subscriber(email="regional@example.org", areas=("E06000009", "E06000008"))
    db.session.commit()
    login(client, create_user(areas=("E06000009",)))
    response = client.post(f"/ldis/subscribers/{sub.uuid}",
                           data=_form(name="Regional team", areas=["E06000009"]))
    assert response.status_code == 302
    db.session.expire_all()
    sub = db.session.get(Subscriber, sub.id)
    assert sub.name == "Regional team"
    assert {a.ons_code for a in sub.areas} == {"E06000009", "E06000008"}


def test_only_coordinators_of_the_area_reach_a_subscriber(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    sub = make_subscriber(email="hostel@example.org", areas=("E06000008",))
    db.session.commit()
    login(client, create_user(areas=("E06000009",)))
    assert client.get(f"/ldis/subscribers/{sub.uuid}").status_code == 404
    assert client.post(f"/ldis/subscribers/{sub.uuid}/disable").status_code == 404
    assert "hostel@example.org" not in client.get("/ldis/subscribers").get_data(as_text=True)
    other = app.test_client()
    login(other, create_user(Role.PANEL_MEMBER, areas=("E06000008",)))
    assert other.get(f"/ldis/subscribers/{sub.uuid}").status_code == 403


def test_the_delivery_dashboard(app: Flask, client: Any, create_user: Any, login: Any) -> None:
    user = create_user()
    for n in range(120):
        make_subscriber(email=f"team{n}@example.org", name=f"Team {n:03}")
    version = make_alert(user)
    broadcast.queue_deliveries(version)
    db.session.execute(
        update(Delivery).where(Delivery.id <= 100).values(status=DeliveryStatus.SENT,
                                                          sent_at=utcnow())
    )
    db.session.execute(
        update(Delivery).where(Delivery.id > 115).values(
            status=DeliveryStatus.FAILED, last_error="SMTPServerDisconnected", attempts=1
        )
    )
    db.session.execute(update(Delivery).where(Delivery.id <= 3).values(acknowledged_at=utcnow()))
    db.session.commit()
    login(client, user)
    url = f"/ldis/alerts/{version.alert.uuid}/deliveries"
    page = client.get(url).get_data(as_text=True)
    counts = re.search(r'data-testid="delivery-counts".*?</table>', page, re.S).group(0)  # type: ignore[union-attr]
    cells = re.findall(r"<td>(\d+)</td>", counts)
    assert cells == ["15", "100", "5", "0", "3", "120"]
    assert "Page 1 of 2 (120 in all)" in page
    failed = client.get(f"{url}?status=failed").get_data(as_text=True)
    assert failed.count("SMTPServerDisconnected") == 5 and "(5 in all)" not in failed
    acked = client.get(f"{url}?status=acknowledged&channel=email&version=1").get_data(
        as_text=True)
    assert "Team 000" in acked and "Team 050" not in acked
    assert client.get(f"{url}?status=nonsense").status_code == 200

    other = app.test_client()
    login(other, create_user(areas=("E06000008",)))
    assert other.get(url).status_code == 404
