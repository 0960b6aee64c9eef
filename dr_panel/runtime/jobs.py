"""A lease per scheduled job, so that any number of workers on any number of machines run each
job once per period.

A worker claims a job with one conditional UPDATE: "set my claim where the job has not finished
this period and nobody holds an unexpired claim". Exactly one UPDATE matches: on PostgreSQL a
second UPDATE of the same row waits for the first to commit and then re-checks its WHERE against
the new row; on SQLite writers take the database lock in turn. The claim runs out after
``hold``: a worker that dies mid-job leaves the period to another once it has. A job that fails
is retried after the ``job`` channel's wait (``dr_panel.retry``; not at once, so a broken job
does not spin).

SQLite: the same statements work, and every process on the machine sees one file; but SQLite
is for one machine, so "several workers on several machines" means PostgreSQL.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dr_panel import retry
from dr_panel.extensions import db
from dr_panel.runtime.models import JobLease


def holder_name() -> str:
    """Which worker holds a claim, for an operator reading the table: host and process."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}"


def _ensure_row(session: Session, name: str) -> None:
    if session.get(JobLease, name) is not None:
        return
    try:
        with session.begin_nested():
            session.add(JobLease(name=name))
    except IntegrityError:
        pass  # another worker made it first
    session.commit()


def claim(name: str, period: str, *, now: datetime, hold: timedelta,
          holder: str | None = None) -> bool:
    """Take the job for ``period`` if it is not done and not held. Commits on its own session."""
    with Session(db.engine) as session:
        _ensure_row(session, name)
        result = session.execute(
            update(JobLease)
            .where(
                JobLease.name == name,
                or_(JobLease.done_period.is_(None), JobLease.done_period != period),
                or_(JobLease.held_until.is_(None), JobLease.held_until < now),
            )
            .values(
                claimed_period=period,
                holder=holder or holder_name(),
                held_until=now + hold,
                last_started_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return int(getattr(result, "rowcount", 0) or 0) == 1


def retry_after() -> timedelta:
    """How long a failed job waits before another try (a job's failures are not counted, so
    this is always the ``job`` channel's first wait)."""
    return retry.schedule("job").delay(1)


def finish(name: str, period: str, *, now: datetime, error: BaseException | None = None,
           holder: str | None = None) -> None:
    """Record the end of a claimed run: done for the period, or failed (another try after
    ``retry_after()``)."""
    values: dict[str, object] = {"last_finished_at": now}
    if error is None:
        values.update(done_period=period, held_until=None, last_error=None)
    else:
        values.update(held_until=now + retry_after(), last_error=type(error).__name__[:100])
    with Session(db.engine) as session:
        session.execute(
            update(JobLease)
            .where(
                JobLease.name == name,
                JobLease.claimed_period == period,
                JobLease.holder == (holder or holder_name()),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        session.commit()
