"""Information requests: the coordinator asks from the case page; agency contributors see their
agency's requests only, and answer them."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from dr_panel.auth.models import Role
from dr_panel.cases.models import Case
from dr_panel.extensions import db
from dr_panel.forms import whole_number
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import schemas
from dr_panel.reviews import services as rq
from dr_panel.reviews.forms import RequestForm, ReturnForm
from dr_panel.reviews.models import PANEL_LABELS, RETURN_TEXTS, InfoRequest
from dr_panel.reviews.routes.blueprint import bp, me
from dr_panel.security import get_or_404, roles

CONTRIBUTORS = roles(Role.AGENCY_CONTRIBUTOR)


def request_form(**kwargs: Any) -> RequestForm:
    form = RequestForm(**kwargs)
    form.agencies.choices = [(a.code, a.label) for a in all_agencies(active_only=True)]
    return form


@bp.route("/cases/<uuid>/requests", methods=["POST"])
@roles(Role.COORDINATOR)
def send(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    form = request_form()
    if form.validate_on_submit():
        chosen = [a for a in all_agencies(active_only=True) if a.code in form.agencies.data]
        try:
            sent = rq.send_requests(
                case, chosen, due_on=form.due_on.data, note=form.note.data, by=me()
            )
        except rq.RequestError as err:
            db.session.rollback()
            flash(str(err), "error")
        else:
            db.session.commit()
            flash(
                f"Asked {len(sent)} agenc{'y' if len(sent) == 1 else 'ies'}; they have an "
                "e-mail with a link.",
                "success",
            )
            if sent.unreachable:
                flash(
                    f"No one at {', '.join(a.name for a in sent.unreachable)} has a dr-panel "
                    f"account in {case.area.name}: tell them another way, or ask the admin for "
                    "an account.",
                    "warning",
                )
    else:
        for errors in form.errors.values():
            flash(" ".join(errors), "error")
    return redirect(url_for("cases.view_case", uuid=case.uuid) + "#requests")


@bp.route("/requests/<uuid>")
@roles(Role.COORDINATOR, Role.PANEL_MEMBER)
def view_request(uuid: str) -> Any:
    req = get_or_404(InfoRequest, uuid, need="view")
    texts = {stem: rq.text_of(req, stem) for stem, _ in RETURN_TEXTS}
    return render_template(
        "reviews/request.html",
        req=req,
        texts=texts,
        labels=RETURN_TEXTS,
        panel_labels=PANEL_LABELS,
        note=rq.text_of(req, "note"),
    )


@bp.route("/requests")
@CONTRIBUTORS
def my_requests() -> Any:
    return render_template("reviews/queue.html", requests=rq.agency_queue(me()))


def _answer_of(form: ReturnForm) -> rq.Return:
    """The form as the API's ``Return`` body (the same names), mapped by the one function."""
    return schemas.return_input(
        schemas.Return.model_construct(
            known_to_agency=form.known_to_agency.data,
            first_contact_on=form.first_contact_on.data,
            last_contact_on=form.last_contact_on.data,
            engagement=form.engagement.data,
            submit=bool(form.submit.data),
            **{stem: form[stem].data for stem, _ in RETURN_TEXTS},
        )
    )


@bp.route("/requests/<uuid>/answer", methods=["GET", "POST"])
@CONTRIBUTORS
def answer_request(uuid: str) -> Any:
    req = get_or_404(InfoRequest, uuid, need="answer")
    form = ReturnForm()
    if request.method == "GET":
        form.known_to_agency.data = req.known_to_agency.value
        form.engagement.data = req.engagement.value
        form.first_contact_on.data, form.last_contact_on.data = (
            req.first_contact_on,
            req.last_contact_on,
        )
        for stem, _ in RETURN_TEXTS:
            form[stem].data = rq.text_of(req, stem) or ""
        form.version.data = str(req.version)
    identifiers = None
    if request.method == "POST" and request.form.get("show_details"):
        identifiers = rq.identifiers_for_agency(req, by=me())
        db.session.commit()
        form.version.data = str(req.version)
    elif form.validate_on_submit():
        submit = bool(form.submit.data)
        try:
            version = whole_number(form.version.data)
            rq.save_return(req, _answer_of(form), submit=submit, by=me(), expected_version=version)
        except rq.RequestError as err:
            db.session.rollback()
            db.session.refresh(req)
            field = err.field if err.field in form else "known_to_agency"
            form[field].errors = [*form[field].errors, str(err)]
            status = 409 if isinstance(err, rq.StaleReturn) else 400
            return render_template(
                "reviews/answer.html",
                req=req,
                form=form,
                identifiers=None,
                note=rq.text_of(req, "note"),
            ), status
        db.session.commit()
        flash(
            "Return submitted: thank you. The panel coordinator can see it now."
            if submit
            else "Draft saved. Nothing is sent until you submit.",
            "success",
        )
        return redirect(
            url_for("reviews.my_requests")
            if submit
            else url_for("reviews.answer_request", uuid=req.uuid)
        )
    return render_template(
        "reviews/answer.html",
        req=req,
        form=form,
        identifiers=identifiers,
        note=rq.text_of(req, "note"),
    )
