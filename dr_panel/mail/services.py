"""Queuing and delivering e-mail through the outbox.

The outbox pattern: ``queue`` adds a row to the caller's transaction, so a message exists if and
only if the change that caused it committed. ``deliver`` sends what is due after commit, from the
request that queued it (``init_app``), a background thread (``start_worker``, for
``dr-panel start``) or cron (``dr-panel mail deliver``).

Delivery is at least once. Each message is committed as sent straight after the server accepts
it, so a crash mid-run never resends what was recorded; but a message whose send succeeded and
whose commit then failed (database gone, process killed between the two) goes again. Its
Message-ID is the outbox UUID, so mail clients can fold such a copy.

Concurrency. Within one process a lock lets only one delivery run at a time (worker thread and
request threads share it). On PostgreSQL each message is claimed with ``SELECT ... FOR UPDATE SKIP
LOCKED``, so any number of processes (web workers, cron) may deliver at once without sending a
message twice. On SQLite one delivering process is assumed: run either ``dr-panel start`` (its
worker and request hook) or a cron job, not both against the same file.

Mail never carries an identifier: ``check_no_identifiers`` refuses NHS numbers, postcodes, full
numeric dates, old written dates and third parties' e-mail addresses before anything is queued.
E-mails say what needs doing and link to the page (URLs carry UUIDs only).
"""

from __future__ import annotations

import html as html_lib
import logging
import re
import secrets
import smtplib
import threading
import uuid as uuid_mod
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, current_app, g, has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dr_panel.crypto import DecryptionError, KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.mail.transports import (
    MailConfigError,
    Transport,
    address_of,
    build_message,
    transport_from_config,
)
from dr_panel.privacy.detector import allowed_contacts, pattern_hits
from dr_panel.privacy.patterns import DOB_YEARS

log = logging.getLogger("dr_panel.mail")

TRANSPORTS = ("folder", "smtp")
_QUEUED_FLAG = "dr_panel_mail_queued"
_STATE_KEY = "dr_panel.mail"

# Messages whose body carries a secret (a single-use link to set a password): once sent, the
# outbox keeps only the fact that it went, so a database copy or a backup holds no live link.
SECRET_BODY_KINDS = frozenset({"account.password_link"})
ERASED_BODY = "(sent; the body held a single-use link and was erased once sent)"

# Retry after 1, 5 and 25 minutes, then every 2 hours; up to a tenth more, at random, so that
# messages that failed together do not all retry in the same second.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=25))
BACKOFF_CAP = timedelta(hours=2)

# The server refused this one message; the connection and the others may be fine.
PER_MESSAGE_ERRORS = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
)


# -- the identifier guard -------------------------------------------------------------------------


class IdentifierInMail(ValueError):
    """A message would carry an identifier. The message names what kind, never the value."""

    def __init__(self, kinds: list[str] | str, where: str) -> None:
        self.kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        self.kind = self.kinds[0]
        self.where = where
        super().__init__(
            f"Refused to queue an e-mail: its {where} contains {' and '.join(self.kinds)}. "
            "E-mails carry links to the page, never identifiers."
        )


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_TAG = re.compile(r"<[^>]*>")
# A written date this many years back or more reads as a date of birth, not a due date.
WRITTEN_DATE_YEARS = DOB_YEARS
# What a refusal says each kind of identifier is: never the value, no digit but in the example.
_NUMERIC_DATE = (
    "a full date written in numbers, which may be a date of birth (write due dates in words, "
    "like 3 March 2026)"
)
_KIND_WORDS = {
    "nhs_number": "an NHS number",
    "postcode": "a postcode",
    "email": "an e-mail address other than the recipient's",
    "phone": "a personal phone number",
    "address": "a home address",
    "name": "a person's name",
}


def _problems(text: str, allowed_addresses: set[str], today: date) -> list[str]:
    """Every kind of identifier in ``text``, in words, through the identifier detector's
    pattern layer (``dr_panel.privacy``): the same shapes the alert leak gate refuses, read
    through look-alike letters and any separators, and every date written in numbers."""
    allowed = allowed_contacts() | frozenset(allowed_addresses)
    kinds: list[str] = []
    for hit in pattern_hits(text, today=today, allowed=allowed, any_numeric_date=True):
        if hit.kind == "date_of_birth":
            words = (
                _NUMERIC_DATE if hit.form in ("numeric", "short")
                else f"a date more than {WRITTEN_DATE_YEARS} years ago, which may be a date of "
                "birth"
            )  # fmt: skip
        else:
            words = _KIND_WORDS[hit.kind]
        if words not in kinds:
            kinds.append(words)
    return kinds


def _views(text: str, *, is_html: bool) -> list[str]:
    """The texts a reader (or a link) could show: as written, URL-decoded, and for HTML the
    visible text with entities decoded. UUIDs are blanked first: their digit groups could
    otherwise pass for an NHS number about once in a few hundred links."""
    views = [text, unquote(text)]
    if is_html:
        visible = html_lib.unescape(_TAG.sub("", text))
        views += [html_lib.unescape(text), visible]
    return [_UUID.sub(" ", v) for v in views]


def check_no_identifiers(
    subject: str, text: str, html: str | None = None, *, recipient: str | None = None
) -> None:
    """Raise ``IdentifierInMail`` if the message would carry an identifier.

    A backstop, not a licence: the identifier detector's patterns (NHS numbers, postcodes,
    phone numbers but services' and allowed ones, house numbers with a street, a title with a
    name, dates of birth), any full date written in numbers, and any e-mail address but the
    recipient's, the sender's and the allowed contacts. Each part is read as written,
    URL-decoded and, for HTML, as visible text. It cannot recognise a bare name: messages are
    built from templates that link to the record."""
    allowed = {a.casefold() for a in (recipient, _sender_address()) if a}
    today = utcnow().date()
    parts: list[tuple[str, str | None, bool]] = [
        ("subject", subject, False),
        ("text body", text, False),
        ("HTML body", html, True),
    ]
    for where, value, is_html in parts:
        if not value:
            continue
        kinds: list[str] = []
        for view in _views(value, is_html=is_html):
            kinds += [k for k in _problems(view, allowed, today) if k not in kinds]
        if kinds:
            raise IdentifierInMail(kinds, where)


def _sender_address() -> str | None:
    if not has_app_context():
        return None
    return address_of(current_app.config.get("MAIL_FROM", "")) or None


# -- queuing --------------------------------------------------------------------------------------


def link(endpoint: str, **values: Any) -> str:
    """An absolute link for an e-mail: ``BASE_URL`` + the route's path. Works without a request
    (workers, cron), and never takes the host from a request's headers."""
    adapter = current_app.url_map.bind("localhost")
    path = adapter.build(endpoint, values, force_external=False)
    return str(current_app.config["BASE_URL"]).rstrip("/") + path


def _check_header(name: str, value: str, max_length: int) -> None:
    if not value or "\r" in value or "\n" in value or len(value) > max_length:
        raise ValueError(f"An e-mail's {name} must be one line of 1 to {max_length} characters.")


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
    _check_header("recipient", to, 254)
    if address_of(to) != to.strip() or "@" not in to:
        raise ValueError("An e-mail's recipient must be a bare address, like name@example.org.")
    _check_header("subject", subject, 200)
    _check_header("kind", kind, 40)
    if dedupe_key is not None:
        _check_header("dedupe key", dedupe_key, 160)
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
    if has_app_context():
        setattr(g, _QUEUED_FLAG, True)
    return message


# -- delivering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    remaining: int  # still unsent after the run: due now, or waiting for a retry


def backoff(attempts: int) -> timedelta:
    base = BACKOFF[attempts - 1] if 1 <= attempts <= len(BACKOFF) else BACKOFF_CAP
    jitter = secrets.randbelow(int(base.total_seconds()) // 10 + 1)
    return base + timedelta(seconds=jitter)


def error_name(err: BaseException) -> str:
    """What went wrong, safe to store and log: the exception's type and, for an SMTP reply, its
    numeric code. Never the text: an SMTP error can quote addresses or the message."""
    name = type(err).__name__
    code = getattr(err, "smtp_code", None)
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        codes = sorted({c for c, _ in err.recipients.values() if isinstance(c, int)})
        code = codes[0] if codes else None
    return f"{name} {code}" if isinstance(code, int) else name


@dataclass
class _MailState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    again: threading.Event = field(default_factory=threading.Event)
    worker: MailWorker | None = None
    hooked: bool = False
    # Other outboxes delivered by the same background worker, after the mail (alert broadcast).
    jobs: list[Any] = field(default_factory=list)


def _state(app: Flask) -> _MailState:
    return app.extensions.setdefault(_STATE_KEY, _MailState())  # type: ignore[no-any-return]


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def deliver(limit: int = 100) -> DeliveryReport:
    """Send up to ``limit`` due messages, oldest first, each committed on its own. Waits for a
    delivery already running in this process. Uses its own database session: the caller's
    pending changes are neither committed nor rolled back."""
    app = _app()
    with _state(app).lock:
        return _deliver(app, limit)


def deliver_soon(app: Flask, limit: int = 100) -> None:
    """Deliver unless a run is already going in this process, in which case that run goes round
    once more before it stops. Never raises: errors are logged by type."""
    state = _state(app)
    state.again.set()
    while state.again.is_set() and state.lock.acquire(blocking=False):
        try:
            state.again.clear()
            with app.app_context():
                _deliver(app, limit)
        except Exception as err:  # never into a request or the worker
            log.error("mail delivery failed (%s); queued mail waits for the next run",
                      type(err).__name__)
        finally:
            state.lock.release()


def _deliver(app: Flask, limit: int) -> DeliveryReport:
    from dr_panel.keys import current as follow_key_file

    follow_key_file(app)  # a worker outside any request follows the key file each run
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
                    _record_failure(session, message, err)
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


def _record_failure(session: Session, message: OutboxMessage, err: Exception) -> None:
    if isinstance(err, MailConfigError):
        log.error("mail settings: %s", err)  # our own message: names a setting, no content
    message.attempts = (message.attempts or 0) + 1
    message.last_error = error_name(err)[:200]
    message.not_before = utcnow() + backoff(message.attempts)
    session.commit()
    log.warning(
        "mail %s (%s) not sent: %s; attempt %d, next try after %s",
        message.uuid, message.kind, message.last_error, message.attempts,
        message.not_before.isoformat(timespec="seconds"),
    )


# -- after the request, and in the background -----------------------------------------------------


def init_app(app: Flask) -> None:
    """Check the mail settings and deliver after any request that queued mail. Idempotent."""
    state = _state(app)
    if state.hooked:
        return
    kind = app.config.get("MAIL_TRANSPORT")
    if kind not in TRANSPORTS:
        from dr_panel import StartupError

        raise StartupError(
            f"dr-panel cannot start: MAIL_TRANSPORT must be one of {', '.join(TRANSPORTS)}; "
            f"got {kind!r}."
        )
    if kind == "smtp" and not app.config.get("MAIL_SERVER"):
        log.warning("MAIL_TRANSPORT is smtp but MAIL_SERVER is not set: mail will queue unsent")
    app.after_request(_after_request)
    state.hooked = True


def _after_request(response: Response) -> Response:
    """The view has committed by now. Delivery runs once the response has been sent (the WSGI
    server closes it), in a fresh application context and database session, so the person who
    caused the mail never waits for the SMTP server; errors are logged, never raised."""
    if not g.pop(_QUEUED_FLAG, False) or not current_app.config["MAIL_SEND_AFTER_REQUEST"]:
        return response
    app = _app()
    response.call_on_close(lambda: _deliver_after_response(app))
    return response


def _deliver_after_response(app: Flask) -> None:
    worker = _state(app).worker
    if worker is not None and worker.is_alive():
        worker.wake()
        return
    deliver_soon(app)


class MailWorker:
    """A daemon thread delivering every ``interval`` seconds, and at once when woken."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dr-panel-mail", daemon=True)

    def start(self) -> MailWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake during the run below makes one more run
            deliver_soon(self.app)
            for job in list(_state(self.app).jobs):
                job(self.app)  # each job logs its own errors and never raises
            self._wake.wait(self.interval)

    def wake(self) -> None:
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


def add_job(app: Flask, job: Any) -> None:
    """Have the background worker also run ``job(app)`` each round, after the mail (another
    outbox: the alert broadcast). ``job`` must log its errors and never raise."""
    state = _state(app)
    if job not in state.jobs:
        state.jobs.append(job)


def request_delivery() -> None:
    """Something queued for the worker in this request: wake it once the response is sent."""
    if has_app_context():
        setattr(g, _QUEUED_FLAG, True)


def start_worker(app: Flask, interval: float = 30) -> MailWorker:
    """Start (or return the running) background delivery thread for ``app``."""
    state = _state(app)
    if state.worker is not None and state.worker.is_alive():
        return state.worker
    state.worker = MailWorker(app, interval).start()
    return state.worker


def outbox(*, unsent_only: bool = False, limit: int = 50) -> list[OutboxMessage]:
    """The newest messages first, for ``dr-panel mail outbox``."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if unsent_only:
        stmt = stmt.where(OutboxMessage.sent_at.is_(None))
    return list(db.session.scalars(stmt))


def is_due(message: OutboxMessage, now: datetime | None = None) -> bool:
    return message.sent_at is None and message.not_before <= (now or utcnow())
