"""The e-mail outbox: queue a message in the caller's transaction, claim and send what is due
after commit, retry failures (``dr_panel.retry``, channel ``mail``), erase secret bodies once
sent.

The outbox pattern: ``queue`` adds a row to the caller's transaction, so a message exists if and
only if the change that caused it committed. ``deliver`` sends what is due after commit, from the
request that queued it, the background thread or a worker (``dr_panel.mail.worker``), or cron
(``dr-panel mail deliver``).

Delivery is at least once. Each message is committed as sent straight after the server accepts
it, so a crash mid-run never resends what was recorded; but a message whose send succeeded and
whose commit then failed (database gone, process killed between the two) goes again. Its
Message-ID is the outbox UUID, so mail clients can fold such a copy.

Concurrency. Within one process a lock lets only one delivery run at a time (worker thread and
request threads share it). On PostgreSQL each message is claimed with ``SELECT ... FOR UPDATE SKIP
LOCKED``, so any number of processes (web workers, cron) may deliver at once without sending a
message twice. On SQLite one delivering process is assumed: run either ``dr-panel start`` (its
worker and request hook) or a cron job, not both against the same file.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import uuid as uuid_mod
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dr_panel import crypto, retry
from dr_panel.crypto import DecryptionError, KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.messages import check_header, check_no_identifiers
from dr_panel.mail.models import OutboxMessage
from dr_panel.mail.transports import (
    MailConfigError,
    Transport,
    address_of,
    build_message,
    transport_from_config,
)

log = logging.getLogger("dr_panel.mail")

_QUEUED_FLAG = "dr_panel_mail_queued"
_LOCK_KEY = "dr_panel.mail.lock"

# Messages whose body carries a secret (a single-use link to set a password): once sent, the
# outbox keeps only the fact that it went, so a database copy or a backup holds no live link.
SECRET_BODY_KINDS = frozenset({"account.password_link"})
ERASED_BODY = "(sent; the body held a single-use link and was erased once sent)"

# The server refused this one message; the connection and the others may be fine.
PER_MESSAGE_ERRORS = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
)


# -- queuing --------------------------------------------------------------------------------------


def queue(
    to: str,
    subject: str,
    text: str,
    *,
    html: str | None = None,
    kind: str,
    dedupe_key: str | None = None,
    private_recipient: bool = False,
) -> OutboxMessage | None:
    """Add a message to the current transaction; the caller commits (or rolls back, and the
    message is gone with the change that caused it). A ``dedupe_key`` already queued, sent or
    not, makes this a no-op that returns None.

    ``private_recipient``: the address is itself personal data (a member of the public who left
    it for a confirmation). It is kept only encrypted, bound to this message, erased once the
    server has accepted the message, and never listed, logged or written by the folder
    transport."""
    check_header("recipient", to, 254)
    if address_of(to) != to.strip() or "@" not in to:
        raise ValueError("An e-mail's recipient must be a bare address, like name@example.org.")
    check_header("subject", subject, 200)
    check_header("kind", kind, 40)
    if dedupe_key is not None:
        check_header("dedupe key", dedupe_key, 160)
    check_no_identifiers(subject, text, html, recipient=to)

    session = db.session
    if dedupe_key is not None:
        exists = session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
        )
        if exists is not None:
            return None
    message = OutboxMessage(
        uuid=uuid_mod.uuid4(),
        to_address=None if private_recipient else to.strip(),
        subject=subject,
        body_text=text,
        body_html=html,
        kind=kind,
        dedupe_key=dedupe_key,
        created_at=utcnow(),
        not_before=utcnow(),
        attempts=0,
    )
    if private_recipient:
        message.to_address_enc = _keyring().encrypt(
            to.strip(), table="outbox_messages", column="to_address", record=str(message.uuid)
        )
    if dedupe_key is not None and session.get_bind().dialect.name == "postgresql":
        # Two transactions queuing the same key at once: the second waits for the first on the
        # unique index, then finds it; the savepoint keeps the rest of its transaction intact.
        session.flush()
        try:
            with session.begin_nested():
                session.add(message)
        except IntegrityError:
            return None
    else:
        session.add(message)
        session.flush()
    request_delivery()
    return message


def request_delivery() -> None:
    """Something was queued in this request (mail, or another outbox's work): deliver once the
    response is sent (``dr_panel.mail.worker``)."""
    if has_app_context():
        setattr(g, _QUEUED_FLAG, True)


def delivery_requested() -> bool:
    """Whether this request asked for delivery (``request_delivery``); asks only once."""
    return bool(g.pop(_QUEUED_FLAG, False))


# -- delivering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    remaining: int  # still unsent after the run: due now, or waiting for a retry


def error_name(err: BaseException) -> str:
    """What went wrong, safe to store and log: the exception's type and, for an SMTP reply, its
    numeric code. Never the text: an SMTP error can quote addresses or the message."""
    name = type(err).__name__
    code = getattr(err, "smtp_code", None)
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        codes = sorted({c for c, _ in err.recipients.values() if isinstance(c, int)})
        code = codes[0] if codes else None
    return f"{name} {code}" if isinstance(code, int) else name


def delivery_lock(app: Flask) -> threading.Lock:
    """The process's one delivery lock for ``app``: worker thread and request threads share it."""
    lock: threading.Lock = app.extensions.setdefault(_LOCK_KEY, threading.Lock())
    return lock


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def deliver(limit: int = 100) -> DeliveryReport:
    """Send up to ``limit`` due messages, oldest first, each committed on its own. Waits for a
    delivery already running in this process. Uses its own database session: the caller's
    pending changes are neither committed nor rolled back."""
    app = _app()
    with delivery_lock(app):
        return deliver_locked(app, limit)


def deliver_locked(app: Flask, limit: int) -> DeliveryReport:
    """``deliver`` for a caller that holds ``delivery_lock(app)``, in an app context."""
    crypto.current(app)  # a worker outside any request follows the key file each run
    sent = failed = 0
    last_id = 0
    transport: Transport | None = None
    sender = app.config["MAIL_FROM"]
    locking = db.engine.dialect.name == "postgresql"
    with Session(db.engine, expire_on_commit=False) as session:
        try:
            for _ in range(limit):
                stmt = (
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.sent_at.is_(None),
                        OutboxMessage.not_before <= utcnow(),
                        OutboxMessage.id > last_id,  # never twice in a run, whatever happens
                    )
                    .order_by(OutboxMessage.id)
                    .limit(1)
                )
                if locking:
                    stmt = stmt.with_for_update(skip_locked=True)
                message = session.scalars(stmt).first()
                if message is None:
                    break
                last_id = message.id
                try:
                    to = recipient_of(message, app)
                    if transport is None:
                        transport = transport_from_config(app.config, app.instance_path)
                    transport.send(
                        build_message(
                            uuid=str(message.uuid),
                            sender=sender,
                            to=to,
                            subject=message.subject,
                            text=message.body_text,
                            html=message.body_html,
                        ),
                        private_to=message.is_private_recipient,
                    )
                except Exception as err:  # recorded, retried
                    _record_failure(app, session, message, err)
                    failed += 1
                    if isinstance(err, (*PER_MESSAGE_ERRORS, DecryptionError)):
                        continue
                    # Unreachable server, TLS, login, settings: the rest would fail the same
                    # way. They keep their place for the next run.
                    break
                message.sent_at = utcnow()
                message.to_address_enc = None  # a public reporter's address: gone once sent
                if message.kind in SECRET_BODY_KINDS:  # a link that signs someone in: gone too
                    message.body_text = ERASED_BODY
                    message.body_html = None
                _commit_sent(session, message)
                sent += 1
                log.info("mail %s (%s) sent", message.uuid, message.kind)
            remaining = session.scalar(
                select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.sent_at.is_(None)
                )
            )
            session.commit()
        finally:
            if transport is not None:
                try:
                    transport.close()
                except Exception as err:
                    log.warning("closing the mail transport failed (%s)", type(err).__name__)
    return DeliveryReport(sent=sent, failed=failed, remaining=int(remaining or 0))


def _keyring() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def recipient_of(message: OutboxMessage, app: Flask | None = None) -> str:
    """The address to send to: in clear, or a private recipient's, decrypted for this send only
    (``DecryptionError`` if its key is gone)."""
    if message.to_address is not None:
        return message.to_address
    if message.to_address_enc is None:
        raise DecryptionError("This message's private recipient was already erased.")
    ring = (app or current_app).extensions["dr_panel.keys"]
    return str(
        ring.decrypt(
            message.to_address_enc,
            table="outbox_messages",
            column="to_address",
            record=str(message.uuid),
        )
    )


def _commit_sent(session: Session, message: OutboxMessage) -> None:
    try:
        session.commit()
    except Exception as err:
        session.rollback()
        log.error(
            "mail %s was sent but recording it failed (%s): it may be sent again",
            message.uuid, type(err).__name__,
        )
        raise


def _record_failure(app: Flask, session: Session, message: OutboxMessage, err: Exception) -> None:
    if isinstance(err, MailConfigError):
        log.error("mail settings: %s", err)  # our own message: names a setting, no content
    message.attempts = (message.attempts or 0) + 1
    message.last_error = error_name(err)[:200]
    # The mail schedule never gives up: a message waits in the outbox until it goes.
    message.not_before = utcnow() + retry.schedule("mail", app).delay(message.attempts)
    session.commit()
    log.warning(
        "mail %s (%s) not sent: %s; attempt %d, next try after %s",
        message.uuid, message.kind, message.last_error, message.attempts,
        message.not_before.isoformat(timespec="seconds"),
    )


# -- reading --------------------------------------------------------------------------------------


def outbox(*, unsent_only: bool = False, limit: int = 50) -> list[OutboxMessage]:
    """The newest messages first, for ``dr-panel mail outbox``."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if unsent_only:
        stmt = stmt.where(OutboxMessage.sent_at.is_(None))
    return list(db.session.scalars(stmt))


def is_due(message: OutboxMessage, now: datetime | None = None) -> bool:
    return message.sent_at is None and message.not_before <= (now or utcnow())
