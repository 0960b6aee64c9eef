"""Bulk import of notifications from CSV: ``dr-panel import cases FILE.csv`` and the upload page.

Both doors call ``bulk.import_csv``: the same column format (``services.FIELDS``), the same
validator, the same report. Nothing from the file is kept beyond the cases it creates: the
upload is read from the request and dropped, and the report names rows, columns and problems,
never a person.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

import click
from flask import Blueprint, Response, render_template, request
from flask.cli import with_appcontext
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import RadioField, SubmitField
from wtforms import SelectChoice as Opt

from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.cases.bulk import FileRefused, ImportResult, Mode, import_csv
from dr_panel.cases.models import LABELS as ENUM_LABELS
from dr_panel.cases.services import ENUMS, FIELDS, LABELS, REQUIRED, substances_by_code
from dr_panel.dbtypes import refresh_planner_statistics
from dr_panel.extensions import db
from dr_panel.reference.models import Agency
from dr_panel.security import render_error, roles

bp = Blueprint("imports", __name__, url_prefix="/cases/import")

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Room for the multipart envelope and the form's other fields around a file at the limit.
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
TEMPLATE_NAME = "dr-panel-import-template.csv"
# The most problems shown on the page; the command line prints them all.
PAGE_REPORT_LIMIT = 5000

# How to fill the columns that are not a list of choices. Columns with choices take them from
# services.ENUMS, so the page and the template cannot drift from the validator.
FORMATS = {
    "area": "The ONS code of one of your areas.",
    "notifying_agency": "The agency's short code. Leave blank if not known.",
    "notified_on": "YYYY-MM-DD or DD/MM/YYYY. Blank means today.",
    "event_date": "YYYY-MM-DD or DD/MM/YYYY; not in the future, not after the notification.",
    "event_time": "HH:MM on the 24-hour clock. Blank if not known.",
    "date_is_found": "yes or no (blank means no): the date is when the person was found.",
    "substances": "Codes separated by ; (or by , inside double quotes). Blank if not known.",
    "naloxone_doses": "A whole number from 1 to 20; only with naloxone given = yes.",
    "previous_overdoses": "A whole number from 0 to 500. Blank if not known.",
    "full_name": "As far as it is known; at most 120 characters.",
    "date_of_birth": "YYYY-MM-DD or DD/MM/YYYY. Blank if not known.",
    "nhs_number": "10 digits, spaces allowed (999 000 0018). Blank if not known.",
    "address": "At most 300 characters. Put it in double quotes if it contains a comma.",
    "postcode": "A full UK postcode, like FY1 1AA. Blank if not known.",
}
ONLY_FOR = {
    "nfo_outcome": "Non-fatal overdoses only.",
    "toxicology": "Deaths only.",
    "coroner_stage": "Deaths only.",
    "naloxone_by": "Only with naloxone given = yes.",
}


def _example_row(area_code: str, agency_code: str) -> dict[str, str]:
    """One synthetic row that passes the validator. The NHS number is from the 999 test range
    that is never issued to a real patient; the person is made up."""
    return {
        "case_type": "nfo",
        "area": area_code,
        "notifying_agency": agency_code,
        "notified_on": "2026-03-15",
        "event_date": "2026-03-14",
        "event_time": "23:15",
        "date_is_found": "no",
        "setting": "street",
        "substances": "heroin;crack",
        "route": "injected",
        "naloxone_given": "yes",
        "naloxone_by": "peer",
        "naloxone_doses": "2",
        "nfo_outcome": "conveyed",
        "treatment_status": "left_6m",
        "recent_prison_release": "no",
        "housing_status": "hostel_supported",
        "children_in_household": "no",
        "previous_overdoses": "1",
        "toxicology": "",
        "coroner_stage": "",
        "full_name": "Jamie Example",
        "date_of_birth": "1988-06-01",
        "sex": "unknown",
        "nhs_number": "999 000 0018",
        "address": "1 Example Street, Blackpool",
        "postcode": "FY1 1AA",
    }


def template_csv(area_code: str, agency_code: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerow(_example_row(area_code, agency_code))
    return out.getvalue()


def column_guide(user: User) -> list[dict[str, Any]]:
    """The documented format: one entry per column, in file order."""
    agencies = db.session.scalars(select(Agency).where(Agency.is_active).order_by(Agency.code))
    allowed: dict[str, list[tuple[str, str]]] = {
        "area": [(a.ons_code, a.name) for a in user.areas],
        "notifying_agency": [(a.code, a.name) for a in agencies],
        "substances": [(s.code, s.name) for s in substances_by_code().values()],
    }
    for key, enum_type in ENUMS.items():
        allowed[key] = [(m.value, ENUM_LABELS.get(m, "")) for m in enum_type]
    return [
        {
            "name": name,
            "label": LABELS[name],
            "required": name in REQUIRED,
            "format": " ".join(x for x in (FORMATS.get(name), ONLY_FOR.get(name)) if x),
            "choices": allowed.get(name, []),
        }
        for name in FIELDS
    ]


# -- the upload page ----------------------------------------------------------------------------


class UploadForm(FlaskForm):
    file = FileField(
        "CSV file",
        validators=[FileRequired("Choose the CSV file to import.")],
        description="UTF-8 CSV with the template's header row; at most 20 MB.",
    )
    mode = RadioField(
        "If some rows have problems",
        choices=[Opt(m.value, m.label) for m in Mode],
        default=Mode.ALL_OR_NOTHING.value,
    )
    submit = SubmitField("Import")


@bp.url_value_preprocessor
def _limit_request_size(endpoint: str | None, values: Any) -> None:
    # Before any before_request hook (CSRF reads the form first): refuse a body over the limit
    # without reading it. Only for this page; the app sets nothing global.
    request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> Any:
    # Raised while CSRF reads the form, before the access guard has run: only a coordinator
    # gets the page back; anyone else gets the plain error page.
    if not current_user.is_authenticated or current_user.role is not Role.COORDINATOR:
        return render_error(413)
    form = UploadForm(formdata=None)
    form.file.errors = [_too_large_message()]
    return _render(form, status=413)


def _too_large_message() -> str:
    return (
        f"The file is larger than {MAX_UPLOAD_BYTES / (1024 * 1024):g} MB. Split it into "
        "smaller files, or ask your system administrator to run it with "
        "'dr-panel import cases'."
    )


def _me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _render(form: UploadForm, result: ImportResult | None = None, status: int = 200) -> Any:
    return render_template(
        "imports/upload.html",
        form=form,
        result=result,
        guide=column_guide(_me()),
        labels=LABELS,
        limit=PAGE_REPORT_LIMIT,
    ), status


@bp.route("/", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def upload() -> Any:
    form = UploadForm()
    result = None
    if form.validate_on_submit():
        stream = form.file.data.stream
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        if size > MAX_UPLOAD_BYTES:
            form.file.errors.append(_too_large_message())
            return _render(form, status=413)
        try:
            result = import_csv(
                stream, by=_me(), mode=Mode(form.mode.data), source="upload", workers=0
            )
        except FileRefused as err:
            db.session.rollback()
            form.file.errors.append(str(err))
            return _render(form, status=400)
        db.session.commit()
        refresh_planner_statistics(db.session)  # keeps the case list on its index
    return _render(form, result)


@bp.route("/template.csv")
@roles(Role.COORDINATOR)
def template() -> Response:
    user = _me()
    area = user.areas[0].ons_code if user.areas else "E06000009"
    codes = set(db.session.scalars(select(Agency.code)))
    agency = "POLICE" if "POLICE" in codes else (min(codes) if codes else "")
    body = "\ufeff" + template_csv(area, agency)  # the BOM tells Excel the file is UTF-8
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{TEMPLATE_NAME}"'},
    )


# -- the command line ---------------------------------------------------------------------------


@click.group("import")
def import_group() -> None:
    """Bulk import from files."""


def report_lines(result: ImportResult) -> list[str]:
    lines = []
    for p in result.problems:
        where = f"Row {p.row}" + (f", {p.column}" if p.column else "")
        lines.append(f"{where}: {p.message}")
    return lines


def summary(result: ImportResult) -> str:
    bad = result.rejected
    if result.saved:
        text = f"Imported {result.imported} of {result.rows} rows"
        details = []
        if result.linked:
            details.append(f"{result.linked} linked to a person already known")
        if result.suggested:
            details.append(f"{result.suggested} with a possible match to check")
        if details:
            text += f" ({'; '.join(details)})"
        text += "."
        if bad:
            text += f" {bad} row{'s were' if bad > 1 else ' was'} rejected: see above."
        return text
    if bad and result.mode is Mode.ALL_OR_NOTHING:
        good = result.rows - bad
        return (
            f"Nothing was imported: {bad} of {result.rows} rows have problems (see above). "
            f"Fix them and import the whole file again"
            + (f", or use --mode valid-rows to import the {good} good rows." if good else ".")
        )
    return f"Nothing was imported: none of the {result.rows} rows could be imported."


@import_group.command("cases")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--as",
    "email",
    required=True,
    help="E-mail of the coordinator on whose behalf the import runs; their areas apply.",
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    default=Mode.ALL_OR_NOTHING.value,
    show_default=True,
    help="all-or-nothing: any bad row and nothing is saved. valid-rows: save the good rows.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes for validation and encryption (default: the number of CPUs; 0: none).",
)
@with_appcontext
def import_cases(path: Path, email: str, mode: str, workers: int | None) -> None:
    """Import notifications from a CSV file in the template's format.

    Prints every rejected row with its problems. Exit code 1 when nothing was imported."""
    user = accounts.find_user(email)
    if user is None or user.role is not Role.COORDINATOR or not user.is_active:
        raise click.ClickException(
            f"{email} is not an enabled coordinator's account. Imports run on behalf of a "
            "coordinator, in their areas."
        )
    size = path.stat().st_size
    with (
        path.open("rb") as fh,
        click.progressbar(length=size, label="Importing", file=sys.stderr) as bar,
    ):

        def progress(_rows: int) -> None:
            bar.update(fh.tell() - bar.pos)

        try:
            result = import_csv(
                fh,
                by=user,
                mode=Mode(mode),
                source="cli",
                workers=(os.cpu_count() or 1) if workers is None else workers,
                progress=progress,
            )
        except FileRefused as err:
            db.session.rollback()
            raise click.ClickException(str(err)) from None
        bar.update(size - bar.pos)
    db.session.commit()
    refresh_planner_statistics(db.session)  # keeps the case list on its index
    for line in report_lines(result):
        click.echo(line)
    click.echo(summary(result))
    if not result.saved:
        sys.exit(1)
