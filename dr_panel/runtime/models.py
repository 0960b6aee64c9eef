"""One lease row per scheduled job: whoever moves it to the current period runs the job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.dbtypes import UTCDateTime
from dr_panel.extensions import db


class JobLease(db.Model):  # type: ignore[name-defined,misc]
    """``done_period`` is the last period the job finished; ``held_until`` is a running
    worker's claim (a crashed worker's claim runs out and another takes the period over)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    done_period: Mapped[str | None] = mapped_column(String(40))
    claimed_period: Mapped[str | None] = mapped_column(String(40))
    holder: Mapped[str | None] = mapped_column(String(100))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(100))  # an exception's type only

    def __repr__(self) -> str:
        return f"<JobLease {self.name} done={self.done_period}>"
