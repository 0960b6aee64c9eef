"""The retention schedule's arithmetic at its boundaries, and settings refused at start-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from config import load_config
from dr_panel import StartupError, create_app
from dr_panel.cases.models import CaseStatus, CaseType
from dr_panel.retention.schedule import (
    CaseClock,
    RecordKind,
    Schedule,
    add_years,
    person_due,
    years_before,
)
from tests.conftest import make_config

S = Schedule(living_years=8, death_years=6)
CLOSED, OPEN = CaseStatus.CLOSED, CaseStatus.INFORMATION_GATHERING
NFO, DEATH = CaseType.NFO, CaseType.DEATH


def test_a_living_person_is_kept_until_the_day_before_the_anniversary_of_their_last_event() -> None:
    due = person_due(
        [CaseClock(NFO, CLOSED, date(2020, 1, 5)), CaseClock(NFO, CLOSED, date(2026, 5, 3))], S
    )
    assert due is not None and due.kind is RecordKind.LIVING
    assert due.clock_started == date(2026, 5, 3)
    assert not due.is_due(date(2034, 5, 2))
    assert due.is_due(date(2034, 5, 3))


def test_a_death_counts_from_when_its_review_finished_not_from_the_death() -> None:
    cases = [
        CaseClock(NFO, CLOSED, date(2019, 3, 1), finished_on=date(2019, 6, 1)),
        CaseClock(DEATH, CLOSED, date(2020, 2, 10), finished_on=date(2021, 7, 15)),
    ]
    due = person_due(cases, S)
    assert due is not None and due.kind is RecordKind.DEATH
    assert due.clock_started == date(2021, 7, 15)
    assert not due.is_due(date(2027, 7, 14)) and due.is_due(date(2027, 7, 15))


def test_open_work_holds_a_person_however_old() -> None:
    open_case = person_due([CaseClock(NFO, OPEN, date(2000, 1, 1))], S)
    open_plan = person_due([CaseClock(NFO, CLOSED, date(2000, 1, 1))], S, has_open_plan=True)
    for due in (open_case, open_plan):
        assert due is not None and due.held and not due.is_due(date(2040, 1, 1))
    assert person_due([], S) is None


def test_29_february_ends_on_1_march_so_nobody_is_kept_less_than_the_period() -> None:
    assert add_years(date(2024, 2, 29), 8) == date(2032, 2, 29)
    assert add_years(date(2024, 2, 29), 1) == date(2025, 3, 1)
    due = person_due([CaseClock(NFO, CLOSED, date(2024, 2, 29))], Schedule(living_years=1))
    assert due is not None
    assert not due.is_due(date(2025, 2, 28)) and due.is_due(date(2025, 3, 1))
    # The database's first filter never leaves out someone who is due.
    for today in (date(2032, 2, 29), date(2033, 3, 1), date(2033, 2, 28)):
        bound = years_before(today, 8)
        for d in (date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1), date(2025, 2, 28)):
            if add_years(d, 8) <= today:
                assert d <= bound


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("RETENTION_LIVING_YEARS", "eight", "whole number of years from 1 to 30"),
        ("RETENTION_DEATH_YEARS", "0", "from 1 to 30 years"),
        ("RETENTION_REPORT_CONTACT_DAYS", "-3", "from 1 to 365 days"),
        ("RETENTION_REPORT_TEXT_DAYS", "99999", "from 30 to 3650 days"),
    ],
)
def test_nonsense_settings_stop_start_up_with_a_message(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_config("testing")
    assert name in str(stopped.value) and says in str(stopped.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_LIVING_YEARS", "6")
    monkeypatch.setenv("RETENTION_REPORT_CONTACT_DAYS", "7")
    config = load_config("testing")
    assert config.RETENTION_LIVING_YEARS == 6 and config.RETENTION_REPORT_CONTACT_DAYS == 7
    assert config.RETENTION_DEATH_YEARS == 8  # the default stays


def test_an_out_of_range_override_is_refused_by_the_app_factory(tmp_path: Path) -> None:
    config = replace(make_config(tmp_path), RETENTION_DEATH_YEARS=0)
    with pytest.raises(StartupError, match="RETENTION_DEATH_YEARS"):
        create_app(config)
