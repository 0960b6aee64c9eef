"""One counter mechanism for every reference (cases, drug-concern reports, alerts).

A reference used to be "the highest so far, plus one", read and then written: two requests at
once read the same highest and one of them failed on the unique constraint (a 500, or "send it
again"). Now each numbering is a row of ``counters`` ((scope, key) -> last value given out),
incremented by ``UPDATE ... RETURNING`` in the caller's transaction:

- PostgreSQL: the UPDATE takes the row's lock, held until the caller commits or rolls back, so
  a second writer waits and then reads the first one's value. A rolled-back transaction gives
  its number back (no gaps from failures).
- SQLite: the UPDATE is a write, so it takes the database's write lock (waiting up to
  ``busy_timeout``); pysqlite runs earlier reads outside a transaction, so the write starts a
  fresh snapshot and the lock is kept until commit. No two writers hold it at once.

A row missing (a new area/year, or a database built by ``create_all`` in tests) is created by an
upsert seeded from the highest reference already stored (``floor``): two first writers at once
both insert, the second conflicts and increments instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Integer, String, update
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.extensions import db


class Counter(db.Model):  # type: ignore[name-defined,misc]
    """The last number given out in one numbering (e.g. scope ``cases``, key ``3:NFO-2026-``)."""

    __tablename__ = "counters"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    def __repr__(self) -> str:
        return f"<Counter {self.scope}/{self.key}={self.value}>"


def _upsert(scope: str, key: str, first: int, step: int) -> int:
    session = db.session
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    table = Counter.__table__
    stmt: Any = insert(table).values(scope=scope, key=key, value=first)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.scope, table.c.key], set_={"value": table.c.value + step}
    ).returning(table.c.value)
    return int(session.execute(stmt).scalar_one())


def take(scope: str, key: str, floor: Callable[[], int] | None = None, count: int = 1) -> int:
    """Reserve ``count`` numbers and return the last of them; the counter row stays locked
    until the caller's transaction ends. ``floor`` gives the highest number already used when
    the row does not exist yet."""
    table = Counter.__table__
    value = db.session.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == key)
        .values(value=table.c.value + count)
        .returning(table.c.value)
    ).scalar()
    if value is not None:
        return int(value)
    start = floor() if floor is not None else 0
    return _upsert(scope, key, start + count, count)


def lock(scope: str, key: str) -> None:
    """Take the counter row's lock (and on SQLite the write lock) without giving out a number:
    serialises work that reads a head and writes after it, e.g. the audit chain."""
    take(scope, key)


def set_last(scope: str, key: str, value: int) -> None:
    """Record the last number used by a writer that numbered a batch itself while holding the
    row (the bulk import). Never moves a counter backwards."""
    table = Counter.__table__
    db.session.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == key, table.c.value < value)
        .values(value=value)
    )
