from __future__ import annotations

import enum
import uuid as uuid_mod
from datetime import datetime

from sqlalchemy import DDL, BigInteger, Enum, Index, String, Text, Uuid, event
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.dbtypes import UTCDateTime, utcnow
from dr_panel.extensions import db


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditEntry(db.Model):  # type: ignore[name-defined,misc]
    """One append-only line. ``entry_hash`` is an HMAC over the entry and the previous entry's
    hash, so a changed, inserted or deleted line breaks the chain at that point."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(db.Integer, "sqlite"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    uuid: Mapped[uuid_mod.UUID] = mapped_column(
        Uuid, unique=True, default=uuid_mod.uuid4, nullable=False
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    actor_uuid: Mapped[uuid_mod.UUID | None] = mapped_column(Uuid)
    actor_label: Mapped[str | None] = mapped_column(String(254))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(60), nullable=False)
    outcome: Mapped[Outcome] = mapped_column(
        Enum(
            Outcome,
            native_enum=False,
            length=10,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
        nullable=False,
    )
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_uuid: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)  # canonical JSON; never identifiers
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        Index("ix_audit_entries_occurred_at", "occurred_at"),
        Index("ix_audit_entries_action", "action"),
        Index("ix_audit_entries_actor_uuid", "actor_uuid"),
        Index("ix_audit_entries_object_uuid", "object_uuid"),
    )

    def __repr__(self) -> str:
        return f"<AuditEntry #{self.seq} {self.action} {self.outcome.value}>"


# The database itself refuses UPDATE and DELETE on the log. A database owner can still drop the
# trigger; the HMAC chain is what then shows the change (`dr-panel audit verify`).
# The same statements are in the migration that creates the table.
SQLITE_TRIGGERS = [
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END",
]
POSTGRES_TRIGGER = [
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit entries are append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
    # Row triggers do not see TRUNCATE; a statement trigger does (migration 0022).
    "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
]

for _sql in SQLITE_TRIGGERS:
    event.listen(AuditEntry.__table__, "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in POSTGRES_TRIGGER:
    event.listen(AuditEntry.__table__, "after_create", DDL(_sql).execute_if(dialect="postgresql"))
event.listen(
    AuditEntry.__table__,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS audit_entries_append_only()").execute_if(dialect="postgresql"),
)
