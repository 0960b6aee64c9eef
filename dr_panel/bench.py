"""``dr-panel bench``: how dr-panel performs at a chosen size, on this machine.

It never touches the instance database: it builds an app of its own on a temporary SQLite file
(or an *empty* database named with ``--database-url``) with temporary keys, fills it with
synthetic people from a fixed seed, measures, prints a table and writes the same as JSON.

Figures, with the targets of issue 4 (later issues add theirs to ``FIGURES``):

- bulk intake through the import's fast path (parse, validate, encrypt, blind-index, link,
  write), beside raw ``executemany`` of the same rows without any of that;
- finding a person by NHS number through the blind index, beside a naive decrypt-and-scan;
- the case-list page through the test client (page 1, a deep page, a filter);
- peak memory of the process.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import platform
import random
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from config import TestingConfig, load_config, normalise_database_url

if TYPE_CHECKING:
    from dr_panel.auth.models import User

# The demo's three areas, which share one drug information network, and the agencies that notify.
AREAS = [
    ("E06000009", "Blackpool"),
    ("E06000008", "Blackburn with Darwen"),
    ("E10000017", "Lancashire"),
]
AGENCIES = [
    ("POLICE", "Police", "police"),
    ("NWAS", "Ambulance service", "ambulance"),
    ("BTH", "Hospital", "hospital"),
    ("TREATMENT", "Treatment service", "treatment"),
    ("CORONER", "Coroner's office", "coroner"),
    ("PUBHEALTH", "Public health team", "public_health"),
]
START = date(2024, 1, 1)
DAYS = 731  # 2024-01-01 to 2025-12-31
AREA_WEIGHTS = [("E06000009", 30), ("E06000008", 25), ("E10000017", 45)]
OUTWARD = {
    "E06000009": ["FY1", "FY2", "FY3", "FY4"],
    "E06000008": ["BB1", "BB2", "BB3"],
    "E10000017": ["PR1", "PR2", "LA1", "LA3", "BB4", "BB5", "FY5", "FY8"],
}
# Syllables for names that are plainly made up (no real person is called "Quovelbrin Tasdorby").
SYLLABLES = [
    "ka", "lo", "mi", "ren", "tas", "vel", "dor", "zan", "bri", "quo", "fen", "sul", "mar",
    "tiv", "pel", "nox", "ab", "ry", "sen", "gol", "ith", "ur", "vo", "dre", "pim", "cas",
    "lun", "ors", "bel", "wyn", "jax", "tam", "eel", "hov", "nim", "rab", "sto", "ulm", "yed",
    "zor",
]  # fmt: skip
SUFFIXES = ["by", "ton", "ley", "wick", "more", "dale", "er", "ham"]
STREETS = ["Street", "Road", "Lane", "Close", "Avenue", "Terrace"]
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
SUBSTANCE_WEIGHTS = [
    ("heroin", 30), ("crack", 22), ("cocaine", 14), ("benzo_street", 10), ("methadone", 8),
    ("alcohol", 10), ("gabapentinoids", 6), ("nitazenes", 4), ("synthetic_cannabinoids", 3),
    ("ketamine", 2), ("xylazine", 1), ("other_opioids", 3),
]  # fmt: skip
SETTINGS = [("home", 50), ("hostel", 15), ("street", 20), ("custody", 3), ("hospital", 4),
            ("prison", 2), ("other", 6)]  # fmt: skip
NFO_AGENCIES = [("NWAS", 50), ("POLICE", 20), ("BTH", 15), ("TREATMENT", 10), ("", 5)]
DEATH_AGENCIES = [("POLICE", 60), ("CORONER", 40)]
ROUTES = ["injected", "smoked", "snorted", "oral", "mixed", "unknown"]
YNU = ["yes", "no", "unknown"]
NALOXONE_BY = ["ambulance", "police", "peer", "family_friend", "hostel_staff", "treatment_staff"]
NFO_OUTCOMES = ["conveyed", "treated_at_scene", "refused_conveyance", "self_discharged", "unknown"]
TREATMENT = ["in_treatment", "left_6m", "previously", "never", "unknown"]
HOUSING = ["settled", "temporary", "hostel_supported", "rough_sleeping", "no_fixed_abode"]
TOXICOLOGY = ["awaited", "received", "not_requested", "unknown"]
CORONER = ["not_referred", "referred", "inquest_opened", "inquest_concluded", "unknown"]


def nhs_check_digit(nine: str) -> int | None:
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return None if check == 10 else (0 if check == 11 else check)


def _weighted(pairs: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    values, weights = zip(*pairs, strict=True)
    cum, total = [], 0
    for w in weights:
        total += w
        cum.append(total)
    return list(values), cum


class Synthetic:
    """Fixed-seed synthetic notifications. A person is a pure function of (seed, number), so a
    repeat notification (about a fifth of them) regenerates its person instead of keeping
    every person in memory. Dates run forward through two years; no person has two cases of
    the same type on one day, and nobody is notified after their death."""

    REPEAT_SHARE = 0.2
    DEATH_SHARE = 0.1

    def __init__(self, seed: int, cases: int) -> None:
        self.seed = seed
        self.cases = cases
        self.rng = random.Random(seed)  # noqa: S311  (synthetic data, not a secret)
        # NHS numbers: a bijection of the six free digits of the 999 test range, so numbers are
        # unique without remembering them; a person whose number would fail the check has none.
        self._a = (seed * 7919 * 2 + 1) % 1_000_000
        while self._a % 5 == 0:
            self._a = (self._a + 2) % 1_000_000
        self._c = (seed * 104_729) % 1_000_000
        self.persons = 0
        self.last_day = array("H")  # per person: day of their last case
        self.dead = bytearray()
        self.person_of_row = array("I")
        self._areas = _weighted(AREA_WEIGHTS)
        self._substances = _weighted(SUBSTANCE_WEIGHTS)
        self._settings = _weighted(SETTINGS)
        self._nfo_agencies = _weighted(NFO_AGENCIES)
        self._death_agencies = _weighted(DEATH_AGENCIES)

    def _pick(self, table: tuple[list[str], list[int]]) -> str:
        return self.rng.choices(table[0], cum_weights=table[1])[0]

    def person(self, k: int) -> dict[str, str]:
        h = hashlib.blake2b(f"{self.seed}:{k}".encode(), digest_size=24).digest()
        s = SYLLABLES
        first = (s[h[0] % 40] + s[h[1] % 40]).capitalize()
        last = (s[h[2] % 40] + s[h[3] % 40] + s[h[4] % 40] + SUFFIXES[h[5] % 8]).capitalize()
        dob = date(1950, 1, 1) + timedelta(days=int.from_bytes(h[6:8], "big") % (55 * 365))
        area = self._areas[0][next(i for i, c in enumerate(self._areas[1]) if h[8] % 100 < c)]
        nhs = ""
        if h[9] < 230 and k < 1_000_000:
            nine = "999" + f"{(self._a * k + self._c) % 1_000_000:06d}"
            check = nhs_check_digit(nine)
            if check is not None:
                nhs = nine + str(check)
                if h[10] % 2:
                    nhs = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
        outward = OUTWARD[area][h[11] % len(OUTWARD[area])]
        inward = f"{h[12] % 10}{INWARD_LETTERS[h[13] % 20]}{INWARD_LETTERS[h[14] % 20]}"
        street = (s[h[15] % 40] + s[h[16] % 40]).capitalize()
        return {
            "full_name": f"{first} {last}",
            "date_of_birth": dob.isoformat() if h[17] < 243 else "",
            "sex": ("male", "male", "female", "unknown")[h[18] % 4],
            "nhs_number": nhs,
            "address": f"{1 + h[19] % 150} {street} {STREETS[h[20] % 6]}" if h[21] < 205 else "",
            "postcode": f"{outward} {inward}" if h[22] < 220 else "",
            "area": area,
        }

    def nhs_numbers(self, count: int) -> list[str]:
        """NHS numbers (digits) of random persons that have one, for lookups."""
        rng = random.Random(self.seed + 1)  # noqa: S311
        out: list[str] = []
        while len(out) < count and self.persons:
            nhs = self.person(rng.randrange(self.persons))["nhs_number"].replace(" ", "")
            if nhs:
                out.append(nhs)
        return out

    def rows(self) -> Iterator[dict[str, str]]:
        rng = self.rng
        n = self.cases
        for i in range(n):
            day = i * DAYS // n
            k = -1
            if self.persons and rng.random() < self.REPEAT_SHARE:
                k = rng.randrange(self.persons)
                if self.dead[k] or self.last_day[k] == day:
                    k = -1
            if k < 0:
                k = self.persons
                self.persons += 1
                self.last_day.append(day)
                self.dead.append(0)
            self.last_day[k] = day
            self.person_of_row.append(k)
            who = self.person(k)
            is_death = rng.random() < self.DEATH_SHARE
            if is_death:
                self.dead[k] = 1
            yield self._row(who, day, is_death)

    def _row(self, who: dict[str, str], day: int, is_death: bool) -> dict[str, str]:
        rng = self.rng
        event = START + timedelta(days=day)
        area = who["area"] if rng.random() < 0.95 else self._pick(self._areas)
        picks = {self._pick(self._substances) for _ in range(1 + int(rng.random() * 2.2))}
        naloxone = rng.choices(YNU, (20, 40, 40) if is_death else (60, 20, 20))[0]
        row = {
            "case_type": "death" if is_death else "nfo",
            "area": area,
            "notifying_agency": self._pick(
                self._death_agencies if is_death else self._nfo_agencies
            ),
            "notified_on": (event + timedelta(days=int(rng.random() * 4))).isoformat(),
            "event_date": event.isoformat(),
            "event_time": f"{int(rng.random() * 24):02d}:{int(rng.random() * 60):02d}"
            if rng.random() < 0.7
            else "",
            "date_is_found": "yes" if is_death and rng.random() < 0.3 else "no",
            "setting": self._pick(self._settings),
            "substances": ";".join(sorted(picks)),
            "route": ROUTES[int(rng.random() * 6)],
            "naloxone_given": naloxone,
            "naloxone_by": NALOXONE_BY[int(rng.random() * 6)] if naloxone == "yes" else "",
            "naloxone_doses": str(1 + int(rng.random() * 4))
            if naloxone == "yes" and rng.random() < 0.7
            else "",
            "nfo_outcome": "" if is_death else NFO_OUTCOMES[int(rng.random() * 5)],
            "treatment_status": TREATMENT[int(rng.random() * 5)],
            "recent_prison_release": YNU[int(rng.random() * 3)],
            "housing_status": HOUSING[int(rng.random() * 5)],
            "children_in_household": YNU[int(rng.random() * 3)],
            "previous_overdoses": str(int(rng.random() * 8)) if rng.random() < 0.5 else "",
            "toxicology": TOXICOLOGY[int(rng.random() * 4)] if is_death else "",
            "coroner_stage": CORONER[int(rng.random() * 5)] if is_death else "",
        }
        row.update(who)
        row["area"] = area
        return row


# -- figures ------------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    value: float | None
    unit: str
    target: str = ""  # e.g. ">= 5000"; empty: shown for context, no target
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if not self.target or self.value is None:
            return None
        op, bound = self.target.split(" ", 1)
        limit = float(bound)
        return self.value >= limit if op == ">=" else self.value <= limit

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "target": self.target or None,
            "pass": self.passed,
            "note": self.note or None,
        }


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.figures.append(Figure(*args, **kwargs))

    def table(self) -> str:
        head = ("Figure", "Value", "Target", "Result")
        rows = []
        for f in self.figures:
            value = "–" if f.value is None else f"{_fmt(f.value)} {f.unit}"
            result = {True: "PASS", False: "MISS", None: ""}[f.passed]
            rows.append((f.label, value, f.target and f"{f.target} {f.unit}", result))
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
        for r in rows:
            out.append(
                "  ".join(
                    c.rjust(w) if i in (1, 2) else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
        return "\n".join(out)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# -- the run ------------------------------------------------------------------------------------


def _bar(length: int, label: str) -> Any:
    return click.progressbar(length=length, label=label, file=sys.stderr, width=30)


def _check_database(url: str) -> None:
    """Refuse the instance database, and any database that already holds tables."""
    if url == load_config().SQLALCHEMY_DATABASE_URI:
        raise click.ClickException(
            "That is the instance database. The benchmark needs an empty database of its own."
        )
    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise click.ClickException(
            f"The database given with --database-url is not empty ({len(tables)} tables). "
            "The benchmark fills and then drops its tables: give it an empty database."
        )


@click.command()
@click.option(
    "--cases", "n_cases", default=1_000_000, show_default=True, type=click.IntRange(min=100)
)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--out",
    default="bench.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the figures as JSON.",
)
@click.option(
    "--database-url",
    default=None,
    help="An EMPTY database to use (e.g. PostgreSQL) instead of a temporary SQLite file. "
    "Its tables are dropped at the end.",
)
@click.option("--lookups", default=1000, show_default=True, type=click.IntRange(min=10))
@click.option("--page-requests", default=20, show_default=True, type=click.IntRange(min=3))
@click.option(
    "--trend-queries", default=20, show_default=True, type=click.IntRange(min=3),
    help="Timed runs of each trend query.",
)  # fmt: skip
@click.option("--keep", is_flag=True, help="Keep the temporary directory (database, keys).")
def bench(
    n_cases: int,
    seed: int,
    out: Path,
    database_url: str | None,
    lookups: int,
    page_requests: int,
    trend_queries: int,
    keep: bool,
) -> None:
    """Benchmark intake, lookup and the case list at a chosen size, on synthetic data.

    Never uses the instance database or keys: everything lives in a temporary directory."""
    if database_url:
        _check_database(normalise_database_url(database_url))
    tmp = Path(tempfile.mkdtemp(prefix="dr-panel-bench-"))
    url = (
        normalise_database_url(database_url)
        if database_url
        else f"sqlite:///{tmp / 'bench.sqlite3'}"
    )
    try:
        report = _run(
            tmp, url, n_cases=n_cases, seed=seed, lookups=lookups, pages=page_requests,
            trend_runs=trend_queries,
        )  # fmt: skip
    finally:
        if keep:
            click.echo(f"Kept {tmp}", err=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    click.echo(report.table())
    out.write_text(
        json.dumps(
            {
                **report.facts,
                "figures": [f.as_json() for f in report.figures],
                "query_plans": report.plans,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    click.echo(f"\nWritten to {out}")


def _run(
    tmp: Path, url: str, *, n_cases: int, seed: int, lookups: int, pages: int,
    trend_runs: int = 20,
) -> Report:  # fmt: skip
    from dataclasses import replace

    from dr_panel import create_app
    from dr_panel.extensions import db

    config = replace(
        TestingConfig(),
        INSTANCE_PATH=str(tmp / "instance"),
        SQLALCHEMY_DATABASE_URI=url,
        KEYS_FILE=str(tmp / "instance" / "keys.json"),
    )
    app = create_app(config)
    report = Report()
    engine_name = make_url(url).get_backend_name()
    report.facts = {
        "benchmark": "dr-panel bench",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            # Other work on the machine slows every figure: the 1-minute load at the start.
            "load_average_at_start": round(os.getloadavg()[0], 2),
        },
        "cases": n_cases,
        "seed": seed,
        "database": {
            "engine": engine_name,
            "url": make_url(url).render_as_string(hide_password=True),
            "temporary": url.startswith("sqlite:///" + str(tmp)),
        },
    }
    created_tables = False
    try:
        with app.app_context():
            db.create_all()
            created_tables = True
            password = secrets.token_urlsafe(24)
            coordinator = _seed(password)
            user_id = coordinator.id
            if engine_name == "sqlite":
                import sqlite3

                report.facts["database"]["sqlite_version"] = sqlite3.sqlite_version
            else:
                report.facts["database"]["server_version"] = db.session.scalar(
                    text("SHOW server_version")
                )
            synthetic = Synthetic(seed, n_cases)
            source = tmp / "notifications.csv"
            generated = _generate(synthetic, source)
            report.facts["generation_seconds"] = round(generated, 2)
            report.facts["persons_generated"] = synthetic.persons
            raw = _raw_executemany(synthetic, source)
            _intake(report, coordinator, source, raw)
            _lookups(report, synthetic, lookups)
            _leak_gate(report, synthetic)
            _trends(report, trend_runs)
            _spike_scan(report, n_cases, seed)
            _fanout(report, app, user_id, *fanout_size(n_cases))
        _case_list(report, app, user_id, password, pages)
        with app.app_context():
            report.facts["persons_stored"] = db.session.scalar(text("SELECT count(*) FROM persons"))
            report.facts["cases_stored"] = db.session.scalar(text("SELECT count(*) FROM cases"))
            _plans(report, user_id)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        if sys.platform == "darwin":
            peak /= 1024  # bytes on macOS
        report.add("peak_memory_mb", "Peak memory (max RSS)", peak, "MB", "<= 1024")
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report.facts["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
        report.facts["peak_memory_mb_largest_worker"] = round(children, 1)
    finally:
        with app.app_context():
            db.session.remove()
            if created_tables and url.startswith("postgresql"):
                db.drop_all()
            db.engine.dispose()
    return report


def _seed(password: str) -> Any:
    from dr_panel.auth import services as accounts
    from dr_panel.auth.models import Role
    from dr_panel.cases.services import ensure_substances
    from dr_panel.extensions import db
    from dr_panel.reference import services as reference
    from dr_panel.reference.models import Sector

    ensure_substances()
    for code, name in AREAS:
        reference.save_area(None, ons_code=code, name=name, network="Bench network")
    for code, name, sector in AGENCIES:
        reference.save_agency(None, code=code, name=name, sector=Sector(sector))
    user, _ = accounts.create_user(
        accounts.AccountDetails(
            email="bench.coordinator@example.org",
            display_name="Bench Coordinator",
            role=Role.COORDINATOR,
            area_codes=[code for code, _ in AREAS],
            agency_code="PUBHEALTH",
        ),
        password=password,
        by=None,
        must_change=False,
    )
    db.session.commit()
    return user


def _generate(synthetic: Synthetic, path: Path) -> float:
    from dr_panel.cases.services import FIELDS

    started = time.perf_counter()
    with (
        path.open("w", encoding="utf-8", newline="") as fh,
        _bar(synthetic.cases, "Generating synthetic notifications") as bar,
    ):
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for i, row in enumerate(synthetic.rows(), 1):
            writer.writerow(row)
            if i % 5000 == 0:
                bar.update(5000)
        bar.update(synthetic.cases % 5000)
    return time.perf_counter() - started


def _raw_executemany(synthetic: Synthetic, source: Path, batch: int = 5000) -> float:
    """The same persons, cases and substance links written with the driver's ``executemany``
    and nothing else: identifiers in clear, no blind indexes, no validation, no linking. Inside
    a transaction that is rolled back, so the fast path starts from the same empty tables.
    Returns the seconds spent in ``executemany`` alone."""
    import uuid

    from dr_panel.cases.models import Substance
    from dr_panel.extensions import db
    from dr_panel.reference.models import Agency, Area

    session = db.session
    dialect = session.get_bind().dialect
    is_sqlite = dialect.name == "sqlite"
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    areas = {a.ons_code: a.id for a in session.scalars(select(Area))}
    agencies = {a.code: a.id for a in session.scalars(select(Agency))}
    substances = {s.code: s.id for s in session.scalars(select(Substance))}
    person_cols = [
        "id", "uuid", "name_enc", "dob_enc", "nhs_number_enc", "address_enc", "postcode_enc",
        "sex", "created_at",
    ]  # fmt: skip
    case_cols = [
        "id", "uuid", "reference", "area_id", "case_type", "status", "person_id",
        "notifying_agency_id", "notified_on", "event_date", "event_time", "date_is_found",
        "setting", "route", "naloxone_given", "naloxone_by", "naloxone_doses", "nfo_outcome",
        "treatment_status", "recent_prison_release", "housing_status", "children_in_household",
        "previous_overdoses", "toxicology", "coroner_stage", "match_status", "created_at",
        "version", "record_key",
    ]  # fmt: skip

    def sql(table: str, cols: list[str]) -> str:
        # Table and column names are the constants above, never input.
        names, marks = ", ".join(cols), ", ".join([mark] * len(cols))
        return f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608

    now = datetime.now(UTC)
    stamp: Any = now.replace(tzinfo=None).isoformat(sep=" ") if is_sqlite else now

    def day(v: str) -> Any:
        return v if is_sqlite else date.fromisoformat(v)

    def opt(v: str) -> Any:
        return v or None

    def new_uuid() -> Any:
        u = uuid.uuid4()
        return u.hex if is_sqlite else u

    seen = bytearray(synthetic.persons)
    spent = 0.0
    conn = session.connection()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with (
        source.open(encoding="utf-8", newline="") as fh,
        _bar(synthetic.cases, "Raw executemany (no crypto)") as bar,
    ):
        reader = csv.DictReader(fh)
        persons: list[tuple[Any, ...]] = []
        cases: list[tuple[Any, ...]] = []
        links: list[tuple[int, int]] = []
        counters: dict[str, int] = {}

        def flush() -> None:
            nonlocal spent
            started = time.perf_counter()
            if persons:
                cursor.executemany(sql("persons", person_cols), persons)
            cursor.executemany(sql("cases", case_cols), cases)
            if links:
                cursor.executemany(sql("case_substances", ["case_id", "substance_id"]), links)
            spent += time.perf_counter() - started
            bar.update(len(cases))
            persons.clear()
            cases.clear()
            links.clear()

        for i, row in enumerate(reader):
            k = synthetic.person_of_row[i]
            if not seen[k]:
                seen[k] = 1
                persons.append(
                    (
                        k + 1, new_uuid(), row["full_name"], opt(row["date_of_birth"]),
                        opt(row["nhs_number"]), opt(row["address"]), opt(row["postcode"]),
                        row["sex"], stamp,
                    )
                )  # fmt: skip
            prefix = f"{'DRD' if row['case_type'] == 'death' else 'NFO'}-{row['notified_on'][:4]}-"
            key = row["area"] + prefix
            counters[key] = counters.get(key, 0) + 1
            cases.append(
                (
                    i + 1, new_uuid(), f"{prefix}{counters[key]:04d}", areas[row["area"]],
                    row["case_type"], "notified", k + 1, agencies.get(row["notifying_agency"]),
                    day(row["notified_on"]), day(row["event_date"]),
                    opt(row["event_time"]) if is_sqlite or not row["event_time"]
                    else datetime.strptime(row["event_time"], "%H:%M").time(),  # noqa: DTZ007
                    row["date_is_found"] == "yes", row["setting"], row["route"],
                    row["naloxone_given"], opt(row["naloxone_by"]),
                    int(row["naloxone_doses"]) if row["naloxone_doses"] else None,
                    opt(row["nfo_outcome"]), row["treatment_status"],
                    row["recent_prison_release"], row["housing_status"],
                    row["children_in_household"],
                    int(row["previous_overdoses"]) if row["previous_overdoses"] else None,
                    opt(row["toxicology"]), opt(row["coroner_stage"]), "none", stamp, 1,
                    secrets.randbelow(256),  # the record key (disclosure control)
                )
            )  # fmt: skip
            links.extend((i + 1, substances[c]) for c in row["substances"].split(";") if c)
            if len(cases) >= batch:
                flush()
        if cases:
            flush()
    cursor.close()
    session.rollback()
    return spent


def _intake(report: Report, coordinator: User, source: Path, raw_seconds: float) -> None:
    from dr_panel.cases.bulk import Mode, import_csv
    from dr_panel.dbtypes import refresh_planner_statistics
    from dr_panel.extensions import db

    n = report.facts["cases"]
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with source.open("rb") as fh, _bar(n, "Bulk intake (fast path)") as bar:
        started = time.perf_counter()
        result = import_csv(
            fh,
            by=coordinator,
            mode=Mode.VALID_ROWS,
            source="bench",
            workers=os.cpu_count() or 1,
            progress=bar.update,
        )
        db.session.commit()
        seconds = time.perf_counter() - started
    # As `dr-panel import` does after every import: fresh planner statistics (not timed above).
    analyze_started = time.perf_counter()
    refresh_planner_statistics(db.session)
    report.facts["analyze_seconds_after_intake"] = round(time.perf_counter() - analyze_started, 2)
    workers = os.cpu_count() or 1
    report.facts["intake"] = {
        "seconds": round(seconds, 2),
        "worker_processes": workers,
        # CPU time per row: this process (linking, writing) and the workers (validation,
        # encryption). Their sum over the cores bounds the rate.
        "cpu_us_per_row_main": round(_cpu(self_before, resource.RUSAGE_SELF) / n * 1e6, 1),
        "cpu_us_per_row_workers": round(
            _cpu(children_before, resource.RUSAGE_CHILDREN) / n * 1e6, 1
        ),
        "imported": result.imported,
        "rejected": result.rejected,
        "duplicates": result.duplicates,
        "linked": result.linked,
        "suggested": result.suggested,
    }
    rate = result.rows / seconds
    raw_rate = n / raw_seconds if raw_seconds else None
    report.add(
        "intake_cases_per_s",
        "Bulk intake incl. encryption and blind indexes",
        rate,
        "cases/s",
        ">= 5000",
        note="CSV read, validation, encryption, blind indexes, linking, duplicate checks, "
        "writes and commit",
    )
    report.add(
        "raw_executemany_cases_per_s",
        "Raw executemany of the same rows, no crypto",
        raw_rate,
        "cases/s",
        note="driver executemany only; identifiers in clear; rolled back",
    )
    report.add(
        "intake_ratio_to_raw",
        "Intake speed as a share of raw executemany",
        (rate / raw_rate) if raw_rate else None,
        "x",
    )


def _cpu(before: Any, who: int) -> float:
    now = resource.getrusage(who)
    return (now.ru_utime + now.ru_stime) - (before.ru_utime + before.ru_stime)


def _lookups(report: Report, synthetic: Synthetic, count: int) -> None:
    from dr_panel.cases.models import MatchStatus
    from dr_panel.cases.services import find_match
    from dr_panel.extensions import db
    from dr_panel.privacy import identity as ident

    numbers = synthetic.nhs_numbers(count)
    times = []
    found = 0
    with _bar(len(numbers), "Lookups by NHS number") as bar:
        for nhs in numbers:
            started = time.perf_counter()
            match = find_match(ident.Identity(full_name="", nhs_number=nhs))
            times.append((time.perf_counter() - started) * 1000)
            found += match.status is MatchStatus.LINKED
            db.session.expunge_all()
            bar.update(1)
    report.facts["lookups"] = {"count": len(numbers), "found": found}
    report.add("lookup_median_ms", "Lookup by NHS number, median", statistics.median(times), "ms",
               "<= 2")  # fmt: skip
    report.add("lookup_p95_ms", "Lookup by NHS number, p95", _percentile(times, 0.95), "ms")

    # The naive way: decrypt every NHS number and compare, on a sample of 10,000 persons.
    persons = db.session.scalar(text("SELECT count(*) FROM persons")) or 0
    sample = min(10_000, persons)
    target = numbers[0] if numbers else ""
    ring = ident.keys()
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        rows = db.session.execute(
            select(_persons().c.uuid, _persons().c.nhs_number_enc)
            .order_by(_persons().c.id)
            .limit(sample)
        ).all()
        hits = 0
        for puuid, enc in rows:
            if (
                enc
                and ring.decrypt(enc, table="persons", column="nhs_number", record=str(puuid))
                == target
            ):
                hits += 1
        runs.append((time.perf_counter() - started) * 1000)
    naive = statistics.median(runs)
    report.add(
        "naive_scan_sample_ms",
        f"Naive decrypt-and-scan of {sample:,} persons, median",
        naive,
        "ms",
    )
    report.add(
        "naive_scan_extrapolated_ms",
        f"Naive scan extrapolated to all {persons:,} persons",
        naive * persons / sample if sample else None,
        "ms",
        note="extrapolation: sample time x persons / sample size",
    )


# A drug alert as coordinators write one (about 2,000 characters over its fields): every word
# is looked up in the surname tokens and paired with each surname found, every house number
# in the address tokens, so this is the identifier detector's ordinary load.
ALERT_FIELDS = {
    "title": "Blue tablets sold as diazepam contain a potent nitazene",
    "what": "Round blue tablets marked DB sold as diazepam or Valium in Blackpool town centre and "
    "around the seafront hostels. Tests by the drug checking service found a nitazene opioid and "
    "bromazolam, a benzodiazepine not licensed in the UK. Several people were taken to A&E "
    "after taking one or two tablets; some needed more than one dose of naloxone.",
    "appearance": "Round, pale blue, scored on one side, marked DB on the other, sold loose or "
    "in small plastic bags of ten. Some are crumbly and uneven in colour.",
    "effects": "Heavy sedation within minutes, pinpoint pupils, slow or stopped breathing, "
    "blue lips, confusion and memory loss lasting many hours. Effects can come back after "
    "naloxone wears off, so people must be watched for several hours.",
    "advice": "Do not use alone. Start with a small amount and wait. Do not mix with alcohol, "
    "other benzodiazepines or opioids. Carry naloxone and know how to use it. If someone will "
    "not wake up, call 999, give naloxone, put them in the recovery position and stay with "
    "them. Talk to FRANK on 0300 123 6600 for free confidential advice.",
    "professionals": "Treatment services: tell everyone on your caseload, offer naloxone and "
    "check that kits are in date. Hostels: check on residents more often overnight. A&E: "
    "consider a nitazene and a benzodiazepine together when naloxone works only for a short "
    "while; send samples for toxicology. Outreach: share the warning on every shift.",
    "where": "Reports since 20 November 2026 came from the town centre, the seafront and two "
    "hostels near the promenade; men aged 30-49 were most affected. Similar tablets were "
    "found in Preston and Lancaster. White and brown powders sold as heroin are being tested "
    "there too.",
    "reporting": "Tell the drug information system about any harm, using the online form or "
    "the professionals' inbox, quoting the alert number. Samples can go to the drug checking "
    "service at the hospital laboratory. We will update this alert as results come in, and "
    "cancel it when the tablets are no longer being seen in the area or anywhere in the region.",
}


def _leak_gate(report: Report, synthetic: Synthetic, runs: int = 10) -> None:
    """The identifier-leak gate (the identifier detector) on a 2,000-character alert at this many
    people: a clean draft (the usual case: every word a token lookup, chance hits decrypted one
    candidate at a time and rejected), and the same with a stored person's name in it
    (blocked). Target: 100 ms median for each."""
    from dr_panel.alerts.leakgate import check_fields
    from dr_panel.extensions import db

    stored = synthetic.person(min(7, max(synthetic.persons - 1, 0)))["full_name"]
    named = dict(ALERT_FIELDS, effects=ALERT_FIELDS["effects"] + f" Ask {stored} about it.")
    figures = {}
    for key, fields in (("clean", ALERT_FIELDS), ("named", named)):
        times, found = [], []
        for _ in range(runs):
            started = time.perf_counter()
            found = check_fields(fields)
            times.append((time.perf_counter() - started) * 1000)
            db.session.expunge_all()
        figures[key] = (statistics.median(times), [f.kind for f in found])
    characters = sum(len(v) for v in ALERT_FIELDS.values())
    report.facts["leak_gate"] = {
        "characters": characters,
        "clean_findings": figures["clean"][1],
        "named_findings": figures["named"][1],
    }
    report.add("leak_gate_clean_ms", f"Leak gate, clean {characters:,}-character alert, median",
               figures["clean"][0], "ms", "<= 100")
    report.add("leak_gate_named_ms", "Leak gate, the same naming a stored person, median",
               figures["named"][0], "ms", "<= 100",
               note="blocked" if "name" in figures["named"][1] else "NOT blocked")


def _persons() -> Any:
    from dr_panel.cases.models import Person

    return Person.__table__


def _case_list_requests(
    report: Report, pages_total: int, deep_after: str | None = None
) -> list[tuple[str, str, str]]:
    deep = max(1, pages_total // 2)
    # The list pages by keyset ("Older cases" continues after the last case shown), so a deep
    # page is the one after the case halfway down the list.
    deep_query = f"after={deep_after}" if deep_after else f"page={deep}"
    return [
        ("case_list_page1", "Case list, page 1", ""),
        ("case_list_deep", f"Case list, page {deep:,} of {pages_total:,} (keyset)", deep_query),
        (
            "case_list_filtered",
            "Case list, filtered (type, area, substance, dates)",
            "type=death&area=E06000009&substance=heroin&since=2025-01-01&until=2025-06-30",
        ),
    ]


def _case_list(report: Report, app: Any, user_id: int, password: str, repeats: int) -> None:
    """Through the test client when the page exists; otherwise the service and pagination it
    will use, inside a request context."""
    from dr_panel.extensions import db

    with app.app_context():
        total = db.session.scalar(text("SELECT count(*) FROM cases")) or 0
    pages_total = max(1, -(-total // app.config["PAGE_SIZE"]))
    with app.app_context():
        from sqlalchemy import select

        from dr_panel.cases.models import Case

        halfway = db.session.scalar(
            select(Case.uuid)
            .order_by(Case.event_date.desc(), Case.id.desc())
            .offset(total // 2)
            .limit(1)
        )
    requests = _case_list_requests(report, pages_total, str(halfway) if halfway else None)
    has_page = "cases.list_cases" in {r.endpoint for r in app.url_map.iter_rules()}
    report.facts["case_list_measured_through"] = (
        "GET /cases through the Flask test client"
        if has_page
        else "services.visible_cases + pagination.paginate in a request context "
        "(the /cases page did not exist yet)"
    )
    timer = _page_timer(app, user_id, password) if has_page else _service_timer(app, user_id)
    with _bar(len(requests) * (repeats + 2), "Case list") as bar:
        for key, label, query in requests:
            times = []
            for i in range(repeats + 2):
                ms = timer(query)
                if i >= 2:  # two warm-up requests
                    times.append(ms)
                bar.update(1)
            report.add(f"{key}_median_ms", f"{label}, median", statistics.median(times), "ms",
                       "<= 50")  # fmt: skip
            report.add(f"{key}_p95_ms", f"{label}, p95", _percentile(times, 0.95), "ms")


def _page_timer(app: Any, user_id: int, password: str) -> Callable[[str], float]:
    from dr_panel.auth.models import User
    from dr_panel.extensions import db

    with app.app_context():
        email = db.session.get_one(User, user_id).email
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": password})
    if response.status_code != 302:
        raise click.ClickException("The benchmark could not sign in to measure the case list.")

    def timed(query: str) -> float:
        started = time.perf_counter()
        response = client.get(f"/cases?{query}")
        ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise click.ClickException(f"GET /cases?{query} answered {response.status_code}.")
        return ms

    return timed


def _service_timer(app: Any, user_id: int) -> Callable[[str], float]:
    from dr_panel.auth.models import User
    from dr_panel.extensions import db
    from dr_panel.pagination import paginate

    def timed(query: str) -> float:
        with app.test_request_context(f"/cases?{query}"):
            started = time.perf_counter()
            user = db.session.get_one(User, user_id)
            page = paginate(_visible(user, query))
            _ = [(c.reference, c.area.name, [s.name for s in c.substances]) for c in page.items]
            return (time.perf_counter() - started) * 1000

    return timed


def _visible(user: User, query: str) -> Any:
    from urllib.parse import parse_qs

    from dr_panel.cases.models import CaseType
    from dr_panel.cases.services import CaseFilter, visible_cases

    args = {k: v[0] for k, v in parse_qs(query).items()}
    return visible_cases(
        user,
        CaseFilter(
            case_type=CaseType(args["type"]) if "type" in args else None,
            area_code=args.get("area"),
            since=date.fromisoformat(args["since"]) if "since" in args else None,
            until=date.fromisoformat(args["until"]) if "until" in args else None,
            substance=args.get("substance"),
        ),
    )


def _plans(report: Report, user_id: int) -> None:
    """EXPLAIN the list's queries as the page runs them (a capped count; newest first, a page
    plus one; the deep page after a keyset anchor halfway down), so a slow page can be traced
    to its plan."""
    from sqlalchemy import tuple_

    from dr_panel.auth.models import User
    from dr_panel.cases.models import Case
    from dr_panel.extensions import db

    user = db.session.get_one(User, user_id)
    dialect = db.session.get_bind().dialect
    explain = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    total = db.session.scalar(text("SELECT count(*) FROM cases")) or 0
    anchor = db.session.execute(
        select(Case.event_date, Case.id)
        .order_by(Case.event_date.desc(), Case.id.desc())
        .offset(total // 2)
        .limit(1)
    ).first()
    page_size = current_page_size()
    for key, _, query in _case_list_requests(report, 10_000):
        stmt = _visible(user, query)
        count = select(func.count()).select_from(
            stmt.order_by(None).with_only_columns(Case.id).limit(10_001).subquery()
        )
        page = stmt
        if key == "case_list_deep" and anchor is not None:
            page = stmt.where(tuple_(Case.event_date, Case.id) < tuple_(*anchor))
        page = page.limit(page_size + 1)
        for name, s in ((f"{key}:count", count), (f"{key}:page", page)):
            sql = str(s.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            rows = db.session.execute(text(explain + sql)).all()
            report.plans[name] = [" | ".join(str(c) for c in r) for r in rows]


def current_page_size() -> int:
    from flask import current_app

    return int(current_app.config["PAGE_SIZE"])


# -- trends (issue 7) -----------------------------------------------------------------------------

# The two trend queries timed: a lead's usual view (one area, monthly, by substance group, over
# three years) and a cross-tabulation over every area (age band by sex).
TREND_FROM, TREND_TO = date(2023, 1, 1), date(2025, 12, 1)


def _trend_queries(lead: User) -> tuple[str, dict[str, Callable[[], Any]]]:
    """How each trend query is answered: through ``dr_panel.trends.queries.run`` for a lead
    (what a user waits for) when it exists, else by SQL over ``trend_counts``."""
    from dr_panel.extensions import db

    try:
        from dr_panel.trends import queries
    except ImportError:
        queries = None  # type: ignore[assignment]
    if queries is not None and hasattr(queries, "run") and hasattr(queries, "parse_query"):
        calls: dict[str, Callable[[], Any]] = {}
        for key, args in (
            (
                "month_group",
                {"measure": "count", "by": "period,substance_group", "grain": "month",
                 "from": "2023-01", "to": "2025-12", "area": AREAS[0][0]},
            ),
            ("age_sex", {"measure": "count", "by": "age_band,sex"}),
        ):  # fmt: skip
            query, errors = queries.parse_query(args)
            if errors:
                break
            calls[key] = functools.partial(queries.run, query, lead)
        else:
            return ("dr_panel.trends.queries.run for a lead, with disclosure control on (cell "
                    "key perturbation, then NHS Digital's rounding)"), calls
    area_id = db.session.scalar(
        text("SELECT id FROM areas WHERE ons_code = :c"), {"c": AREAS[0][0]}
    )
    month_group = text(
        "SELECT month, val_a, SUM(n) FROM trend_counts WHERE dim_a = 'substance_group' "
        "AND dim_b = '' AND area_id = :area AND month BETWEEN :lo AND :hi "
        "GROUP BY month, val_a ORDER BY month, val_a"
    )
    age_sex = text(
        "SELECT val_a, val_b, SUM(n) FROM trend_counts WHERE dim_a = 'age_band' "
        "AND dim_b = 'sex' GROUP BY val_a, val_b ORDER BY val_a, val_b"
    )
    return "SQL over trend_counts (dr_panel.trends.queries not available)", {
        "month_group": lambda: db.session.execute(
            month_group, {"area": area_id, "lo": TREND_FROM, "hi": TREND_TO}
        ).all(),
        "age_sex": lambda: db.session.execute(age_sex).all(),
    }


def _trend_duckdb() -> tuple[Any, dict[str, str]]:
    """The same aggregations over the case rows themselves, in DuckDB: the rows are read from
    the database into DuckDB first (not timed), the aggregations are timed."""
    import duckdb
    import pandas as pd

    from dr_panel.extensions import db

    conn = db.session.connection()
    duck = duckdb.connect()
    # In chunks, so that a million rows never sit in memory as Python objects at once.
    for name, sql in (
        ("cases", "SELECT id, area_id, event_date, status, person_id, age_band FROM cases"),
        ("persons", "SELECT id, sex FROM persons"),
        ("case_substances", "SELECT case_id, substance_id FROM case_substances"),
        ("substances", 'SELECT id, "group" AS grp FROM substances'),
        ("areas", "SELECT id, ons_code FROM areas"),
    ):
        for i, frame in enumerate(pd.read_sql_query(text(sql), conn, chunksize=100_000)):
            if "event_date" in frame:
                frame["event_date"] = pd.to_datetime(frame["event_date"])
            duck.register("chunk", frame)
            duck.execute(
                f"CREATE TABLE {name} AS SELECT * FROM chunk"  # noqa: S608  (names above)
                if i == 0
                else f"INSERT INTO {name} SELECT * FROM chunk"  # noqa: S608
            )
            duck.unregister("chunk")
            del frame
    lo, hi = TREND_FROM.isoformat(), date(2025, 12, 31).isoformat()
    return duck, {
        # A case mentioning two substances of a group counts once under it; none: "none".
        "month_group": f"""
            SELECT CAST(date_trunc('month', c.event_date) AS DATE) AS month,
                   COALESCE(s.grp, 'none') AS grp, COUNT(DISTINCT c.id)
            FROM cases c JOIN areas a ON a.id = c.area_id
            LEFT JOIN case_substances cs ON cs.case_id = c.id
            LEFT JOIN substances s ON s.id = cs.substance_id
            WHERE a.ons_code = '{AREAS[0][0]}' AND c.status <> 'duplicate'
              AND c.event_date BETWEEN DATE '{lo}' AND DATE '{hi}'
            GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608  (constants only)
        "age_sex": """
            SELECT COALESCE(c.age_band, 'unknown'), p.sex, COUNT(*)
            FROM cases c JOIN persons p ON p.id = c.person_id
            WHERE c.status <> 'duplicate'
            GROUP BY 1, 2 ORDER BY 1, 2""",
    }


def _trends(report: Report, runs: int) -> None:
    from dr_panel.auth import services as accounts
    from dr_panel.auth.models import Role
    from dr_panel.extensions import db

    lead, _ = accounts.create_user(
        accounts.AccountDetails(
            email="bench.lead@example.org",
            display_name="Bench Lead",
            role=Role.LEAD,
            area_codes=[code for code, _ in AREAS],
        ),
        password=secrets.token_urlsafe(24),
        by=None,
        must_change=False,
    )
    db.session.commit()
    how, calls = _trend_queries(lead)
    duck, duck_sql = _trend_duckdb()
    labels = {
        "month_group": "Trend query, protected: one area, month x substance group, 3 years",
        "age_sex": "Trend query, protected: all areas, age band x sex",
    }
    facts: dict[str, Any] = {
        "answered_by": how,
        "trend_count_rows": db.session.scalar(text("SELECT count(*) FROM trend_counts")),
        "runs": runs,
    }
    with _bar(2 * runs, "Trend queries") as bar:
        for key, call in calls.items():
            call()  # warm the cache, as a second visitor would find it
            ours = []
            for _ in range(runs):
                started = time.perf_counter()
                call()
                ours.append((time.perf_counter() - started) * 1000)
                bar.update(1)
            duck.execute(duck_sql[key]).fetchall()
            theirs = []
            for _ in range(runs):
                started = time.perf_counter()
                duck.execute(duck_sql[key]).fetchall()
                theirs.append((time.perf_counter() - started) * 1000)
            median, duck_median = statistics.median(ours), statistics.median(theirs)
            report.add(f"trend_{key}_median_ms", f"{labels[key]}, median", median, "ms",
                       "<= 200", note=how)  # fmt: skip
            report.add(f"trend_{key}_duckdb_ms", "  DuckDB, same aggregation over the case rows",
                       duck_median, "ms")  # fmt: skip
            report.add(f"trend_{key}_ratio", "  ours / DuckDB", median / duck_median, "x")
            facts[key] = {"p95_ms": round(_percentile(ours, 0.95), 2)}
            table = call()
            if hasattr(table, "exact"):
                # Protection was on: a lead's figures, never exact; and the total a cell of its
                # own, the same however often it is asked.
                facts[key]["protected"] = not table.exact
                facts[key]["same_total_twice"] = table.total == call().total
    if how.startswith("SQL"):
        # Same numbers both ways: the pre-aggregated counts against DuckDB's count of the rows.
        for key in calls:
            ours_rows = {(str(r[0])[:10], r[1]): r[2] for r in calls[key]()}
            duck_rows = {
                (str(r[0])[:10], r[1]): r[2] for r in duck.execute(duck_sql[key]).fetchall()
            }
            facts[key]["same_as_duckdb"] = ours_rows == duck_rows
    duck.close()
    report.facts["trends"] = facts


# -- spike scan (issue 6) -----------------------------------------------------------------------

SPIKE_AREAS = 10
SPIKE_YEARS = 6
SPIKE_GROUPS = (
    "opioids", "stimulants", "benzodiazepines", "gabapentinoids", "alcohol",
    "synthetic_cannabinoids", "other", "none",
)  # fmt: skip


def _spike_scan(report: Report, events: int, seed: int) -> None:
    """The LDIS spike scan over every area x case type x substance group series: ``events``
    synthetic events spread over 10 areas x 6 years x 2 case types x 8 substance groups, written
    straight into ``daily_counts`` (as ``dr_panel.trends.aggregates`` keeps it), with a few
    spikes planted. Timed: reading every series and running EARS C1, C2, C3 and Poisson over
    every day of them. For context: the daily cron scan (14 days, storing the signals)."""
    import numpy as np

    from dr_panel.alerts import signals as sig
    from dr_panel.dbtypes import refresh_planner_statistics, utcnow
    from dr_panel.extensions import db
    from dr_panel.reference.models import Area
    from dr_panel.trends.models import DailyCount

    rng = np.random.default_rng(seed)
    areas = [Area(ons_code=f"E09{900000 + i:06d}", name=f"Bench spike area {i + 1}")
             for i in range(SPIKE_AREAS)]  # fmt: skip
    db.session.add_all(areas)
    db.session.flush()
    end = utcnow().date()
    n_days = 365 * SPIKE_YEARS
    start = end - timedelta(days=n_days - 1)
    lam = events / (SPIKE_AREAS * 2 * n_days)
    group_p = np.array([0.4, 0.2, 0.1, 0.08, 0.08, 0.04, 0.05, 0.05])
    rows: list[dict[str, Any]] = []
    total = 0
    for area in areas:
        for case_type in ("nfo", "death"):
            share = 0.8 if case_type == "nfo" else 0.2
            daily = rng.poisson(lam * 2 * share, n_days)
            daily[rng.integers(0, n_days, 3)] += rng.integers(5, 30, 3)  # planted spikes
            total += int(daily.sum())
            by_group = np.array([rng.multinomial(n, group_p) for n in daily])
            for d in np.nonzero(daily)[0].tolist():
                day = start + timedelta(days=d)
                rows.append({"area_id": area.id, "day": day, "case_type": case_type,
                             "substance_group": "*", "n": int(daily[d])})  # fmt: skip
                for g, n in enumerate(by_group[d].tolist()):
                    if n:
                        rows.append({"area_id": area.id, "day": day, "case_type": case_type,
                                     "substance_group": SPIKE_GROUPS[g], "n": n})  # fmt: skip
    db.session.execute(DailyCount.__table__.delete().where(
        DailyCount.area_id.in_([a.id for a in areas])))  # fmt: skip
    for i in range(0, len(rows), 20_000):
        db.session.execute(DailyCount.__table__.insert(), rows[i : i + 20_000])
    db.session.commit()
    refresh_planner_statistics(db.session)
    # The target: the scan the product runs (`dr-panel signals scan`, cron): every series of
    # every area, its 14-day look-back tested by every method, the signals stored. It reads only
    # the weeks the methods need, however long the history. Each run is rolled back, so every
    # run finds and stores the same signals.
    timings, cpu = [], []
    for _ in range(3):
        started, cpu_started = time.perf_counter(), time.process_time()
        cron = sig.scan(end)
        db.session.flush()
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        db.session.rollback()
    report.add("spike_scan_seconds",
               f"Spike scan (signals scan: every series, 14 days tested; {total:,} events "
               "stored)", statistics.median(timings), "s", "<= 1",
               note="median of 3; reads the series, runs C1/C2/C3/Poisson, stores the signals")
    report.add("spike_scan_cpu_seconds", "  CPU time of the same scan (median of 3)",
               statistics.median(cpu), "s")
    # For context, no target: every day of the whole history through every method, as a
    # rescan after changing the settings would.
    started = time.perf_counter()
    n_series, days, alarms = sig.full_scan(start, end)
    report.add("spike_scan_full_history_seconds",
               f"  full-history rescan, {n_series} series x {days} days (context)",
               time.perf_counter() - started, "s")
    report.facts["spike_scan"] = {
        "events": total, "daily_count_rows": len(rows), "series": n_series, "days": days,
        "alarms_by_method_full_history": alarms,
        "runs_seconds": [round(t, 3) for t in timings],
        "runs_cpu_seconds": [round(t, 3) for t in cpu],
        "scan_new_signals": cron.new,
    }  # fmt: skip


# -- alert fan-out (issue 6, the broadcast) -----------------------------------------------------

FANOUT_EMAILS = 10_000  # at the full 1,000,000 cases; smaller runs scale it down
FANOUT_HOOKS = 1_000


def fanout_size(n_cases: int) -> tuple[int, int]:
    """E-mails and webhooks for a run of ``n_cases``: the issue's 10,000 + 1,000 at a million
    cases, in proportion below (at least 20 + 2), so a small run stays small."""
    share = min(1.0, n_cases / 1_000_000)
    return max(20, round(FANOUT_EMAILS * share)), max(2, round(FANOUT_HOOKS * share))


class _DiscardingSmtp:
    """aiosmtpd handler: accepts and drops every message, counting them."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 OK"


def _serve_receivers(smtp_port: int, http_port: int, counter: Any, ready: Any) -> None:
    """In a child process (so the receivers never compete with the worker for the GIL): a
    discarding SMTP server and a fast HTTP server answering 204 to any POST (1,000 endpoints
    are 1,000 paths on it)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from aiosmtpd.controller import Controller

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # the listen backlog: the worker connects many at once

    http = Server(("127.0.0.1", http_port), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    controller = Controller(_DiscardingSmtp(counter), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    ready.set()
    threading.Event().wait()  # until terminated


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fanout_receivers() -> tuple[Any, Any, int, int]:
    import multiprocessing

    try:
        import aiosmtpd  # noqa: F401
    except ImportError:  # a test dependency
        raise click.ClickException(
            "The fan-out benchmark needs aiosmtpd: pip install 'dr-panel[test]'."
        ) from None
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    ready = ctx.Event()
    smtp_port, http_port = _free_port(), _free_port()
    proc = ctx.Process(target=_serve_receivers, args=(smtp_port, http_port, counter, ready),
                       daemon=True)  # fmt: skip
    proc.start()
    if not ready.wait(60):
        proc.terminate()
        raise click.ClickException("The benchmark's local receivers did not start.")
    return proc, counter, smtp_port, http_port


def _fanout(
    report: Report, app: Any, coordinator_id: int, emails: int = FANOUT_EMAILS,
    hooks: int = FANOUT_HOOKS,
) -> None:
    """One alert to 10,000 e-mail subscribers and 1,000 webhook endpoints on local receivers,
    end to end: from the transaction that issues the version and queues every delivery (the
    outbox) to the last delivery recorded as sent, by the worker's own rounds
    (``broadcast.deliver``: one SMTP connection per batch, webhooks from a thread pool, each
    delivery recorded in its own transaction). Compared with sending the same 10,000 e-mails
    with bare ``smtplib`` on one connection and recording nothing."""
    import json as json_mod
    import smtplib
    import uuid as uuid_mod
    from dataclasses import replace

    from dr_panel.alerts import broadcast, webhooks
    from dr_panel.alerts.models import (
        Alert,
        AlertLevel,
        AlertStatus,
        AlertVersion,
        Channel,
        Delivery,
        DeliveryStatus,
        MsgType,
        Scope,
        Subscriber,
        subscriber_areas,
    )
    from dr_panel.alerts.subscribers import encrypt_secret
    from dr_panel.dbtypes import utcnow
    from dr_panel.extensions import db
    from dr_panel.mail.transports import build_message
    from dr_panel.reference.models import Area

    receivers, received, smtp_port, http_port = _fanout_receivers()
    try:
        config = replace(
            TestingConfig(),
            INSTANCE_PATH=app.config["INSTANCE_PATH"],
            SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
            KEYS_FILE=app.config["KEYS_FILE"],
            MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_port,
            MAIL_USE_STARTTLS=False, MAIL_SEND_AFTER_REQUEST=False,
        )  # fmt: skip
        from dr_panel import create_app

        fan_app = create_app(config)
        with fan_app.app_context():
            area_id = db.session.scalar(select(Area.id).where(Area.ons_code == AREAS[0][0]))
            assert area_id is not None
            now = utcnow()
            rows = [
                {"uuid": uuid_mod.uuid4(), "channel": Channel.EMAIL, "name": f"Bench team {i}",
                 "email": f"team{i}@bench.example.org", "url": None, "audiences": "[]",
                 "receives_restricted": True, "is_active": True, "consecutive_failures": 0,
                 "created_at": now}
                for i in range(emails)
            ] + [
                {"uuid": uuid_mod.uuid4(), "channel": Channel.WEBHOOK, "name": f"Bench hook {i}",
                 "url": f"http://127.0.0.1:{http_port}/hooks/{i}", "email": None,
                 "audiences": "[]",
                 "receives_restricted": True, "is_active": True, "consecutive_failures": 0,
                 "created_at": now}
                for i in range(hooks)
            ]  # fmt: skip
            db.session.execute(Subscriber.__table__.insert(), rows)
            subs = db.session.scalars(select(Subscriber)).all()
            db.session.execute(subscriber_areas.insert(), [
                {"subscriber_id": s.id, "area_id": area_id} for s in subs])  # fmt: skip
            for s in subs:
                if s.channel == Channel.WEBHOOK:
                    s.secret_enc = encrypt_secret(s, "secret", webhooks.new_secret())
            db.session.commit()
            db.session.expunge_all()
            content = {
                "title": "Bench alert: strong blue tablets sold as diazepam",
                "substance": "Suspected nitazene", "sold_as": "Diazepam",
                "appearance": "Blue round tablets", "adulterant": "Nitazene suspected",
                "signs_of_harm": "Pinpoint pupils, slow breathing",
                "advice": "Do not use alone; carry naloxone",
                "professional_actions": "Share with clients; keep naloxone at hand",
                "counts": "Fewer than 8 people needed hospital care",
            }  # fmt: skip

            started = time.perf_counter()
            # The issue transaction: freeze the version and queue every delivery together.
            alert = Alert(reference="BENCH-1", created_by_id=coordinator_id, area_id=area_id,
                          status=AlertStatus.ISSUED)  # fmt: skip
            version = AlertVersion(number=1, msg_type=MsgType.ALERT,
                                   level=AlertLevel.URGENT_ALERT, scope=Scope.RESTRICTED,
                                   content=json_mod.dumps(content), audiences="[]",
                                   drafted_by_id=coordinator_id, issued_at=utcnow())  # fmt: skip
            version.areas = [db.session.get_one(Area, area_id)]
            alert.versions.append(version)
            db.session.add(alert)
            db.session.flush()
            queued = broadcast.queue_deliveries(version)
            db.session.commit()
            issued = time.perf_counter() - started
            rounds = 0
            sent = 0
            while True:
                r = broadcast.deliver()
                rounds += 1
                sent += r.sent
                if r.remaining == 0 or (r.sent == 0 and r.failed == 0 and r.gave_up == 0):
                    break
            total = time.perf_counter() - started
            by_status = dict(db.session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)).all())  # fmt: skip
            unsent = queued - int(by_status.get(DeliveryStatus.SENT, 0))

        # The same 10,000 e-mails with bare smtplib on one connection, nothing recorded.
        with fan_app.app_context():
            sample = build_message(uuid=str(uuid_mod.uuid4()), sender=config.MAIL_FROM,
                                   to="team0@bench.example.org", subject=content["title"],
                                   text="\n\n".join(content.values()) + "\n" * 40,
                                   html="<p>" + "</p><p>".join(content.values()) + "</p>")
        payload = sample.as_bytes()
        before = received.value
        bare_started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            for i in range(emails):
                smtp.sendmail(config.MAIL_FROM, [f"team{i}@bench.example.org"], payload)
        bare = time.perf_counter() - bare_started
        bare_received = received.value - before
    finally:
        receivers.terminate()
        receivers.join(10)
    report.add("fanout_seconds",
               f"Alert fan-out to {emails:,} e-mails + {hooks:,} webhooks",
               total, "s", "<= 60",
               note=f"issue to last delivery recorded; {rounds} worker rounds; "
               f"{unsent} not sent")  # fmt: skip
    report.add("fanout_bare_smtplib_seconds",
               f"  bare smtplib, {emails:,} e-mails on one connection", bare, "s")
    report.add("fanout_ratio_to_bare_smtplib", "  fan-out / bare smtplib", total / bare, "x")
    report.facts["fanout"] = {
        "emails": emails, "webhooks": hooks, "queued": queued,
        "issue_transaction_seconds": round(issued, 3), "rounds": rounds, "sent": sent,
        "by_status": {str(k.value if hasattr(k, "value") else k): v
                      for k, v in by_status.items()},
        "smtp_messages_received": received.value - bare_received,
        "bare_smtplib_received": bare_received,
        "bare_smtplib_seconds": round(bare, 3), "ratio": round(total / bare, 2),
    }  # fmt: skip
