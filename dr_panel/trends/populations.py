"""Population denominators: ONS mid-year estimates by area, year, sex and single year of age.

Two doors, one service: ``dr-panel populations import FILE`` and the upload page at
``/trends/populations`` both call ``import_csv``. Two layouts are read:

- the ONS "MYEB2" layout, one row per area, sex and age with a column per year:
  ``ladcode23,laname23,sex,age,population_2020,population_2021,...`` (sex 1 = male,
  2 = female; age 0..90, 90 meaning 90 and over; any ``ladcodeNN``/``lanameNN`` vintage);
- a long layout, one row per area, year, sex and age: ``ladcode,year,sex,age,population``.

Every row is checked and every problem reported with its row number (the header is row 1), its
column, what is wrong and how to fix it. Nothing is saved when any row fails, so a half-imported
year can never skew a rate. Rows already held for an (area, year, sex, age) are replaced. Values
from the file are never echoed into logs or messages (an unknown area code is reported by its
row, not repeated), and the import is audited.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
from flask.cli import with_appcontext
from sqlalchemy import func, select, tuple_

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record, record_now
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import ONS_CODE_RE, Area
from dr_panel.trends.models import Population

if TYPE_CHECKING:
    from dr_panel.auth.models import User

log = logging.getLogger("dr_panel.trends")

MAX_AGE = 90
FIRST_YEAR, LAST_YEAR = 1971, 2100
MAX_POPULATION = 20_000_000  # one sex and age in one area: far above any real figure
SEXES = {"1": "male", "2": "female", "m": "male", "f": "female", "male": "male",
         "female": "female"}
YEAR_COLUMN = re.compile(r"^population_(\d{4})$")
CODE_COLUMN = re.compile(r"^ladcode(\d{2})?$")
NAME_COLUMN = re.compile(r"^laname(\d{2})?$")
LONG_COLUMNS = ("ladcode", "year", "sex", "age", "population")
#: A complete area-year: ages 0..90 for both sexes.
FULL_YEAR = (MAX_AGE + 1) * 2

Progress = Callable[[int, int], None]


class FileRefused(ValueError):
    """The file as a whole cannot be read (not CSV, wrong columns); the message says how to fix
    it and quotes nothing from the file."""


@dataclass(frozen=True)
class Problem:
    row: int | None  # as a spreadsheet numbers it (the header is row 1); None: the whole file
    column: str | None
    message: str


@dataclass(frozen=True)
class PopulationRow:
    row: int
    area_code: str
    year: int
    sex: str
    age: int
    population: int


@dataclass
class ImportResult:
    rows: int = 0  # figures read (a wide row holds one per year column)
    inserted: int = 0
    updated: int = 0
    problems: list[Problem] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    years: list[int] = field(default_factory=list)
    layout: str = ""

    @property
    def saved(self) -> bool:
        return not self.problems and (self.inserted + self.updated) > 0


def _norm(name: str | None) -> str:
    return (name or "").strip().lstrip("\ufeff").strip().lower()


def _int(raw: str | None) -> int | None:
    text = (raw or "").strip().replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[0-9]{1,12}", text):  # ASCII; int() refuses 4,300+ digits
        return None
    return int(text)


def _text_stream(stream: IO[Any]) -> io.TextIOBase:
    data = stream.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise FileRefused(
                "The file is not UTF-8 text. Save it as 'CSV UTF-8 (Comma delimited)' and try "
                "again."
            ) from None
    return io.StringIO(data.lstrip("\ufeff"))


def parse_csv(stream: IO[Any]) -> tuple[list[PopulationRow], list[Problem], str]:
    """Read either layout. Returns the figures, the problems found, and the layout's name."""
    reader = csv.reader(_text_stream(stream))
    try:
        header = next(reader)
    except StopIteration:
        raise FileRefused("The file is empty. Export the estimates with their header row.") \
            from None
    except csv.Error:
        raise FileRefused("The file is not a readable CSV file. Save it as CSV and retry.") \
            from None
    names = [_norm(h) for h in header]
    code_col = next((i for i, n in enumerate(names) if CODE_COLUMN.match(n)), None)
    year_cols = {i: int(m.group(1)) for i, n in enumerate(names) if (m := YEAR_COLUMN.match(n))}
    if code_col is None or "sex" not in names or "age" not in names:
        raise FileRefused(
            "The header must name the columns ladcode (or ladcode23), sex and age, then either "
            "population_YYYY columns (the ONS mid-year estimates layout) or year and population "
            "(the long layout). Check the first row of the file."
        )
    wide = bool(year_cols)
    if any(not FIRST_YEAR <= y <= LAST_YEAR for y in year_cols.values()):
        raise FileRefused(f"Year columns must be named population_YYYY with a year from "
                          f"{FIRST_YEAR} to {LAST_YEAR}. Check the first row of the file.")
    if not wide and not {"year", "population"} <= set(names):
        raise FileRefused(
            "No population figures: add population_YYYY columns (one per year, the ONS "
            "layout) or the two columns year and population (the long layout)."
        )
    col = {n: i for i, n in enumerate(names)}
    code_name = names[code_col]
    out: list[PopulationRow] = []
    problems: list[Problem] = []
    try:
        for line_no, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue

            def cell(i: int, values: list[str] = values) -> str:
                return values[i].strip() if i < len(values) else ""

            row_problems: list[Problem] = []
            code = cell(code_col).upper()
            if not code:
                row_problems.append(Problem(line_no, code_name, "The area code is missing. "
                                            "Enter the area's ONS code, like E06000009."))
            elif not ONS_CODE_RE.match(code):
                row_problems.append(Problem(line_no, code_name, "This is not an ONS area code. "
                                            "Use a letter and 8 digits, like E06000009."))
            sex = SEXES.get(cell(col["sex"]).lower())
            if sex is None:
                row_problems.append(Problem(line_no, "sex", "Sex must be 1 (male) or 2 "
                                            "(female), as in the ONS file."))
            raw_age = cell(col["age"])
            age = _int(raw_age[:-1] if raw_age == f"{MAX_AGE}+" else raw_age)
            if age is None or age > MAX_AGE:
                row_problems.append(Problem(line_no, "age", f"Age must be a whole number from 0 "
                                            f"to {MAX_AGE} ({MAX_AGE} means {MAX_AGE} and "
                                            "over)."))
            figures: list[tuple[int, str, str]] = []  # (year, column, raw)
            if wide:
                figures = [(y, names[i], cell(i)) for i, y in sorted(year_cols.items())]
            else:
                year = _int(cell(col["year"]))
                if year is None or not FIRST_YEAR <= year <= LAST_YEAR:
                    row_problems.append(Problem(line_no, "year", f"Year must be a four-digit "
                                                f"year from {FIRST_YEAR} to {LAST_YEAR}."))
                else:
                    figures = [(year, "population", cell(col["population"]))]
            parsed: list[tuple[int, int]] = []
            for year, column, raw in figures:
                value = _int(raw)
                if value is None or value > MAX_POPULATION:
                    row_problems.append(Problem(line_no, column, "The population must be a "
                                                "whole number, 0 or more, without decimals."))
                else:
                    parsed.append((year, value))
            problems.extend(row_problems)
            if not row_problems and sex is not None and age is not None:
                out.extend(PopulationRow(line_no, code, y, sex, age, v) for y, v in parsed)
    except csv.Error:
        raise FileRefused("The file stops being valid CSV part-way through (an unclosed quote?). "
                          "Save it again as CSV and retry.") from None
    return out, problems, "ons-wide" if wide else "long"


def check_rows(
    rows: list[PopulationRow], allowed: set[str] | None
) -> tuple[dict[str, Area], list[Problem]]:
    """Areas known (and allowed) and no (area, year, sex, age) twice. ``allowed``: the areas
    the importer may load, or None for every area in dr-panel."""
    areas = {a.ons_code: a for a in db.session.scalars(select(Area))}
    problems: list[Problem] = []
    seen: dict[tuple[str, int, str, int], int] = {}
    reported: set[int] = set()
    for r in rows:
        if r.area_code not in areas:
            if r.row not in reported:
                problems.append(Problem(r.row, "ladcode", "This area code is not an area in "
                                        "dr-panel. Check the code, or ask your system "
                                        "administrator to add the area first."))
                reported.add(r.row)
            continue
        if allowed is not None and r.area_code not in allowed:
            if r.row not in reported:
                problems.append(Problem(r.row, "ladcode", "This area is not one of yours. Take "
                                        "out the rows of other areas, or ask their lead or a "
                                        "system administrator to import them."))
                reported.add(r.row)
            continue
        key = (r.area_code, r.year, r.sex, r.age)
        if key in seen:
            if r.row not in reported:  # once a row, however many year columns it has
                problems.append(Problem(r.row, "age", f"Row {seen[key]} already gives this "
                                        "area, year, sex and age. Keep one of the two rows."))
                reported.add(r.row)
        else:
            seen[key] = r.row
    return areas, problems


def _completeness(rows: list[PopulationRow], areas: dict[str, Area]) -> list[Problem]:
    """Every area-year must end up with all ages 0..90 for both sexes (from the file, or
    already held), or its rates would quietly be too high."""
    keys: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for r in rows:
        keys.setdefault((r.area_code, r.year), set()).add((r.sex, r.age))
    problems = []
    for (code, year), have in sorted(keys.items()):
        if len(have) == FULL_YEAR:
            continue
        held = db.session.execute(
            select(Population.sex, Population.age).where(
                Population.area_id == areas[code].id, Population.year == year
            )
        ).all()
        have |= {(s, a) for s, a in held}
        if len(have) < FULL_YEAR:
            problems.append(Problem(None, None, (
                f"{areas[code].name}, {year}: {FULL_YEAR - len(have)} of the {FULL_YEAR} "
                f"figures (ages 0 to {MAX_AGE}, female and male) are missing. Import the whole "
                "year for the area, so that its rates are not worked out on part of the "
                "population."
            )))
    return problems


def import_csv(
    stream: IO[Any],
    *,
    by: User | None,
    source: str,
    allowed_areas: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Validate the whole file, then upsert every figure, or nothing. The caller commits.
    ``allowed_areas``: ONS codes the importer may load (None: any area, for the CLI and
    admins). A refused import is audited at once (its own transaction), a saved one with the
    change."""
    try:
        rows, problems, layout = parse_csv(stream)
    except FileRefused:
        record_now("populations.import", outcome=Outcome.FAILURE, actor=by,
                   details={"source": source, "refused": "file"})
        raise
    allowed = None if allowed_areas is None else set(allowed_areas)
    areas, more = check_rows(rows, allowed)
    problems = sorted([*problems, *more], key=lambda p: (p.row or 0, p.column or ""))
    result = ImportResult(rows=len(rows), layout=layout)
    if not problems:
        problems = _completeness(rows, areas)
    if not rows and not problems:
        problems = [Problem(None, None, "The file has a header but no figures. Add the rows of "
                            "population estimates below the header.")]
    if problems:
        result.problems = problems
        record_now(
            "populations.import",
            outcome=Outcome.FAILURE,
            actor=by,
            details={"source": source, "layout": layout, "figures": len(rows),
                     "problems": len(problems)},
        )
        return result
    _upsert(rows, areas, result, progress)
    result.areas = sorted({r.area_code for r in rows})
    result.years = sorted({r.year for r in rows})
    record(
        "populations.import",
        actor=by,
        details={"source": source, "layout": layout, "inserted": result.inserted,
                 "updated": result.updated, "areas": result.areas, "years": result.years},
    )
    log.info("populations imported (%s): %d new, %d replaced", source, result.inserted,
             result.updated)
    return result


def _upsert(rows: list[PopulationRow], areas: dict[str, Area], result: ImportResult,
            progress: Progress | None) -> None:
    pairs = {(areas[r.area_code].id, r.year) for r in rows}
    existing: dict[tuple[int, int, str, int], Population] = {}
    for chunk in _chunks(sorted(pairs), 200):
        for p in db.session.scalars(
            select(Population).where(tuple_(Population.area_id, Population.year).in_(chunk))
        ):
            existing[(p.area_id, p.year, p.sex, p.age)] = p
    now = utcnow()
    new = []
    for done, r in enumerate(rows, 1):
        key = (areas[r.area_code].id, r.year, r.sex, r.age)
        held = existing.get(key)
        if held is None:
            new.append(Population(area_id=key[0], year=r.year, sex=r.sex, age=r.age,
                                  population=r.population, imported_at=now))
            result.inserted += 1
        else:
            if held.population != r.population:
                held.population = r.population
            held.imported_at = now
            result.updated += 1
        if progress is not None and (done % 500 == 0 or done == len(rows)):
            progress(done, len(rows))
    db.session.add_all(new)
    db.session.flush()


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def held_summary() -> list[dict[str, Any]]:
    """What is held: per area, the years with a complete population and its total."""
    rows = db.session.execute(
        select(Area.ons_code, Area.name, Population.year, func.sum(Population.population),
               func.count(), func.max(Population.imported_at))
        .join(Area, Area.id == Population.area_id)
        .group_by(Area.ons_code, Area.name, Population.year)
        .order_by(Area.name, Population.year)
    ).all()
    return [
        {"code": c, "name": n, "year": y, "population": int(total), "complete": k == FULL_YEAR,
         "imported_at": at}
        for c, n, y, total, k, at in rows
    ]


def sample_csv_path() -> Path:
    return Path(__file__).resolve().parent.parent / "demo" / "populations.csv"


def load_demo_populations() -> int:
    """Import the synthetic sample for the three demo areas, once (``dr-panel demo load``).
    Returns the number of figures saved; 0 when populations are already held."""
    if db.session.scalar(select(func.count()).select_from(Population)):
        return 0
    with sample_csv_path().open("rb") as fh:
        result = import_csv(fh, by=None, source="demo")
    if not result.saved:
        db.session.rollback()
        raise RuntimeError(f"the demo populations did not load ({len(result.problems)} problems)")
    db.session.commit()
    return result.inserted + result.updated


# -- the command line ---------------------------------------------------------------------------


@click.group("populations")
def populations_cli() -> None:
    """Population estimates, the denominators of rates."""


@populations_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_command(path: Path) -> None:
    """Import ONS mid-year estimates (or the long layout) from a CSV file, for any area.

    Every problem is printed with its row and column; with any problem nothing is saved and
    the exit code is 1."""
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="Saving figures", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        with path.open("rb") as fh:
            result = import_csv(fh, by=None, source="cli", progress=progress)
    except FileRefused as err:
        db.session.rollback()
        raise click.ClickException(str(err)) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if not result.saved:
        db.session.rollback()
        for p in result.problems:
            where = f"Row {p.row}" if p.row else "File"
            click.echo(f"{where}{', ' + p.column if p.column else ''}: {p.message}")
        click.echo(f"Nothing was imported: {len(result.problems)} problem"
                   f"{'s' if len(result.problems) != 1 else ''}. Fix them and import the whole "
                   "file again.")
        sys.exit(1)
    db.session.commit()
    click.echo(f"Imported {result.inserted + result.updated} figures ({result.inserted} new, "
               f"{result.updated} replaced) for {', '.join(result.areas)}, "
               f"{result.years[0]}-{result.years[-1]}.")
