"""When each scheduled job is due: a daily job at a local time (Europe/London), or a job every
so many seconds. A job runs once per *period*; a period is named by a string (the local date
for a daily job, the number of the interval since the epoch for the others) so that the lease
row can compare it with ``=`` on any engine.

Daylight saving. A daily time that does not exist on the spring-forward day (01:00 to 01:59 on
the last Sunday of March) runs an hour later by the wall clock, at the same UTC instant as the
day before; a time that happens twice on the autumn day (01:00 to 01:59 on the last Sunday of
October) runs at its first occurrence, and only once, because the period is the date.

A worker that was down at the set time runs the day's job when it comes back, the same day;
earlier missed days are not caught up by themselves (``dr-panel signals scan --date``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def parse_local_time(raw: str, setting: str) -> time:
    """``HH:MM`` on the 24-hour clock, or a message that says how to write it."""
    try:
        hours, minutes = raw.strip().split(":")
        if len(hours) not in (1, 2) or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(
            f"{setting} must be a time of day on the 24-hour clock, like 06:00; got {raw!r}."
        ) from None


def occurrence(day: date, at: time) -> datetime:
    """The UTC instant of ``at`` London time on ``day`` (see the module's note on DST)."""
    return datetime.combine(day, at, tzinfo=LONDON).astimezone(UTC)


@dataclass(frozen=True)
class Daily:
    """Once a day at a local time."""

    at: time

    def period(self, now: datetime) -> str:
        """The local date of the latest occurrence at or before ``now``."""
        today = now.astimezone(LONDON).date()
        day = today if occurrence(today, self.at) <= now else today - timedelta(days=1)
        return day.isoformat()

    def next_after(self, now: datetime) -> datetime:
        today = now.astimezone(LONDON).date()
        for offset in range(3):
            at = occurrence(today + timedelta(days=offset), self.at)
            if at > now:
                return at
        raise AssertionError("unreachable: a day has an occurrence")  # pragma: no cover

    def describe(self) -> str:
        return f"daily at {self.at:%H:%M} Europe/London"


@dataclass(frozen=True)
class Every:
    """Once in each interval of ``seconds``, counted from the epoch (so every worker agrees)."""

    seconds: int

    def period(self, now: datetime) -> str:
        return str(int(now.timestamp()) // self.seconds)

    def next_after(self, now: datetime) -> datetime:
        start = (int(now.timestamp()) // self.seconds + 1) * self.seconds
        return datetime.fromtimestamp(start, UTC)

    def describe(self) -> str:
        if self.seconds % 3600 == 0:
            return f"every {self.seconds // 3600} hour(s)"
        return f"every {self.seconds // 60} minute(s)" if self.seconds % 60 == 0 else (
            f"every {self.seconds} s"
        )


When = Daily | Every
