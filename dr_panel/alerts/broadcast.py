"""The broadcast: queuing deliveries with the version that is issued (the outbox), and the worker
that sends them by e-mail and webhook, records each one and retries failures.

A delivery's UUID is its identity for the receiver (``webhook-id``, e-mail ``Message-ID``), so a
worker that dies after sending and before recording re-sends the same message with the same id on
restart, and a receiver that honours the id drops the copy.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid as uuid_mod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, render_template
from sqlalchemy import Select, func, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload

from dr_panel import retry
from dr_panel.alerts import webhooks
from dr_panel.alerts.models import (
    AUDIENCES,
    Alert,
    AlertStatus,
    AlertVersion,
    Channel,
    Delivery,
    DeliveryStatus,
    MsgType,
    Scope,
    Subscriber,
    subscriber_areas,
)
from dr_panel.audit.models import Outcome as AuditOutcome
from dr_panel.audit.services import record
from dr_panel.crypto import DecryptionError
from dr_panel.crypto import current as follow_key_file
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.transports import (
    Transport,
    address_of,
    build_message,
    transport_from_config,
)
from dr_panel.reference.models import Area

if TYPE_CHECKING:
    from dr_panel.auth.models import User

log = logging.getLogger("dr_panel.alerts.broadcast")

EVENTS = ("issued", "expired")
# The worker's UPDATEs change rows by id; the objects it holds need no syncing (and syncing
# them would scan every loaded delivery for each one recorded).
NO_SYNC = {"synchronize_session": False}
DELIVERIES = Delivery.__table__


def reach_area_ids(version: AlertVersion) -> set[int]:
    """The areas a version reaches: those it covers (or its alert's own area), widened to every
    area in the same network, because regional alerts reach the networks of every area they
    cover."""
    areas = list(version.areas) or [version.alert.area]
    ids = {a.id for a in areas}
    networks = {a.network for a in areas if a.network}
    if networks:
        ids |= set(db.session.scalars(select(Area.id).where(Area.network.in_(networks))))
    return ids


def _codes(raw: str | None) -> set[str]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return set()
    return {str(v) for v in value} if isinstance(value, list) else set()


def matching_subscribers(version: AlertVersion) -> list[tuple[int, Channel]]:
    """(id, channel) of every active subscriber the version should reach."""
    area_ids = reach_area_ids(version)
    audiences = _codes(version.audiences)
    restricted = version.scope == Scope.RESTRICTED
    rows = db.session.execute(
        select(Subscriber.id, Subscriber.channel, Subscriber.audiences,
               Subscriber.receives_restricted)
        .where(
            Subscriber.is_active.is_(True),
            Subscriber.id.in_(
                select(subscriber_areas.c.subscriber_id).where(
                    subscriber_areas.c.area_id.in_(area_ids)
                )
            ),
        )
        .order_by(Subscriber.id)
    ).all()
    found: list[tuple[int, Channel]] = []
    for sub_id, channel, sub_audiences, receives_restricted in rows:
        if restricted and not receives_restricted:
            continue
        wanted = _codes(sub_audiences)
        # A subscriber with no audiences gets all; a version with none goes to everyone too.
        if wanted and audiences and not (wanted & audiences):
            continue
        found.append((sub_id, channel))
    return found


def queue_deliveries(version: AlertVersion, event: str = "issued") -> int:
    """Add one queued delivery per matching active subscriber to the current transaction (the
    outbox: the caller commits it together with issuing the version). Returns how many were
    queued; calling it again for the same version and event queues nobody twice."""
    if event not in EVENTS:
        raise ValueError("unknown delivery event")
    if version.id is None:
        db.session.flush()
    already = set(
        db.session.scalars(
            select(Delivery.subscriber_id).where(
                Delivery.version_id == version.id, Delivery.event == event
            )
        )
    )
    now = utcnow()
    rows = [
        {
            "uuid": uuid_mod.uuid4(),
            "version_id": version.id,
            "subscriber_id": sub_id,
            "channel": channel,
            "event": event,
            "status": DeliveryStatus.QUEUED,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for sub_id, channel in matching_subscribers(version)
        if sub_id not in already
    ]
    if rows:
        db.session.execute(insert(Delivery), rows)
        from dr_panel.mail.services import request_delivery

        request_delivery()  # the development server's worker sends them once this commits
    log.info("queued %d deliveries for version %s (%s)", len(rows), version.uuid, event)
    return len(rows)


# -- the worker ---------------------------------------------------------------------------------

ACK_PLACEHOLDER = "https://ack.placeholder.invalid/"  # replaced per recipient after rendering


@dataclass(frozen=True)
class BroadcastReport:
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    expired: int = 0  # alerts expired by this round (their notices are queued)
    remaining: int = 0  # still to send: due now or waiting for a retry

    def __str__(self) -> str:
        return (
            f"{self.sent} sent, {self.failed} failed (will retry), {self.gave_up} gave up, "
            f"{self.remaining} waiting; {self.expired} alerts expired"
        )


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def deliver(limit: int | None = None) -> BroadcastReport:
    """One worker round: expire what is due (A2's ``drafting.expire_due``), then claim up to
    ``limit`` due deliveries, send them and record each one in its own small transaction.
    Uses its own database sessions: the caller's pending changes are left alone."""
    app = _app()
    follow_key_file(app)  # a field key added since the last round is used in this one
    limit = limit or int(app.config["BROADCAST_BATCH"])
    expired = _expire_due()
    claimed = _claim(app, limit)
    counts = {"sent": 0, "failed": 0, "gave_up": 0}
    if claimed:
        with _worker_session() as session:
            rows = list(
                session.scalars(
                    select(Delivery)
                    .where(Delivery.id.in_(claimed))
                    .options(
                        joinedload(Delivery.subscriber),
                        joinedload(Delivery.version).joinedload(AlertVersion.alert),
                    )
                    .order_by(Delivery.id)
                )
            )
            session.commit()
            emails = [d for d in rows if d.channel == Channel.EMAIL]
            hooks = [d for d in rows if d.channel == Channel.WEBHOOK]
            if emails:
                _send_emails(app, session, emails, counts)
            if hooks:
                _send_webhooks(app, session, hooks, counts)
    with Session(db.engine) as session:
        remaining = session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.FAILED))
            )
        )
    return BroadcastReport(expired=expired, remaining=int(remaining or 0), **counts)


@contextmanager
def _worker_session() -> Iterator[Session]:
    """The worker's session, on one connection for the whole round. On SQLite (WAL) it records
    each delivery without waiting for the disk (synchronous=NORMAL) and puts the connection
    back as it was afterwards: a committed row survives the worker being killed; only a power
    cut could lose the last few, and those are re-sent with the same id, which is the crash
    story anyway. PostgreSQL is left as configured."""
    with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        before = 2
        if sqlite:
            before = int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.commit()
        try:
            with Session(bind=conn, expire_on_commit=False) as session:
                yield session
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql(f"PRAGMA synchronous={before}")
                conn.commit()


def _expire_due() -> int:
    """Expire alerts whose last version has run out, if the drafting services are there."""
    try:
        from dr_panel.alerts import drafting
    except ImportError:  # drafting not installed in this build
        return 0
    expire_due = getattr(drafting, "expire_due", None)
    if expire_due is None:
        return 0
    try:
        done = int(expire_due(utcnow()))
        db.session.commit()
        return done
    except Exception as err:
        db.session.rollback()
        log.error("expiring alerts failed (%s)", type(err).__name__)
        return 0


def _claim(app: Flask, limit: int) -> list[int]:
    """Claim due deliveries in one short transaction, so two workers never send the same one.

    Each claim is stamped with a ``claimed_until`` unique to this run; the UPDATE only takes
    rows nobody holds, and the rows carrying our stamp afterwards are ours. On PostgreSQL the
    candidates are also locked with SKIP LOCKED, so concurrent workers take different rows."""
    now = utcnow()
    stamp = now + app.config["BROADCAST_CLAIM"] + timedelta(
        microseconds=secrets.randbelow(1_000_000)
    )
    due = (
        Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.FAILED)),
        Delivery.next_attempt_at <= now,
        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
    )
    with Session(db.engine) as session:
        pick = select(Delivery.id).where(*due).order_by(Delivery.id).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = list(session.scalars(pick))
        if not ids:
            session.commit()
            return []
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids), *due).values(claimed_until=stamp),
            execution_options=NO_SYNC,
        )
        session.commit()
        return list(
            session.scalars(
                select(Delivery.id).where(Delivery.id.in_(ids), Delivery.claimed_until == stamp)
            )
        )


def _mark_sent(session: Session, delivery: Delivery, status: int | None = None) -> None:
    """Recorded straight after the send, in its own transaction: a crash between the two
    re-sends this one message (same id) and nothing else."""
    rows = DELIVERIES.c  # Core, not the ORM: this runs once per message
    session.execute(
        update(DELIVERIES)
        .where(rows.id == delivery.id)
        .values(
            status=DeliveryStatus.SENT, sent_at=utcnow(), attempts=rows.attempts + 1,
            claimed_until=None, last_error=None, response_status=status,
        )
    )
    session.commit()


def _mark_failed(
    session: Session, delivery: Delivery, error: str, *, status: int | None,
    retry_at: datetime | None,
) -> None:
    """A failed try: retried at ``retry_at``, or given up when it is None."""
    values: dict[str, Any] = {
        "attempts": Delivery.attempts + 1,
        "claimed_until": None,
        "last_error": error[:200],
        "response_status": status,
    }
    if retry_at is None:
        values["status"] = DeliveryStatus.GAVE_UP
    else:
        values.update(status=DeliveryStatus.FAILED, next_attempt_at=retry_at)
    session.execute(
        update(Delivery).where(Delivery.id == delivery.id).values(**values),
        execution_options=NO_SYNC,
    )
    session.commit()


def _release(session: Session, deliveries: list[Delivery]) -> None:
    """Give claims back unsent (the server is unreachable): they keep their place."""
    if deliveries:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([d.id for d in deliveries]))
            .values(claimed_until=None),
            execution_options=NO_SYNC,
        )
        session.commit()


# -- what a version says ------------------------------------------------------------------------

def content_of(version: AlertVersion) -> dict[str, str]:
    from dr_panel.alerts import drafting  # drafting calls queue_deliveries: import when used

    return dict(drafting.content_of(version))


def labels() -> dict[str, str]:
    from dr_panel.alerts import drafting

    return dict(drafting.LABELS)


def cap_url(version: AlertVersion) -> str:
    from dr_panel.alerts import cap

    return str(cap.cap_url(version))


def event_type(delivery: Delivery) -> str:
    if delivery.event == "expired":
        return "alert.expired"
    return webhooks.EVENT_TYPES[delivery.version.msg_type.value]


def payload(delivery: Delivery, *, content: dict[str, str], cap: str | None) -> dict[str, Any]:
    """The webhook body. The same on every retry: the timestamp is the event's, not the try's."""
    version = delivery.version
    when = version.issued_at if delivery.event == "issued" else delivery.created_at
    return {
        "type": event_type(delivery),
        "timestamp": (when or delivery.created_at).isoformat(timespec="seconds"),
        "data": {
            "alert": version.alert.reference,
            "alert_uuid": str(version.alert.uuid),
            "version": version.number,
            "msg_type": version.msg_type.value,
            "level": version.level.value,
            "scope": version.scope.value,
            "areas": [a.ons_code for a in version.areas] or [version.alert.area.ons_code],
            "audiences": sorted(_codes(version.audiences)),
            "expires": version.expires_at.isoformat(timespec="seconds")
            if version.expires_at else None,
            "content": content,
            "cap_url": cap,
        },
    }


# -- e-mail -------------------------------------------------------------------------------------


SUBJECT_PREFIX = {
    "Alert": "",
    "Update": "Update: ",
    "Cancel": "Cancelled: ",
}


def _email_parts(app: Flask, delivery: Delivery) -> tuple[str, str, str]:
    """Subject, text and HTML for a version (the ack link is a placeholder, replaced per
    recipient): rendered once per version and event, not once per recipient."""
    version = delivery.version
    content = content_of(version)
    title = content.get("title") or version.alert.reference
    prefix = "Expired: " if delivery.event == "expired" else SUBJECT_PREFIX[version.msg_type.value]
    subject = f"{prefix}{version.level.label}: {title}"[:200].replace("\n", " ")
    context = {
        "version": version,
        "alert": version.alert,
        "event": delivery.event,
        "content": content,
        "labels": labels(),
        "cap_url": cap_url(version),
        "ack_url": ACK_PLACEHOLDER,
        "areas": [a.label for a in version.areas] or [version.alert.area.label],
        "audiences": [AUDIENCES.get(c, c) for c in sorted(_codes(version.audiences))],
        "subject": subject,
    }
    text = render_template("alerts/email/alert.txt", **context)
    html = render_template("alerts/email/alert.html", **context)
    return subject, text, html


def ack_link_for(delivery_uuid: str) -> str:
    """The public acknowledgement page of one e-mail delivery (BASE_URL + its path)."""
    from dr_panel.mail.services import link

    return link("alerts.ack", uuid=delivery_uuid)


PLACEHOLDER_TO = "recipient@placeholder.invalid"
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Rendered:
    """A version's e-mail, rendered once: the parts, and the whole message as bytes with
    placeholders for the recipient, the Message-ID and the acknowledgement link, filled in per
    recipient. ``raw`` is None where the bytes cannot be filled in safely (the body was encoded,
    so the placeholders are not there verbatim): then each message is built in full."""

    subject: str
    text: str
    html: str
    raw: bytes | None
    envelope_from: str

    @classmethod
    def of(cls, parts: tuple[str, str, str], sender: str) -> Rendered:
        subject, text, html = parts
        raw = build_message(
            uuid=PLACEHOLDER_ID, sender=sender, to=PLACEHOLDER_TO, subject=subject, text=text,
            html=html,
        ).as_bytes()
        counts = (raw.count(PLACEHOLDER_TO.encode()), raw.count(PLACEHOLDER_ID.encode()),
                  raw.count(ACK_PLACEHOLDER.encode()))
        template = raw if counts == (1, 1, 2) else None
        return cls(subject, text, html, template, address_of(sender))


def _send_one(
    transport: Transport, rendered: Rendered, sender: str, to: str, delivery: Delivery,
    link: str,
) -> None:
    uuid = str(delivery.uuid)
    if rendered.raw is not None and to.isascii() and len(to) < 200:
        data = (
            rendered.raw.replace(PLACEHOLDER_TO.encode(), to.encode())
            .replace(PLACEHOLDER_ID.encode(), uuid.encode())
            .replace(ACK_PLACEHOLDER.encode(), link.encode())
        )
        envelope = rendered.envelope_from
        domain = envelope.rpartition("@")[2] or "dr-panel.invalid"
        transport.send_raw(envelope, to, data, f"<{uuid}@{domain}>")
        return
    transport.send(
        build_message(
            uuid=uuid, sender=sender, to=to, subject=rendered.subject,
            text=rendered.text.replace(ACK_PLACEHOLDER, link),
            html=rendered.html.replace(ACK_PLACEHOLDER, link),
        )
    )


def _send_emails(
    app: Flask, session: Session, deliveries: list[Delivery], counts: dict[str, int]
) -> None:
    """One SMTP connection (transport) for the batch; each message recorded as sent on its own."""
    from dr_panel.mail.services import PER_MESSAGE_ERRORS, IdentifierInMail, check_no_identifiers
    from dr_panel.mail.services import error_name as mail_error_name

    rendered: dict[tuple[int, str], Rendered | str] = {}
    transport: Transport | None = None
    sender = app.config["MAIL_FROM"]
    # The route is built once, not once per recipient.
    ack_template = ack_link_for(PLACEHOLDER_ID)
    try:
        for n, delivery in enumerate(deliveries):
            sub = delivery.subscriber
            if not sub.is_active or not sub.email:
                _mark_failed(session, delivery, "subscriber disabled", status=None, retry_at=None)
                counts["gave_up"] += 1
                continue
            key = (delivery.version_id, delivery.event)
            if key not in rendered:
                try:
                    parts = _email_parts(app, delivery)
                    check_no_identifiers(*parts)  # a backstop behind the leak gate
                    rendered[key] = Rendered.of(parts, sender)
                except IdentifierInMail as err:
                    rendered[key] = f"identifier guard: {err.kind} in the {err.where}"
            parts_or_refusal = rendered[key]
            if isinstance(parts_or_refusal, str):
                _mark_failed(session, delivery, parts_or_refusal, status=None, retry_at=None)
                counts["gave_up"] += 1
                continue
            link = ack_template.replace(PLACEHOLDER_ID, str(delivery.uuid))
            try:
                if transport is None:
                    transport = transport_from_config(app.config, app.instance_path)
                _send_one(transport, parts_or_refusal, sender, sub.email, delivery, link)
            except Exception as err:  # recorded, retried
                error = mail_error_name(err)
                attempts = delivery.attempts + 1
                retry_at = retry.schedule("alert_email", app).next_try(attempts, utcnow())
                _mark_failed(session, delivery, error, status=None, retry_at=retry_at)
                counts["failed" if retry_at else "gave_up"] += 1
                log.warning("alert e-mail %s not sent: %s", delivery.uuid, error)
                if isinstance(err, PER_MESSAGE_ERRORS):
                    continue
                # Unreachable server, TLS, settings: the rest keep their place for next time.
                _release(session, deliveries[n + 1:])
                break
            _mark_sent(session, delivery)
            counts["sent"] += 1
    finally:
        if transport is not None:
            try:
                transport.close()
            except Exception as err:
                log.warning("closing the mail transport failed (%s)", type(err).__name__)


# -- webhooks -----------------------------------------------------------------------------------


def secrets_of(sub: Subscriber, now: datetime | None = None) -> list[str]:
    """The secrets that sign for ``sub`` now: its own, and the previous one during a rotation."""
    from dr_panel.alerts.subscribers import secrets_for

    return secrets_for(sub, now)


def _send_webhooks(
    app: Flask, session: Session, deliveries: list[Delivery], counts: dict[str, int]
) -> None:
    """POST concurrently (a thread pool); record each outcome, in this thread, as it comes."""
    timeout = float(app.config["WEBHOOK_TIMEOUT"])
    allow_loopback = bool(app.config["WEBHOOK_ALLOW_LOOPBACK"])
    bodies: dict[tuple[int, str], tuple[dict[str, str], str | None]] = {}
    signing: dict[int, list[str] | None] = {}
    jobs: list[tuple[Delivery, str, str]] = []
    for delivery in deliveries:
        sub = delivery.subscriber
        if not sub.is_active or not sub.url:
            _mark_failed(session, delivery, "subscriber disabled", status=None, retry_at=None)
            counts["gave_up"] += 1
            continue
        key = (delivery.version_id, delivery.event)
        if key not in bodies:
            bodies[key] = (content_of(delivery.version), cap_url(delivery.version))
        content, cap = bodies[key]
        body = webhooks.body_of(payload(delivery, content=content, cap=cap))
        if sub.id not in signing:
            try:
                signing[sub.id] = secrets_of(sub)
            except DecryptionError:
                signing[sub.id] = None
        if signing[sub.id] is None:
            # Its secret is sealed under a key this worker cannot use (yet): recorded on this
            # delivery and retried; the round, and every other delivery, goes on.
            _key_problem(app, session, delivery, counts)
            continue
        jobs.append((delivery, sub.url, body))

    def send(job: tuple[Delivery, str, str]) -> webhooks.Outcome:
        delivery, url, body = job
        msg_id = webhooks.message_id(delivery.uuid)
        headers = webhooks.headers_for(
            signing[delivery.subscriber_id] or [], msg_id, utcnow(), body
        )
        return webhooks.post(url, body, headers, timeout, allow_loopback=allow_loopback)

    threads = max(1, min(int(app.config["WEBHOOK_THREADS"]), len(jobs)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dr-panel-hook") as pool:
        futures = {pool.submit(send, job): job[0] for job in jobs}
        for future in as_completed(futures):
            delivery = futures[future]
            try:
                outcome = future.result()
            except Exception as err:  # a bug in building the request: retried, logged by type
                outcome = webhooks.Outcome(status=None, error=type(err).__name__)
            _record_webhook(app, session, delivery, outcome, counts)


def _key_problem(
    app: Flask, session: Session, delivery: Delivery, counts: dict[str, int]
) -> None:
    """A delivery whose signing secret does not decrypt: failed, with the reason on the row
    (never the value), retried after the usual back-off (a worker follows the key file each
    round, so a newly added key is picked up by then)."""
    retry_at = utcnow() + retry.schedule("webhook", app).delay(delivery.attempts + 1)
    _mark_failed(session, delivery, "secret does not decrypt (DecryptionError): key unknown",
                 status=None, retry_at=retry_at)
    counts["failed"] += 1
    log.error("webhook %s: its signing secret does not decrypt with the keys loaded; "
              "retry at %s", delivery.uuid, retry_at.isoformat(timespec="seconds"))


def _record_webhook(
    app: Flask, session: Session, delivery: Delivery, outcome: webhooks.Outcome,
    counts: dict[str, int],
) -> None:
    sub_id = delivery.subscriber_id
    if outcome.ok:
        _mark_sent(session, delivery, outcome.status)
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == sub_id, Subscriber.consecutive_failures != 0)
            .values(consecutive_failures=0),
            execution_options=NO_SYNC,
        )
        session.commit()
        counts["sent"] += 1
        return
    error = outcome.error or "failed"
    if error.startswith(webhooks.REFUSED):
        _audit_refused(session, delivery, error)
    if outcome.gone:
        _mark_failed(session, delivery, error, status=outcome.status, retry_at=None)
        _disable_endpoint(session, sub_id, "answered 410 Gone")
        counts["gave_up"] += 1
        log.warning("webhook %s answered 410: endpoint %s disabled", delivery.uuid, sub_id)
        return
    failures = int(
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == sub_id)
            .values(consecutive_failures=Subscriber.consecutive_failures + 1)
            .returning(Subscriber.consecutive_failures),
            execution_options=NO_SYNC,
        ).scalar_one()
    )
    limit = int(app.config["WEBHOOK_MAX_FAILURES"])
    if failures >= limit:
        _mark_failed(session, delivery, error, status=outcome.status, retry_at=None)
        _disable_endpoint(session, sub_id, f"{failures} consecutive failures, last: {error}")
        counts["gave_up"] += 1
        return
    retry_at = utcnow() + retry.schedule("webhook", app).delay(delivery.attempts + 1)
    _mark_failed(session, delivery, error, status=outcome.status, retry_at=retry_at)
    counts["failed"] += 1
    log.info("webhook %s failed (%s); retry at %s", delivery.uuid, error,
             retry_at.isoformat(timespec="seconds"))


def _audit_refused(session: Session, delivery: Delivery, reason: str) -> None:
    """A send refused by the outbound rules (a private address, a URL saved before them) is a
    refusal: audited with its plain reason, never the URL or the address it resolved to."""
    session.commit()
    record("alerts.webhook.refused", outcome=AuditOutcome.DENIED,
           actor_label="broadcast worker", object_type="subscribers",
           object_uuid=delivery.subscriber.uuid, reason=reason[:200],
           details={"delivery": str(delivery.uuid)})
    db.session.commit()
    log.warning("webhook %s refused by the outbound rules", delivery.uuid)


def _disable_endpoint(session: Session, sub_id: int, reason: str) -> None:
    """Disable an endpoint with a visible reason, give up its waiting deliveries and audit it,
    in one transaction (``db.session``: the audit chain is written there). Already disabled:
    nothing more to do."""
    session.commit()
    sub = db.session.get(Subscriber, sub_id)
    if sub is None or not sub.is_active:
        db.session.rollback()
        return
    sub.is_active = False
    sub.disabled_reason = reason[:200]
    sub.disabled_at = utcnow()
    give_up_waiting(sub_id, "endpoint disabled")
    record("alerts.subscriber.disabled", actor_label="broadcast worker",
           object_type="subscribers", object_uuid=sub.uuid, reason=reason[:200])
    db.session.commit()


def give_up_waiting(sub_id: int, reason: str) -> int:
    """Give up a subscriber's unsent deliveries that no worker holds (in ``db.session``)."""
    now = utcnow()
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.subscriber_id == sub_id,
            Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.FAILED)),
            or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
        )
        .values(status=DeliveryStatus.GAVE_UP, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def resend_what_still_matters(sub_id: int) -> int:
    """When a subscriber is enabled again: queue again the given-up deliveries it still needs,
    under their own ids (a receiver that saw one will not process it twice). They are the
    current version of each alert still in force, and the end notice (cancellation or expiry)
    of an alert it had received a message of. Superseded versions stay given up. Returns how
    many were queued."""
    now = utcnow()
    given_up = db.session.scalars(
        select(Delivery)
        .options(  # each alert's versions in one query: ``alert.current`` reads them
            joinedload(Delivery.version).joinedload(AlertVersion.alert)
            .selectinload(Alert.versions)
        )
        .where(Delivery.subscriber_id == sub_id, Delivery.status == DeliveryStatus.GAVE_UP)
    ).all()
    heard_of = set(db.session.scalars(
        select(AlertVersion.alert_id)
        .join(Delivery, Delivery.version_id == AlertVersion.id)
        .where(Delivery.subscriber_id == sub_id, Delivery.status == DeliveryStatus.SENT)
    ))
    queued = 0
    for delivery in given_up:
        version = delivery.version
        alert = version.alert
        if alert.current is not version:
            continue
        in_force = (
            alert.status is AlertStatus.ISSUED and delivery.event == "issued"
            and (version.expires_at is None or version.expires_at > now)
        )
        end_notice = (
            alert.status in (AlertStatus.CANCELLED, AlertStatus.EXPIRED)
            and (delivery.event == "expired" or version.msg_type is MsgType.CANCEL)
            and alert.id in heard_of
        )
        if in_force or end_notice:
            delivery.status = DeliveryStatus.QUEUED
            delivery.attempts = 0
            delivery.next_attempt_at = now
            delivery.claimed_until = None
            delivery.last_error = None
            queued += 1
    return queued


# -- in the background --------------------------------------------------------------------------


def deliver_in_worker(app: Flask) -> None:
    """One round for the development server's background worker (run after its mail round).
    Never raises: errors are logged by type."""
    try:
        with app.app_context():
            deliver()
    except Exception as err:
        log.error("alert delivery failed (%s); deliveries wait for the next round",
                  type(err).__name__)


# -- acknowledgements and the dashboard ---------------------------------------------------------


def acknowledge(delivery: Delivery) -> bool:
    """Record that the recipient confirmed an e-mail (the link in it). Once: a second press
    changes nothing. Returns whether this call recorded it; the caller commits."""
    if delivery.acknowledged_at is not None:
        return False
    delivery.acknowledged_at = utcnow()
    record("alerts.delivery.acknowledged", actor_label="e-mail recipient",
           object_type="deliveries", object_uuid=delivery.uuid,
           details={"version": str(delivery.version.uuid)})
    return True


DASHBOARD_STATES = ("queued", "sent", "failed", "gave_up", "acknowledged")


def _of_areas(area_ids: Any) -> Any:
    """Deliveries to subscribers covering one of these areas (``Subscriber.can_view``'s rule)."""
    return Delivery.subscriber_id.in_(
        select(subscriber_areas.c.subscriber_id).where(
            subscriber_areas.c.area_id.in_(set(area_ids or ()) or {-1})
        )
    )


def _delivery_filters(
    alert: Alert, status: str | None, channel: str | None, version: int | None
) -> list[Any]:
    where: list[Any] = [AlertVersion.alert_id == alert.id]
    if status == "acknowledged":
        where.append(Delivery.acknowledged_at.is_not(None))
    elif status in {s.value for s in DeliveryStatus}:
        where.append(Delivery.status == DeliveryStatus(status))
    if channel in {c.value for c in Channel}:
        where.append(Delivery.channel == Channel(channel))
    if version is not None:
        where.append(AlertVersion.number == version)
    return where


def delivery_query(
    alert: Alert, *, viewer: User, status: str | None = None, channel: str | None = None,
    version: int | None = None,
) -> Select[tuple[Delivery]]:
    """An alert's deliveries for the dashboard, newest version first, filtered: only those to
    subscribers of the viewer's areas. A network-wide alert also reaches subscribers of areas
    the viewer does not work in; those are counted (``deliveries_elsewhere``), not named, as
    their subscriber pages are closed to the viewer too."""
    return (
        select(Delivery)
        .join(Delivery.version)
        .where(*_delivery_filters(alert, status, channel, version), _of_areas(viewer.area_ids))
        .options(joinedload(Delivery.subscriber), joinedload(Delivery.version))
        .order_by(AlertVersion.number.desc(), Delivery.id)
    )


def deliveries_elsewhere(
    alert: Alert, *, viewer: User, status: str | None = None, channel: str | None = None,
    version: int | None = None,
) -> int:
    """How many of the filtered deliveries went to subscribers outside the viewer's areas."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Delivery.version)
            .where(*_delivery_filters(alert, status, channel, version),
                   ~_of_areas(viewer.area_ids))
        )
        or 0
    )


def delivery_counts(alert: Alert) -> list[dict[str, Any]]:
    """Per version and event: how many deliveries are in each state, and acknowledged, across
    the whole network. Counts of organisations and partner systems name no one, and the alert's
    coordinators answer for it reaching everyone."""
    rows = db.session.execute(
        select(
            AlertVersion.number, Delivery.event, Delivery.status, func.count(),
            func.count(Delivery.acknowledged_at),
        )
        .join(Delivery.version)
        .where(AlertVersion.alert_id == alert.id)
        .group_by(AlertVersion.number, Delivery.event, Delivery.status)
    ).all()
    table: dict[tuple[int, str], dict[str, Any]] = {}
    for number, event, status, n, acked in rows:
        entry = table.setdefault(
            (number, event),
            {"version": number, "event": event, "total": 0, **dict.fromkeys(DASHBOARD_STATES, 0)},
        )
        entry[DeliveryStatus(status).value] += n
        entry["acknowledged"] += acked
        entry["total"] += n
    return [table[k] for k in sorted(table, key=lambda k: (-k[0], k[1]))]
