"""Bulk intake from CSV: many notifications in one transaction, fast enough for a million rows.

Every row goes through ``services.parse_notification`` and then through the one intake engine
(``dr_panel.cases.intake``), in batches: the same linking, numbering, trend counts and
safety-plan alerts as a single notification. What is the import's own: reading the file, the
duplicate rule (a row repeating a notification already held, or an earlier row, is rejected),
the report, and one ``cases.imported`` audit entry standing for its cases. On the command line,
validation and encryption run in worker processes while this process links and writes.

A file is one transaction: all its rows or none (``all-or-nothing``), or all its good rows
(``valid-rows``), never part of a file.

Reports name a row (numbered as a spreadsheet shows it: the header is row 1), a column and what to
fix; never a value from an identifier column.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import IO, Any, cast

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.auth.models import User
from dr_panel.cases.intake import Intake
from dr_panel.cases.models import CaseType, MatchStatus, Substance
from dr_panel.cases.prepared import (
    PERSON_PREPARED as PERSON_PREPARED,  # the columns the engine writes, for the leak gate's test
)
from dr_panel.cases.prepared import Row, Tables, prepare
from dr_panel.cases.prepared import seal_values as seal_values  # the same, for that test
from dr_panel.cases.services import FIELDS, REQUIRED, Lookups, parse_notification
from dr_panel.crypto import KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency, Area

log = logging.getLogger("dr_panel.cases")

BATCH_ROWS = 5000
# SQLite page cache for the importing connection while an import runs (KiB; the default is 2 MB).
SQLITE_CACHE_KIB = 384 * 1024
WORKER_NICENESS = 5
CASE_TYPE_WORDS = {CaseType.DEATH: "death", CaseType.NFO: "non-fatal overdose"}


class Mode(enum.StrEnum):
    ALL_OR_NOTHING = "all-or-nothing"
    VALID_ROWS = "valid-rows"

    @property
    def label(self) -> str:
        return {
            Mode.ALL_OR_NOTHING: "All or nothing: import no row unless every row is good",
            Mode.VALID_ROWS: "Valid rows: import the good rows, report the others",
        }[self]


class FileRefused(ValueError):
    """The file as a whole cannot be imported. The message says why and how to fix it, and
    never quotes a cell of a data row."""


@dataclass(frozen=True)
class Problem:
    row: int
    column: str | None  # None: the whole row (its shape, or a duplicate)
    message: str


@dataclass
class ImportResult:
    mode: Mode
    rows: int = 0  # data rows read (blank rows are skipped and not counted)
    imported: int = 0
    rejected: int = 0  # rows
    duplicates: int = 0  # rows rejected as duplicates (also counted in rejected)
    linked: int = 0  # imported cases linked to a person already known (or an earlier row)
    suggested: int = 0  # imported cases with a possible match for the coordinator to decide
    saved: bool = False
    problems: list[Problem] = field(default_factory=list)

    def audit_details(self, source: str) -> dict[str, Any]:
        """Counts only: no identifier, no file name."""
        return {
            "source": source,
            "mode": self.mode.value,
            "rows": self.rows,
            "imported": self.imported,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "linked": self.linked,
            "suggested": self.suggested,
        }


# -- reading a CSV file ------------------------------------------------------------------------


@dataclass
class SourceRow:
    """One row of the file. Holds identifiers: never log it."""

    number: int  # as a spreadsheet numbers it: the header is row 1
    values: dict[str, str] | None
    problem: str | None = None

    def __repr__(self) -> str:  # never show the values
        return f"<SourceRow {self.number}>"


class CsvRows:
    """The data rows of a CSV file whose header has been checked (in the constructor, so a bad
    header refuses the file before anything is read or written)."""

    def __init__(self, binary: IO[bytes]) -> None:
        self._text: io.TextIOWrapper | None = io.TextIOWrapper(
            binary, encoding="utf-8-sig", newline=""
        )
        self._reader = csv.reader(self._text)
        self.number = 1
        try:
            header = self._next()
            while header is not None and not any(c.strip() for c in header):
                self.number += 1  # blank lines before the header
                header = self._next()
            if header is None:
                raise FileRefused("The file is empty: it needs a header row and at least one row.")
            self.columns = check_header(header)
        except FileRefused:
            self.close()
            raise

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise FileRefused(
                "The file is not UTF-8 text. In Excel, save it as 'CSV UTF-8 (Comma delimited)' "
                "and try again."
            ) from None
        except csv.Error:
            raise FileRefused(
                f"Row {self.number} cannot be read as CSV (an unclosed quote, or a cell longer "
                "than 131,072 characters). Check that row and try again."
            ) from None

    def close(self) -> None:
        """Let go of the caller's file without closing it (the caller opened it)."""
        if self._text is not None:
            self._text.detach()
            self._text = None

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """The rows as read, with their numbers: for worker processes, which make them into
        ``SourceRow``s with ``source_row``."""
        while True:
            self.number += 1
            cells = self._next()
            if cells is None:
                return
            yield self.number, cells

    def __iter__(self) -> Iterator[SourceRow]:
        for number, cells in self.records():
            row = source_row(number, cells, self.columns)
            if row is not None:
                yield row


def source_row(number: int, cells: list[str], columns: list[str]) -> SourceRow | None:
    """A row of values by column name; None for a blank row (a spreadsheet shows it, so it
    keeps its number); a problem when the row does not have the header's number of values."""
    if not "".join(cells).strip():
        return None
    width = len(columns)
    if len(cells) < width or (len(cells) > width and "".join(cells[width:]).strip()):
        return SourceRow(
            number,
            None,
            f"This row has {len(cells)} values but the header has {width} columns. "
            "A value containing a comma or a line break must be in double quotes.",
        )
    return SourceRow(number, dict(zip(columns, cells, strict=False)))


def check_header(cells: list[str]) -> list[str]:
    names = [c.strip().lower() for c in cells]
    while names and not names[-1]:
        names.pop()  # spreadsheets add empty columns at the end
    known = set(FIELDS)
    if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
        raise FileRefused(
            "The columns are separated by semicolons or tabs. Save the file as comma-separated "
            "CSV (in Excel: 'CSV UTF-8 (Comma delimited)')."
        )
    if not known.intersection(names):
        # Probably a data row: say so without quoting it.
        raise FileRefused(
            "The first row is not the header: the file must start with a row of column names, "
            "as in the template (case_type, area, ...)."
        )
    problems = []
    unnamed = [str(i + 1) for i, n in enumerate(names) if not n]
    if unnamed:
        problems.append(f"Column {', '.join(unnamed)} of the header has no name.")
    unknown = [n[:40] for n in names if n and n not in known]
    if unknown:
        problems.append(
            f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            "Use the column names of the template."
        )
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        problems.append(
            f"Column{'s' if len(repeated) > 1 else ''} named twice: {', '.join(repeated)}."
        )
    missing = [f for f in FIELDS if f in REQUIRED and f not in names]
    if missing:
        problems.append(
            f"Missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}."
        )
    if problems:
        raise FileRefused(" ".join(problems))
    return names


# -- preparing a row: validation and encryption, no database ------------------------------------


@dataclass
class _Context:
    """What preparing a row needs. Plain values only (no ORM objects, no session), so worker
    processes can use it without touching the database."""

    lookups: Any
    allowed_areas: set[int]
    today: date
    ring: KeyRing
    tables: Tables
    columns: list[str] = field(default_factory=list)  # the file's header, for raw records


def _detached_lookups() -> Lookups:
    """``Lookups`` holding plain copies of the reference rows, safe to use outside the session
    (and in a forked worker, which must never use the parent's database connection)."""
    live = Lookups()
    copy = Lookups.__new__(Lookups)
    # Stand-ins with the attributes the parser and ``prepared.prepare`` read (ids and codes).
    copy.areas = {
        k: cast(Area, SimpleNamespace(id=a.id, ons_code=a.ons_code)) for k, a in live.areas.items()
    }
    copy.agencies = {
        k: cast(Agency, SimpleNamespace(id=a.id, code=a.code)) for k, a in live.agencies.items()
    }
    copy.substances = {
        k: cast(Substance, SimpleNamespace(id=s.id, code=s.code))
        for k, s in live.substances.items()
    }
    return copy


def _prepare(ctx: _Context, src: SourceRow) -> tuple[Any, ...]:
    """Validate one row with the intake's parser and prepare it for the engine
    (``prepared.prepare``). Returns ``(number, problems)`` for a bad row."""
    if src.values is None:
        return (src.number, [(None, src.problem or "This row cannot be read.")])
    n, errors = parse_notification(
        src.values, lookups=ctx.lookups, allowed_areas=ctx.allowed_areas, today=ctx.today
    )
    if n is None:
        return (src.number, [(k, errors[k]) for k in FIELDS if k in errors])
    return prepare(n, src.number, ctx.ring, ctx.tables)


# Set in the parent just before forking workers, which inherit it (never pickled or sent).
_WORKER_CONTEXT: _Context | None = None


def _prepare_all(ctx: _Context, batch: list[Any]) -> list[tuple[Any, ...]]:
    """Prepare a batch of ``SourceRow``s, or of raw ``(number, cells)`` records."""
    out = []
    for item in batch:
        if isinstance(item, SourceRow):
            out.append(_prepare(ctx, item))
        elif (src := source_row(item[0], item[1], ctx.columns)) is not None:
            out.append(_prepare(ctx, src))
    return out


def _worker_start() -> None:
    # The writing process is the one every row waits for: let it have the CPU first.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


def _prepare_batch(batch: list[Any]) -> list[tuple[Any, ...]]:
    assert _WORKER_CONTEXT is not None
    return _prepare_all(_WORKER_CONTEXT, batch)


# -- the importer -------------------------------------------------------------------------------


class Importer:
    """Imports rows on behalf of a coordinator, in one transaction, through the intake engine.

    ``run`` leaves in the session either every imported row and a ``cases.imported`` audit
    entry, or (when nothing is saved) only the audit entry of the refused attempt; the caller
    commits either way. With ``workers`` > 0 (the command line, on a system that can fork),
    validation and encryption run in that many worker processes while this one links and
    writes; the result is the same row for row."""

    def __init__(
        self,
        *,
        by: User,
        mode: Mode = Mode.ALL_OR_NOTHING,
        source: str = "cli",
        batch_rows: int = BATCH_ROWS,
        workers: int = 0,
        today: date | None = None,
    ) -> None:
        self.by = by
        self.mode = Mode(mode)
        self.source = source
        self.batch_rows = batch_rows
        self.workers = workers if "fork" in multiprocessing.get_all_start_methods() else 0
        # One audit entry for the whole file (below), not one per case.
        self.engine = Intake(by=by, source=source, duplicates=self._duplicate, audit_each=False)
        self.context = _Context(
            lookups=_detached_lookups(),
            allowed_areas=set(by.area_ids),
            today=today or utcnow().date(),
            ring=self.engine.ring,
            tables=self.engine.tables,
        )
        self.result = ImportResult(mode=self.mode)
        self._cache_size: int | None = None

    # -- the whole file ------------------------------------------------------------------------

    def run(
        self, rows: CsvRows | Iterable[SourceRow], progress: Callable[[int], None] | None = None
    ) -> ImportResult:
        result = self.result
        try:
            for prepared in self._prepared(rows):
                self._batch(prepared)
                if progress:
                    progress(len(prepared))
            self.engine.finish()
            self._restore_connection()
        except BaseException:
            db.session.rollback()
            with contextlib.suppress(Exception):  # never hide the error that got us here
                self._restore_connection()
            raise
        result.problems.sort(key=lambda p: p.row)  # stable: a row's columns keep their order
        if result.rows == 0:
            db.session.rollback()
            raise FileRefused("The file has a header but no rows to import.")
        result.saved = result.imported > 0 and not (
            self.mode is Mode.ALL_OR_NOTHING and result.rejected
        )
        if not result.saved:
            db.session.rollback()  # the cases, and their alerts and counts with them
            result.imported = result.linked = result.suggested = 0
        record(
            "cases.imported",
            outcome=Outcome.SUCCESS if result.saved else Outcome.FAILURE,
            actor=self.by,
            details=result.audit_details(self.source),
        )
        log.info(
            "import by %s: %s rows, %s imported, %s rejected (%s)",
            getattr(self.by, "uuid", None),
            result.rows,
            result.imported,
            result.rejected,
            self.mode.value,
        )
        return result

    def _batches(self, rows: CsvRows | Iterable[SourceRow]) -> Iterator[list[Any]]:
        items: Iterable[Any] = rows
        if isinstance(rows, CsvRows):
            # Raw records: the workers (or _prepare_all) make them into rows.
            self.context.columns = rows.columns
            items = rows.records()
        batch: list[Any] = []
        for row in items:
            batch.append(row)
            if len(batch) >= self.batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch

    def _prepared(self, rows: CsvRows | Iterable[SourceRow]) -> Iterator[list[tuple[Any, ...]]]:
        """Prepared batches in file order: here, or in worker processes a few batches ahead."""
        batches = self._batches(rows)
        first = next(batches, None)
        if first is None:
            return
        if not self.workers or len(first) < self.batch_rows:
            self._hold_write_lock()
            yield _prepare_all(self.context, first)
            for batch in batches:
                yield _prepare_all(self.context, batch)
            return
        global _WORKER_CONTEXT
        _WORKER_CONTEXT = self.context
        try:
            pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=_worker_start)
        finally:
            _WORKER_CONTEXT = None
        with pool:
            self._hold_write_lock()  # after forking: workers never share the connection
            pending = deque([pool.apply_async(_prepare_batch, (first,))])
            for batch in batches:
                pending.append(pool.apply_async(_prepare_batch, (batch,)))
                if len(pending) > 2 * self.workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()

    def _reject(self, number: int, problems: list[tuple[str | None, str]]) -> None:
        self.result.rejected += 1
        self.result.problems.extend(Problem(number, col, msg) for col, msg in problems)

    # -- one batch -----------------------------------------------------------------------------

    def _batch(self, prepared: list[tuple[Any, ...]]) -> None:
        good = []
        for item in prepared:
            self.result.rows += 1
            if item[1] is not None:
                self._reject(item[0], item[1])
            else:
                good.append(item)
        if good:
            written = self.engine.add(good)
            self.result.imported += len(written)
            for row in written:
                if row.status is MatchStatus.LINKED:
                    self.result.linked += 1
                elif row.status is MatchStatus.SUGGESTED:
                    self.result.suggested += 1

    def _duplicate(self, row: Row, where: tuple[Any, ...]) -> None:
        """The engine found that a row repeats a notification already held or an earlier
        row: the import's rule is to reject it, saying where the first one is."""
        self.result.duplicates += 1
        self._reject(row.number, [(None, self._duplicate_message(row, where))])

    def _duplicate_message(self, row: Row, where: tuple[Any, ...]) -> str:
        what = f"{CASE_TYPE_WORDS[CaseType(row.case_type)]} on {row.event_date}"
        if where[0] == "row":
            return (
                f"Duplicate of row {where[1]} of this file: the same person's {what}. "
                "Remove one of the two rows."
            )
        _, reference, area_id = where
        if area_id in self.context.allowed_areas:
            return (
                f"Duplicate: this person's {what} is already case {reference}. Remove the row, "
                "or update that case instead."
            )
        return (
            f"Duplicate: this person's {what} is already notified in an area you do not work "
            "in. Remove the row, and ask that area's coordinator if it needs changing."
        )

    def _hold_write_lock(self) -> None:
        """Keep other writers out until the import commits (``Intake.hold_write_lock``); on
        SQLite also give this connection a page cache big enough for the indexes every row
        touches."""
        self.engine.hold_write_lock()
        conn = db.session.connection()
        if conn.dialect.name == "sqlite":
            self._cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")

    def _restore_connection(self) -> None:
        if self._cache_size is not None:
            db.session.connection().exec_driver_sql(f"PRAGMA cache_size = {int(self._cache_size)}")
            self._cache_size = None


def import_csv(
    binary: IO[bytes],
    *,
    by: User,
    mode: Mode = Mode.ALL_OR_NOTHING,
    source: str = "cli",
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Check the header (``FileRefused`` when it is wrong), then import every row."""
    rows = CsvRows(binary)
    try:
        return Importer(by=by, mode=mode, source=source, workers=workers).run(rows, progress)
    finally:
        rows.close()
