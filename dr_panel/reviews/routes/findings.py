"""Findings and learning: the panel records factors, missed opportunities, preventability and
learning points for a case once it is ready for panel."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from wtforms import SelectChoice as Opt

from dr_panel.cases.models import Case
from dr_panel.extensions import db
from dr_panel.forms import whole_number
from dr_panel.reviews import findings as fd
from dr_panel.reviews import schemas
from dr_panel.reviews.forms import FindingsForm
from dr_panel.reviews.models import Domain
from dr_panel.reviews.routes.blueprint import PANEL, bp, me
from dr_panel.security import get_or_404


def findings_form() -> FindingsForm:
    form = FindingsForm()
    form.themes.choices = [Opt(t.code, t.name) for t in fd.active_themes()]
    return form


def _findings_input(form: FindingsForm) -> fd.FindingsInput:
    """The form as the API's ``FindingsUpdate`` body (one new factor per domain, an unscored
    one with the score ""), mapped by the one function."""
    return schemas.findings_input(
        schemas.FindingsUpdate.model_construct(
            factors=[
                schemas.NewFactor.model_construct(
                    domain=d.value,
                    description=form[f"{d.value}_description"].data or "",
                    score=form[f"{d.value}_score"].data or "",
                    is_modifiable=bool(form[f"{d.value}_modifiable"].data),
                )
                for d in Domain
            ],
            missed_opportunities=form.missed_opportunities.data or "",
            preventability=form.preventability.data,
            learning_point=schemas.NewLearningPoint.model_construct(
                text=form.learning_point.data or "", themes=list(form.themes.data or [])
            ),
        )
    )


@bp.route("/cases/<uuid>/findings", methods=["GET", "POST"])
@PANEL
def findings(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    editing = fd.can_edit_findings(case, me())
    is_open = fd.open_for_findings(case)
    form = findings_form()
    status = 200
    stale = False
    if request.method == "POST":
        if not (editing and is_open):
            flash(fd.closed_message(case) if not is_open else "You cannot edit these.", "error")
            return redirect(url_for("reviews.findings", uuid=case.uuid))
        if form.validate_on_submit():
            version = form.version.data or ""
            try:
                fd.save_findings(
                    case,
                    _findings_input(form),
                    by=me(),
                    expected_version=whole_number(version, default=0),
                )
            except fd.FindingsError as err:
                db.session.rollback()
                field = err.field if err.field in form else "missed_opportunities"
                form[field].errors = [*form[field].errors, str(err)]
                stale = isinstance(err, fd.StaleFindings)
                status = 409 if stale else 400
            else:
                db.session.commit()
                flash("Findings saved.", "success")
                return redirect(url_for("reviews.findings", uuid=case.uuid))
        else:
            status = 400
    shown = fd.findings_of(case)
    if request.method == "GET":
        form.missed_opportunities.data = shown.missed_opportunities or ""
        if shown.review is not None:
            form.preventability.data = shown.review.preventability.value
    if request.method == "GET" or stale:
        # A stale save keeps the typed input; the version moves on to what is saved now (shown
        # beside it), so the next save, after merging, goes through.
        form.version.data = str(shown.version)
    return render_template(
        "reviews/findings.html",
        case=case,
        form=form,
        shown=shown,
        editing=editing and is_open,
        is_open=is_open,
        closed_message=fd.closed_message(case),
        stale=stale,
        domains=list(Domain),
    ), status
