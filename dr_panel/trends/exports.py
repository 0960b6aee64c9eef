"""CSV and XLSX files of trend tables and of the record-level extract.

Exports are services (STYLE.md): the figures arrive already protected (a ``TrendTable`` from
``queries.run`` holds only ``Shown`` counts; an ``Extract`` is already k-anonymous), text cells
are neutralised against formula injection, the audit entry is written, then the bytes are
returned for the view to stream. The caller commits.

Where the metadata goes (what spreadsheet users expect):

- XLSX: the figures on a "Data" sheet (one header row, nothing else, so filters and pivot
  tables work), and a "Metadata" sheet of item / value rows: what the file counts and over which
  period, the definitions of the columns, the disclosure rule applied, who generated it (role and
  user UUID; never an e-mail address or name) and when (UTC).
- CSV: the same metadata as ``#``-prefixed lines at the top (``# item,value``), then the header
  row and the figures. Spreadsheets show them as the first rows; ``pandas.read_csv(path,
  comment="#")`` and R's ``read.csv(comment.char="#")`` skip them. UTF-8 with a byte-order mark,
  so Excel reads the text correctly.

Neutralising: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
would be run as a formula by a spreadsheet, so it gets a leading ``'`` (OWASP's advice). Numbers
stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from sqlalchemy import select

from dr_panel.audit.services import record
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.reference.models import Area
from dr_panel.trends.queries import DIMENSION_LABELS

if TYPE_CHECKING:
    from dr_panel.auth.models import User
    from dr_panel.trends.extract import Extract

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
SUBSTANCE_NOTE = (
    "A case mentioning two substances counts under each, so counts by substance (or substance "
    "group) add up to more than the number of cases."
)


class ExportError(ValueError):
    """A file that cannot be made; the message says what to change."""


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    filename: str
    mimetype: str

    def __repr__(self) -> str:
        return f"<ExportFile {self.filename} {len(self.content)} bytes>"


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert with a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


@dataclass(frozen=True)
class Sheet:
    """A table for a file: its column names, and its rows of cells in that order (numbers stay
    numbers; None is an empty cell)."""

    columns: list[str]
    rows: list[list[Any]]

    @classmethod
    def of(cls, records: Sequence[dict[str, Any]], columns: Sequence[str]) -> Sheet:
        return cls(list(columns), [[rec.get(c) for c in columns] for rec in records])

    def neutralised(self) -> Sheet:
        return Sheet(
            [neutralise(str(c)) for c in self.columns],
            [[neutralise(v) for v in row] for row in self.rows],
        )


def generated_by(user: User) -> str:
    """Role and user UUID: enough to trace a file back through the audit log, and no e-mail
    address or name in a file that travels."""
    return f"{user.role.value} (user {user.uuid})"


def write_csv(table: Sheet, metadata: Sequence[tuple[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for item, value in metadata:
        writer.writerow([f"# {item}", neutralise(value)])
    safe = table.neutralised()
    writer.writerow(safe.columns)
    writer.writerows(safe.rows)
    return out.getvalue().encode("utf-8-sig")


_THIN = Side(style="thin")
HEADER_FONT = Font(bold=True)
HEADER_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
HEADER_ALIGNMENT = Alignment(horizontal="center", vertical="top")


def _fill(ws: Any, table: Sheet) -> None:
    """One header row (bold, boxed, centred, as spreadsheet users know it), then the rows; an
    empty cell is written as empty text, as the files have always had it."""
    for col, name in enumerate(table.columns, start=1):
        cell = ws.cell(row=1, column=col, value=name)
        cell.font, cell.border, cell.alignment = HEADER_FONT, HEADER_BORDER, HEADER_ALIGNMENT
    for r, row in enumerate(table.rows, start=2):
        for col, value in enumerate(row, start=1):
            ws.cell(row=r, column=col, value="" if value is None else value)


def write_xlsx(table: Sheet, metadata: Sequence[tuple[str, str]], *, sheet: str = "Data") -> bytes:
    book = Workbook()
    book.remove(book.active)
    _fill(book.create_sheet(sheet), table.neutralised())
    meta = Sheet(["Item", "Value"], [[neutralise(i), neutralise(v)] for i, v in metadata])
    _fill(book.create_sheet("Metadata"), meta)
    book[sheet].freeze_panes = "A2"
    for ws in book.worksheets:
        for col in ws.columns:
            width = max((len(str(c.value)) for c in col if c.value is not None), default=8)
            ws.column_dimensions[col[0].column_letter].width = min(max(width + 2, 8), 80)
    for row in book["Metadata"].iter_rows(min_row=2, min_col=2, max_col=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _file(frame: Sheet, metadata: list[tuple[str, str]], fmt: str, stem: str,
          at: datetime, sheet: str) -> ExportFile:
    if fmt not in FORMATS:
        raise ExportError("Choose csv or xlsx.")
    content = (
        write_csv(frame, metadata) if fmt == "csv" else write_xlsx(frame, metadata, sheet=sheet)
    )
    return ExportFile(content, f"{stem}-{at:%Y%m%d-%H%M%S}.{fmt}", FORMATS[fmt])


# -- trend tables -------------------------------------------------------------------------------


def _dimensions(table: Any) -> list[str]:
    return [c for c in table.columns if c in DIMENSION_LABELS]


def wants_rates(table: Any, query: Any = None) -> bool:
    measure = getattr(query, "measure", None)
    if measure is not None:
        return measure != "count"
    return any(r.rate is not None or r.rate_suppressed for r in table.rows)


def _count_cell(shown: Any) -> Any:
    return shown.text if shown.suppressed or shown.value is None else shown.value


def table_frame(table: Any, query: Any = None) -> Sheet:
    """One row per table row, then the total. Counts are the ``Shown`` figures: a number, or
    "*" where suppressed; the raw count is not in the table to leak."""
    dims = _dimensions(table)
    rates = wants_rates(table, query)
    codes = _area_codes() if "area" in dims else {}
    percents = any(getattr(r, "percent", "") for r in table.rows)
    records = []
    rows = list(table.rows) + ([table.total] if table.total is not None else [])
    for i, row in enumerate(rows):
        is_total = table.total is not None and i == len(rows) - 1
        rec: dict[str, Any] = {}
        for d in dims:
            rec[DIMENSION_LABELS[d]] = "Total" if is_total else row.labels.get(d, row.keys.get(d))
            code = "" if is_total else row.keys.get(d, "")
            rec[f"{d}_code"] = codes.get(code, code) if d == "area" else code
        rec["count"] = _count_cell(row.count)
        rec["count_suppressed"] = "yes" if row.count.suppressed else "no"
        if percents:
            rec["percent_of_total"] = getattr(row, "percent", "") or ""
        if rates:
            rec["rate_per_100000"] = None if row.rate is None else round(row.rate, 2)
            rec["ci95_low"] = None if row.ci_low is None else round(row.ci_low, 2)
            rec["ci95_high"] = None if row.ci_high is None else round(row.ci_high, 2)
            rec["rate_suppressed"] = "yes" if row.rate_suppressed else "no"
        records.append(rec)
    columns = [c for d in dims for c in (DIMENSION_LABELS[d], f"{d}_code")]
    columns += ["count", "count_suppressed"] + (["percent_of_total"] if percents else [])
    if rates:
        columns += ["rate_per_100000", "ci95_low", "ci95_high", "rate_suppressed"]
    return Sheet.of(records, columns)


def _area_codes() -> dict[str, str]:
    """Area keys are row ids inside dr-panel; a file carries the ONS code instead."""
    return {str(i): code for i, code in db.session.execute(select(Area.id, Area.ons_code))}


def table_metadata(table: Any, query: Any, user: User, at: datetime) -> list[tuple[str, str]]:
    dims = _dimensions(table)
    meta = [
        ("Title", "dr-panel trend summary"),
        ("What it counts", table.describes),
        # The months the figures cover (for a lead, whole years of the grid), not those asked.
        ("Period", _period(table if getattr(table, "date_from", None) else query)),
        ("Measure", getattr(query, "measure", "count")),
        ("Grain", getattr(query, "grain", "")),
        ("Broken down by", ", ".join(DIMENSION_LABELS[d] for d in dims) or "nothing (one total)"),
        ("Disclosure control", table.note),
        (
            "count",
            "Cases (notifications of suspected drug-related deaths and non-fatal overdoses), "
            "merged duplicates not counted; '*' where suppressed.",
        ),
        ("count_suppressed", "yes where the count is shown as '*'."),
        (
            "percent_of_total",
            "Where given: the row's share of the total, worked out from the counts as shown "
            "(rounded), '*' where either is suppressed.",
        ),
    ]
    if wants_rates(table, query):
        meta += [
            (
                "rate_per_100000",
                "Crude rate per 100,000 population (Byar's 95% interval), or directly "
                "age-standardised to the 2013 European Standard Population (Dobson's interval), "
                "as the measure says; blank where too few events to give a rate.",
            ),
            ("ci95_low / ci95_high", "The 95% confidence interval of the rate."),
        ]
    if {"substance", "substance_group"} & set(dims):
        meta.append(("Substances", SUBSTANCE_NOTE))
    meta += [
        ("*_code columns", "The code behind each label, stable between files."),
        ("Generated by", generated_by(user)),
        ("Generated at", f"{at.isoformat(timespec='seconds')} (UTC)"),
    ]
    return meta


def _period(query: Any) -> str:
    start, end = getattr(query, "date_from", None), getattr(query, "date_to", None)
    if start and end:
        return f"{start:%B %Y} to {end:%B %Y}"
    return "all dates"


def export_table(table: Any, query: Any, fmt: str, *, by: User) -> ExportFile:
    """A trend table as CSV or XLSX, audited. The caller commits."""
    at = utcnow()
    frame = table_frame(table, query)
    made = _file(frame, table_metadata(table, query, by, at), fmt, "dr-panel-trends", at, "Data")
    record(
        "trends.exported",
        actor=by,
        details={
            "format": fmt,
            "rows": len(table.rows),
            "by": list(getattr(query, "by", ())),
            "measure": getattr(query, "measure", None),
            "grain": getattr(query, "grain", None),
            "period": _period(query),
            "areas": list(getattr(query, "area_codes", ()) or ()),
            "exact": bool(table.exact),
        },
    )
    return made


# -- the record-level extract ---------------------------------------------------------------------


def extract_metadata(ext: Extract, user: User, at: datetime) -> list[tuple[str, str]]:
    """The extract's metadata: what it holds and how it was protected. No exact count of
    events or of suppressed rows (the rows in the file are the only count it gives)."""
    from dr_panel.trends.extract import COLUMNS, HIERARCHIES

    req = ext.request
    ladders = "; ".join(
        f"{q.replace('_', ' ')}: {' -> '.join(reversed(h.levels))}" for q, h in HIERARCHIES.items()
    )
    meta = [
        ("Title", "dr-panel record-level extract"),
        ("What it holds", ext.describes()),
        ("Period", f"{req.date_from:%d %B %Y} to {req.date_to:%d %B %Y}"),
        ("Areas", ", ".join(req.area_codes)),
        ("Case type", req.case_type or "deaths and non-fatal overdoses"),
        (
            "Disclosure control",
            f"k-anonymity with k = {ext.k} over every field an acquaintance could know: "
            "period, area, postcode district, age band, sex, case type, setting, substances, "
            f"overdose outcome and treatment status. Any combination of their values in this "
            f"file is shared by at least {ext.k} rows. No identifiers and no free text. The "
            "fields are generalised row by row (local recoding), only as far as each group of "
            f"rows needs: {ladders}. A value shown coarser stands for any value below it; * "
            "stands for any value.",
        ),
        ("Rows suppressed", ext.suppression()),
        ("Detail kept", ext.detail_kept()),
    ]
    meta += [(column, text) for column, text in COLUMNS.items()]
    meta += [
        ("Generated by", generated_by(user)),
        ("Generated at", f"{at.isoformat(timespec='seconds')} (UTC)"),
    ]
    return meta


def export_extract(ext: Extract, fmt: str, *, by: User) -> ExportFile:
    """The extract as CSV or XLSX, audited with its exact figures (the audit log is the one
    place they are kept; the file never states them). The caller commits."""
    at = ext.generated_at
    frame = Sheet.of(ext.rows, ext.columns)
    made = _file(frame, extract_metadata(ext, by, at), fmt, "dr-panel-extract", at, "Extract")
    record(
        "trends.extract_exported",
        actor=by,
        details={
            "format": fmt,
            "rows": len(ext.rows),
            "events": ext.events,
            "suppressed": ext.suppressed,
            "k": ext.k,
            "levels": ext.levels,
            "areas": list(ext.request.area_codes),
            "from": ext.request.date_from.isoformat(),
            "to": ext.request.date_to.isoformat(),
            "case_type": ext.request.case_type,
        },
    )
    return made


def note_for(table: Any) -> str:
    """The disclosure sentence for a table (already on it; here for callers without one)."""
    return str(getattr(table, "note", "") or disclosure.note(bool(getattr(table, "exact", False))))
