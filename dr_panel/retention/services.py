"""Disposal: erase what the retention schedule (``dr_panel.retention.schedule``) says is due,
keep the anonymised facts, and audit each disposal without the identifiers.

What a person's disposal erases, in one transaction with its audit entry:

- every ``*_enc`` column of the person (``name_enc`` is NOT NULL, so it becomes empty) and every
  blind index that finds them (``bi_*``, and the token tables in ``_erase_person_indexes``), so
  linking, the reveal page and the alert leak gate no longer find them;
- every ``*_enc`` column of every table that hangs off their cases (``case_id``) or off the
  person (``person_id``): status reasons, agency requests and returns, meeting minutes, findings,
  factors, learning points, actions, safety plans. Found from the table metadata, so a free-text
  column added later is erased without a change here. Rows with a version column get a new
  version, so a form opened before the disposal cannot write its text back.

What it keeps: the case rows and every coded fact on them (type, dates, area, district, age
band, sex, substances, setting, outcome, treatment and housing status, themes, factor scores,
intervention codes, action states), so trend counts and signals are unchanged (no counted
column is touched; ``dr-panel trends verify`` agrees before and after).

Concurrency and resuming: candidates are read in pages by id; each page is one transaction that
first takes the write lock (``BEGIN IMMEDIATE`` on SQLite; ``FOR UPDATE SKIP LOCKED`` on the
person rows on PostgreSQL), reads again which are still not disposed of and still due, and
disposes of those. Two runs at once dispose of each record once; a run stopped half-way has
committed whole pages and the next run carries on with what is left.
"""

from __future__ import annotations

import json
import logging
import time as time_mod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.exc import OperationalError

from dr_panel.alerts.models import DrugReport, ItemStatus
from dr_panel.audit.services import record
from dr_panel.cases.models import Case, CaseEvent, Person
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.privacy.identity import keys
from dr_panel.privacy.models import PersonToken
from dr_panel.retention.schedule import (
    FINISHED,
    CaseClock,
    Due,
    RecordKind,
    Schedule,
    person_due,
    report_contact_due,
    report_text_due,
)

log = logging.getLogger("dr_panel.retention")

ACTOR = "retention schedule"
SQLITE_LOCK_WAIT = 120.0  # seconds a run waits for another writer before giving up


@dataclass(frozen=True)
class Planned:
    """One record a run disposed of (or, dry, would): references only, never identifiers."""

    kind: RecordKind
    references: tuple[str, ...]
    due_on: date


@dataclass
class RunReport:
    dry_run: bool
    disposed: Counter[RecordKind] = field(default_factory=Counter)
    erased_rows: Counter[str] = field(default_factory=Counter)  # table -> rows with text erased
    held: int = 0  # past their date, held by open work
    taken: int = 0  # disposed of by another run meanwhile
    planned: list[Planned] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.disposed.values())

    def summary(self) -> list[str]:
        verb = "Would dispose of" if self.dry_run else "Disposed of"
        lines = [f"{verb} {self.disposed[k]}: {k.label}." for k in RecordKind]
        if self.held:
            lines.append(
                f"Held by open work (an open case or safety plan), though past their date: "
                f"{self.held} person(s)."
            )
        if self.taken:
            lines.append(f"Disposed of by another run at the same time: {self.taken}.")
        return lines


Progress = Callable[[int], None]


def run(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    schedule: Schedule | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Apply the schedule once: persons, then reporters' contacts, then reports' free text.
    Commits page by page (nothing when ``dry_run``); the caller needs no commit."""
    now = now or utcnow()
    schedule = schedule or Schedule.from_config(current_app.config)
    size = batch_size or int(current_app.config["RETENTION_BATCH_SIZE"])
    report = RunReport(dry_run=dry_run)
    tick = progress or (lambda n: None)
    _persons(report, schedule, now, size, tick)
    _report_contacts(report, schedule, now, size, tick)
    _report_texts(report, schedule, now, size, tick)
    db.session.rollback()
    if not dry_run and report.total:
        _begin_write()  # the audit chain's next number is read, then written: hold the lock
        record(
            "retention.run",
            actor_label=ACTOR,
            details={
                "disposed": {k.value: n for k, n in report.disposed.items() if n},
                "erased_rows": dict(sorted(report.erased_rows.items())),
                "held": report.held,
            },
        )
        db.session.commit()
    return report


def count_candidates(*, now: datetime | None = None, schedule: Schedule | None = None) -> int:
    """How many records the run will look at (for a progress bar): a bound, not a promise."""
    now = now or utcnow()
    schedule = schedule or Schedule.from_config(current_app.config)
    persons = db.session.scalar(
        select(func.count()).select_from(
            _person_candidates(schedule.earliest_clock(now.date())).subquery()
        )
    )
    contacts = db.session.scalar(select(func.count()).select_from(_contact_candidates().subquery()))
    texts = db.session.scalar(
        select(func.count()).select_from(_text_candidates(now, schedule).subquery())
    )
    db.session.rollback()
    return int(persons or 0) + int(contacts or 0) + int(texts or 0)


# -- transactions -------------------------------------------------------------------------------


def _begin_write() -> None:
    """Start a page's transaction holding the write lock (SQLite), so that what it reads next
    cannot change before it writes: a second run waits here, then finds the page done."""
    db.session.rollback()
    conn = db.session.connection()
    if conn.dialect.name != "sqlite":
        return
    deadline = time_mod.monotonic() + SQLITE_LOCK_WAIT
    while True:
        try:
            if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError:
            if time_mod.monotonic() > deadline:
                raise
            time_mod.sleep(0.2)


# -- persons ------------------------------------------------------------------------------------


def _person_candidates(cutoff: date) -> Any:
    """Persons not disposed of whose last event is on or before ``cutoff``: a superset of those
    due (the schedule decides in Python, with the cases' finishing dates)."""
    return (
        select(Person.id)
        .join(Case, Case.person_id == Person.id)
        .where(Person.disposed_at.is_(None))
        .group_by(Person.id)
        .having(func.max(Case.event_date) <= cutoff)
    )


def _persons(
    report: RunReport, schedule: Schedule, now: datetime, size: int, tick: Progress
) -> None:
    today = now.date()
    cutoff = schedule.earliest_clock(today)
    after = 0
    while True:
        db.session.rollback()
        ids = list(
            db.session.scalars(
                _person_candidates(cutoff).where(Person.id > after).order_by(Person.id).limit(size)
            )
        )
        if not ids:
            return
        after = ids[-1]
        if report.dry_run:
            persons = list(
                db.session.scalars(select(Person).where(Person.id.in_(ids)).order_by(Person.id))
            )
        else:
            _begin_write()
            persons = list(
                db.session.scalars(
                    select(Person)
                    .where(Person.id.in_(ids), Person.disposed_at.is_(None))
                    .order_by(Person.id)
                    .with_for_update(skip_locked=True)
                )
            )
            report.taken += len(ids) - len(persons)
        clocks = _clocks([p.id for p in persons])
        plans = _open_plan_persons([p.id for p in persons])
        for person in persons:
            due = person_due(clocks.get(person.id, []), schedule, has_open_plan=person.id in plans)
            if due is None or due.due_on > today:
                continue
            if due.held:
                report.held += 1
                continue
            _dispose_person(person, due, schedule, now, report)
        if not report.dry_run:
            db.session.commit()
        tick(len(ids))


def _clocks(person_ids: list[int]) -> dict[int, list[CaseClock]]:
    if not person_ids:
        return {}
    finished = dict(
        db.session.execute(
            select(CaseEvent.case_id, func.max(CaseEvent.occurred_at))
            .join(Case, Case.id == CaseEvent.case_id)
            .where(Case.person_id.in_(person_ids), CaseEvent.to_status.in_(list(FINISHED)))
            .group_by(CaseEvent.case_id)
        ).all()
    )
    out: dict[int, list[CaseClock]] = {}
    rows = db.session.execute(
        select(Case.id, Case.person_id, Case.case_type, Case.status, Case.event_date).where(
            Case.person_id.in_(person_ids)
        )
    )
    for case_id, person_id, case_type, status, event_date in rows:
        at = finished.get(case_id)
        finished_on = _utc_date(at) if at is not None and status in FINISHED else None
        out.setdefault(person_id, []).append(CaseClock(case_type, status, event_date, finished_on))
    return out


def _utc_date(at: datetime) -> date:
    return at.date()  # stored and read back as UTC (dbtypes.UTCDateTime)


def _open_plan_persons(person_ids: list[int]) -> set[int]:
    from dr_panel.reviews.actions import PlanStatus, SafetyPlan

    if not person_ids:
        return set()
    return set(
        db.session.scalars(
            select(SafetyPlan.person_id).where(
                SafetyPlan.person_id.in_(person_ids), SafetyPlan.status == PlanStatus.OPEN
            )
        )
    )


def _dispose_person(
    person: Person, due: Due, schedule: Schedule, now: datetime, report: RunReport
) -> None:
    cases = db.session.execute(
        select(Case.id, Case.reference).where(Case.person_id == person.id).order_by(Case.id)
    ).all()
    references = tuple(ref for _, ref in cases)
    report.planned.append(Planned(due.kind, references, due.due_on))
    report.disposed[due.kind] += 1
    if report.dry_run:
        return
    erased = _erase_free_text([cid for cid, _ in cases], person.id)
    indexes = _erase_person_indexes(person)
    for column in Person.__table__.c:
        if column.name.endswith("_enc"):
            setattr(person, column.key, "" if not column.nullable else None)
    person.disposed_at = now
    person.disposal_rule = due.kind.value
    report.erased_rows.update(erased)
    record(
        "retention.disposed",
        actor_label=ACTOR,
        object_type="persons",
        object_uuid=person.uuid,
        details={
            "kind": due.kind.value,
            "rule": schedule.rule(due.kind),
            "clock_started": due.clock_started.isoformat(),
            "due_on": due.due_on.isoformat(),
            "cases": list(references),
            "erased_rows": dict(sorted(erased.items())),
            "index_rows": indexes,
        },
    )


def _erase_person_indexes(person: Person) -> int:
    """Every blind index that finds this person: the ``bi_*`` columns on the person and their
    name and address tokens (``person_tokens``, which the identifier detector searches). One
    place, so a new index is erased here. Returns the number of token rows deleted."""
    for column in Person.__table__.c:
        if column.name.startswith("bi_"):
            setattr(person, column.key, None)
    result = db.session.execute(delete(PersonToken).where(PersonToken.person_id == person.id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _refers_to(table: Table, column: str, target: str) -> bool:
    return column in table.c and any(
        fk.column.table.name == target for fk in table.c[column].foreign_keys
    )


def free_text_tables() -> list[tuple[Table, str]]:
    """Every table with encrypted free text about a person's cases, and the column that ties a
    row to them (``person_id`` where the table has it, else ``case_id``)."""
    out = []
    for table in db.metadata.sorted_tables:
        if table.name == "persons" or not any(c.name.endswith("_enc") for c in table.c):
            continue
        if _refers_to(table, "person_id", "persons"):
            out.append((table, "person_id"))
        elif _refers_to(table, "case_id", "cases"):
            out.append((table, "case_id"))
    return out


def _erase_free_text(case_ids: list[int], person_id: int) -> Counter[str]:
    erased: Counter[str] = Counter()
    for table, key in free_text_tables():
        texts = [c for c in table.c if c.name.endswith("_enc")]
        values: dict[str, Any] = {c.name: ("" if not c.nullable else None) for c in texts}
        if "version" in table.c:
            values["version"] = table.c.version + 1
        owner = (
            table.c.person_id == person_id if key == "person_id" else table.c.case_id.in_(case_ids)
        )
        if key == "case_id" and not case_ids:
            continue
        has_text = or_(*[and_(c.is_not(None), c != "") for c in texts])
        result = db.session.execute(
            update(table).where(owner, has_text).values(values),
            execution_options={"synchronize_session": False},
        )
        if result.rowcount:  # type: ignore[attr-defined]
            erased[table.name] += int(result.rowcount)  # type: ignore[attr-defined]
    return erased


# -- drug-concern reports -----------------------------------------------------------------------


def _contact_candidates() -> Any:
    return select(DrugReport.id).where(
        DrugReport.reporter_contact_enc.is_not(None), DrugReport.contact_erased_at.is_(None)
    )


def _text_candidates(now: datetime, schedule: Schedule) -> Any:
    return select(DrugReport.id).where(
        DrugReport.text_erased_at.is_(None),
        DrugReport.status != ItemStatus.NEW,
        DrugReport.received_at <= now - timedelta(days=schedule.report_text_days),
    )


def _confirmations_sent(reports: list[DrugReport]) -> set[str]:
    keys_ = [f"drug_report:{r.uuid}" for r in reports]
    if not keys_:
        return set()
    return set(
        db.session.scalars(
            select(OutboxMessage.dedupe_key).where(
                OutboxMessage.dedupe_key.in_(keys_), OutboxMessage.sent_at.is_not(None)
            )
        )
    )


def _report_pages(candidates: Any, size: int, dry_run: bool) -> Any:
    """Pages of reports by id; when writing, each page in its own write transaction."""
    after = 0
    while True:
        db.session.rollback()
        ids = list(
            db.session.scalars(
                candidates.where(DrugReport.id > after).order_by(DrugReport.id).limit(size)
            )
        )
        if not ids:
            return
        after = ids[-1]
        if not dry_run:
            _begin_write()
        yield ids, list(
            db.session.scalars(
                select(DrugReport).where(DrugReport.id.in_(ids)).order_by(DrugReport.id)
            )
        )
        if not dry_run:
            db.session.commit()


def _claim(report_row: DrugReport, column: Any, now: datetime, values: dict[str, Any]) -> bool:
    """Write ``values`` only if ``column`` is still empty: a second run at once claims nothing."""
    result = db.session.execute(
        update(DrugReport)
        .where(DrugReport.id == report_row.id, column.is_(None))
        .values({**values, column.key: now}),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _report_contacts(
    report: RunReport, schedule: Schedule, now: datetime, size: int, tick: Progress
) -> None:
    for ids, rows in _report_pages(_contact_candidates(), size, report.dry_run):
        sent = _confirmations_sent(rows)
        for row in rows:
            confirmed = f"drug_report:{row.uuid}" in sent
            if not confirmed and report_contact_due(row.received_at, schedule) > now:
                continue
            if not report.dry_run and not _claim(
                row, DrugReport.contact_erased_at, now, {"reporter_contact_enc": None}
            ):
                report.taken += 1
                continue
            if not report.dry_run and not confirmed:
                # The confirmation never went (its relay kept refusing it): the outbox holds
                # the only other copy of the address, sealed. It goes with the address.
                db.session.execute(
                    delete(OutboxMessage).where(
                        OutboxMessage.dedupe_key == f"drug_report:{row.uuid}",
                        OutboxMessage.sent_at.is_(None),
                    )
                )
            report.disposed[RecordKind.REPORT_CONTACT] += 1
            report.planned.append(Planned(RecordKind.REPORT_CONTACT, (row.reference,), now.date()))
            if not report.dry_run:
                record(
                    "retention.report_contact_erased",
                    actor_label=ACTOR,
                    object_type="drug_reports",
                    object_uuid=row.uuid,
                    details={
                        "reference": row.reference,
                        "kind": RecordKind.REPORT_CONTACT.value,
                        "rule": schedule.rule(RecordKind.REPORT_CONTACT),
                        "because": "confirmation sent" if confirmed else "period ended",
                    },
                )
        tick(len(ids))


def _report_texts(
    report: RunReport, schedule: Schedule, now: datetime, size: int, tick: Progress
) -> None:
    from dr_panel.alerts.reports import TEXT_FIELDS

    empty = json.dumps({k: "" for k in TEXT_FIELDS})
    others = [
        c
        for c in DrugReport.__table__.c
        if c.name.endswith("_enc") and c.name not in ("content_enc", "reporter_contact_enc")
    ]
    for ids, rows in _report_pages(_text_candidates(now, schedule), size, report.dry_run):
        for row in rows:
            due_on = report_text_due(row.received_at, schedule).date()
            if not report.dry_run:
                values: dict[str, Any] = {
                    "content_enc": keys().encrypt(
                        empty, table="drug_reports", column="content", record=str(row.uuid)
                    ),
                    **{c.name: ("" if not c.nullable else None) for c in others},
                }
                if not _claim(row, DrugReport.text_erased_at, now, values):
                    report.taken += 1
                    continue
            report.disposed[RecordKind.REPORT_TEXT] += 1
            report.planned.append(Planned(RecordKind.REPORT_TEXT, (row.reference,), due_on))
            if not report.dry_run:
                record(
                    "retention.report_text_erased",
                    actor_label=ACTOR,
                    object_type="drug_reports",
                    object_uuid=row.uuid,
                    details={
                        "reference": row.reference,
                        "kind": RecordKind.REPORT_TEXT.value,
                        "rule": schedule.rule(RecordKind.REPORT_TEXT),
                        "due_on": due_on.isoformat(),
                    },
                )
        tick(len(ids))
