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
the measures panel is ``measures.measures_panel``. The JSON API (``dr_panel.trends.api``) runs
the same ``queries``, so a figure reads the same on the page and in the API.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import SelectChoice as Opt

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record_now
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
