"""The trends pages: the dashboard, and the population estimates that rates divide by.

=====  ====================  ==========================================================
GET    /trends/              lead, coordinator: counts and rates for their areas, with
                             disclosure control (coordinators: exact in their own areas)
GET    /trends/populations   lead, admin: the population estimates held, and the upload
POST   /trends/populations   lead (their areas only), admin (any area): import a CSV
=====  ====================  ==========================================================

Who may load populations: leads, who use the rates and know which estimates to use, and
admins, who keep reference data; neither sees any case content by doing so. Coordinators use
the rates but do not maintain them. Charts and downloads are ``trends_files`` (downloads.py);
the measures panel is ``measures.measures_panel``. The JSON API calls ``api_body`` below, so a
figure reads the same on the page and in the API.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import SelectChoice as Opt

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record, record_now
from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from dr_panel.security import render_error, roles
from dr_panel.trends import populations as pops
from dr_panel.trends import queries
from dr_panel.trends.forms import PopulationUploadForm, TrendFilterForm

bp = Blueprint("trends", __name__, url_prefix="/trends")

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
PAGE_REPORT_LIMIT = 2000

trend_readers = roles(Role.LEAD, Role.COORDINATOR)
population_keepers = roles(Role.LEAD, Role.ADMIN)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


# -- the dashboard ------------------------------------------------------------------------------


def audit_foreign_areas(args: Any, user: User) -> None:
    """Asking for an area outside one's grants is a refused access: audited (ASVS V7), then
    answered with a message like any other mistake in the filters."""
    codes = {str(v).upper() for v in args.getlist("area") if v}
    foreign = codes - {a.ons_code for a in user.areas}
    if any(queries.AREA_RE.fullmatch(c) for c in foreign):
        record_now(
            "access.denied",
            outcome=Outcome.DENIED,
            details={"endpoint": request.endpoint, "method": request.method,
                     "why": "trends:area not granted"},
        )


def _measures(user: User, query: queries.TrendQuery) -> Any:
    """T3's measures panel, when it is there (the page works without it)."""
    try:
        from dr_panel.trends.measures import measures_panel
    except ImportError:
        return None
    return measures_panel(user, query)


def files_ready() -> bool:
    """Charts and downloads are served by the ``trends_files`` blueprint."""
    return {"trends_files.chart", "trends_files.export"} <= set(current_app.view_functions)


@bp.get("/")
@trend_readers
def dashboard() -> Any:
    user = me()
    audit_foreign_areas(request.args, user)
    query, errors = queries.parse_query(request.args, user=user)
    # What was typed wins (so a mistake can be corrected); the rest shows what applies.
    shown = {TrendFilterForm.PARAMS[k]: v for k, v in query.args().items()}
    form = TrendFilterForm(request.args, data={"by": "", "by2": "", **shown})
    form.area.choices = [Opt("", "All your areas")] + [Opt(a.ons_code, a.name) for a in user.areas]
    form.substance.choices = [Opt("", "Every substance")] + [
        Opt(code, name) for code, name in sorted(queries.substance_names().items(),
                                                 key=lambda kv: kv[1])
    ]
    form.show_errors(errors)
    table = None
    status = 200
    try:
        table = queries.run(query, user)
    except queries.QueryError as err:
        form.show_errors({err.field: str(err)})
        status = 400
    if errors:
        status = 400
    return render_template(
        "trends/dashboard.html",
        form=form,
        query=query,
        table=table,
        args=query.args(),
        labels=queries.DIMENSION_LABELS,
        grain_label=queries.GRAIN_LABELS[query.grain],
        files_ready=files_ready(),
        measures=_measures(user, query) if table is not None else None,
        can_load_populations=user.role in (Role.LEAD, Role.ADMIN),
    ), status


# -- the API's body -----------------------------------------------------------------------------


def row_json(row: queries.TrendRow) -> dict[str, Any]:
    return {
        **row.keys,
        "labels": row.labels,
        "value": row.count.value,
        "display": row.count.text,
        "suppressed": row.count.suppressed,
        "rate": row.rate,
        "ci_low": row.ci_low,
        "ci_high": row.ci_high,
        "rate_suppressed": row.rate_suppressed,
        "rate_note": row.rate_note or None,
    }


def table_json(query: queries.TrendQuery, table: queries.TrendTable) -> dict[str, Any]:
    return {
        "describes": table.describes,
        "note": table.note,
        "notes": table.notes,
        "exact": table.exact,
        "measure": query.measure,
        "grain": query.grain,
        "by": list(query.by),
        # The months the figures cover: for a lead, widened to whole years of the grid.
        "from": f"{table.date_from or query.date_from:%Y-%m}",
        "to": f"{table.date_to or query.date_to:%Y-%m}",
        "rows": [row_json(r) for r in table.rows],
        "total": row_json(table.total) if table.total is not None else None,
    }


API_PARAMS = ("measure", "by", "grain", "from", "to", "area", "case_type", "substance")


def api_body(args: Any, user: User) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The API's answer, or the errors by parameter. The query is audited (it is an extract
    of figures leaving dr-panel); the caller commits."""
    unknown = [name for name in args if name not in API_PARAMS]
    if unknown:
        return None, {name: "Unknown parameter: use " + ", ".join(API_PARAMS) + "."
                      for name in unknown}
    repeated = [n for n in API_PARAMS if n != "area" and len(args.getlist(n)) > 1]
    if repeated:
        return None, {n: f"Give {n} once." for n in repeated}
    # The page sends empty values for "all"; the API is stricter: leave a parameter out.
    empty = [n for n in API_PARAMS if n != "by" and "" in args.getlist(n)]
    if empty:
        return None, {n: f"Give a value for {n}, or leave the parameter out." for n in empty}
    audit_foreign_areas(args, user)
    query, errors = queries.parse_query(args, user=user)
    if errors:
        return None, errors
    try:
        table = queries.run(query, user)
    except queries.QueryError as err:
        return None, {err.field: str(err)}
    record(
        "trends.query",
        actor=user,
        details={"via": "api", **query.args(), "areas": list(query.area_codes),
                 "exact": table.exact},
    )
    return table_json(query, table), {}


# -- populations --------------------------------------------------------------------------------


@bp.url_value_preprocessor
def _limit_request_size(endpoint: str | None, values: Any) -> None:
    if endpoint == "trends.populations":
        request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> Any:
    if not current_user.is_authenticated or current_user.role not in (Role.LEAD, Role.ADMIN):
        return render_error(413)
    form = PopulationUploadForm(formdata=None)
    form.file.errors = [_too_large_message()]
    return _populations_page(form, status=413)


def _too_large_message() -> str:
    return (f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Split it by area "
            "or year, or ask your system administrator to use 'dr-panel populations import'.")


def _populations_page(form: PopulationUploadForm, result: pops.ImportResult | None = None,
                      status: int = 200) -> Any:
    user = me()
    held = pops.held_summary()
    if user.role is Role.LEAD:
        mine = {a.ons_code for a in user.areas}
        held = [h for h in held if h["code"] in mine]
    return render_template(
        "trends/populations.html", form=form, result=result, held=held,
        limit=PAGE_REPORT_LIMIT, full_year=pops.FULL_YEAR,
    ), status


@bp.route("/populations", methods=["GET", "POST"])
@population_keepers
def populations() -> Any:
    user = me()
    form = PopulationUploadForm()
    result = None
    if form.validate_on_submit():
        stream = form.file.data.stream
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        if size > MAX_UPLOAD_BYTES:
            form.file.errors.append(_too_large_message())
            return _populations_page(form, status=413)
        allowed = None if user.role is Role.ADMIN else [a.ons_code for a in user.areas]
        try:
            result = pops.import_csv(stream, by=user, source="upload", allowed_areas=allowed)
        except pops.FileRefused as err:
            db.session.rollback()
            form.file.errors.append(str(err))
            return _populations_page(form, status=400)
        if result.saved:
            db.session.commit()
        else:
            db.session.rollback()
            return _populations_page(form, result, status=400)
    return _populations_page(form, result)


# -- the API's documentation --------------------------------------------------------------------


def openapi_paths(substances: list[str]) -> dict[str, Any]:
    """``GET /api/v1/trends`` for ``dr_panel.api.openapi.document``: its parameters are
    ``queries.parse_query``'s, its answer ``table_json``'s."""
    one = "(" + "|".join(queries.BY_CHOICES) + ")"
    month = {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}

    def param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "description": description}

    problem = {"$ref": "#/components/responses/BadRequest"}
    return {
        "/api/v1/trends": {
            "get": {
                "operationId": "getTrends",
                "summary": "Counts and rates per 100,000 (with 95% confidence intervals) of "
                "the events in your areas, by up to two dimensions, with disclosure control: "
                "for leads, 1-7 is '*' and other counts are rounded to 5; coordinators see "
                "exact counts of their own areas. Each request is audited.",
                "parameters": [
                    param("measure", {"type": "string", "enum": list(queries.MEASURES)},
                          "count (default), rate (crude, Byar's interval) or dsr (directly "
                          "age-standardised to the 2013 European Standard Population, "
                          "Dobson's interval)."),
                    param("by", {"type": "string", "pattern": f"^({one}(,{one})?)?$"},
                          "Up to two dimensions, separated by a comma, like period,substance. "
                          "Default: period. Empty: one total."),
                    param("grain", {"type": "string", "enum": list(queries.GRAINS)},
                          "Periods: month (default), quarter, year, fy (April to March), "
                          "rolling12 (12 months ending each month), pooled3 (3 calendar "
                          "years ending each year)."),
                    param("from", month, "First month, YYYY-MM. Default: January two years "
                          "ago."),
                    param("to", month, "Last month (included), YYYY-MM. Default: this month."),
                    {
                        **param("area", {"type": "array", "items": {
                            "type": "string", "pattern": "^[EWSNewsn][0-9]{8}$"}},
                            "ONS code of one of your areas; repeat for several. Default: all "
                            "your areas."),
                        "style": "form",
                        "explode": True,
                    },
                    param("case_type", {"type": "string", "enum": ["death", "nfo"]},
                          "Only deaths or only non-fatal overdoses. Default: both."),
                    param("substance", {"type": "string", "enum": sorted(substances)},
                          "Only events where this substance was suspected."),
                ],
                "responses": {
                    "200": {
                        "description": "The figures, already protected for you.",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/TrendResult"}}},
                    },
                    "400": problem,
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                },
            }
        }
    }


def openapi_schemas() -> dict[str, Any]:
    number = {"type": ["number", "null"]}
    row_props: dict[str, Any] = {
        d: {"type": "string", "description": f"{queries.DIMENSION_LABELS[d]}: the code."}
        for d in queries.BY_CHOICES
    }
    row_props.update({
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "What a person reads for each dimension's code."},
        "value": {"type": ["integer", "null"], "minimum": 0,
                  "description": "The count as you may see it: for leads perturbed by its "
                  "cell key, then rounded; null when suppressed."},
        "display": {"type": "string", "description": "The count as printed: '*' when "
                    "suppressed."},
        "suppressed": {"type": "boolean"},
        "rate": {**number, "description": "Per 100,000 person-years; null for measure=count, "
                 "too few events (for leads: a count shown below 10), or no population "
                 "estimate. For leads, from the counts as shown."},
        "ci_low": {**number, "description": "Lower 95% confidence limit of the rate."},
        "ci_high": {**number, "description": "Upper 95% confidence limit of the rate."},
        "rate_suppressed": {"type": "boolean",
                            "description": "The rate was withheld for too few events (for "
                            "leads, decided from the count shown)."},
        "rate_note": {"type": ["string", "null"], "description": "Why there is no rate."},
    })
    fixed = ["labels", "value", "display", "suppressed", "rate", "ci_low", "ci_high",
             "rate_suppressed", "rate_note"]
    row_ref = {"$ref": "#/components/schemas/TrendRow"}
    result_props: dict[str, Any] = {
        "describes": {"type": "string", "description": "What is counted, where, over which "
                      "months."},
        "note": {"type": "string", "description": "The disclosure rule applied."},
        "notes": {"type": "array", "items": {"type": "string"}},
        "exact": {"type": "boolean", "description": "True when counts are exact (a "
                  "coordinator's own areas)."},
        "measure": {"type": "string", "enum": list(queries.MEASURES)},
        "grain": {"type": "string", "enum": list(queries.GRAINS)},
        "by": {"type": "array", "items": {"type": "string", "enum": list(queries.BY_CHOICES)},
               "maxItems": queries.MAX_BY},
        "from": {"type": "string", "description": "The first month the figures cover "
                 "(YYYY-MM); for leads, the start of a whole year of the grid."},
        "to": {"type": "string", "description": "The last month the figures cover (YYYY-MM); "
               "for leads, the end of a whole year of the grid."},
        "rows": {"type": "array", "items": row_ref},
        "total": {"anyOf": [row_ref, {"type": "null"}],
                  "description": "A cell of its own (for leads perturbed and rounded like any "
                  "other), so rows may not add up to it; null without a breakdown (the one "
                  "row is the total)."},
    }
    return {
        "TrendRow": {"type": "object", "properties": row_props, "required": fixed,
                     "additionalProperties": False},
        "TrendResult": {"type": "object", "properties": result_props,
                        "required": list(result_props), "additionalProperties": False},
    }
