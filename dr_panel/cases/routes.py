"""Case pages: the list, intake (full and partner forms), a case pseudonymised, reveal, the
coordinator's match decision, edit, and a person's linked events. Every rule reads here."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from wtforms import DateField, StringField
from wtforms import SelectChoice as Opt
from wtforms.validators import Optional

from dr_panel.auth.models import Role, User
from dr_panel.cases import services, workflow
from dr_panel.cases.forms import RevealForm, WorkflowForm, form_values, notification_form
from dr_panel.cases.listing import CaseSearch, matching_cases
from dr_panel.cases.models import (
    Case,
    CaseStatus,
    CaseType,
    MatchStatus,
    Person,
)
from dr_panel.cases.reasons import ReasonRefused
from dr_panel.extensions import db
from dr_panel.forms import ChoiceField, EmptyForm, GetForm, whole_number
from dr_panel.privacy import identity as ident
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import routes as reviews_routes
from dr_panel.reviews.models import InfoRequest
from dr_panel.reviews.services import OPEN_FOR_REQUESTS, default_due
from dr_panel.security import get_or_404, roles

bp = Blueprint("cases", __name__)

CASE_READERS = roles(Role.COORDINATOR, Role.PANEL_MEMBER)
COORDINATORS = roles(Role.COORDINATOR)
NOTIFIERS = roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _form(**kwargs: Any) -> Any:
    user = me()
    return notification_form(
        areas=list(user.areas),
        agencies=all_agencies(active_only=True),
        substances=list(services.substances_by_code().values()),
        **kwargs,
    )


def _parse(form: Any, extra: dict[str, Any] | None = None) -> services.Notification | None:
    """Run the one validator; put its messages on the form's fields."""
    data = form_values(form) | (extra or {})
    notification, errors = services.parse_notification(
        data, lookups=services.Lookups(), allowed_areas=me().area_ids
    )
    for name, message in errors.items():
        if name in form:
            form[name].errors = [*form[name].errors, message]
        else:  # a field this form does not show (e.g. identifiers on an edit)
            flash(f"{services.LABELS.get(name, name)}: {message}", "error")
    return notification


# -- the list -----------------------------------------------------------------------------------


class CaseFilterForm(GetForm):
    type = ChoiceField(
        "Type",
        choices=[Opt("", "Any")] + [Opt(t.value, t.label) for t in CaseType],
        validators=[Optional()],
    )
    area = ChoiceField("Area", validators=[Optional()])
    status = ChoiceField(
        "Status",
        choices=[Opt("", "Any")] + [Opt(s.value, s.label) for s in CaseStatus],
        validators=[Optional()],
    )
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
    substance = ChoiceField("Substance", validators=[Optional()])
    q = StringField("Reference", validators=[Optional()])


@bp.route("/cases")
@CASE_READERS
def list_cases() -> Any:
    user = me()
    form = CaseFilterForm(request.args)
    form.area.choices = [Opt("", "All your areas")] + [Opt(a.ons_code, a.name) for a in user.areas]
    form.substance.choices = [Opt("", "Any")] + [
        Opt(s.code, s.name) for s in services.substances_by_code().values()
    ]
    search = CaseSearch()
    if form.validate():
        search = CaseSearch(
            services.CaseFilter(
                case_type=CaseType(form.type.data) if form.type.data else None,
                area_code=form.area.data or None,
                status=CaseStatus(form.status.data) if form.status.data else None,
                since=form.since.data,
                until=form.until.data,
                substance=form.substance.data or None,
            ),
            q=form.q.data,
        )
    page = services.page_of_cases(
        matching_cases(user, search),
        after=request.args.get("after"),
        per_page=current_app.config["PAGE_SIZE"],
    )
    newer_args = {k: v for k, v in request.args.items() if k != "after"}
    return render_template("cases/list.html", form=form, page=page, newer_args=newer_args)


# -- intake -------------------------------------------------------------------------------------


@bp.route("/cases/new", methods=["GET", "POST"])
@COORDINATORS
def new_case() -> Any:
    form = _form()
    if form.validate_on_submit() and (n := _parse(form)) is not None:
        case = services.create_notification(n, by=me(), source="form")
        db.session.commit()
        flash(f"Notification {case.reference} saved." + _match_note(case), "success")
        return redirect(url_for("cases.view_case", uuid=case.uuid))
    return render_template("cases/form.html", form=form, case=None, short=False)


@bp.route("/notify", methods=["GET", "POST"])
@NOTIFIERS
def notify() -> Any:
    """The shorter form partner agencies use. They do not see the case afterwards."""
    user = me()
    form = _form(short=True)
    extra = {"notifying_agency": user.agency.code if user.agency else ""}
    if form.validate_on_submit() and (n := _parse(form, extra)) is not None:
        case = services.create_notification(n, by=user, source="partner")
        db.session.commit()
        return render_template("cases/notified.html", case=case)
    return render_template("cases/form.html", form=form, case=None, short=True)


def _match_note(case: Case) -> str:
    if case.match_status is MatchStatus.LINKED:
        return " It is linked to a person already known (same NHS number and details)."
    if case.match_status is MatchStatus.SUGGESTED:
        return " It may be about someone already known: confirm or reject the match below."
    return ""


# -- one case -----------------------------------------------------------------------------------


def _render_case(
    case: Case,
    *,
    identity: ident.Identity | None = None,
    suggested_identity: ident.Identity | None = None,
    reveal_form: RevealForm | None = None,
    workflow_form: WorkflowForm | None = None,
    status: int = 200,
) -> Any:
    events = db.session.scalars(
        select(Case).where(Case.person_id == case.person_id).order_by(Case.event_date, Case.id)
    ).all()
    steps = workflow.available(case, me())
    form = workflow_form or WorkflowForm(formdata=None, version=str(case.version))
    form.transition.choices = [Opt("", "Choose")] + [Opt(t.name, t.label) for t in steps]
    timeline = [(e, workflow.reason_of(e)) for e in case.events]
    requests = db.session.scalars(
        select(InfoRequest).where(InfoRequest.case_id == case.id).order_by(InfoRequest.requested_at)
    ).all()
    request_form = None
    if case.can_edit(me()) and case.status in OPEN_FOR_REQUESTS:
        request_form = reviews_routes.request_form(formdata=None, due_on=default_due())
    return render_template(
        "cases/view.html",
        case=case,
        events=events,
        identity=identity,
        suggested_identity=suggested_identity,
        steps=steps,
        workflow_form=form,
        timeline=timeline,
        requests=requests,
        request_form=request_form,
        reveal_form=reveal_form or RevealForm(),
        actions=EmptyForm(),
    ), status


@bp.route("/cases/<uuid>")
@CASE_READERS
def view_case(uuid: str) -> Any:
    return _render_case(get_or_404(Case, uuid, need="view"))


@bp.route("/cases/<uuid>/reveal", methods=["POST"])
@CASE_READERS
def reveal_case(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    if not case.can_reveal(me()):
        services.refuse_reveal(case.uuid, by=me(), via="page")
        db.session.commit()
        abort(403)
    form = RevealForm()
    if not form.validate_on_submit():
        return _render_case(case, reveal_form=form, status=400)
    try:
        who = services.reveal(case, reason=form.reason.data, by=me(), via="page")
    except ReasonRefused as refused:
        db.session.commit()  # the refusal's audit entry; nothing was revealed
        form.reason.errors = [str(refused)]
        return _render_case(case, reveal_form=form, status=400)
    suggested = (
        ident.unseal(case.suggested_person) if case.suggested_person is not None else None
    )
    db.session.commit()
    return _render_case(case, identity=who, suggested_identity=suggested, reveal_form=form)


@bp.route("/cases/<uuid>/transition", methods=["POST"])
@COORDINATORS
def move_case(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    form = WorkflowForm()
    if form.validate_on_submit():
        try:
            version = whole_number(form.version.data)
            event = workflow.move(
                case,
                form.transition.data,
                by=me(),
                reason=form.why.data,
                expected_on=form.expected_on.data,
                duplicate_of_reference=form.duplicate_of.data,
                expected_version=version,
            )
        except workflow.WorkflowError as err:
            db.session.rollback()
            db.session.refresh(case)
            field = err.field if err.field in form else "transition"
            form[field].errors = [*form[field].errors, str(err)]
            return _render_case(
                case, workflow_form=form, status=409 if isinstance(err, workflow.StaleCase) else 400
            )
        db.session.commit()
        flash(f"{case.reference} is now “{event.to_status.label}”.", "success")
        return redirect(url_for("cases.view_case", uuid=case.uuid))
    return _render_case(case, workflow_form=form, status=400)


@bp.route("/cases/<uuid>/match", methods=["POST"])
@COORDINATORS
def decide_match(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    if EmptyForm().validate_on_submit():
        decision = request.form.get("decision")
        if decision not in {"confirm", "reject"}:
            flash("Choose to confirm or reject the match.", "error")
        else:
            try:
                services.decide_match(case, confirm=decision == "confirm", by=me())
            except ValueError as err:
                db.session.rollback()
                flash(str(err), "error")
            else:
                db.session.commit()
                flash(
                    "Match confirmed: the events are now under one person."
                    if decision == "confirm"
                    else "Match rejected: they stay separate people.",
                    "success",
                )
    return redirect(url_for("cases.view_case", uuid=case.uuid))


@bp.route("/cases/<uuid>/edit", methods=["GET", "POST"])
@COORDINATORS
def edit_case(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    form = _form(edit=True, obj=None)
    if request.method == "GET":
        _fill(form, case)
    if form.validate_on_submit():
        # Identifiers are not on this page; they are validated with the edit server-side only.
        n = _parse(form, services.identity_values(case.person))
        if n is not None:
            try:
                version = whole_number(form.version.data, default=-1)  # absent or tampered: stale
                changed = services.update_case(case, n, by=me(), expected_version=version)
            except services.StaleEdit:
                db.session.rollback()
                flash(
                    "Someone else saved this case after you opened it, so your changes were "
                    "not saved. Your entries are still below: compare with the case, then save "
                    "again.",
                    "error",
                )
                form.version.data = str(case.version)
                return render_template("cases/form.html", form=form, case=case, short=False), 409
            db.session.commit()
            message = "Saved." if changed else "Nothing had changed."
            if "reference" in changed:
                message = (f"Saved. It now belongs to the numbering of {case.area.name} "
                           f"({'deaths' if case.case_type is CaseType.DEATH else 'overdoses'}) "
                           f"and is now {case.reference}.")
            flash(message, "success")
            return redirect(url_for("cases.view_case", uuid=case.uuid))
    return render_template("cases/form.html", form=form, case=case, short=False)


def _fill(form: Any, case: Case) -> None:
    values = {
        "area": case.area.ons_code,
        "notifying_agency": case.notifying_agency.code if case.notifying_agency else "",
        "substances": [s.code for s in case.substances],
        "notified_on": case.notified_on.isoformat(),
        "event_date": case.event_date.isoformat(),
        "event_time": case.event_time.strftime("%H:%M") if case.event_time else "",
    }
    for _, fields in form.groups:
        for name in fields:
            if name in values:
                form[name].data = values[name]
            else:
                value = getattr(case, name)
                form[name].data = (
                    value.value
                    if hasattr(value, "value")
                    else value
                    if isinstance(value, bool)
                    else ""
                    if value is None
                    else str(value)
                )
    form.version.data = str(case.version)


# -- a person -------------------------------------------------------------------------------------


@bp.route("/persons/<uuid>")
@CASE_READERS
def view_person(uuid: str) -> Any:
    person = get_or_404(Person, uuid, need="view")
    return render_template(
        "cases/person.html",
        person=person,
        events=sorted(person.cases, key=lambda c: (c.event_date, c.id)),
    )
