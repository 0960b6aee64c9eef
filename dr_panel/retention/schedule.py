"""The retention schedule: how long each kind of record keeps what identifies someone.

Four kinds, each with its clock (``config.Config.RETENTION_*``, each overridable from the
environment and checked at start-up):

- ``living``: a person with no death notified. Their identifiers, the blind indexes that find
  them, and the free text of every case of theirs are kept ``RETENTION_LIVING_YEARS`` (default
  8) after their **last event**. The NHS Records Management Code of Practice (2021, updated
  2023, Appendix II) keeps most adult health and care records 8 years after the last episode of
  care; a non-fatal overdose is such an episode, and a panel's linking of repeat overdoses (the
  strongest signal of a future death) needs that span.
- ``death``: a person with a death notified. Kept ``RETENTION_DEATH_YEARS`` (default 8) after
  the **last of their cases was finished**: closed after review, closed without review, or
  merged as a duplicate (the time of that workflow step). The Code keeps adult records 8 years
  after death; a panel's record is finished later than the death, so its clock starts there,
  and an inquest that reopens a case restarts it.
- ``report_text``: a drug-concern report's free text (and what it matched), kept
  ``RETENTION_REPORT_TEXT_DAYS`` (default 730) after it was received, once the LDIS panel has
  decided on it. Two years covers the annual LDIS review and a year-on-year comparison; what
  was learnt lives on in the anonymised alert, which is kept.
- ``report_contact``: a public reporter's contact address. It exists only to send the
  confirmation (README, "Drug-concern reports"), so it is erased as soon as that e-mail has
  gone, and at the latest ``RETENTION_REPORT_CONTACT_DAYS`` (default 30) after the report.

These are defaults for a panel to confirm in its information-sharing agreement; a local
agreement may set shorter periods (any whole number within the bounds ``config`` accepts).

Open work holds a person: nothing is disposed of while any case of theirs is still open (not
closed, closed without review, or a duplicate) or their safety plan is open, however old. A
record is due **on** the day its period ends: a person whose last event was 3 May 2026 is kept
through 2 May 2034 and disposed of from 3 May 2034 (8 years). A period ending on 29 February
in a year without one ends on 1 March, so nobody is kept less than the whole period.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from dr_panel.cases.models import CaseStatus, CaseType

# A case in one of these states is finished: its review closed, or it needed none, or it was
# merged into the case kept.
FINISHED = frozenset({CaseStatus.CLOSED, CaseStatus.NO_REVIEW, CaseStatus.DUPLICATE})


class RecordKind(enum.StrEnum):
    LIVING = "living"
    DEATH = "death"
    REPORT_TEXT = "report_text"
    REPORT_CONTACT = "report_contact"

    @property
    def label(self) -> str:
        return KIND_LABELS[self]


KIND_LABELS = {
    RecordKind.LIVING: "A living person's identifiers and case free text",
    RecordKind.DEATH: "A death's identifiers and case free text",
    RecordKind.REPORT_TEXT: "A drug-concern report's free text",
    RecordKind.REPORT_CONTACT: "A public reporter's contact address",
}


@dataclass(frozen=True)
class Schedule:
    living_years: int = 8
    death_years: int = 8
    report_text_days: int = 730
    report_contact_days: int = 30

    @classmethod
    def from_config(cls, config: Any) -> Schedule:
        return cls(
            living_years=int(config["RETENTION_LIVING_YEARS"]),
            death_years=int(config["RETENTION_DEATH_YEARS"]),
            report_text_days=int(config["RETENTION_REPORT_TEXT_DAYS"]),
            report_contact_days=int(config["RETENTION_REPORT_CONTACT_DAYS"]),
        )

    def rule(self, kind: RecordKind) -> str:
        """The rule in words, as the audit entry and the summary give it."""
        return {
            RecordKind.LIVING: f"{self.living_years} years after the last event",
            RecordKind.DEATH: f"{self.death_years} years after the review was finished",
            RecordKind.REPORT_TEXT: f"{self.report_text_days} days after the report, once decided",
            RecordKind.REPORT_CONTACT: (
                f"once the confirmation was sent, at most {self.report_contact_days} days"
            ),
        }[kind]

    def earliest_clock(self, today: date) -> date:
        """No person whose last event is after this day can be due today under either rule (a
        death's review finishes on or after its event): the database's first filter."""
        return years_before(today, min(self.living_years, self.death_years))


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later; 29 February becomes 1 March where there is none."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def years_before(day: date, years: int) -> date:
    """The latest clock start that could be due on ``day`` (a superset bound: ``add_years`` of
    anything later is after ``day``)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February today: 1 March then is a safe upper bound
        return date(day.year - years, 3, 1)


@dataclass(frozen=True)
class CaseClock:
    """What the schedule needs of one case: its type, state, event day, and the day it was
    finished (None while open, or when no finishing step was recorded)."""

    case_type: CaseType
    status: CaseStatus
    event_date: date
    finished_on: date | None = None


@dataclass(frozen=True)
class Due:
    kind: RecordKind
    clock_started: date  # the last event, or the day the last case was finished
    due_on: date
    held: bool = False  # past its date but held by open work

    def is_due(self, today: date) -> bool:
        return not self.held and self.due_on <= today


def person_due(
    cases: list[CaseClock], schedule: Schedule, *, has_open_plan: bool = False
) -> Due | None:
    """When a person's identifiers fall due, under which rule; None for a person with no cases
    (they are removed with their last case, never disposed of)."""
    if not cases:
        return None
    held = has_open_plan or any(c.status not in FINISHED for c in cases)
    if any(c.case_type is CaseType.DEATH for c in cases):
        # A finished case with no recorded finishing step (imported closed) counts from its event.
        started = max(c.finished_on or c.event_date for c in cases)
        return Due(RecordKind.DEATH, started, add_years(started, schedule.death_years), held)
    started = max(c.event_date for c in cases)
    return Due(RecordKind.LIVING, started, add_years(started, schedule.living_years), held)


def report_text_due(received_at: datetime, schedule: Schedule) -> datetime:
    return received_at + timedelta(days=schedule.report_text_days)


def report_contact_due(received_at: datetime, schedule: Schedule) -> datetime:
    return received_at + timedelta(days=schedule.report_contact_days)
