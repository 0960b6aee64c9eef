"""Kill the delivery worker (a real ``dr-panel alerts deliver --loop`` process) with SIGKILL
part-way through a broadcast, twice, restart it, and check that every subscriber got its message
and that no webhook-id or Message-ID was processed twice by a receiver that honours the id.

The receivers hold each message a moment after taking it and before answering, so a kill lands
in the window between "sent" and "recorded as sent": those messages go again after the restart
with the same id, and the raw duplicate count shows that the id is what saves the receiver."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope
from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import broadcast
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import Channel, Delivery, DeliveryStatus
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.alerts.support import Inbox, Receiver, SmtpServer, make_alert, make_subscriber

EMAILS = 60
HOOKS = 60
WORKER = Path(sys.executable).parent / "dr-panel"


class SlowInbox(Inbox):
    """Takes the message, then waits before saying 250: the sender does not know yet."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(0.05)
        return answer


class SlowReceiver(Receiver):
    def handle(self, handler: Any, body: bytes) -> None:
        # Verified and processed first, answered later (as a slow partner system would).
        original = handler.send_response

        def late(status: int, message: str | None = None) -> None:
            time.sleep(0.3)
            original(status, message)

        handler.send_response = late
        super().handle(handler, body)


@pytest.fixture
def receivers() -> Iterator[tuple[SmtpServer, SlowReceiver]]:
    smtp = SmtpServer()
    smtp.inbox = SlowInbox()
    smtp.start()
    hooks = SlowReceiver().start()
    yield smtp, hooks
    hooks.stop()
    smtp.stop()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _env(app: Flask, smtp: SmtpServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DR_PANEL_ENV="testing",
        DR_PANEL_INSTANCE=app.instance_path,
        DR_PANEL_KEYS_FILE=app.config["KEYS_FILE"],
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        MAIL_TRANSPORT="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp.port),
        MAIL_USE_STARTTLS="0",
        BROADCAST_CLAIM_SECONDS="3",  # a killed worker's claims lapse quickly
    )
    return env


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603  our own console script
            [str(WORKER), "alerts", "deliver", "--loop", "--interval", "0.2"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_a_killed_worker_resumes_and_no_message_is_processed_twice(
    app: Flask, create_user: Any, receivers: tuple[SmtpServer, SlowReceiver], tmp_path: Path
) -> None:
    smtp, hooks = receivers
    user = create_user()
    for n in range(EMAILS):
        make_subscriber(email=f"team{n}@example.org", name=f"Team {n}")
    for n in range(HOOKS):
        path = f"/partner/{n}"
        _, secret = subs.create(
            subs.Details(channel=Channel.WEBHOOK, name=f"Partner {n}", organisation=None,
                         address=hooks.url(path), area_codes=["E06000009"], audiences=[]),
            by=user,
        )
        hooks.secrets[path] = [secret]  # type: ignore[list-item]
    assert broadcast.queue_deliveries(make_alert(user)) == EMAILS + HOOKS
    db.session.commit()
    env = _env(app, smtp)
    log = tmp_path / "worker.log"

    # 1. Killed part-way through the e-mails.
    worker = _start(env, log)
    try:
        _wait_for(lambda: sum(smtp.inbox.raw_ids.values()) >= EMAILS // 3, 60, "some e-mail")
        _kill(worker)
        seen_before = sum(smtp.inbox.raw_ids.values())
        assert seen_before < EMAILS, "the worker finished before it was killed"

        # 2. Restarted, then killed part-way through the webhooks.
        worker = _start(env, log)
        _wait_for(lambda: len(hooks.processed) >= HOOKS // 3, 60, "some webhooks")
        _kill(worker)
        assert len(hooks.processed) < HOOKS, "the worker finished before it was killed"

        # 3. Restarted: it finishes the broadcast.
        worker = _start(env, log)
        _wait_for(
            lambda: len(smtp.inbox.raw_ids) == EMAILS and len(hooks.processed) == HOOKS,
            90, "every message",
        )

        retried: dict[int, str] = {}

        def all_recorded() -> bool:
            """Every delivery recorded as sent. A send that failed on the way (a connection
            cut by a kill, say) is retried after a backoff of tens of seconds: its retry is
            brought forward here, as time passing would, and its reason kept for the report."""
            db.session.expire_all()
            rows = db.session.scalars(select(Delivery)).all()
            failed = [d for d in rows if d.status == DeliveryStatus.FAILED]
            if failed:
                retried.update({d.id: f"{d.channel.value}: {d.last_error}" for d in failed})
                for d in failed:
                    d.next_attempt_at = utcnow()
                db.session.commit()
            return all(d.status == DeliveryStatus.SENT for d in rows)

        try:
            _wait_for(all_recorded, 60, "every delivery recorded as sent")
        except AssertionError as err:
            reasons = sorted(retried.values())
            raise AssertionError(f"{err}; failures on the way: {reasons}") from None
    finally:
        if worker.poll() is None:
            _kill(worker)

    rows = db.session.scalars(select(Delivery)).all()
    emails = {f"<{d.uuid}@localhost>" for d in rows if d.channel == Channel.EMAIL}
    hook_ids = {f"msg_{d.uuid.hex}" for d in rows if d.channel == Channel.WEBHOOK}
    # Every subscriber got its message...
    assert set(smtp.inbox.raw_ids) == emails
    assert {msg_id for msg_id, _ in hooks.processed} == hook_ids
    assert hooks.unverified == 0
    # ...and the id-honouring receiver processed each once, though some arrived twice.
    assert len(hooks.processed) == HOOKS
    raw_duplicates = sum(n - 1 for n in hooks.raw.values()) + sum(
        n - 1 for n in smtp.inbox.raw_ids.values()
    )
    assert raw_duplicates > 0, "no kill landed between sending and recording"
    if retried:
        print(f"\nretried after a failure on the way: {sorted(retried.values())}")
    print(f"\nraw duplicates dropped by id: {raw_duplicates} "
          f"(webhooks {sum(n - 1 for n in hooks.raw.values())}, "
          f"e-mail {sum(n - 1 for n in smtp.inbox.raw_ids.values())})")
