"""Charts, table downloads and the record-level extract: the files that leave the dashboard.

=====  ===========================  =============================================================
GET    /trends/chart/<kind>.svg     lead, coordinator: the chart (series, substance, age_band) of
                                    the dashboard's query (same URL parameters); ``download=1``
                                    saves it as a file, audited as an export
GET    /trends/export.<fmt>         lead, coordinator: the dashboard's table as csv or xlsx,
                                    audited
GET    /trends/extract              lead, coordinator: the extract's form
POST   /trends/extract              the k-anonymous record-level extract as csv or xlsx, audited
=====  ===========================  =============================================================

Bad parameters answer a 400 page that says what to change, never a 500. Every figure comes from
``queries.run``, so disclosure control is applied before a chart or file is drawn.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import RadioField, StringField, SubmitField
from wtforms import SelectChoice as Opt
from wtforms.validators import InputRequired

from dr_panel.audit.services import record
from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from dr_panel.forms import CheckboxListField, ChoiceField
from dr_panel.security import render_error, roles
from dr_panel.trends import charts, exports, queries
from dr_panel.trends import extract as ex

bp = Blueprint("trends_files", __name__, url_prefix="/trends")
readers = roles(Role.LEAD, Role.COORDINATOR)
MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _bad_request(errors: dict[str, str]) -> Any:
    detail = " ".join(f"{k}: {v}" if k not in v else v for k, v in errors.items())
    return render_error(400, f"The figures could not be made: {detail}")


def _query_for(kind: str | None = None) -> tuple[queries.TrendQuery | None, Any]:
    """Parse the dashboard's parameters (a chart: broken down as it needs); a 400 page when
    they do not make sense."""
    args = MultiDict(request.args)
    if kind is not None:
        given, _ = queries.parse_query(request.args, user=me())
        by = charts.by_for(kind, given.by)
        args.setlist("by", [by[0]])
        args.setlist("by2", [by[1]] if len(by) > 1 else [])
    query, errors = queries.parse_query(args, user=me())
    if errors:
        return None, _bad_request(errors)
    return query, None


def _attachment(response: Response, filename: str) -> Response:
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/chart/<kind>.svg")
@readers
def chart(kind: str) -> Any:
    if kind not in charts.KINDS:
        abort(404)
    query, refusal = _query_for(kind)
    if query is None:
        return refusal
    try:
        table = queries.run(query, me())
        svg = charts.chart(kind, table, measure=query.measure)
    except (queries.QueryError, charts.ChartError) as err:
        return _bad_request({getattr(err, "field", "chart"): str(err)})
    response = Response(svg, mimetype="image/svg+xml")
    if request.args.get("download") == "1":
        record(
            "trends.chart_exported",
            actor=me(),
            details={"chart": kind, **query.args(), "areas": list(query.area_codes),
                     "exact": table.exact},
        )
        db.session.commit()
        _attachment(response, f"dr-panel-{kind.replace('_', '-')}.svg")
    return response


@bp.get("/export.<fmt>")
@readers
def export(fmt: str) -> Any:
    if fmt not in exports.FORMATS:
        abort(404)
    query, refusal = _query_for()
    if query is None:
        return refusal
    try:
        table = queries.run(query, me())
    except queries.QueryError as err:
        return _bad_request({err.field: str(err)})
    made = exports.export_table(table, query, fmt, by=me())
    db.session.commit()
    return _attachment(Response(made.content, mimetype=made.mimetype), made.filename)


# -- the extract ----------------------------------------------------------------------------------


def _month_field(label: str, hint: str) -> StringField:
    return StringField(
        label,
        validators=[InputRequired(f"Enter the {label.lower()} as YYYY-MM, like 2025-04.")],
        render_kw={"type": "month", "placeholder": "YYYY-MM"},
        description=hint,
    )


class ExtractForm(FlaskForm):
    areas = CheckboxListField("Areas", description="Only your own areas are listed.")
    date_from = _month_field("First month", "YYYY-MM; events from the start of this month.")
    date_to = _month_field("Last month", "YYYY-MM; events to the end of this month.")
    case_type = ChoiceField(
        "Case type",
        choices=[
            Opt("", "Deaths and non-fatal overdoses"),
            Opt("death", "Suspected drug-related deaths"),
            Opt("nfo", "Non-fatal overdoses"),
        ],
    )
    file_format = RadioField(
        "File format",
        choices=[Opt("xlsx", "Excel workbook (.xlsx)"), Opt("csv", "CSV (.csv)")],
        default="xlsx",
        validators=[InputRequired("Choose the file format: Excel or CSV.")],
    )
    submit = SubmitField("Download the extract")


def _month(raw: str | None) -> date | None:
    m = MONTH_RE.fullmatch((raw or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        return None
    return date(int(m.group(1)), int(m.group(2)), 1)


def _extract_request(form: ExtractForm) -> ex.ExtractRequest | None:
    """The form's values as a request, or None with the messages on the fields."""
    start, end = _month(form.date_from.data), _month(form.date_to.data)
    ok = True
    if start is None:
        form.date_from.errors = [*form.date_from.errors,
                                 "Enter the first month as YYYY-MM, like 2025-04 (from 2000)."]
        ok = False
    if end is None:
        form.date_to.errors = [*form.date_to.errors,
                               "Enter the last month as YYYY-MM, like 2026-03 (from 2000)."]
        ok = False
    if start and end and end < start:
        form.date_to.errors = [*form.date_to.errors,
                               "The last month is before the first: swap them."]
        ok = False
    if not form.areas.data:
        form.areas.errors = [*form.areas.errors, "Tick at least one of your areas."]
        ok = False
    if not ok or start is None or end is None:
        return None
    last_day = end.replace(day=calendar.monthrange(end.year, end.month)[1])
    return ex.ExtractRequest(
        area_codes=tuple(sorted(form.areas.data)),
        date_from=start,
        date_to=last_day,
        case_type=form.case_type.data or None,
    )


@bp.route("/extract", methods=["GET", "POST"])
@readers
def extract() -> Any:
    user = me()
    areas = ex.allowed_areas(user)
    form = ExtractForm()
    form.areas.choices = [Opt(a.ons_code, a.label) for a in areas]
    if request.method == "GET":
        start, end = queries.default_range()
        form.date_from.data = form.date_from.data or f"{start:%Y-%m}"
        form.date_to.data = form.date_to.data or f"{end:%Y-%m}"
        form.areas.data = [a.ons_code for a in areas]
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            req = _extract_request(form)
            if req is not None:
                try:
                    made = exports.export_extract(
                        ex.build(req, user), form.file_format.data, by=user
                    )
                except (ex.ExtractError, exports.ExportError) as err:
                    db.session.rollback()
                    form.areas.errors = [*form.areas.errors, str(err)]
                else:
                    db.session.commit()
                    return _attachment(
                        Response(made.content, mimetype=made.mimetype), made.filename
                    )
    return render_template(
        "trends/extract.html",
        form=form,
        k=ex.extract_k(),
        columns=ex.COLUMNS,
        levels=ex.LEVELS,
        has_areas=bool(areas),
    ), status
