"""Bulk intake: many notifications in one transaction, fast enough for a million rows.

The rules are the intake's own: every row goes through ``services.parse_notification``, links to
a person as ``services.create_notification`` does (``identity.compare``, in ``find_match``'s
order), and is numbered in its area's sequence. Only the mechanics differ, for speed: rows go in
batches; one query on the blind indexes fetches the candidate persons of a whole batch and only
they are decrypted, and only as far as the linking rule needs; ids are given out before writing,
so persons, cases and substance links go in with one ``executemany`` each per batch, their values
already converted by the columns' own SQLAlchemy bind processors (SQLAlchemy's per-row handling
of an ``insert()`` cost more than the writes themselves). On the command line, validation and
encryption run in worker processes while this process links and writes.

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
import uuid as uuid_mod
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from functools import partial
from operator import attrgetter
from types import SimpleNamespace
from typing import IO, Any

from sqlalchemy import Boolean, Date, DateTime, Enum, Time, Uuid, func, select, text

from dr_panel import counters
from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.cases import identity as ident
from dr_panel.cases.models import (
    Case,
    CaseStatus,
    CaseType,
    MatchStatus,
    Person,
    RetiredReference,
    age_band,
    case_substances,
)
from dr_panel.cases.services import (
    FIELDS,
    REQUIRED,
    Lookups,
    highest_reference,
    parse_notification,
    reference_key,
)
from dr_panel.crypto import KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.models import PersonToken
from dr_panel.privacy.tokens import person_tokens
from dr_panel.trends import aggregates as trend_counts

log = logging.getLogger("dr_panel.cases")

BATCH_ROWS = 5000
# SQLite page cache for the importing connection while an import runs (KiB; the default is 2 MB).
SQLITE_CACHE_KIB = 384 * 1024
WORKER_NICENESS = 5
CASE_TYPE_WORDS = {CaseType.DEATH: "death", CaseType.NFO: "non-fatal overdose"}

persons_t = Person.__table__
cases_t = Case.__table__
retired_t = RetiredReference.__table__


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


def seal_values(
    person_uuid: uuid_mod.UUID, identity: ident.Identity, ring: KeyRing
) -> dict[str, Any]:
    """The encrypted columns and blind indexes of a new person, exactly as ``identity.seal``
    sets them on a model, and (``tokens``) its name and address tokens as ``(kind, token)``."""
    holder = SimpleNamespace(uuid=person_uuid)
    ident.seal(holder, identity, ring, tokens=False)
    values = vars(holder)
    del values["uuid"]
    values["tokens"] = person_tokens(identity, ring)
    return values


def _quick(sqltype: Any, proc: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """A quicker function giving exactly what SQLAlchemy's bind processor gives, for the few
    types every row carries (checked against the processor here, on sample values, before
    it is used); otherwise the processor itself."""
    if proc is None:
        return None
    fast: Callable[[Any], Any] | None = None
    samples: list[Any] = []
    if isinstance(sqltype, Enum) and sqltype.enum_class is not None:
        fast, samples = attrgetter("value"), list(sqltype.enum_class)
    elif isinstance(sqltype, Uuid):
        fast, samples = attrgetter("hex"), [uuid_mod.uuid4(), uuid_mod.UUID(int=1)]
    elif isinstance(sqltype, Boolean):
        fast, samples = int, [True, False]
    elif isinstance(sqltype, Time):
        fast = partial(time.isoformat, timespec="microseconds")
        samples = [time(0, 0), time(23, 15), time(9, 5, 7, 12)]
    elif isinstance(sqltype, Date) and not isinstance(sqltype, DateTime):
        fast, samples = date.isoformat, [date(1900, 1, 1), date(2026, 3, 14), date(999, 9, 9)]
    if fast is not None and all(
        type(fast(x)) is type(proc(x)) and fast(x) == proc(x)  # noqa: E721
        for x in samples
    ):
        return fast
    return proc


class _Table:
    """A table written with the driver's ``executemany``: its statement, and each column's own
    bind processor (the one SQLAlchemy would apply), so rows are converted for the database
    in the worker that prepares them and the writer passes them straight through.

    ``prepared`` columns are filled when a row is prepared; ``later`` ones by the writer (ids,
    references, links). Any other column of the model must be nullable, have a server default,
    or have a Python default, which is applied here as SQLAlchemy would."""

    def __init__(self, table: Any, dialect: Any, prepared: list[str], later: list[str]) -> None:
        self.table = table
        known = set(prepared) | set(later)
        self.defaults = []
        for col in table.columns:
            if col.name in known:
                continue
            default = col.default
            if default is not None and (default.is_scalar or default.is_callable):
                self.defaults.append(col.name)
            elif not (col.nullable or col.server_default is not None):
                raise RuntimeError(
                    f"The bulk import does not fill {table.name}.{col.name}; add it to "
                    "dr_panel/cases/bulk.py."
                )
        self.prepared = prepared + self.defaults
        self.later = later
        self.processors = {
            col.name: col.type.dialect_impl(dialect).bind_processor(dialect)
            for col in table.columns
            if col.name in known or col.name in self.defaults
        }
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        names = self.prepared + self.later
        self.sql = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "  # noqa: S608
            f"({', '.join(quote(n) for n in names)}) VALUES ({', '.join([mark] * len(names))})"
        )  # names come from the model, never from input

        self._procs = [_quick(table.c[n].type, self.processors[n]) for n in prepared]
        self._defaults = [table.c[n].default for n in self.defaults]
        self._default_procs = [self.processors[n] for n in self.defaults]

    def process(self, name: str, value: Any) -> Any:
        proc = self.processors[name]
        return value if proc is None or value is None else proc(value)

    def row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The ``prepared`` columns' values, in order, converted for the driver (and the
        defaults of the columns this module does not know, as SQLAlchemy would apply them)."""
        out = [
            v if p is None or v is None else p(v) for p, v in zip(self._procs, values, strict=True)
        ]
        for default, proc in zip(self._defaults, self._default_procs, strict=True):
            v = default.arg(None) if default.is_callable else default.arg
            out.append(v if proc is None or v is None else proc(v))
        return tuple(out)


PERSON_PREPARED = [
    "uuid", "name_enc", "dob_enc", "nhs_number_enc", "address_enc", "postcode_enc", "sex",
    "bi_nhs", "bi_name_dob", "bi_name",
]  # fmt: skip
PERSON_LATER = ["id", "created_at"]
CASE_PREPARED = [
    "uuid", "area_id", "case_type", "status", "notifying_agency_id", "notified_on", "event_date",
    "event_time", "date_is_found", "setting", "route", "naloxone_given", "naloxone_by",
    "naloxone_doses", "nfo_outcome", "treatment_status", "recent_prison_release",
    "housing_status", "children_in_household", "previous_overdoses", "toxicology",
    "coroner_stage", "age_at_event", "age_band", "postcode_district", "version",
]  # fmt: skip
CASE_LATER = [
    "id", "reference", "person_id", "match_status", "suggested_person_id", "created_by_id",
    "created_at",
]  # fmt: skip
BI_NHS = PERSON_PREPARED.index("bi_nhs")
BI_NAME_DOB = PERSON_PREPARED.index("bi_name_dob")
SEX = PERSON_PREPARED.index("sex")
# What the trend counts need of a case row (dr_panel.trends.aggregates.apply_bulk's order).
TREND_FIELDS = [
    CASE_PREPARED.index(name)
    for name in (
        "area_id", "event_date", "case_type", "status", "age_band", "setting",
        "treatment_status", "nfo_outcome",
    )
]  # fmt: skip


@dataclass
class _Context:
    """What preparing a row needs. Plain values only (no ORM objects, no session), so worker
    processes can use it without touching the database."""

    lookups: Any
    allowed_areas: set[int]
    today: date
    ring: KeyRing
    persons: _Table
    cases: _Table
    columns: list[str] = field(default_factory=list)  # the file's header, for raw records


def _detached_lookups() -> Lookups:
    """``Lookups`` holding plain copies of the reference rows, safe to use outside the session
    (and in a forked worker, which must never use the parent's database connection)."""
    live = Lookups()
    copy = Lookups.__new__(Lookups)
    copy.areas = {k: SimpleNamespace(id=a.id, ons_code=a.ons_code) for k, a in live.areas.items()}
    copy.agencies = {k: SimpleNamespace(id=a.id, code=a.code) for k, a in live.agencies.items()}
    copy.substances = {k: SimpleNamespace(id=s.id, code=s.code) for k, s in live.substances.items()}
    return copy


def _prepare(ctx: _Context, src: SourceRow) -> tuple[Any, ...]:
    """Validate one row with the intake's parser, and encrypt its person speculatively (the
    ciphertexts are dropped if the row links to someone already known). Returns
    ``(number, problems)``, or ``(number, None, name, date of birth, NHS number, case type,
    event date, reference key, person row, case row, substance ids)`` where the rows are
    ready for the driver: plain values that pickle cheaply."""
    if src.values is None:
        return (src.number, [(None, src.problem or "This row cannot be read.")])
    n, errors = parse_notification(
        src.values, lookups=ctx.lookups, allowed_areas=ctx.allowed_areas, today=ctx.today
    )
    if n is None:
        return (src.number, [(k, errors[k]) for k in FIELDS if k in errors])
    who = n.identity
    person_uuid = uuid_mod.uuid4()
    sealed = seal_values(person_uuid, who, ctx.ring)
    person = (
        person_uuid,
        sealed["name_enc"],
        sealed["dob_enc"],
        sealed["nhs_number_enc"],
        sealed["address_enc"],
        sealed["postcode_enc"],
        n.sex,
        sealed["bi_nhs"],
        sealed["bi_name_dob"],
        sealed["bi_name"],
    )  # PERSON_PREPARED's order
    age = ident.age_on(who.dob, n.event_date)
    case = (
        uuid_mod.uuid4(),
        n.area.id,
        n.case_type,
        CaseStatus.NOTIFIED,
        n.notifying_agency.id if n.notifying_agency else None,
        n.notified_on,
        n.event_date,
        n.event_time,
        n.date_is_found,
        n.setting,
        n.route,
        n.naloxone_given,
        n.naloxone_by,
        n.naloxone_doses,
        n.nfo_outcome,
        n.treatment_status,
        n.recent_prison_release,
        n.housing_status,
        n.children_in_household,
        n.previous_overdoses,
        n.toxicology,
        n.coroner_stage,
        age,
        age_band(age),
        ident.postcode_district(who.postcode),
        1,
    )  # CASE_PREPARED's order
    return (
        src.number,
        None,
        who.full_name,
        who.dob.isoformat() if who.dob else None,
        who.nhs_number,
        n.case_type.value,
        n.event_date.isoformat(),
        (n.area.id, n.case_type.value, n.notified_on.year),
        ctx.persons.row(person),
        ctx.cases.row(case),
        tuple(s.id for s in n.substances),
        sealed["tokens"],
    )


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


# -- linking and duplicates ---------------------------------------------------------------------


class _StoredIdentity:
    """A stored person's identifiers for the linking rule, each decrypted (as
    ``identity.unseal`` does) the first time it is read. ``identity.compare`` reads the NHS
    number and the date of birth before the name, so the many candidates that are only
    blind-index collisions are ruled out without decrypting their names."""

    __slots__ = ("_ring", "_uuid", "_to_uuid", "_stored", "_plain", "_record")

    def __init__(
        self,
        ring: KeyRing,
        raw_uuid: Any,
        to_uuid: Callable[[Any], Any] | None,
        stored: dict[str, str | None],
    ) -> None:
        self._ring = ring
        self._uuid = raw_uuid
        self._to_uuid = to_uuid
        self._stored = stored
        self._plain: dict[str, Any] = {}
        self._record: str | None = None

    def __repr__(self) -> str:  # never show the values
        return "<StoredIdentity>"

    def _get(self, column: str) -> str | None:
        stored = self._stored[column]
        if not stored:
            return None
        if self._record is None:
            raw = self._uuid
            if isinstance(raw, str) and len(raw) == 32:  # SQLite keeps the hex digits
                h = raw.lower()
                self._record = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"  # str(UUID)
            else:
                self._record = str(self._to_uuid(raw) if self._to_uuid else raw)
        return self._ring.decrypt(stored, table="persons", column=column, record=self._record)

    @property
    def full_name(self) -> str:
        if "name" not in self._plain:
            self._plain["name"] = self._get("name") or ""
        return self._plain["name"]  # type: ignore[no-any-return]

    @property
    def dob(self) -> date | None:
        if "dob" not in self._plain:
            value = self._get("dob")
            self._plain["dob"] = date.fromisoformat(value) if value else None
        return self._plain["dob"]  # type: ignore[no-any-return]

    @property
    def nhs_number(self) -> str | None:
        if "nhs_number" not in self._plain:
            self._plain["nhs_number"] = self._get("nhs_number")
        return self._plain["nhs_number"]  # type: ignore[no-any-return]


class _Person:
    """A person a row may be about: one already stored, or one that an earlier row of this
    batch is creating. Holds identifiers in memory only while its batch is processed."""

    __slots__ = ("id", "identity", "cases", "order", "bi_nhs", "bi_name_dob", "values")

    def __init__(
        self,
        order: int,
        identity: ident.Identity | _StoredIdentity,
        bi_nhs: int | None,
        bi_name_dob: int | None,
        id_: int | None = None,
        values: tuple[Any, ...] | None = None,
    ) -> None:
        self.id = id_
        self.order = order  # find_match's order: by id; new persons after every stored one
        self.identity = identity
        self.bi_nhs = bi_nhs
        self.bi_name_dob = bi_name_dob
        self.values = values  # the prepared row of a person still to be written
        # (case type, ISO event date) -> where it is: ("row", n) or ("case", reference, area id)
        self.cases: dict[tuple[str, str], tuple[Any, ...]] = {}


class _Row:
    __slots__ = (
        "number", "_who", "_identity", "case_type", "event_date", "ref_key", "person_row",
        "case_row", "substance_ids", "person", "suggested", "status", "bi_nhs", "bi_name_dob",
        "tokens",
    )  # fmt: skip

    def __init__(self, prepared: tuple[Any, ...]) -> None:
        self.number = prepared[0]
        self._who = prepared[2:5]  # name, ISO date of birth, NHS number
        (
            self.case_type,
            self.event_date,  # ISO text, as the duplicate keys hold it
            self.ref_key,
            self.person_row,
            self.case_row,
            self.substance_ids,
            self.tokens,  # the person's name and address tokens, if the row creates them
        ) = prepared[5:]
        self._identity: ident.Identity | None = None
        self.bi_nhs: int | None = self.person_row[BI_NHS]
        self.bi_name_dob: int | None = self.person_row[BI_NAME_DOB]
        self.person: _Person | None = None
        self.suggested: _Person | None = None
        self.status = MatchStatus.NONE

    @property
    def identity(self) -> ident.Identity:
        """Built when first needed: most rows meet no candidate."""
        if self._identity is None:
            name, dob, nhs = self._who
            self._identity = ident.Identity(
                full_name=name, dob=date.fromisoformat(dob) if dob else None, nhs_number=nhs
            )
        return self._identity


# -- the importer -------------------------------------------------------------------------------


class Importer:
    """Imports rows on behalf of a coordinator, in one transaction.

    ``run`` leaves in the session either every imported row and a ``cases.imported`` audit
    entry, or (when nothing is saved) only the audit entry of the refused attempt; the caller
    commits either way. With ``workers`` > 0 (the command line, on a system that can fork),
    validation and encryption run in that many worker processes while this one links and
    writes; the result is the same row for row."""

    def __init__(
        self,
        *,
        by: Any,
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
        self.ring = ident.keys()
        dialect = db.session.get_bind().dialect
        self.context = _Context(
            lookups=_detached_lookups(),
            allowed_areas=set(by.area_ids),
            today=today or utcnow().date(),
            ring=self.ring,
            persons=_Table(persons_t, dialect, PERSON_PREPARED, PERSON_LATER),
            cases=_Table(cases_t, dialect, CASE_PREPARED, CASE_LATER),
        )
        self.result = ImportResult(mode=self.mode)
        self._next_number: dict[tuple[int, str, int], int] = {}
        self._next_id: dict[str, int] = {}
        self._cache_size: int | None = None
        self._uuid_result = persons_t.c.uuid.type.dialect_impl(dialect).result_processor(
            dialect, None
        )
        self._links_sql = _Table(case_substances, dialect, ["case_id", "substance_id"], []).sql
        self._tokens_sql = _Table(
            PersonToken.__table__, dialect, ["person_id", "kind", "bi"], []
        ).sql
        # The cases this import wrote, in id order, and the row each came from.
        self._case_ids = array("q")
        self._case_rows = array("q")
        self._trends = trend_counts.BulkCounts()

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
            self._trends.flush()
            self._save_counters()
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
            db.session.rollback()
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
        rows = []
        for item in prepared:
            self.result.rows += 1
            if item[1] is not None:
                self._reject(item[0], item[1])
            else:
                rows.append(_Row(item))
        if rows:
            rows = self._match(rows, self._candidates(rows))
            self._write(rows)

    def _candidates(self, rows: list[_Row]) -> dict[int, _Person]:
        """Every stored person sharing a blind index with a row of the batch, to be decrypted
        as far as the linking rule needs (never their address or postcode)."""
        nhs = list({r.bi_nhs for r in rows if r.bi_nhs is not None})
        name_dob = list({r.bi_name_dob for r in rows if r.bi_name_dob is not None})
        if not nhs and not name_dob:
            return {}
        conn = db.session.connection()
        sql = self._candidate_sql(conn.dialect, len(nhs), len(name_dob))
        ring, to_uuid = self.ring, self._uuid_result
        people: dict[int, _Person] = {}
        found = conn.exec_driver_sql(sql, tuple(nhs + name_dob)).fetchall()
        for pid, puuid, name_enc, dob_enc, nhs_enc, bi_nhs, bi_name_dob in found:
            who = _StoredIdentity(
                ring, puuid, to_uuid, {"name": name_enc, "dob": dob_enc, "nhs_number": nhs_enc}
            )
            people[pid] = _Person(pid, who, bi_nhs, bi_name_dob, id_=pid)
        return people

    @staticmethod
    def _candidate_sql(dialect: Any, n_nhs: int, n_name_dob: int) -> str:
        """One statement, two indexed IN lists (SQLite and PostgreSQL both use each index).
        Written out rather than compiled: SQLAlchemy renders thousands of expanding
        parameters slower than the query runs. Only names from the model, and placeholders."""
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        cols = ", ".join(
            quote(c)
            for c in (
                "id",
                "uuid",
                "name_enc",
                "dob_enc",
                "nhs_number_enc",
                "bi_nhs",
                "bi_name_dob",
            )
        )
        where = []
        if n_nhs:
            where.append(f"{quote('bi_nhs')} IN ({', '.join([mark] * n_nhs)})")
        if n_name_dob:
            where.append(f"{quote('bi_name_dob')} IN ({', '.join([mark] * n_name_dob)})")
        table = dialect.identifier_preparer.format_table(persons_t)
        return f"SELECT {cols} FROM {table} WHERE {' OR '.join(where)}"  # noqa: S608

    def _load_cases(self, people: dict[int, _Person]) -> None:
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

    def _match(self, rows: list[_Row], stored: dict[int, _Person]) -> list[_Row]:
        """Duplicates and links, row by row in file order, so each row sees the persons and
        cases of every row before it. Returns the rows to write."""
        by_nhs: dict[int, list[_Person]] = {}
        by_name_dob: dict[int, list[_Person]] = {}
        for p in sorted(stored.values(), key=lambda p: p.order):
            if p.bi_nhs is not None:
                by_nhs.setdefault(p.bi_nhs, []).append(p)
            if p.bi_name_dob is not None:
                by_name_dob.setdefault(p.bi_name_dob, []).append(p)
        # The stored cases of the candidates that are some row's person: only they can make
        # a row a duplicate (most candidates are blind-index collisions, by design).
        verdicts: dict[tuple[int, int], str] = {}

        def verdict(row: _Row, p: _Person) -> str:
            key = (id(row), id(p))
            if key not in verdicts:
                verdicts[key] = ident.compare(row.identity, p.identity)  # type: ignore[arg-type]
            return verdicts[key]

        def same_person(row: _Row, p: _Person) -> bool:
            """The person a row repeats a notification of (given the same type and date):
            linked, or, where one side has no NHS number, the same surname and date of birth.
            Re-importing a file must not double the notifications without an NHS number,
            which linking alone would only suggest."""
            v = verdict(row, p)
            return v == "linked" or (
                v == "suggested" and not (row.identity.nhs_number and p.identity.nhs_number)
            )

        same: dict[int, _Person] = {}
        if stored:
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
        kept: list[_Row] = []
        for row in rows:
            # Candidates in find_match's order (each list is kept in that order).
            by_number = by_nhs.get(row.bi_nhs) if row.bi_nhs is not None else None  # type: ignore[arg-type]
            by_name = by_name_dob.get(row.bi_name_dob) if row.bi_name_dob is not None else None  # type: ignore[arg-type]
            candidates: Sequence[_Person]
            if by_number and by_name:
                merged = {id(p): p for p in (*by_number, *by_name)}
                candidates = sorted(merged.values(), key=lambda p: p.order)
            else:
                candidates = by_number or by_name or ()
            event = (row.case_type, row.event_date)
            duplicate = next(
                (p.cases[event] for p in candidates if event in p.cases and same_person(row, p)),
                None,
            )
            if duplicate is not None:
                self.result.duplicates += 1
                self._reject(row.number, [(None, self._duplicate_message(row, duplicate))])
                continue
            linked = suggested = None
            for p in candidates:  # services.find_match's rule and order
                v = verdict(row, p)
                if v == "linked":
                    linked = p
                    break
                if v == "suggested" and suggested is None:
                    suggested = p
            if linked is not None:
                row.person, row.status = linked, MatchStatus.LINKED
                self.result.linked += 1
            else:
                new_order += 1
                row.person = _Person(
                    new_order,
                    row.identity,
                    row.bi_nhs,
                    row.bi_name_dob,
                    values=row.person_row,
                )
                for key, table in ((row.bi_nhs, by_nhs), (row.bi_name_dob, by_name_dob)):
                    if key is not None:
                        table.setdefault(key, []).append(row.person)
                if suggested is not None:
                    row.suggested, row.status = suggested, MatchStatus.SUGGESTED
                    self.result.suggested += 1
            row.person.cases.setdefault(event, ("row", row.number))
            kept.append(row)
        return kept

    def _duplicate_message(self, row: _Row, where: tuple[Any, ...]) -> str:
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

    # -- writing -------------------------------------------------------------------------------

    def _hold_write_lock(self) -> None:
        """Keep other writers out until the import commits. SQLite: take the database's write
        lock now, so that no other writer can add rows between reading the highest ids and
        references and writing after them, and give this connection a page cache big enough
        for the indexes every row touches. PostgreSQL: ids come from the sequences; lock the
        cases table against other writers, for the references."""
        conn = db.session.connection()
        if conn.dialect.name == "postgresql":
            # As on SQLite: no other writer adds cases (and so takes a reference this import
            # is about to use) until the import commits; readers are not held up.
            conn.exec_driver_sql("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE")
            return
        if conn.dialect.name != "sqlite":
            return
        if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        self._cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")

    def _restore_connection(self) -> None:
        if self._cache_size is not None:
            db.session.connection().exec_driver_sql(f"PRAGMA cache_size = {int(self._cache_size)}")
            self._cache_size = None

    def _take_ids(self, table: Any, count: int) -> Iterable[int]:
        """Primary keys for ``count`` new rows, given out before writing so that rows can be
        written with a plain ``executemany`` (no RETURNING) and refer to each other."""
        if db.session.get_bind().dialect.name == "postgresql":
            return db.session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": table.name, "count": count},
            ).all()
        start = self._next_id.get(table.name)
        if start is None:
            start = (db.session.scalar(select(func.max(table.c.id))) or 0) + 1
        self._next_id[table.name] = start + count
        return range(start, start + count)

    def _reference(self, key: tuple[int, str, int]) -> str:
        """Numbers from the same counter as a single notification: the first use of a
        numbering takes the counter row (locked until the import commits), later rows count on
        locally, and ``_save_counters`` writes the last number used before the commit."""
        area_id, case_type, year = key
        scope, counter_key = reference_key(area_id, case_type, year)
        prefix = counter_key.split(":", 1)[1]
        number = self._next_number.get(key)
        if number is None:
            number = counters.take(scope, counter_key,
                                   floor=lambda: highest_reference(area_id, prefix))
        self._next_number[key] = number + 1
        return f"{prefix}{number:04d}"

    def _save_counters(self) -> None:
        for (area_id, case_type, year), following in self._next_number.items():
            counters.set_last(*reference_key(area_id, case_type, year), following - 1)

    def _write(self, rows: list[_Row]) -> None:
        if not rows:
            return
        conn = db.session.connection()
        persons, cases = self.context.persons, self.context.cases
        now = utcnow()
        # New persons in first-row order; a later row of the batch may link to one of them.
        new_people = list(
            {id(r.person): r.person for r in rows if r.person and r.person.id is None}.values()
        )
        sexes: dict[int, Any] = {}  # of the new persons; apply_bulk reads the others'
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
                conn.exec_driver_sql(self._tokens_sql, token_rows)
        stamp = cases.process("created_at", now)
        status = {m: cases.process("match_status", m) for m in MatchStatus}
        by_id = getattr(self.by, "id", None)
        case_rows = []
        links = []
        trend_rows = []
        # The record key (disclosure control's cell key method), drawn by the column's default
        # when the row was prepared: the trend counts sum it.
        key_at = cases.prepared.index("record_key")
        for row, case_id in zip(rows, self._take_ids(cases_t, len(rows)), strict=True):
            case_rows.append(
                (
                    *row.case_row,
                    case_id,
                    self._reference(row.ref_key),
                    row.person.id,  # type: ignore[union-attr]
                    status[row.status],
                    row.suggested.id if row.suggested else None,
                    by_id,
                    stamp,
                )
            )
            links.extend((case_id, s) for s in row.substance_ids)
            self._note_case(case_id, row.number)
            pid = row.person.id  # type: ignore[union-attr]
            trend_rows.append(
                (
                    pid,
                    sexes.get(pid),
                    *[row.case_row[i] for i in TREND_FIELDS],
                    row.substance_ids,
                    row.case_row[key_at],
                )
            )
        conn.exec_driver_sql(cases.sql, case_rows)
        if links:
            conn.exec_driver_sql(self._links_sql, links)
        # The trend counts, in the same transaction (no ORM hook sees these writes).
        self._trends.add(trend_rows)
        self.result.imported += len(rows)

    def _note_case(self, case_id: int, row_number: int) -> None:
        if self._case_ids and case_id < self._case_ids[-1]:
            i = bisect_left(self._case_ids, case_id)  # never expected: ids only grow
            self._case_ids.insert(i, case_id)
            self._case_rows.insert(i, row_number)
            return
        self._case_ids.append(case_id)
        self._case_rows.append(row_number)


def import_csv(
    binary: IO[bytes],
    *,
    by: Any,
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
