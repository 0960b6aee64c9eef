"""Writing and verifying the audit log. Services call ``record`` inside their own transaction,
so the change and its audit entry commit together or not at all."""

from __future__ import annotations

import json
import logging
import uuid as uuid_mod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app, has_request_context, request
from flask_login import current_user
from sqlalchemy import func, select, text

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.crypto import KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db

if TYPE_CHECKING:
    from dr_panel.auth.models import User

log = logging.getLogger("dr_panel.audit")

GENESIS = "0" * 64
# Any constant shared by every writer: serialises appends to the chain on PostgreSQL.
PG_LOCK_ID = 0x4452_5041_4E45_4C  # "DRPANEL"


def _keys() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def canonical(entry: AuditEntry) -> bytes:
    fields = {
        "seq": entry.seq,
        "uuid": str(entry.uuid),
        "occurred_at": entry.occurred_at.isoformat(timespec="microseconds"),
        "actor_uuid": str(entry.actor_uuid) if entry.actor_uuid else None,
        "actor_label": entry.actor_label,
        "ip_address": entry.ip_address,
        "action": entry.action,
        "outcome": Outcome(entry.outcome).value,
        "object_type": entry.object_type,
        "object_uuid": entry.object_uuid,
        "reason": entry.reason,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _lock_chain_head() -> None:
    """Serialise appends, so two writers never take the same seq or chain from the same
    previous hash. Taken just before the head is read; held until the caller's transaction
    ends (kept short: callers commit right after). PostgreSQL: a transaction-level advisory
    lock. SQLite: a write to the chain-head counter row, which takes the database's write lock
    (pysqlite runs earlier reads outside a transaction, so the head read next is the latest;
    a transaction that already wrote holds the lock already)."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_ID})
        return
    from dr_panel import counters  # here: audit is imported by everything, counters by few

    counters.lock("audit", "chain")


def record(
    action: str,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    actor: User | None = None,
    object_type: str | None = None,
    object_uuid: uuid_mod.UUID | str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEntry:
    """Append an entry to the current transaction. The caller commits."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    session = db.session
    _lock_chain_head()
    head = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    entry = AuditEntry(
        seq=seq,
        uuid=uuid_mod.uuid4(),
        occurred_at=utcnow(),
        actor_uuid=getattr(actor, "uuid", None),
        actor_label=getattr(actor, "email", None) or actor_label,
        ip_address=request.remote_addr if has_request_context() else None,
        action=action,
        outcome=outcome,
        object_type=object_type,
        object_uuid=str(object_uuid) if object_uuid else None,
        reason=reason,
        details=json.dumps(details, sort_keys=True, separators=(",", ":")) if details else None,
        prev_hash=prev,
    )
    entry.entry_hash = _keys().audit_mac(canonical(entry))
    session.add(entry)
    session.flush()
    log.debug("audit %s %s seq=%s", action, outcome.value, seq)
    return entry


def record_now(action: str, **kwargs: Any) -> None:
    """For events with no other change to commit (failed sign-ins, refusals): discard anything
    pending, then write the entry in its own transaction."""
    db.session.rollback()
    record(action, **kwargs)
    db.session.commit()


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    problem: str | None = None
    seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _iter_entries(batch: int = 2000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = db.session.scalars(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        db.session.expunge_all()


def verify(progress: Any = None) -> VerifyResult:
    """Walk the chain in order and name the first entry that was changed, inserted or deleted."""
    keys = _keys()
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    for entry in _iter_entries():
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                missing = (
                    f"#{expected_seq}"
                    if entry.seq == expected_seq + 1
                    else (f"#{expected_seq} to #{entry.seq - 1}")
                )
                return VerifyResult(checked, f"entry {missing} is missing (deleted)", expected_seq)
            return VerifyResult(
                checked, f"entry #{entry.seq} is out of order (inserted)", entry.seq
            )
        if keys.audit_mac(canonical(entry)) != entry.entry_hash:
            return VerifyResult(
                checked, f"entry #{entry.seq} ({entry.action}) was changed or inserted", entry.seq
            )
        if entry.prev_hash != prev_hash:
            return VerifyResult(
                checked, f"the entry before #{entry.seq} was deleted or replaced", entry.seq
            )
        prev_hash, expected_seq, checked = entry.entry_hash, expected_seq + 1, checked + 1
        if progress is not None:
            progress.update(1)
    return VerifyResult(checked)


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0
