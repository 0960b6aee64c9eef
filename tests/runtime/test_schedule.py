"""The schedule's arithmetic: a daily job at a London wall-clock time, across both DST changes,
and interval jobs that every worker counts alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from dr_panel.runtime.schedule import Daily, Every, occurrence, parse_local_time


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_winter_six_in_london_is_six_utc() -> None:
    scan = Daily(time(6, 0))
    assert scan.period(utc(2026, 1, 10, 5, 59)) == "2026-01-09"
    assert scan.period(utc(2026, 1, 10, 6, 0)) == "2026-01-10"


def test_summer_six_in_london_is_five_utc() -> None:
    scan = Daily(time(6, 0))
    assert scan.period(utc(2026, 7, 10, 4, 59)) == "2026-07-09"
    assert scan.period(utc(2026, 7, 10, 5, 0)) == "2026-07-10"
    assert scan.next_after(utc(2026, 7, 10, 4, 0)) == utc(2026, 7, 10, 5, 0)


def test_a_time_skipped_in_spring_runs_an_hour_later_by_the_clock() -> None:
    # 29 March 2026: 01:00 GMT jumps to 02:00 BST, so 01:30 London never happens.
    job = Daily(time(1, 30))
    assert occurrence(date(2026, 3, 29), time(1, 30)) == utc(2026, 3, 29, 1, 30)
    assert job.period(utc(2026, 3, 29, 1, 29)) == "2026-03-28"
    assert job.period(utc(2026, 3, 29, 1, 30)) == "2026-03-29"


def test_a_time_repeated_in_autumn_runs_once_at_its_first_occurrence() -> None:
    # 25 October 2026: 02:00 BST falls back to 01:00 GMT, so 01:30 London happens twice.
    job = Daily(time(1, 30))
    assert job.period(utc(2026, 10, 25, 0, 29)) == "2026-10-24"
    assert job.period(utc(2026, 10, 25, 0, 30)) == "2026-10-25"  # 01:30 BST
    assert job.period(utc(2026, 10, 25, 1, 30)) == "2026-10-25"  # 01:30 GMT: same period
    assert job.next_after(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)


def test_the_day_after_the_clocks_change_keeps_the_wall_clock_time() -> None:
    scan = Daily(time(6, 0))
    assert scan.next_after(utc(2026, 3, 28, 7, 0)) == utc(2026, 3, 29, 5, 0)  # 06:00 BST
    assert scan.next_after(utc(2026, 10, 24, 6, 0)) == utc(2026, 10, 25, 6, 0)  # 06:00 GMT


def test_interval_periods_are_the_same_for_every_worker() -> None:
    hourly = Every(3600)
    assert hourly.period(utc(2026, 5, 1, 9, 0)) == hourly.period(utc(2026, 5, 1, 9, 59, 59))
    assert hourly.period(utc(2026, 5, 1, 9, 59, 59)) != hourly.period(utc(2026, 5, 1, 10, 0))
    assert hourly.next_after(utc(2026, 5, 1, 9, 10)) == utc(2026, 5, 1, 10, 0)


@pytest.mark.parametrize("raw", ["6", "25:00", "06:60", "6am", "06:0", ""])
def test_a_badly_written_time_says_how_to_write_it(raw: str) -> None:
    with pytest.raises(ValueError, match="like 06:00"):
        parse_local_time(raw, "SPIKE_SCAN_AT")


def test_a_well_written_time_parses() -> None:
    assert parse_local_time(" 6:05 ", "SPIKE_SCAN_AT") == time(6, 5)
