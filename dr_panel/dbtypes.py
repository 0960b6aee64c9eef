"""Column types and helpers shared by every area's models."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime  # noqa: F401  (UTC re-exported)
from typing import Any

from sqlalchemy import DateTime, TypeDecorator, Uuid
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite keeps no zone, so we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use dr_panel.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class PublicIdMixin:
    """Records are addressed by a random UUID in URLs, never by their row id."""

    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4, nullable=False)


def parse_uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except (ValueError, TypeError, AttributeError):
        return None


def refresh_planner_statistics(session: Any) -> None:
    """Give the query planner fresh statistics (ANALYZE). Without them SQLite answers the newest-
    first case list by sorting every matching row (about a second at 300,000 cases) instead of
    walking ix_cases_event_date_id and stopping after a page (under a millisecond). Run after a
    bulk import and at start-up; PostgreSQL's autovacuum also does this by itself."""
    from sqlalchemy import text

    bind = session.get_bind()
    session.execute(text("ANALYZE"))
    if bind.dialect.name == "sqlite":
        session.execute(text("PRAGMA optimize"))
    session.commit()


def storable(text: str, *, newlines: bool = False) -> bool:
    """No NUL or other control characters (PostgreSQL text refuses NUL), no lone surrogates
    (they cannot be encoded to UTF-8, so cannot be encrypted or stored)."""
    allowed = "\t\n\r" if newlines else "\t"
    return not any(
        (unicodedata.category(ch) == "Cc" and ch not in allowed) or "\ud800" <= ch <= "\udfff"
        for ch in text
    )
