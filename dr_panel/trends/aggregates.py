"""Keeps ``trend_counts`` and ``daily_counts`` (``dr_panel.trends.models``) equal to a fresh count
of the cases, in the same transaction as every change to the cases, so trends never rescan the
case tables and are never stale.

How:

- **ORM changes** (intake by form, API or import page row by row, edits, workflow moves into or
  out of ``duplicate``, a person's sex, re-linking a case to another person, deletion): a
  ``before_flush`` hook on every session finds the cases the flush touches (new cases; changed
  cases whose counted fields changed; deleted cases; every case of a person whose sex changed)
  and reads their *old* facts from the database, which still holds the state of the previous
  flush, i.e. exactly what the counts reflect. An ``after_flush`` hook reads the *new* facts of
  the same cases (the flush has written them) and applies the difference of the two
  contributions as upserts (``INSERT ... ON CONFLICT ... DO UPDATE SET n = n + excluded.n``, the
  same on SQLite and PostgreSQL), deleting rows that reach 0. Reading both sides from the
  database, not from attribute history, makes every path (relationship or foreign-key column,
  collection edits, cascades) count the same way.
- **The bulk importer** (``dr_panel.cases.bulk``) writes with the driver's ``executemany``, which
  no ORM hook sees: it adds each batch to a ``BulkCounts``, which counts the cases column-wise
  with numpy (``Tally``; case by case in Python cost about as much as the rest of the import)
  and upserts every 100,000 cases and once more before the import returns, in its transaction
  (upserting per batch of 5,000 cost a quarter of the import: consecutive batches touch mostly
  the same rows). ``apply_bulk`` does the same for one list of rows. ``rebuild`` counts the
  same way.
- **Anything else** (raw SQL on ``cases``, ``persons`` or ``case_substances``): nothing in the
  code does this; if something must, run ``rebuild`` (``dr-panel trends rebuild``) in the same
  transaction.

What a case contributes (``contribution``): nothing if its status is ``duplicate`` (a merged
duplicate is the same event as the case kept). Otherwise, keyed by area, month of the event and
case type: one row with no dimension (the plain count), one row per value of each dimension,
and one row per pair of values of each unordered pair of dimensions (``dim_a < dim_b``). The
substance dimensions are multi-valued: a case mentioning two substances counts under each (so
counts by substance sum to more than the number of cases), groups are deduplicated, and a case
with no substance counts as "none". In ``daily_counts`` a case counts once under "*" and once
under each distinct substance group it mentions.

Every ``trend_counts`` row also sums the record keys (``Case.record_key``) of the cases it
counts (``key_sum``): a sum over rows is then the key sum of exactly the cases summed, whichever
rows were summed, which is what makes disclosure control consistent
(``dr_panel.privacy.disclosure``). The cube's counts and key sums travel as two ``Rows`` with the
same keys (``cube``, ``key_sums``); ``daily_counts`` (for coordinators' spike detection) has none.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from itertools import combinations
from typing import Any

import numpy as np
from flask import Flask
from sqlalchemy import Date, Enum, String, bindparam, event, func, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm import attributes as orm_attributes

from dr_panel.cases.models import Case, CaseStatus, Person, Substance, case_substances
from dr_panel.extensions import db
from dr_panel.trends.models import (
    ALL_SUBSTANCES,
    DIMENSIONS,
    NO_SUBSTANCE,
    NOT_APPLICABLE,
    UNKNOWN,
    DailyCount,
    TrendCount,
)

log = logging.getLogger("dr_panel.trends")

# Dimensions in the order a case's values are held, alphabetical so that every pair (i < j)
# is stored with dim_a < dim_b as the table requires.
ORDER = tuple(sorted(DIMENSIONS))
PAIRS = tuple(combinations(range(len(ORDER)), 2))
SUBSTANCE = ORDER.index("substance")
SUBSTANCE_GROUP = ORDER.index("substance_group")
if ORDER != ("age_band", "nfo_outcome", "setting", "sex", "substance", "substance_group",
             "treatment_status"):  # fmt: skip
    raise RuntimeError("DIMENSIONS changed: update Tally.add and profile in this module.")
DUPLICATE = CaseStatus.DUPLICATE.value
# The Case attributes a case's contribution depends on (a change to any other is not counted).
TRACKED = (
    "area", "area_id", "event_date", "case_type", "status", "setting", "treatment_status",
    "nfo_outcome", "age_band", "person", "person_id", "substances",
)  # fmt: skip
CHUNK = 5000  # ids per IN list
PENDING = "dr_panel.trends.pending"
FLUSH_CASES = 100_000  # cases counted in memory before their rows are written (or merged)
TREND_KEY = ("area_id", "month", "case_type", "dim_a", "val_a", "dim_b", "val_b")
DAILY_KEY = ("area_id", "day", "case_type", "substance_group")

cases_t = Case.__table__
persons_t = Person.__table__
substances_t = Substance.__table__
trend_t = TrendCount.__table__
daily_t = DailyCount.__table__

# A case's facts: (id, area_id, event_date, case_type, status, sex, age_band, setting,
# treatment_status, nfo_outcome, record_key); plain values or enums, as read.
FACT_COLUMNS = (
    cases_t.c.id,
    cases_t.c.area_id,
    cases_t.c.event_date,
    cases_t.c.case_type,
    cases_t.c.status,
    persons_t.c.sex,
    cases_t.c.age_band,
    cases_t.c.setting,
    cases_t.c.treatment_status,
    cases_t.c.nfo_outcome,
    cases_t.c.record_key,
)
Profile = tuple[int, date, str, tuple[tuple[str, ...], ...], int]  # area, day, type, values, key
Rows = Counter[tuple[Any, ...]]  # table key -> count


def _text(value: Any) -> str | None:
    """An enum's value, or the stored text as it is."""
    return getattr(value, "value", value)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def profile(
    area_id: int,
    event_date: Any,
    case_type: Any,
    status: Any,
    sex: Any,
    age_band: str | None,
    setting: Any,
    treatment_status: Any,
    nfo_outcome: Any,
    record_key: int | None,
    substances: Iterable[tuple[str, str]],
) -> Profile | None:
    """What the counts need of one case: its key, its values per dimension (in ``ORDER``) and
    its record key; None for a case that is not counted (a merged duplicate)."""
    if _text(status) == DUPLICATE:
        return None
    ctype = _text(case_type)
    codes, groups = substance_values(substances)
    outcome = NOT_APPLICABLE if ctype == "death" else (_text(nfo_outcome) or UNKNOWN)
    by_name = {
        "age_band": (age_band or UNKNOWN,),
        "nfo_outcome": (outcome,),
        "setting": (_text(setting) or UNKNOWN,),
        "sex": (_text(sex) or UNKNOWN,),
        "substance": codes,
        "substance_group": groups,
        "treatment_status": (_text(treatment_status) or UNKNOWN,),
    }
    return (area_id, _day(event_date), ctype, tuple(by_name[d] for d in ORDER),  # type: ignore[return-value]
            int(record_key or 0))


def _expand(profiles: Counter[Profile]) -> tuple[Rows, Rows, Rows]:
    """The rows of both tables for some cases, from their profiles (each with its number of
    cases): (area_id, month, case_type, dim_a, val_a, dim_b, val_b) and (area_id, day,
    case_type, substance_group); then the cube's key sums, keyed as the cube."""
    cube: Counter[tuple[Any, ...]] = Counter()
    daily: Counter[tuple[Any, ...]] = Counter()
    key_sums: Counter[tuple[Any, ...]] = Counter()
    for (area_id, day, ctype, values, record_key), m in profiles.items():
        if not m:
            continue
        prefix = (area_id, day.replace(day=1), ctype)
        rows = [(*prefix, "", "", "", "")]
        for d, vals in zip(ORDER, values, strict=True):
            rows.extend((*prefix, d, v, "", "") for v in vals)
        for i, j in PAIRS:
            da, db_ = ORDER[i], ORDER[j]
            for va in values[i]:
                rows.extend((*prefix, da, va, db_, vb) for vb in values[j])
        for row in rows:
            cube[row] += m
            key_sums[row] += m * record_key
        daily[(area_id, day, ctype, ALL_SUBSTANCES)] += m
        for g in values[SUBSTANCE_GROUP]:
            daily[(area_id, day, ctype, g)] += m
    return cube, daily, key_sums


def contribution(case_row: Sequence[Any]) -> Counter[tuple[Any, ...]]:
    """The ``trend_counts`` rows one case adds, from its facts (``FACT_COLUMNS`` order without
    the id, then its substances as (code, group) pairs). Empty for a merged duplicate."""
    p = profile(*case_row)
    return _expand(Counter({p: 1}))[0] if p is not None else Counter()


class Tally:
    """Counts many cases at once, for the bulk importer and ``rebuild``: the same rows as
    ``_expand`` (a test holds them equal), many times faster. Each case is added as a few small
    integer codes (one per value, per dimension); ``rows`` then counts every dimension and pair
    with numpy over whole columns (the multi-valued substance dimensions "exploded" to one
    entry per case and value) instead of some forty Python-level increments per case."""

    SINGLE = tuple(i for i in range(len(ORDER)) if i not in (SUBSTANCE, SUBSTANCE_GROUP))
    MAX_BINS = 1 << 20  # above this, np.unique (sorting) instead of np.bincount

    def __init__(self) -> None:
        # (area_id, month, case_type) and (area_id, day, case_type) -> their number.
        self._keys: dict[tuple[Any, ...], int] = {}
        self._days: dict[tuple[Any, ...], int] = {}
        self._codes: list[dict[str, int]] = [{} for _ in ORDER]  # per dimension: value -> code
        self._multi: dict[tuple[Any, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._dates: dict[Any, tuple[date, date]] = {}
        self.k: list[int] = []
        self.d: list[int] = []
        self.rk: list[int] = []  # record keys, one per case
        self.cols: dict[int, list[int]] = {i: [] for i in self.SINGLE}
        # Exploded: (case, substance), (case, group), (case, substance, group).
        self.s_row: list[int] = []
        self.s_val: list[int] = []
        self.g_row: list[int] = []
        self.g_val: list[int] = []
        self.sg_row: list[int] = []
        self.sg_s: list[int] = []
        self.sg_g: list[int] = []

    def __len__(self) -> int:
        return len(self.k)

    def add(
        self,
        area_id: int,
        event_date: Any,
        case_type: Any,
        sex: Any,
        age_band: str | None,
        setting: Any,
        treatment_status: Any,
        nfo_outcome: Any,
        codes: tuple[str, ...],
        groups: tuple[str, ...],
        record_key: int = 0,
    ) -> None:
        """One counted case (the caller leaves out merged duplicates); ``codes`` and ``groups``
        sorted and deduplicated, ("none",) for no substance; ``record_key`` its record key."""
        dates = self._dates.get(event_date)
        if dates is None:
            day = _day(event_date)
            dates = self._dates[event_date] = (day, day.replace(day=1))
        ctype = _text(case_type)
        r = len(self.k)
        keys, days = self._keys, self._days
        self.k.append(keys.setdefault((area_id, dates[1], ctype), len(keys)))
        self.d.append(days.setdefault((area_id, dates[0], ctype), len(days)))
        self.rk.append(int(record_key or 0))
        c, cols = self._codes, self.cols
        v = age_band or UNKNOWN
        cols[0].append(c[0].setdefault(v, len(c[0])))
        v = NOT_APPLICABLE if ctype == "death" else (_text(nfo_outcome) or UNKNOWN)
        cols[1].append(c[1].setdefault(v, len(c[1])))
        v = _text(setting) or UNKNOWN
        cols[2].append(c[2].setdefault(v, len(c[2])))
        v = _text(sex) or UNKNOWN
        cols[3].append(c[3].setdefault(v, len(c[3])))
        v = _text(treatment_status) or UNKNOWN
        cols[6].append(c[6].setdefault(v, len(c[6])))
        multi = self._multi.get((codes, groups))
        if multi is None:
            cs, cg = c[SUBSTANCE], c[SUBSTANCE_GROUP]
            multi = self._multi[(codes, groups)] = (
                tuple(cs.setdefault(x, len(cs)) for x in codes),
                tuple(cg.setdefault(x, len(cg)) for x in groups),
            )
        subs, grps = multi
        if len(subs) == 1 and len(grps) == 1:  # the commonest case: one substance
            self.s_row.append(r)
            self.s_val.append(subs[0])
            self.g_row.append(r)
            self.g_val.append(grps[0])
            self.sg_row.append(r)
            self.sg_s.append(subs[0])
            self.sg_g.append(grps[0])
            return
        self.s_row.extend([r] * len(subs))
        self.s_val.extend(subs)
        self.g_row.extend([r] * len(grps))
        self.g_val.extend(grps)
        for x in subs:
            self.sg_row.extend([r] * len(grps))
            self.sg_s.extend([x] * len(grps))
            self.sg_g.extend(grps)

    def _count(
        self, key: Any, parts: list[tuple[int, Any]], n_keys: int, weights: Any = None
    ) -> Iterator[tuple[int, list[int], int, int]]:
        """(key number, value codes, count, sum of ``weights``) for every combination that
        occurs (the sum 0 without weights). Weights are record keys, summed as float64: exact
        to 2**53, some 35 billion billion cases."""
        sizes = [max(1, len(self._codes[dim])) for dim, _ in parts]
        code = key.astype(np.int64)
        bins = n_keys
        for (_, values), size in zip(parts, sizes, strict=True):
            code = code * size + values
            bins *= size
        if bins <= self.MAX_BINS:
            counts = np.bincount(code, minlength=bins)
            found = np.flatnonzero(counts)
            counts = counts[found]
            sums = (np.bincount(code, weights=weights, minlength=bins)[found]
                    if weights is not None else np.zeros(len(found)))
        else:
            found, inverse, counts = np.unique(code, return_inverse=True, return_counts=True)
            sums = (np.bincount(inverse, weights=weights, minlength=len(found))
                    if weights is not None else np.zeros(len(found)))
        decoded = []
        rest = found
        for size in reversed(sizes):
            decoded.append(rest % size)
            rest = rest // size
        decoded.reverse()
        columns = [d.tolist() for d in decoded]
        for idx, (k, n, w) in enumerate(
            zip(rest.tolist(), counts.tolist(), sums.astype(np.int64).tolist(), strict=True)
        ):
            yield k, [col[idx] for col in columns], n, w

    def rows(self) -> tuple[Rows, Rows, Rows]:
        """(cube, daily, key sums), as ``_expand`` gives them."""
        cube: Rows = Counter()
        daily: Rows = Counter()
        key_sums: Rows = Counter()
        if not self.k:
            return cube, daily, key_sums
        names = [list(codes) for codes in self._codes]  # code -> value, per dimension
        prefix, n_keys = list(self._keys), len(self._keys)
        k = np.array(self.k, dtype=np.int64)
        rk = np.array(self.rk, dtype=np.float64)
        cols = {i: np.array(v, dtype=np.int64) for i, v in self.cols.items()}
        s_row, g_row, sg_row = (np.array(x, dtype=np.int64) for x in (self.s_row, self.g_row,
                                                                       self.sg_row))  # fmt: skip
        s_val, g_val, sg_s, sg_g = (
            np.array(x, dtype=np.int64) for x in (self.s_val, self.g_val, self.sg_s, self.sg_g)
        )

        def put(key: Any, parts: list[tuple[int, Any]], weights: Any) -> None:
            dims = [ORDER[dim] for dim, _ in parts]
            for kn, values, n, w in self._count(key, parts, n_keys, weights):
                named = [names[dim][v] for (dim, _), v in zip(parts, values, strict=True)]
                if len(dims) == 2:
                    row = (*prefix[kn], dims[0], named[0], dims[1], named[1])
                elif dims:
                    row = (*prefix[kn], dims[0], named[0], "", "")
                else:
                    row = (*prefix[kn], "", "", "", "")
                cube[row] += n
                key_sums[row] += w

        put(k, [], rk)
        for i in self.SINGLE:
            put(k, [(i, cols[i])], rk)
        for i, j in PAIRS:
            if i in cols and j in cols:
                put(k, [(i, cols[i]), (j, cols[j])], rk)
        for m, rows, vals in ((SUBSTANCE, s_row, s_val), (SUBSTANCE_GROUP, g_row, g_val)):
            ks, rks = k[rows], rk[rows]
            put(ks, [(m, vals)], rks)
            for i in self.SINGLE:
                other = (i, cols[i][rows])
                put(ks, [other, (m, vals)] if i < m else [(m, vals), other], rks)
        put(k[sg_row], [(SUBSTANCE, sg_s), (SUBSTANCE_GROUP, sg_g)], rk[sg_row])

        day_prefix, n_days = list(self._days), len(self._days)
        d = np.array(self.d, dtype=np.int64)
        for dn, _, n, _ in self._count(d, [], n_days):
            daily[(*day_prefix[dn], ALL_SUBSTANCES)] += n
        for dn, (g,), n, _ in self._count(d[g_row], [(SUBSTANCE_GROUP, g_val)], n_days):
            daily[(*day_prefix[dn], names[SUBSTANCE_GROUP][g])] += n
        return cube, daily, key_sums


def substance_values(subs: Iterable[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A case's substance codes and groups, sorted and deduplicated; ("none",) for none."""
    subs = set(subs)
    codes = tuple(sorted({c for c, _ in subs})) or (NO_SUBSTANCE,)
    groups = tuple(sorted({g for _, g in subs})) or (NO_SUBSTANCE,)
    return codes, groups


# -- reading cases ------------------------------------------------------------------------------


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


_FACTS = (
    select(*FACT_COLUMNS)
    .select_from(cases_t.join(persons_t, persons_t.c.id == cases_t.c.person_id))
    .where(cases_t.c.id.in_(bindparam("ids", expanding=True)))
)
_SUBSTANCES = (
    select(case_substances.c.case_id, substances_t.c.code, substances_t.c.group)
    .select_from(
        case_substances.join(substances_t, substances_t.c.id == case_substances.c.substance_id)
    )
    .where(case_substances.c.case_id.in_(bindparam("ids", expanding=True)))
)


def _profiles_of(conn: Connection, ids: Iterable[int]) -> Counter[Profile]:
    """The profiles of these cases as the database holds them now (in this transaction)."""
    out: Counter[Profile] = Counter()
    for chunk in _chunks(sorted(set(ids))):
        subs: dict[int, list[tuple[str, str]]] = {}
        for case_id, code, group in conn.execute(_SUBSTANCES, {"ids": chunk}):
            subs.setdefault(case_id, []).append((code, group))
        for case_id, *facts in conn.execute(_FACTS, {"ids": chunk}):
            p = profile(*facts, subs.get(case_id, ()))  # type: ignore[call-arg]
            if p is not None:
                out[p] += 1
    return out


# -- writing counts -----------------------------------------------------------------------------


class _Writer:
    """Upserts and deletes on both tables, written out for the connection's dialect (SQLite
    and PostgreSQL share the syntax) and run with the driver's executemany."""

    def __init__(self, conn: Connection) -> None:
        dialect = conn.dialect
        self.conn = conn
        self.date = Date().dialect_impl(dialect).bind_processor(dialect)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        q = dialect.identifier_preparer.quote
        self.sql: dict[str, tuple[str, str, str]] = {}
        for table, keys, values in (
            (trend_t, TREND_KEY, ("n", "key_sum")),
            (daily_t, DAILY_KEY, ("n",)),
        ):
            name = dialect.identifier_preparer.format_table(table)
            cols = ", ".join(q(k) for k in (*keys, *values))
            conflict = ", ".join(q(k) for k in keys)
            marks = ", ".join([mark] * (len(keys) + len(values)))
            where = " AND ".join(f"{q(k)} = {mark}" for k in keys)
            add = ", ".join(f"{v} = {name}.{v} + excluded.{v}" for v in values)
            # Names from the models only; every value is a parameter.
            self.sql[table.name] = (
                f"INSERT INTO {name} ({cols}) VALUES ({marks}) "  # noqa: S608
                f"ON CONFLICT ({conflict}) DO UPDATE SET {add}",
                f"INSERT INTO {name} ({cols}) VALUES ({marks})",  # noqa: S608
                f"DELETE FROM {name} WHERE {where} AND n <= 0",  # noqa: S608
            )

    def _params(
        self, items: Iterable[tuple[tuple[Any, ...], tuple[int, ...]]]
    ) -> list[tuple[Any, ...]]:
        """(key..., values...) rows for the driver: the date converted once per distinct date."""
        if self.date is None:
            return [(*k, *v) for k, v in items]
        converted: dict[date, Any] = {}
        out = []
        for k, v in items:
            d = converted.get(k[1])
            if d is None:
                d = converted[k[1]] = self.date(k[1])
            out.append((k[0], d, *k[2:], *v))
        return out

    def add(
        self,
        table: str,
        counts: Rows,
        key_sums: Rows | None = None,
        *,
        fresh: bool = False,
        ordered: bool = True,
    ) -> None:
        """Add signed counts (and, for ``trend_counts``, key sums keyed alike). ``ordered``:
        keys sorted, so that concurrent writers lock rows in one order (the bulk importer holds
        a lock on cases and skips it); ``fresh``: the table is empty, plain inserts."""
        upsert, insert, delete = self.sql[table]
        items: list[tuple[tuple[Any, ...], tuple[int, ...]]]
        if table == trend_t.name:
            sums = key_sums if key_sums is not None else Counter()
            # A row whose count is unchanged may still change its key sum (one case left it
            # and another joined it in the same flush).
            items = [(k, (counts[k], sums[k])) for k in counts.keys() | sums.keys()
                     if counts[k] or sums[k]]
        else:
            items = [(k, (n,)) for k, n in counts.items() if n]
        if not items:
            return
        if ordered:
            items.sort()
        self.conn.exec_driver_sql(insert if fresh else upsert, self._params(items))
        gone = [
            row[: -len(v)] for row, (_, v) in zip(self._params(items), items, strict=True)
            if v[0] < 0
        ]
        if gone:
            self.conn.exec_driver_sql(delete, gone)


def _apply(conn: Connection, plus: Counter[Profile], minus: Counter[Profile] | None = None) -> None:
    delta = Counter(plus)
    if minus:
        delta.subtract(minus)
    delta = Counter({p: m for p, m in delta.items() if m})
    if not delta:
        return
    cube, daily, key_sums = _expand(delta)
    writer = _Writer(conn)
    writer.add(trend_t.name, cube, key_sums)
    writer.add(daily_t.name, daily)


class BulkCounts:
    """The counts of the cases a bulk import writes, in its transaction. Batches are added as
    they are written and counted together: upserted every ``flush_cases`` cases and by
    ``flush`` at the end. Once per batch (5,000 cases) cost more than the rest of the import:
    a batch touches some 20,000 rows of the cube, and most of them again the next batch."""

    def __init__(self, flush_cases: int | None = None) -> None:
        self.flush_cases = flush_cases or FLUSH_CASES
        self.tally = Tally()
        self.counted = 0
        self._names: dict[int, tuple[str, str]] | None = None
        self._by_ids: dict[Any, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def add(self, rows: Iterable[Sequence[Any]]) -> int:
        """Each row: (person_id, sex or None, area_id, event_date, case_type, status,
        age_band, setting, treatment_status, nfo_outcome, substance ids, record key), values
        as Python objects or as already converted for the driver. A missing sex is read from
        the person (already written). Returns the number of cases counted."""
        rows = list(rows)
        if not rows:
            return 0
        conn = db.session.connection()
        missing = sorted({r[0] for r in rows if r[1] is None})
        sexes: dict[int, Any] = {}
        for chunk in _chunks(missing):
            sexes.update(
                conn.execute(
                    select(persons_t.c.id, persons_t.c.sex).where(
                        persons_t.c.id.in_(bindparam("ids", expanding=True))
                    ),
                    {"ids": chunk},
                ).all()
            )
        if self._names is None:
            self._names = {
                sid: (code, group)
                for sid, code, group in conn.execute(
                    select(substances_t.c.id, substances_t.c.code, substances_t.c.group)
                )
            }
        names, by_ids, tally = self._names, self._by_ids, self.tally
        before = len(tally)
        for (
            person_id, sex, area_id, day, ctype, status, band, setting, treat, outcome, ids, key,
        ) in rows:  # fmt: skip
            if _text(status) == DUPLICATE:
                continue
            values = by_ids.get(ids)
            if values is None:
                values = by_ids[ids] = substance_values(names[s] for s in ids)
            tally.add(
                area_id,
                day,
                ctype,
                sexes.get(person_id) if sex is None else sex,
                band,
                setting,
                treat,
                outcome,
                *values,
                key,
            )
        added = len(tally) - before
        self.counted += added
        if len(tally) >= self.flush_cases:
            self.flush()
        return added

    def flush(self) -> None:
        """Upsert what has been added since the last flush."""
        if not len(self.tally):
            return
        cube, daily, key_sums = self.tally.rows()
        self.tally = Tally()
        writer = _Writer(db.session.connection())
        writer.add(trend_t.name, cube, key_sums, ordered=False)
        writer.add(daily_t.name, daily, ordered=False)


def apply_bulk(rows: Iterable[Sequence[Any]]) -> int:
    """Count cases written without the ORM at once (``BulkCounts`` for many batches)."""
    counts = BulkCounts()
    added = counts.add(rows)
    counts.flush()
    return added


def count_all(
    progress: Callable[[int], None] | None = None, *, batch: int = 20_000
) -> tuple[int, Rows, Rows, Rows]:
    """A fresh count of every case, read in batches of ``batch`` cases: (cases counted,
    trend_counts rows, daily_counts rows, trend_counts key sums). ``progress(n)`` after every
    ``n`` cases read."""
    conn = db.session.connection()
    tally = Tally()
    cube: Rows = Counter()
    daily: Rows = Counter()
    key_sums: Rows = Counter()
    counted = last = 0
    # Enum columns read as their stored text: no enum objects for a million rows.
    facts = (
        select(*[type_coerce(c, String) if isinstance(c.type, Enum) else c for c in FACT_COLUMNS])
        .select_from(cases_t.join(persons_t, persons_t.c.id == cases_t.c.person_id))
        .where(cases_t.c.id > bindparam("last"))
        .order_by(cases_t.c.id)
        .limit(batch)
    )
    subs_stmt = (
        select(case_substances.c.case_id, substances_t.c.code, substances_t.c.group)
        .select_from(
            case_substances.join(substances_t, substances_t.c.id == case_substances.c.substance_id)
        )
        .where(case_substances.c.case_id.between(bindparam("lo"), bindparam("hi")))
    )
    while True:
        rows = conn.execute(facts, {"last": last}).all()
        if not rows:
            break
        subs: dict[int, list[tuple[str, str]]] = {}
        for case_id, code, group in conn.execute(subs_stmt, {"lo": rows[0][0], "hi": rows[-1][0]}):
            subs.setdefault(case_id, []).append((code, group))
        for case_id, area_id, day, ctype, status, sex, band, setting, treat, outcome, key in rows:
            if status == DUPLICATE:
                continue
            tally.add(
                area_id, day, ctype, sex, band, setting, treat, outcome,
                *substance_values(subs.get(case_id, ())), key,
            )  # fmt: skip
        last = rows[-1][0]
        if len(tally) >= FLUSH_CASES:  # bounded memory, however many cases
            counted += len(tally)
            part_cube, part_daily, part_keys = tally.rows()
            cube.update(part_cube)
            daily.update(part_daily)
            key_sums.update(part_keys)
            tally = Tally()
        if progress is not None:
            progress(len(rows))
    part_cube, part_daily, part_keys = tally.rows()
    cube.update(part_cube)
    daily.update(part_daily)
    key_sums.update(part_keys)
    return counted + len(tally), cube, daily, key_sums


def stored() -> tuple[Rows, Rows, Rows]:
    """Both tables as they are, keyed as ``count_all`` keys them (cube, daily, key sums)."""
    trend_cols = [trend_t.c[k] for k in TREND_KEY]
    daily_cols = [daily_t.c[k] for k in DAILY_KEY]
    cube: Rows = Counter()
    key_sums: Rows = Counter()
    for *k, n, ks in db.session.execute(select(*trend_cols, trend_t.c.n, trend_t.c.key_sum)):
        cube[tuple(k)] = n
        if ks:
            key_sums[tuple(k)] = ks
    daily = Counter(
        {tuple(r[:-1]): r[-1] for r in db.session.execute(select(*daily_cols, daily_t.c.n))}
    )
    return cube, daily, key_sums


def rebuild(progress: Callable[[int], None] | None = None) -> int:
    """Recount both tables from the cases, in the session's transaction (the caller commits).
    Returns the number of cases counted (merged duplicates are read but not counted)."""
    counted, cube, daily, key_sums = count_all(progress)
    conn = db.session.connection()
    conn.execute(trend_t.delete())
    conn.execute(daily_t.delete())
    writer = _Writer(conn)
    writer.add(trend_t.name, cube, key_sums, fresh=True, ordered=False)
    writer.add(daily_t.name, daily, fresh=True, ordered=False)
    log.info(
        "trend counts rebuilt: %d cases, %d rows, %d daily rows", counted, len(cube), len(daily)
    )
    return counted


def case_count() -> int:
    """How many cases there are (for a progress bar's length)."""
    return db.session.scalar(select(func.count()).select_from(cases_t)) or 0


# -- the session hook ---------------------------------------------------------------------------


def _changed(obj: Any, names: Iterable[str]) -> bool:
    state = orm_attributes.instance_state(obj)
    return any(state.attrs[n].history.has_changes() for n in names)


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    session.info.pop(PENDING, None)
    new = [o for o in session.new if isinstance(o, Case)]
    touched: set[int] = set()
    people: set[int] = set()
    for o in session.dirty:
        if isinstance(o, Case):
            if o.id is not None and _changed(o, TRACKED):
                touched.add(o.id)
        elif isinstance(o, Person) and o.id is not None and _changed(o, ("sex",)):
            people.add(o.id)
    touched.update(o.id for o in session.deleted if isinstance(o, Case) and o.id is not None)
    if not (new or touched or people):
        return
    conn = session.connection()
    for chunk in _chunks(sorted(people)):
        touched.update(
            conn.execute(
                select(cases_t.c.id).where(
                    cases_t.c.person_id.in_(bindparam("ids", expanding=True))
                ),
                {"ids": chunk},
            ).scalars()
        )
    old = _profiles_of(conn, touched) if touched else Counter()
    session.info[PENDING] = (new, touched, old)


def _after_flush(session: Session, flush_context: Any) -> None:
    pending = session.info.pop(PENDING, None)
    if pending is None:
        return
    new, touched, old = pending
    ids = touched | {o.id for o in new if o.id is not None}
    conn = session.connection()
    _apply(conn, _profiles_of(conn, ids) if ids else Counter(), old)


def _after_rollback(session: Session, previous_transaction: Any) -> None:
    session.info.pop(PENDING, None)


def init_app(app: Flask) -> None:
    """Listen on every session (``create_app`` calls this; importing the module does not):
    the counts follow the cases wherever they change. Idempotent, so any number of apps in
    one process share one set of hooks."""
    for name, fn in (
        ("before_flush", _before_flush),
        ("after_flush", _after_flush),
        ("after_soft_rollback", _after_rollback),
    ):
        if not event.contains(Session, name, fn):
            event.listen(Session, name, fn)
