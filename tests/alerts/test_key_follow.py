"""Long-running workers follow the key file: a field key added by `dr-panel keys add-field-key` in
another process is used at the worker's next round, and a value no key opens fails that one
item, never the worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel import keys
from dr_panel.alerts import broadcast
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import Channel, Delivery, DeliveryStatus
from dr_panel.extensions import db
from dr_panel.mail import services as mail
from dr_panel.mail.models import OutboxMessage
from tests.alerts.support import Receiver, make_alert


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def endpoint(user: Any, receiver: Receiver) -> Any:
    sub, secret = subs.create(
        subs.Details(
            channel=Channel.WEBHOOK, name="Partner", organisation="NHS Trust",
            address=receiver.url("/hook"), area_codes=["E06000009"], audiences=[],
        ),
        by=user,
    )
    assert secret is not None
    receiver.secrets["/hook"] = [secret]
    return sub


def add_key_in_another_process(app_factory: Callable[..., Flask]) -> tuple[Flask, str]:
    """What `dr-panel keys add-field-key` does, in an app of its own on the same key file and
    database (the worker's app is not told)."""
    cli_app = app_factory()
    with cli_app.app_context():
        kid, _ = keys.add_field_key(cli_app)
    return cli_app, kid


def test_a_running_worker_sends_with_a_secret_sealed_under_a_key_added_meanwhile(
    app_factory: Callable[..., Flask], create_user: Any, receiver: Receiver
) -> None:
    worker_app = app_factory(MAIL_SEND_AFTER_REQUEST=False)
    with worker_app.app_context():
        user = create_user()
        user_id = user.id
    mail.add_job(worker_app, broadcast.deliver_in_worker)
    worker = mail.start_worker(worker_app, interval=0.2)
    try:
        time.sleep(0.5)  # the worker has been round a few times with the old ring
        cli_app, kid = add_key_in_another_process(app_factory)
        with cli_app.app_context():  # a partner added now: its secret is sealed under the new key
            creator = db.session.get(type(user), user_id)
            sub = endpoint(creator, receiver)
            assert sub.secret_enc.startswith(f"v1:{kid}:")
            assert broadcast.queue_deliveries(make_alert(creator)) == 1
            db.session.commit()
        assert wait_for(lambda: len(receiver.processed) == 1), "the webhook never arrived"
        assert receiver.unverified == 0  # signed with the secret opened by the new key
    finally:
        worker.stop()
    with worker_app.app_context():
        assert worker_app.extensions["dr_panel.keys"].active_field_key == kid
        delivery = db.session.scalars(select(Delivery)).one()
        assert delivery.status is DeliveryStatus.SENT


def test_the_mail_worker_opens_a_recipient_sealed_under_a_key_added_meanwhile(
    app_factory: Callable[..., Flask], tmp_path: Any
) -> None:
    worker_app = app_factory(MAIL_SEND_AFTER_REQUEST=False)
    with worker_app.app_context():
        before = worker_app.extensions["dr_panel.keys"]
    cli_app, kid = add_key_in_another_process(app_factory)
    with cli_app.app_context():
        mail.queue("reporter@example.org", "Thank you", "We received your report.",
                   kind="drug_report.confirmation", private_recipient=True)
        db.session.commit()
        sealed = db.session.scalars(select(OutboxMessage)).one().to_address_enc
        assert sealed is not None and sealed.startswith(f"v1:{kid}:")
    assert kid not in before.field_keys  # the worker's ring, before its round
    worker = mail.start_worker(worker_app, interval=0.2)
    try:
        def sent() -> bool:
            with worker_app.app_context():
                return db.session.scalars(select(OutboxMessage)).one().sent_at is not None

        assert wait_for(sent), "the message was never sent"
    finally:
        worker.stop()


def test_a_secret_no_key_opens_fails_its_delivery_only(
    app: Flask, create_user: Any, receiver: Receiver
) -> None:
    user = create_user()
    good = endpoint(user, receiver)
    bad, _ = subs.create(
        subs.Details(
            channel=Channel.WEBHOOK, name="Other partner", organisation="Council",
            address=receiver.url("/other"), area_codes=["E06000009"], audiences=[],
        ),
        by=user,
    )
    bad.secret_enc = "v1:k9:" + good.secret_enc.split(":", 2)[2]  # a key this ring never had
    assert broadcast.queue_deliveries(make_alert(user)) == 2
    db.session.commit()
    report = broadcast.deliver()  # does not raise
    assert report.sent == 1 and report.failed == 1
    db.session.expire_all()
    by_sub = {d.subscriber_id: d for d in db.session.scalars(select(Delivery))}
    assert by_sub[good.id].status is DeliveryStatus.SENT
    failed = by_sub[bad.id]
    assert failed.status is DeliveryStatus.FAILED and "DecryptionError" in failed.last_error
    assert failed.next_attempt_at is not None
    assert len(receiver.processed) == 1
