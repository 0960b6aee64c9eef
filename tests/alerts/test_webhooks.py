"""Webhooks at a real local HTTP receiver that verifies every request with the
``standardwebhooks`` package: signing, retries with backoff, disabling on 410 and after repeated
failures, and secret rotation with two signatures during the overlap."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from dr_panel import retry
from dr_panel.alerts import broadcast, webhooks
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import Channel, Delivery, DeliveryStatus, Subscriber
from dr_panel.audit.models import AuditEntry
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.alerts.support import CONTENT, Receiver, free_port, make_alert


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def _endpoint(user: Any, receiver: Receiver, path: str = "/hook", **kw: Any) -> Subscriber:
    sub, secret = subs.create(
        subs.Details(
            channel=Channel.WEBHOOK, name=f"Partner {path}", organisation="NHS Trust",
            address=receiver.url(path), area_codes=["E06000009"], audiences=[], **kw,
        ),
        by=user,
    )
    assert secret is not None
    receiver.secrets[path] = [secret]
    return sub


def _due_now() -> None:
    db.session.execute(update(Delivery).values(next_attempt_at=utcnow()))
    db.session.commit()


def _delivery() -> Delivery:
    db.session.expire_all()
    return db.session.scalars(select(Delivery)).one()


def test_a_signed_webhook_arrives_and_verifies(app: Flask, create_user: Any,
                                               receiver: Receiver) -> None:
    user = create_user()
    sub = _endpoint(user, receiver)
    version = make_alert(user, audiences=("treatment",))
    assert broadcast.queue_deliveries(version) == 1
    db.session.commit()

    report = broadcast.deliver()
    assert report.sent == 1 and report.remaining == 0
    assert receiver.unverified == 0
    [(msg_id, body)] = receiver.processed
    delivery = _delivery()
    assert msg_id == f"msg_{delivery.uuid.hex}"
    assert delivery.status == DeliveryStatus.SENT and delivery.response_status == 200
    assert body["type"] == "alert.issued"
    data = body["data"]
    assert data["alert"] == version.alert.reference and data["version"] == 1
    assert data["areas"] == ["E06000009"] and data["audiences"] == ["treatment"]
    assert data["msg_type"] == "Alert" and data["scope"] == "public"
    assert data["content"]["title"] == CONTENT["title"]
    assert "cap_url" in data
    headers = receiver.headers[0]
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - utcnow().timestamp()) < 60
    assert sub.uuid.hex not in str(headers)  # nothing but the delivery's own id


def test_a_failure_is_retried_later_with_the_same_id(app: Flask, create_user: Any,
                                                     receiver: Receiver) -> None:
    user = create_user()
    _endpoint(user, receiver)
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    receiver.answers["/hook"] = 500

    report = broadcast.deliver()
    assert report.failed == 1 and report.sent == 0
    delivery = _delivery()
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error == "HTTP 500"
    assert delivery.attempts == 1 and delivery.claimed_until is None
    assert delivery.next_attempt_at > utcnow() - timedelta(seconds=1)
    assert delivery.next_attempt_at <= utcnow() + timedelta(seconds=31)  # 30 s base, jitter

    receiver.answers["/hook"] = 200
    _due_now()
    assert broadcast.deliver().sent == 1
    assert _delivery().status == DeliveryStatus.SENT
    ids = list(receiver.raw)
    assert len(ids) == 1 and receiver.raw[ids[0]] >= 2  # the same webhook-id each time
    assert len(receiver.processed) == 1


def test_410_disables_the_endpoint_with_a_visible_reason(app: Flask, create_user: Any,
                                                         receiver: Receiver) -> None:
    user = create_user()
    sub = _endpoint(user, receiver)
    broadcast.queue_deliveries(make_alert(user))
    second = make_alert(user)
    broadcast.queue_deliveries(second)
    db.session.commit()
    receiver.answers["/hook"] = 410

    broadcast.deliver(limit=1)
    db.session.expire_all()
    sub = db.session.get(Subscriber, sub.id)
    assert not sub.is_active and sub.disabled_reason == "answered 410 Gone"
    rows = {d.version_id: d for d in db.session.scalars(select(Delivery))}
    assert all(d.status == DeliveryStatus.GAVE_UP for d in rows.values())
    assert rows[second.id].last_error == "endpoint disabled"
    assert sum(receiver.raw.values()) == 1  # the second was never tried
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "alerts.subscriber.disabled")
    ).one()
    assert entry.reason == "answered 410 Gone" and entry.object_uuid == str(sub.uuid)

    # Re-enabling clears the reason.
    subs.enable(sub, by=user)
    db.session.commit()
    assert sub.is_active and sub.disabled_reason is None and sub.consecutive_failures == 0


def test_repeated_failures_disable_the_endpoint(app: Flask, app_factory: Any, create_user: Any,
                                                receiver: Receiver) -> None:
    app = app_factory(WEBHOOK_MAX_FAILURES=3)
    with app.app_context():
        user = create_user()
        sub = _endpoint(user, receiver)
        broadcast.queue_deliveries(make_alert(user))
        db.session.commit()
        receiver.answers["/hook"] = 503
        for _ in range(3):
            broadcast.deliver()
            _due_now()
        db.session.expire_all()
        sub = db.session.get(Subscriber, sub.id)
        assert not sub.is_active
        assert sub.disabled_reason == "3 consecutive failures, last: HTTP 503"
        delivery = _delivery()
        assert delivery.status == DeliveryStatus.GAVE_UP and delivery.attempts == 3
        assert sum(receiver.raw.values()) == 3
        assert broadcast.deliver().sent == 0 and sum(receiver.raw.values()) == 3


def test_an_unreachable_endpoint_is_a_failure_named_by_its_class(
    app: Flask, create_user: Any, receiver: Receiver
) -> None:
    user = create_user()
    sub = _endpoint(user, receiver)
    sub.url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    assert broadcast.deliver().failed == 1
    assert _delivery().last_error == "ConnectionRefusedError"
    assert db.session.get(Subscriber, sub.id).consecutive_failures == 1


def test_rotation_signs_with_both_secrets_during_the_overlap(
    app: Flask, create_user: Any, receiver: Receiver
) -> None:
    user = create_user()
    sub = _endpoint(user, receiver, "/old")
    old = receiver.secrets["/old"][0]
    new, until = subs.rotate_secret(sub, by=user)
    assert new != old and new.startswith("whsec_")
    assert len(base64.b64decode(new.removeprefix("whsec_"))) == 32
    assert until - utcnow() > timedelta(hours=23)
    # A receiver that still has the old secret, and one that already has the new one.
    second = _endpoint(user, receiver, "/new")
    second.secret_enc = subs.encrypt_secret(second, "secret", new)
    second.previous_secret_enc = subs.encrypt_secret(second, "previous_secret", old)
    second.previous_secret_until = until
    receiver.secrets["/new"] = [new]
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()

    assert broadcast.deliver().sent == 2
    assert receiver.unverified == 0
    signatures = [h["webhook-signature"].split(" ") for h in receiver.headers]
    assert all(len(s) == 2 and all(p.startswith("v1,") for p in s) for s in signatures)

    # After the overlap only the new secret signs: the old one no longer verifies.
    sub.previous_secret_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert subs.secrets_for(sub) == [new]
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    broadcast.deliver()
    assert receiver.unverified == 1  # "/old" still holds only the old secret
    receiver.secrets["/old"] = [new]


def test_retry_delay_is_full_jitter_capped(app: Flask) -> None:
    webhook = retry.schedule("webhook")
    for attempts in (1, 2, 5):
        ceiling = 30 * 2 ** (attempts - 1)
        delays = [webhook.delay(attempts) for _ in range(50)]
        assert all(timedelta(0) <= d <= timedelta(seconds=ceiling) for d in delays)
        assert len(set(delays)) > 1
    capped = [webhook.delay(30) for _ in range(50)]
    assert max(capped) <= timedelta(hours=6)


@pytest.mark.parametrize(
    ("url", "local", "ok"),
    [
        ("https://partner.example.org/hooks", False, True),
        ("http://partner.example.org/hooks", True, False),
        ("http://127.0.0.1:8080/hook", True, True),
        ("http://localhost/hook", True, True),
        ("http://127.0.0.1:8080/hook", False, False),
        ("https://user:pw@partner.example.org/", False, False),
        ("ftp://partner.example.org/", False, False),
        ("", False, False),
    ],
)
def test_webhook_urls(url: str, local: bool, ok: bool) -> None:
    assert (webhooks.url_problem(url, allow_loopback=local) is None) is ok


def test_cancel_and_expiry_through_the_drafting_services(
    app: Flask, create_user: Any, receiver: Receiver
) -> None:
    """A2's services queue the deliveries in their own transaction (the outbox); the worker
    sends them, and each round it expires what has run out."""
    from dr_panel.alerts import drafting
    from dr_panel.alerts.models import AlertStatus

    user = create_user()
    _endpoint(user, receiver)
    live = make_alert(user)
    live.alert.status = AlertStatus.ISSUED
    old = make_alert(user)
    old.alert.status = AlertStatus.ISSUED
    old.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()

    issued = drafting.cancel(live.alert, reason="Tests showed no adulterant.", urgent=True,
                             by=user)
    assert issued.deliveries == 1
    db.session.commit()
    report = broadcast.deliver()
    assert report.expired == 1 and report.sent == 2 and receiver.unverified == 0
    by_type = {body["type"]: body["data"] for _, body in receiver.processed}
    assert set(by_type) == {"alert.cancelled", "alert.expired"}
    assert by_type["alert.cancelled"]["msg_type"] == "Cancel"
    assert by_type["alert.cancelled"]["version"] == 2
    assert by_type["alert.expired"]["alert"] == old.alert.reference
