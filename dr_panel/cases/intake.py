"""The one intake engine. Every notification, whichever door it comes through (the page form,
the partner form, the JSON API, a CSV import), is linked to a person, numbered and written
here, and gets the same after-create effects here: the trend counts, the alert to the lead of
the person's open safety plan, the audit entry.

It works on batches. A single notification is the batch of one (``create_notification``); the
bulk import (``dr_panel.cases.bulk``) feeds it batches of thousands, so the mechanics are the
fast ones: one query on the blind indexes fetches the candidate persons of a whole batch and
only they are decrypted, and only as far as the linking rule needs; ids are given out before
writing, so persons, their tokens, cases and substance links go in with one ``executemany``
each per batch, their values already converted by the columns' own SQLAlchemy bind processors
(SQLAlchemy's per-row handling of an ``insert()`` cost more than the writes themselves).
Preparing a notification (``dr_panel.cases.prepared``: encryption, blind indexes, tokens)
needs no database, so the import runs it in worker processes. Linking: ``dr_panel.cases.linking``.
Numbering: one counter row per (area, DRD/NFO, year) (``dr_panel.counters``), locked until the
caller's transaction ends; references retired by cases that moved stay taken.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol

from flask import Flask, current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm.util import identity_key

from dr_panel import counters
from dr_panel.audit.services import record
from dr_panel.auth.models import User
from dr_panel.cases.linking import Candidate, judge, stored_candidates, verdict
from dr_panel.cases.models import Case, CaseType, MatchStatus, Person, RetiredReference
from dr_panel.cases.prepared import SEX, TREND_FIELDS, Notification, Row, Tables, prepare
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from dr_panel.reference.models import Area
from dr_panel.search import starts_with

persons_t = Person.__table__
cases_t = Case.__table__


# -- numbering ------------------------------------------------------------------------------------


def case_year(case: Case) -> int:
    """The year in a case's reference: the year it was first notified (kept from the
    reference, so correcting the notification date does not renumber it)."""
    try:
        return int(case.reference.split("-")[1])
    except (IndexError, ValueError):
        return case.notified_on.year


def reference_key(area_id: int, case_type: CaseType | str, year: int) -> tuple[str, str]:
    """The counter of one case numbering (area, DRD/NFO, year)."""
    kind = case_type.value if isinstance(case_type, CaseType) else case_type
    return "cases", f"{area_id}:{'DRD' if kind == CaseType.DEATH.value else 'NFO'}-{year}-"


def highest_reference(area_id: int, prefix: str) -> int:
    """The highest number stored under ``prefix`` in an area, retired references included:
    only seeds a counter that does not exist yet (see ``dr_panel.counters``)."""
    # The numerically largest: longer numbers first, since "NFO-2026-10000" < "NFO-2026-9999"
    # as text (numbers are zero-padded to at least four digits).
    last = 0
    for column, area_column in (
        (Case.reference, Case.area_id),
        (RetiredReference.reference, RetiredReference.area_id),
    ):
        found = db.session.scalar(
            select(column)
            .where(area_column == area_id, starts_with(column, prefix))
            .order_by(func.length(column).desc(), column.desc())
            .limit(1)
        )
        if found:
            last = max(last, int(found.rsplit("-", 1)[1]))
    return last


def lock_cases_for_numbering() -> None:
    """PostgreSQL: take the lock a case INSERT takes anyway (ROW EXCLUSIVE) before the counter
    row, so a bulk import holding the cases table and wanting the same counter cannot deadlock
    with a single notification (locks always in the order: cases table, then counter)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("LOCK TABLE cases IN ROW EXCLUSIVE MODE"))


class Numbering:
    """References for one transaction. The first use of a numbering takes its counter row
    (locked until the transaction ends, so two writers never take the same number); later
    uses count on locally, and ``save`` writes the last number used."""

    def __init__(self) -> None:
        self._next: dict[tuple[int, str, int], int] = {}
        self._prefix: dict[tuple[int, str, int], str] = {}
        self._taken: dict[tuple[int, str, int], int] = {}

    def take(self, area_id: int, kind: str, year: int) -> str:
        key = (area_id, kind, year)
        number = self._next.get(key)
        if number is None:
            if not self._next:
                lock_cases_for_numbering()
            scope, counter_key = reference_key(area_id, kind, year)
            prefix = self._prefix[key] = counter_key.split(":", 1)[1]
            number = counters.take(
                scope, counter_key, floor=lambda: highest_reference(area_id, prefix)
            )
        self._next[key] = number + 1
        self._taken[key] = self._taken.get(key, 0) + 1
        return f"{self._prefix[key]}{number:04d}"

    def save(self) -> None:
        for (area_id, kind, year), following in self._next.items():
            if self._taken[(area_id, kind, year)] > 1:  # one number: the counter has it
                counters.set_last(*reference_key(area_id, kind, year), following - 1)
        self._taken = dict.fromkeys(self._taken, 1)


def next_reference(area: Area, case_type: CaseType, year: int) -> str:
    """The next reference of a numbering (a case that moves to another area or type)."""
    return Numbering().take(area.id, case_type.value, year)


# Told of a notification repeating an earlier one, and where that is: ("row", number) in this
# intake, or ("case", reference, area id) already stored.
Duplicate = Callable[[Row, tuple[Any, ...]], None]


# -- the engine -----------------------------------------------------------------------------------


class Counts(Protocol):
    """The trend counts of the cases an intake writes (``dr_panel.trends.aggregates``)."""

    def add(self, rows: Iterable[Sequence[Any]]) -> int: ...

    def flush(self) -> None: ...


@dataclass
class Effects:
    """What other domains do when cases are created. They import ``cases``, so ``cases`` cannot
    import them: the app wires them here when it starts (``dr_panel.create_app``), and an
    intake without them refuses to run rather than skip an effect.

    ``counts``: makes the trend counts of one intake. ``on_linked_nfo``: each is given the
    overdoses of people known before (linked), once per batch: the safety-plan alert."""

    counts: Callable[[], Counts]
    on_linked_nfo: list[Callable[[Sequence[Case]], object]] = field(default_factory=list)


EFFECTS_KEY = "dr_panel.intake_effects"


def init_app(app: Flask, effects: Effects) -> None:
    app.extensions[EFFECTS_KEY] = effects


def effects() -> Effects:
    found = current_app.extensions.get(EFFECTS_KEY)
    if not isinstance(found, Effects):
        raise RuntimeError("the intake's effects are not wired: create the app with create_app")
    return found


class Intake:
    """Links, numbers and writes batches of prepared notifications on behalf of ``by``, in the
    caller's transaction, with every after-create effect: trend counts, the safety-plan
    alert, and the audit entry (``case.created`` per case; with ``audit_each=False`` the
    caller writes one entry for the whole batch instead, as the import does). ``finish``
    ends the intake (the caller commits).

    ``duplicates``: when given, a notification repeating one already held (or an earlier one
    of this intake) for the same person, type and date is handed to it and not written."""

    def __init__(
        self,
        *,
        by: User | None,
        source: str,
        duplicates: Duplicate | None = None,
        audit_each: bool = True,
        tables: Tables | None = None,
    ) -> None:
        self.by = by
        self.source = source
        self.duplicates = duplicates
        self.audit_each = audit_each
        self.ring = ident.keys()
        self.tables = tables or Tables(db.session.get_bind().dialect)
        self.numbering = Numbering()
        self._next_id: dict[str, int] = {}
        self._exclusive = False
        # The cases this intake wrote, in id order, and the row each came from.
        self._case_ids = array("q")
        self._case_rows = array("q")
        self.effects = effects()
        self._trends = self.effects.counts()

    def hold_write_lock(self) -> None:
        """For a long intake (the import): keep other writers out until it commits, so ids
        can be counted on locally. SQLite: take the database's write lock now (no other
        writer can add rows between reading the highest ids and writing after them).
        PostgreSQL: ids come from the sequences; lock the cases table against other writers,
        for the references and the duplicate checks; readers are not held up."""
        conn = db.session.connection()
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE")
        elif conn.dialect.name == "sqlite":
            if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            self._exclusive = True

    def add(self, prepared: Sequence[tuple[Any, ...]]) -> list[Row]:
        """Link, number and write one batch (in order: each notification sees the persons
        and cases of every one before it); returns the rows written, each with its case id
        and match."""
        db.session.flush()  # anything pending in the session is visible to the linking
        rows = [Row(p) for p in prepared]
        if not rows:
            return rows
        rows = self._match(rows, self._candidates(rows))
        self._write(rows)
        self._after_create(rows)
        return rows

    def finish(self) -> None:
        """The counts and counters of what was added (in the caller's transaction)."""
        self._trends.flush()
        self.numbering.save()

    # -- linking -------------------------------------------------------------------------------

    def _candidates(self, rows: list[Row]) -> dict[int, Candidate]:
        return stored_candidates(
            list({r.bi_nhs for r in rows if r.bi_nhs is not None}),
            list({r.bi_name_dob for r in rows if r.bi_name_dob is not None}),
            self.ring,
        )

    def _load_cases(self, people: dict[int, Candidate]) -> None:
        stmt = select(
            cases_t.c.id,
            cases_t.c.person_id,
            cases_t.c.case_type,
            cases_t.c.event_date,
            cases_t.c.reference,
            cases_t.c.area_id,
        ).where(cases_t.c.person_id.in_(list(people)))
        for case_id, person_id, case_type, event_date, reference, area_id in db.session.execute(
            stmt
        ):
            row = self._row_of_case(case_id)
            where = ("row", row) if row else ("case", reference, area_id)
            key = (CaseType(case_type).value, event_date.isoformat())
            people[person_id].cases.setdefault(key, where)

    def _row_of_case(self, case_id: int) -> int | None:
        i = bisect_left(self._case_ids, case_id)
        if i < len(self._case_ids) and self._case_ids[i] == case_id:
            return self._case_rows[i]
        return None

    def _match(self, rows: list[Row], stored: dict[int, Candidate]) -> list[Row]:
        """Duplicates and links, row by row in order, so each row sees the persons and cases
        of every row before it. Returns the rows to write."""
        by_nhs: dict[int, list[Candidate]] = {}
        by_name_dob: dict[int, list[Candidate]] = {}
        for p in sorted(stored.values(), key=attrgetter("order")):
            if p.bi_nhs is not None:
                by_nhs.setdefault(p.bi_nhs, []).append(p)
            if p.bi_name_dob is not None:
                by_name_dob.setdefault(p.bi_name_dob, []).append(p)
        verdicts: dict[tuple[int, int], str] = {}

        def cached(identity: ident.Identity, p: Candidate) -> str:
            key = (id(identity), id(p))
            if key not in verdicts:
                verdicts[key] = verdict(identity, p)
            return verdicts[key]

        def same_person(row: Row, p: Candidate) -> bool:
            """The person a row repeats a notification of (given the same type and date):
            linked, or, where one side has no NHS number, the same surname and date of birth.
            Re-importing a file must not double the notifications without an NHS number,
            which linking alone would only suggest."""
            v = cached(row.identity, p)
            return v == "linked" or (
                v == "suggested" and not (row.identity.nhs_number and p.identity.nhs_number)
            )

        checking = self.duplicates is not None
        if checking and stored:
            # The stored cases of the candidates that are some row's person: only they can
            # make a row a duplicate (most candidates are blind-index collisions, by design).
            same: dict[int, Candidate] = {}
            for row in rows:
                for p in (
                    *by_nhs.get(row.bi_nhs, ()),  # type: ignore[arg-type]
                    *by_name_dob.get(row.bi_name_dob, ()),  # type: ignore[arg-type]
                ):
                    if p.id not in same and same_person(row, p):
                        same[p.id] = p  # type: ignore[index]
            if same:
                self._load_cases(same)
        new_order = 1 << 62
        kept: list[Row] = []
        for row in rows:
            # Candidates in the linking order (each list is kept in that order).
            by_number = by_nhs.get(row.bi_nhs) if row.bi_nhs is not None else None
            by_name = by_name_dob.get(row.bi_name_dob) if row.bi_name_dob is not None else None
            candidates: Sequence[Candidate]
            if by_number and by_name:
                merged = {id(p): p for p in (*by_number, *by_name)}
                candidates = sorted(merged.values(), key=attrgetter("order"))
            else:
                candidates = by_number or by_name or ()
            event = (row.case_type, row.event_date)
            if checking:
                duplicate = next(
                    (p.cases[event] for p in candidates
                     if event in p.cases and same_person(row, p)),
                    None,
                )  # fmt: skip
                if duplicate is not None:
                    self.duplicates(row, duplicate)  # type: ignore[misc]
                    continue
            linked = suggested = None
            if candidates:  # most rows meet none: their identity is never built
                linked, suggested = judge(row.identity, candidates, cached)
            if linked is not None:
                row.person, row.status = linked, MatchStatus.LINKED
            else:
                new_order += 1
                row.person = Candidate(
                    new_order, row.identity, row.bi_nhs, row.bi_name_dob, values=row.person_row
                )
                for key, table in ((row.bi_nhs, by_nhs), (row.bi_name_dob, by_name_dob)):
                    if key is not None:
                        table.setdefault(key, []).append(row.person)
                if suggested is not None:
                    row.suggested, row.status = suggested, MatchStatus.SUGGESTED
            if checking:
                row.person.cases.setdefault(event, ("row", row.number))
            kept.append(row)
        return kept

    # -- writing -------------------------------------------------------------------------------

    def _take_ids(self, table: Any, count: int) -> Iterable[int]:
        """Primary keys for ``count`` new rows, given out before writing so that rows can be
        written with a plain ``executemany`` (no RETURNING) and refer to each other. SQLite:
        the caller holds the write lock (a counter taken, or ``hold_write_lock``)."""
        if db.session.get_bind().dialect.name == "postgresql":
            return db.session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": table.name, "count": count},
            ).all()
        start = self._next_id.get(table.name) if self._exclusive else None
        if start is None:
            start = (db.session.scalar(select(func.max(table.c.id))) or 0) + 1
        self._next_id[table.name] = start + count
        return range(start, start + count)

    def _write(self, rows: list[Row]) -> None:
        if not rows:
            return
        # Numbers first: taking a counter takes SQLite's write lock before any id is read.
        references = [self.numbering.take(*row.ref_key) for row in rows]
        conn = db.session.connection()
        persons, cases = self.tables.persons, self.tables.cases
        now = utcnow()
        # New persons in first-row order; a later row of the batch may link to one of them.
        new_people = list(
            {id(r.person): r.person for r in rows if r.person and r.person.id is None}.values()
        )
        sexes: dict[int, Any] = {}  # of the new persons; BulkCounts reads the others'
        if new_people:
            # A new person's tokens come with the row that creates it (its first row here).
            tokens_of: dict[int, list[tuple[str, int]]] = {}
            for r in rows:
                if r.person and r.person.id is None:
                    tokens_of.setdefault(id(r.person), r.tokens)
            stamp = persons.process("created_at", now)
            person_rows = []
            token_rows = []
            for p, pid in zip(new_people, self._take_ids(persons_t, len(new_people)), strict=True):
                token_rows += [(pid, kind, bi) for kind, bi in tokens_of.get(id(p), ())]
                p.id = pid
                assert p.values is not None
                person_rows.append((*p.values, pid, stamp))
                sexes[pid] = p.values[SEX]
                p.values = None
            conn.exec_driver_sql(persons.sql, person_rows)
            if token_rows:
                conn.exec_driver_sql(self.tables.tokens_sql, token_rows)
        stamp = cases.process("created_at", now)
        status = {m: cases.process("match_status", m) for m in MatchStatus}
        by_id = self.by.id if self.by is not None else None
        case_rows = []
        links: list[tuple[int, int]] = []
        trend_rows = []
        # The record key (disclosure control's cell key method), drawn by the column's default
        # when the row was prepared: the trend counts sum it.
        key_at = cases.prepared.index("record_key")
        for row, case_id, reference in zip(
            rows, self._take_ids(cases_t, len(rows)), references, strict=True
        ):
            row.case_id = case_id
            case_rows.append(
                (
                    *row.case_row,
                    case_id,
                    reference,
                    row.person.id,  # type: ignore[union-attr]
                    status[row.status],
                    row.suggested.id if row.suggested else None,
                    by_id,
                    stamp,
                )
            )
            links.extend((case_id, s) for s in row.substance_ids)
            self._note_case(case_id, row.number)
            person_id: int = row.person.id  # type: ignore[union-attr,assignment]
            trend_rows.append(
                (
                    person_id,
                    sexes.get(person_id),
                    *[row.case_row[i] for i in TREND_FIELDS],
                    row.substance_ids,
                    row.case_row[key_at],
                )
            )
        conn.exec_driver_sql(cases.sql, case_rows)
        if links:
            conn.exec_driver_sql(self.tables.links_sql, links)
        # The trend counts, in the same transaction (no ORM hook sees these writes).
        self._trends.add(trend_rows)

    def _note_case(self, case_id: int, row_number: int) -> None:
        if self._case_ids and case_id < self._case_ids[-1]:
            i = bisect_left(self._case_ids, case_id)  # never expected: ids only grow
            self._case_ids.insert(i, case_id)
            self._case_rows.insert(i, row_number)
            return
        self._case_ids.append(case_id)
        self._case_rows.append(row_number)

    # -- after the insert ----------------------------------------------------------------------

    def _after_create(self, rows: list[Row]) -> None:
        """The audit entries, then the effects of other domains on linked overdoses (only a
        person known before this notification can have a safety plan)."""
        nfo = CaseType.NFO.value
        linked_nfo = [
            row.case_id for row in rows
            if row.status is MatchStatus.LINKED and row.case_type == nfo
        ]
        wanted = [row.case_id for row in rows] if self.audit_each else linked_nfo
        if not wanted:
            return
        loaded = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_(wanted)))}
        if self.audit_each:
            for row in rows:
                case = loaded.get(row.case_id)  # type: ignore[arg-type]
                if case is None:
                    continue
                record(
                    "case.created",
                    actor=self.by,
                    object_type="cases",
                    object_uuid=case.uuid,
                    details={
                        "type": case.case_type.value,
                        "area": case.area.ons_code,
                        "source": self.source,
                        "match": row.status.value,
                    },
                )
        if linked_nfo:
            cases = [loaded[c] for c in linked_nfo if c in loaded]  # type: ignore[index]
            for effect in self.effects.on_linked_nfo:
                effect(cases)
        for row in rows:
            if row.status is not MatchStatus.LINKED or row.person is None:
                continue
            person = db.session.identity_map.get(identity_key(Person, row.person.id))
            if person is not None:  # its list of cases has grown
                db.session.expire(person, ["cases"])


def create_notification(n: Notification, *, by: User | None, source: str = "form") -> Case:
    """One notification through the engine (the batch of one): the case and, where needed,
    its person; linked or suggested; numbered; counted; audited; the plan's lead alerted."""
    engine = Intake(by=by, source=source)
    (row,) = engine.add([prepare(n, 1, engine.ring, engine.tables)])
    engine.finish()
    case = db.session.get(Case, row.case_id)
    assert case is not None
    return case
