"""The broadcast: who a version reaches (queue_deliveries), and the worker sending e-mail to a
real SMTP server."""

from __future__ import annotations

import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dr_panel.alerts import broadcast
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import Channel, Delivery, DeliveryStatus, Scope
from dr_panel.audit.models import AuditEntry
from dr_panel.extensions import db
from tests.alerts.support import CONTENT, SmtpServer, make_alert, make_area, make_subscriber


def _recipients(version: Any) -> set[str]:
    return {
        d.subscriber.name
        for d in db.session.scalars(select(Delivery).where(Delivery.version_id == version.id))
    }


def test_queue_reaches_the_network_audiences_and_scope(app: Any, create_user: Any) -> None:
    user = create_user()
    make_area("E06000010", "Hull", network=None)
    make_subscriber(name="blackpool", areas=("E06000009",))
    make_subscriber(name="blackburn-network", areas=("E06000008",))  # same network
    make_subscriber(name="hull", areas=("E06000010",))  # elsewhere
    make_subscriber(name="police-only", audiences=("police",))
    make_subscriber(name="treatment", audiences=("treatment", "hostels"))
    make_subscriber(name="public-only", receives_restricted=False)
    off = make_subscriber(name="disabled")
    off.is_active = False
    make_subscriber(Channel.WEBHOOK, name="hook", url="https://partner.example/hook")

    public = make_alert(user, audiences=("treatment",))
    assert broadcast.queue_deliveries(public) == 5
    assert _recipients(public) == {
        "blackpool", "blackburn-network", "treatment", "public-only", "hook"
    }
    # Queuing again queues nobody twice.
    assert broadcast.queue_deliveries(public) == 0

    restricted = make_alert(user, scope=Scope.RESTRICTED)
    assert broadcast.queue_deliveries(restricted) == 5
    assert "public-only" not in _recipients(restricted)
    assert "police-only" in _recipients(restricted)

    assert broadcast.queue_deliveries(restricted, event="expired") == 5
    db.session.rollback()  # the outbox is the caller's transaction: nothing was committed
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_queued_rows_are_due_now(app: Any, create_user: Any) -> None:
    user = create_user()
    make_subscriber(email="a@example.org")
    version = make_alert(user)
    broadcast.queue_deliveries(version)
    db.session.commit()
    row = db.session.scalars(select(Delivery)).one()
    assert row.status == DeliveryStatus.QUEUED and row.channel == Channel.EMAIL
    assert row.attempts == 0 and row.claimed_until is None


# -- e-mail at a real SMTP server -----------------------------------------------------------------

BASE_URL = "http://dr-panel.test"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(app: Flask, app_factory: Callable[..., Flask], smtp: SmtpServer) -> Iterator[Flask]:
    """An app sending through the real SMTP server; its context is the innermost one."""
    app = app_factory(
        MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port,
        MAIL_USE_STARTTLS=False, BASE_URL=BASE_URL, MAIL_FROM="LDIS <alerts@dr-panel.test>",
    )
    with app.app_context():
        yield app


def test_alert_email_arrives_with_an_ack_link_and_no_remote_content(
    mail_app: Flask, create_user: Any, smtp: SmtpServer
) -> None:
    user = create_user()
    make_subscriber(email="outreach@example.org", name="Outreach")
    make_subscriber(email="hostel@example.org", name="Hostel", areas=("E06000008",))
    version = make_alert(user)
    assert broadcast.queue_deliveries(version) == 2
    db.session.commit()

    report = broadcast.deliver()
    assert report.sent == 2 and report.remaining == 0
    messages = {str(m["To"]): m for m in smtp.inbox.messages()}
    assert set(messages) == {"outreach@example.org", "hostel@example.org"}
    rows = {d.subscriber.email: d for d in db.session.scalars(select(Delivery))}
    for address, message in messages.items():
        delivery = rows[address]
        assert delivery.status == DeliveryStatus.SENT and delivery.sent_at is not None
        assert message["Message-ID"] == f"<{delivery.uuid}@dr-panel.test>"
        assert CONTENT["title"] in str(message["Subject"])
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        ack = f"{BASE_URL}/ldis/ack/{delivery.uuid}"
        assert ack in text and f'href="{ack}"' in html
        assert CONTENT["advice"] in text and CONTENT["advice"] in html
        assert "<img" not in html and "<script" not in html and "style=" not in html
        # Each recipient gets only their own link.
        other = next(d for a, d in rows.items() if a != address)
        assert str(other.uuid) not in text


def test_acknowledging_from_the_email(mail_app: Flask, create_user: Any,
                                      smtp: SmtpServer) -> None:
    user = create_user()
    make_subscriber(email="outreach@example.org")
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    broadcast.deliver()
    delivery = db.session.scalars(select(Delivery)).one()
    client = mail_app.test_client()

    page = client.get(f"/ldis/ack/{delivery.uuid}")
    assert page.status_code == 200
    assert CONTENT["title"] in page.get_data(as_text=True)
    assert "I have received this alert" in page.get_data(as_text=True)
    answer = client.post(f"/ldis/ack/{delivery.uuid}", data={})
    assert answer.status_code == 302
    page = client.get(answer.location)
    assert "Thank you" in page.get_data(as_text=True)
    db.session.expire_all()
    first = db.session.get(Delivery, delivery.id).acknowledged_at
    assert first is not None
    client.post(f"/ldis/ack/{delivery.uuid}", data={})  # a second press changes nothing
    db.session.expire_all()
    assert db.session.get(Delivery, delivery.id).acknowledged_at == first
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "alerts.delivery.acknowledged")
    ).all()
    assert len(entries) == 1 and entries[0].object_uuid == str(delivery.uuid)
    assert client.get(f"/ldis/ack/{uuid_mod.uuid4()}").status_code == 404
    assert client.get("/ldis/ack/not-a-uuid").status_code == 404


def test_a_restricted_alerts_ack_page_shows_its_reference_only(
    mail_app: Flask, create_user: Any, smtp: SmtpServer
) -> None:
    """The link may be forwarded: the page of a restricted alert does not repeat its content."""
    user = create_user()
    make_subscriber(email="outreach@example.org")
    version = make_alert(user, scope=Scope.RESTRICTED)
    broadcast.queue_deliveries(version)
    db.session.commit()
    broadcast.deliver()
    delivery = db.session.scalars(select(Delivery)).one()
    page = mail_app.test_client().get(f"/ldis/ack/{delivery.uuid}").get_data(as_text=True)
    assert version.alert.reference in page and "I have received this alert" in page
    assert CONTENT["title"] not in page
    [message] = smtp.inbox.messages()  # the e-mail itself carries the content
    assert CONTENT["title"] in str(message["Subject"])


def test_an_unreachable_smtp_server_keeps_every_email_queued(
    app_factory: Callable[..., Flask], create_user: Any
) -> None:
    from tests.alerts.support import free_port

    app = app_factory(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(),
                      MAIL_USE_STARTTLS=False)
    with app.app_context():
        user = create_user()
        for n in range(3):
            make_subscriber(email=f"team{n}@example.org")
        broadcast.queue_deliveries(make_alert(user))
        db.session.commit()
        report = broadcast.deliver()
        assert report.sent == 0 and report.failed == 1 and report.remaining == 3
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert rows[0].status == DeliveryStatus.FAILED
        assert rows[0].last_error == "ConnectionRefusedError"
        assert [r.status for r in rows[1:]] == [DeliveryStatus.QUEUED] * 2
        assert all(r.claimed_until is None for r in rows)  # released for the next run


def test_a_disabled_subscriber_is_not_sent_to(mail_app: Flask, create_user: Any,
                                              smtp: SmtpServer) -> None:
    user = create_user()
    sub = make_subscriber(email="outreach@example.org")
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    assert subs.disable(sub, "left the service", by=user) == 1
    db.session.commit()
    assert broadcast.deliver().sent == 0
    assert smtp.inbox.messages() == []
    assert db.session.scalars(select(Delivery)).one().status == DeliveryStatus.GAVE_UP


def test_two_workers_never_send_the_same_delivery(mail_app: Flask, create_user: Any,
                                                  smtp: SmtpServer) -> None:
    user = create_user()
    for n in range(40):
        make_subscriber(email=f"team{n}@example.org")
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    reports: list[Any] = []

    def work() -> None:
        with mail_app.app_context():
            reports.append(broadcast.deliver(limit=15))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while broadcast.deliver(limit=15).sent:
        pass
    assert sum(smtp.inbox.raw_ids.values()) == 40
    assert all(n == 1 for n in smtp.inbox.raw_ids.values())


def test_the_development_servers_worker_sends_the_broadcast(
    mail_app: Flask, create_user: Any, smtp: SmtpServer
) -> None:
    from dr_panel.mail import services as mail

    user = create_user()
    make_subscriber(email="outreach@example.org")
    broadcast.queue_deliveries(make_alert(user))
    db.session.commit()
    mail.add_job(mail_app, broadcast.deliver_in_worker)
    worker = mail.start_worker(mail_app, interval=0.1)
    try:
        deadline = time.monotonic() + 20
        while not smtp.inbox.raw_ids and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert len(smtp.inbox.raw_ids) == 1
    db.session.expire_all()
    assert db.session.scalars(select(Delivery)).one().status == DeliveryStatus.SENT


def test_non_ascii_content_arrives_intact(mail_app: Flask, create_user: Any,
                                          smtp: SmtpServer) -> None:
    """Rendered once per version and filled in per recipient, unless the body had to be
    encoded: then each message is built in full. Either way the recipient's own link arrives."""
    user = create_user()
    make_subscriber(email="equipe@example.org")
    content = {**CONTENT, "title": "Comprimés bleus – vendus comme diazépam",
               "advice": "N’utilisez pas seul ; ayez de la naloxone"}
    version = make_alert(user, content=content)
    broadcast.queue_deliveries(version)
    db.session.commit()
    assert broadcast.deliver().sent == 1
    [message] = smtp.inbox.messages()
    delivery = db.session.scalars(select(Delivery)).one()
    assert content["title"] in str(message["Subject"])
    text = message.get_body(("plain",)).get_content()
    assert content["advice"] in text and f"/ldis/ack/{delivery.uuid}" in text
    assert message["Message-ID"] == f"<{delivery.uuid}@dr-panel.test>"
    ascii_parts = ("Subject", "Body\n" + broadcast.ACK_PLACEHOLDER, "<p>x</p>"
                   f'<a href="{broadcast.ACK_PLACEHOLDER}">ack</a>')
    assert broadcast.Rendered.of(ascii_parts, "LDIS <alerts@dr-panel.test>").raw is not None
