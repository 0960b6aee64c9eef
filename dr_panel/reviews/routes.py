"""Information requests: the coordinator asks from the case page; agency contributors see their
agency's requests only, and answer them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm.exc import StaleDataError
from wtforms import DateField, StringField, SubmitField
from wtforms import SelectChoice as Opt
from wtforms.validators import DataRequired

from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Case, YesNoUnknown
from dr_panel.extensions import db
from dr_panel.forms import ChoiceField, EmptyForm, whole_number
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import meetings as mt
from dr_panel.reviews import services
from dr_panel.reviews.forms import RequestForm, ReturnForm
from dr_panel.reviews.models import (
    CONFIDENTIALITY_STATEMENT,
    PANEL_LABELS,
    RETURN_TEXTS,
    Engagement,
    InfoRequest,
    Meeting,
)
from dr_panel.security import get_or_404, roles

bp = Blueprint("reviews", __name__)
CONTRIBUTORS = roles(Role.AGENCY_CONTRIBUTOR)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


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
            made = services.send_requests(
                case, chosen, due_on=form.due_on.data, note=form.note.data, by=me()
            )
            unreachable = [r.agency.name for r in made if not services.email_agency(r)]
        except services.RequestError as err:
            db.session.rollback()
            flash(str(err), "error")
        else:
            db.session.commit()
            flash(
                f"Asked {len(made)} agenc{'y' if len(made) == 1 else 'ies'}; they have an "
                "e-mail with a link.",
                "success",
            )
            if unreachable:
                flash(
                    f"No one at {', '.join(unreachable)} has a dr-panel account in "
                    f"{case.area.name}: tell them another way, or ask the admin for an "
                    "account.",
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
    texts = {stem: services.text_of(req, stem) for stem, _ in RETURN_TEXTS}
    return render_template(
        "reviews/request.html",
        req=req,
        texts=texts,
        labels=RETURN_TEXTS,
        panel_labels=PANEL_LABELS,
        note=services.text_of(req, "note"),
    )


@bp.route("/requests")
@CONTRIBUTORS
def my_requests() -> Any:
    return render_template("reviews/queue.html", requests=services.agency_queue(me()))


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
            form[stem].data = services.text_of(req, stem) or ""
        form.version.data = str(req.version)
    identifiers = None
    if request.method == "POST" and request.form.get("show_details"):
        identifiers = services.identifiers_for_agency(req, by=me())
        db.session.commit()
        form.version.data = str(req.version)
    elif form.validate_on_submit():
        answer = services.Return(
            known_to_agency=YesNoUnknown(form.known_to_agency.data),
            first_contact_on=form.first_contact_on.data,
            last_contact_on=form.last_contact_on.data,
            engagement=Engagement(form.engagement.data),
            texts={stem: form[stem].data for stem, _ in RETURN_TEXTS},
        )
        submit = bool(form.submit.data)
        try:
            version = whole_number(form.version.data)
            services.save_return(req, answer, submit=submit, by=me(), expected_version=version)
        except services.RequestError as err:
            db.session.rollback()
            db.session.refresh(req)
            field = err.field if err.field in form else "known_to_agency"
            form[field].errors = [*form[field].errors, str(err)]
            status = 409 if isinstance(err, services.StaleReturn) else 400
            return render_template(
                "reviews/answer.html",
                req=req,
                form=form,
                identifiers=None,
                note=services.text_of(req, "note"),
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
        note=services.text_of(req, "note"),
    )


# -- meetings -------------------------------------------------------------------------------------

PANEL = roles(Role.COORDINATOR, Role.PANEL_MEMBER)


class MeetingForm(FlaskForm):
    area = ChoiceField("Area", validators=[DataRequired("Choose the area.")])
    held_on = DateField(
        "Date", validators=[DataRequired("Give the meeting's date, like 2026-12-10.")]
    )
    location = StringField("Where", validators=[DataRequired("Say where: a room, or 'Teams'.")])
    submit = SubmitField("Schedule the meeting")


def _meeting_or_404(uuid: str, need: str = "view") -> Meeting:
    return get_or_404(Meeting, uuid, need=need)  # type: ignore[no-any-return]


def _gate(meeting: Meeting) -> Any | None:
    """Panel members see a meeting's cases only after accepting its confidentiality statement."""
    if me().role is Role.PANEL_MEMBER and not meeting.has_accepted(me()):
        return render_template(
            "reviews/statement.html", meeting=meeting, statement=CONFIDENTIALITY_STATEMENT
        )
    return None


@bp.route("/meetings")
@PANEL
def meetings() -> Any:
    return render_template("reviews/meetings.html", meetings=mt.meetings_for(me()))


@bp.route("/meetings/new", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def new_meeting() -> Any:
    form = MeetingForm()
    form.area.choices = [Opt(a.ons_code, a.name) for a in me().areas]
    if form.validate_on_submit():
        area = next((a for a in me().areas if a.ons_code == form.area.data), None)
        try:
            if area is None:
                raise mt.MeetingError("Choose one of your areas.", "area")
            meeting = mt.schedule(area, form.held_on.data, form.location.data, by=me())
        except mt.MeetingError as err:
            db.session.rollback()
            form[err.field].errors = [*form[err.field].errors, str(err)]
        else:
            db.session.commit()
            flash("Meeting scheduled. Now add the cases and invite the members.", "success")
            return redirect(url_for("reviews.meeting", uuid=meeting.uuid))
    return render_template("reviews/meeting_form.html", form=form)


@bp.route("/meetings/<uuid>")
@PANEL
def meeting(uuid: str) -> Any:
    m = _meeting_or_404(uuid)
    gate = _gate(m)
    if gate is not None:
        return gate
    editing = m.can_edit(me())
    return render_template(
        "reviews/meeting.html",
        meeting=m,
        editing=editing,
        candidates=mt.agenda_candidates(m) if editing else [],
        eligible=mt.eligible_members(m) if editing else [],
        minutes={i.id: mt.minutes_of(i) for i in m.items} if editing else {},
    )


@bp.route("/meetings/<uuid>/accept", methods=["POST"])
@PANEL
def accept(uuid: str) -> Any:
    m = _meeting_or_404(uuid)
    if EmptyForm().validate_on_submit() and request.form.get("accept") == "yes":
        try:
            mt.accept_statement(m, me())
        except mt.MeetingError as err:
            flash(str(err), "error")
        else:
            db.session.commit()
    else:
        flash("Tick the box to accept the statement, or ask the coordinator.", "error")
    return redirect(url_for("reviews.meeting", uuid=m.uuid))


def _coordinator_post(uuid: str, action: Any, done: str) -> Any:
    m = _meeting_or_404(uuid, need="edit")
    if not EmptyForm().validate_on_submit():
        flash("The form had expired, so nothing was changed. Try again.", "error")
    else:
        try:
            action(m)
        except mt.StaleMinutes:
            raise  # the minutes page keeps the text itself
        except mt.MeetingError as err:
            db.session.rollback()
            flash(str(err), "error")
        else:
            db.session.commit()
            flash(done, "success")
    return redirect(url_for("reviews.meeting", uuid=m.uuid))


@bp.route("/meetings/<uuid>/agenda", methods=["POST"])
@roles(Role.COORDINATOR)
def agenda(uuid: str) -> Any:
    def add(m: Meeting) -> None:
        chosen = set(request.form.getlist("cases"))
        ready = {str(c.uuid): c for c in mt.agenda_candidates(m)}
        if not chosen:
            raise mt.MeetingError("Tick at least one case to add.", "cases")
        if chosen - set(ready):
            raise mt.MeetingError(
                "One of the cases chosen is not ready for panel in this area.", "cases"
            )
        mt.add_to_agenda(m, [ready[u] for u in sorted(chosen)], by=me())

    return _coordinator_post(uuid, add, "Agenda updated.")


@bp.route("/meetings/<uuid>/members", methods=["POST"])
@roles(Role.COORDINATOR)
def members(uuid: str) -> Any:
    def add(m: Meeting) -> None:
        chosen = set(request.form.getlist("members"))
        mt.invite(m, [u for u in mt.eligible_members(m) if str(u.uuid) in chosen], by=me())

    return _coordinator_post(
        uuid,
        add,
        "Members invited. Each accepts the confidentiality statement before seeing the cases.",
    )


@bp.route("/meetings/<uuid>/attendance", methods=["POST"])
@roles(Role.COORDINATOR)
def attendance(uuid: str) -> Any:
    def mark(m: Meeting) -> None:
        chosen = set(request.form.getlist("present"))
        mt.record_attendance(
            m, {mm.user_id for mm in m.members if str(mm.user.uuid) in chosen}, by=me()
        )

    return _coordinator_post(uuid, mark, "Attendance recorded.")


@bp.route("/meetings/<uuid>/minutes/<case_uuid>", methods=["POST"])
@roles(Role.COORDINATOR)
def minutes(uuid: str, case_uuid: str) -> Any:
    m = _meeting_or_404(uuid, need="edit")
    item = next((i for i in m.items if str(i.case.uuid) == case_uuid), None)
    text = request.form.get("minutes", "")
    try:
        expected: int | None = int(request.form.get("version", ""))
    except ValueError:
        expected = None  # a form without a version: the flush still checks

    def save(m: Meeting) -> None:
        if item is None:
            raise mt.MeetingError("That case is not on this meeting's agenda.", "minutes")
        mt.save_minutes(item, text, by=me(), expected_version=expected)
        db.session.flush()

    try:
        return _coordinator_post(uuid, save, "Minutes saved.")
    except (mt.StaleMinutes, StaleDataError):
        # Keep what they wrote: the page again with their text in the box, the newer saved
        # text beside it, and the current version so that their next save goes through.
        db.session.rollback()
        m = _meeting_or_404(uuid, need="edit")
        return render_template(
            "reviews/meeting.html", meeting=m, editing=True,
            candidates=mt.agenda_candidates(m), eligible=mt.eligible_members(m),
            minutes={i.id: mt.minutes_of(i) for i in m.items},
            kept={case_uuid: text}, stale=str(mt.StaleMinutes()),
        ), 409


@bp.route("/meetings/<uuid>/pack")
@PANEL
def meeting_pack(uuid: str) -> Any:
    m = _meeting_or_404(uuid)
    gate = _gate(m)
    if gate is not None:
        return gate
    download = request.args.get("download") == "1"
    cases = mt.pack(m, by=me(), download=download)
    db.session.commit()
    html = render_template(
        "reviews/pack.html", meeting=m, cases=cases, labels=RETURN_TEXTS,
        panel_labels=PANEL_LABELS, download=download
    )
    if not download:
        return html
    response = make_response(html)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="meeting-pack-{m.held_on.isoformat()}.html"'
    )
    return response


# -- findings and learning ------------------------------------------------------------------------

from wtforms import BooleanField, HiddenField, TextAreaField  # noqa: E402
from wtforms.validators import Optional  # noqa: E402

from dr_panel.forms import CheckboxListField  # noqa: E402
from dr_panel.reviews import findings as fd  # noqa: E402


class FindingsForm(FlaskForm):
    version = HiddenField()
    missed_opportunities = TextAreaField(
        "Missed opportunities",
        validators=[Optional()],
        description="Where a service could have acted differently. Stored encrypted.",
        render_kw={"rows": 4},
    )
    preventability = ChoiceField(
        "Could this have been prevented?",
        choices=[Opt(p.value, p.label) for p in fd.Preventability],
    )
    learning_point = TextAreaField(
        "A new learning point (optional)",
        validators=[Optional()],
        description="What partners should learn from this case. Stored encrypted.",
        render_kw={"rows": 3},
    )
    themes = CheckboxListField(
        "Themes of the learning point",
        description="Themes are counted, without the text, for signals and trends.",
    )
    submit = SubmitField("Save the findings")


for _domain in fd.Domain:
    setattr(
        FindingsForm,
        f"{_domain.value}_description",
        TextAreaField("Describe a new factor", validators=[Optional()], render_kw={"rows": 2}),
    )
    setattr(
        FindingsForm,
        f"{_domain.value}_score",
        ChoiceField(
            "Score",
            choices=[Opt("", "Choose a score")] + [Opt(s.value, s.label) for s in fd.Score],
        ),
    )
    setattr(FindingsForm, f"{_domain.value}_modifiable", BooleanField("Modifiable"))


def findings_form() -> FindingsForm:
    form = FindingsForm()
    form.themes.choices = [Opt(t.code, t.name) for t in fd.active_themes()]
    return form


def _findings_input(form: FindingsForm) -> fd.FindingsInput:
    factors = []
    for d in fd.Domain:
        score = form[f"{d.value}_score"].data
        factors.append(
            fd.NewFactor(
                domain=d,
                description=form[f"{d.value}_description"].data or "",
                score=fd.Score(score) if score else None,
                is_modifiable=bool(form[f"{d.value}_modifiable"].data),
            )
        )
    return fd.FindingsInput(
        missed_opportunities=form.missed_opportunities.data or "",
        preventability=fd.Preventability(form.preventability.data),
        factors=factors,
        learning_point=form.learning_point.data or "",
        theme_codes=list(form.themes.data or []),
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
        domains=list(fd.Domain),
    ), status


# -- actions and safety plans ---------------------------------------------------------------------

from dr_panel.reviews import actions as act  # noqa: E402
from dr_panel.reviews.action_forms import (  # noqa: E402
    ACTION_STATUS_LABELS,
    ActionForm,
    ActionUpdateForm,
    PlanForm,
)
from dr_panel.security import deny  # noqa: E402

ACTION_READERS = roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


def _action_form(**kwargs: Any) -> ActionForm:
    form = ActionForm(**kwargs)
    form.agency.choices = [Opt("", "Choose the agency")] + [
        Opt(a.code, a.label) for a in all_agencies(active_only=True)
    ]
    return form


@bp.app_template_global()
def case_actions_panel(case: Case) -> dict[str, Any]:
    """For the case page: the case's actions, the form to add one (coordinators, once the case
    is reviewed), and the person's safety plan."""
    user = me()
    can_add = case.can_edit(user) and case.status in act.OPEN_FOR_ACTIONS
    return {
        "actions": act.case_actions(case),
        "form": _action_form() if can_add else None,
        "plan": act.plan_for(case.person),
        "labels": ACTION_STATUS_LABELS,
        "text_of": act.text_of,
    }


@bp.route("/cases/<uuid>/actions", methods=["POST"])
@roles(Role.COORDINATOR)
def add_action(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    form = _action_form()
    if form.validate_on_submit():
        agency = next(
            (a for a in all_agencies(active_only=True) if a.code == form.agency.data), None
        )
        try:
            act.create_action(
                case,
                description=form.description.data or "",
                agency=agency,
                due_on=form.due_on.data,
                by=me(),
            )
        except act.ActionError as err:
            db.session.rollback()
            flash(str(err), "error")
        else:
            db.session.commit()
            flash(f"Action added for {agency.name if agency else 'the agency'}.", "success")
    else:
        for errors in form.errors.values():
            flash(" ".join(errors), "error")
    return redirect(url_for("cases.view_case", uuid=case.uuid) + "#actions")


@bp.route("/actions")
@ACTION_READERS
def actions() -> Any:
    return render_template(
        "reviews/actions.html", groups=act.tracker(me()), labels=ACTION_STATUS_LABELS,
        describe=lambda a: act.text_of(a, "description")
    )


@bp.route("/actions/<uuid>", methods=["GET", "POST"])
@ACTION_READERS
def action(uuid: str) -> Any:
    a = get_or_404(act.Action, uuid, need="view")
    can_update = a.can_update(me())
    form = ActionUpdateForm()
    status = 200
    if request.method == "GET":
        form.status.data = a.status.value
        form.evidence.data = act.text_of(a, "evidence") or ""
        form.reason.data = act.text_of(a, "not_accepted_reason") or ""
        form.version.data = str(a.version)
    elif not can_update:
        deny(object_type="actions", object_uuid=a.uuid, why="record:update")
    elif form.validate_on_submit():
        change = act.ActionUpdate(
            status=act.ActionStatus(form.status.data),
            evidence=form.evidence.data,
            reason=form.reason.data,
        )
        try:
            version = whole_number(form.version.data)
            act.update_action(a, change, by=me(), expected_version=version)
        except act.ActionError as err:
            db.session.rollback()
            db.session.refresh(a)
            field = err.field if err.field in form else "status"
            form[field].errors = [*form[field].errors, str(err)]
            status = 409 if isinstance(err, act.StaleAction) else 400
        else:
            db.session.commit()
            flash("Action updated.", "success")
            return redirect(url_for("reviews.action", uuid=a.uuid))
    else:
        status = 400
    return render_template(
        "reviews/action.html",
        action=a,
        form=form if can_update else None,
        description=act.text_of(a, "description"),
        evidence=act.text_of(a, "evidence"),
        reason=act.text_of(a, "not_accepted_reason"),
        labels=ACTION_STATUS_LABELS,
        show_case=a.case.can_view(me()),
    ), status


def _plan_form(case: Case) -> PlanForm:
    form = PlanForm()
    form.lead.choices = [Opt("", "Choose the lead professional")] + [
        Opt(str(u.uuid), u.display_name + (f" ({u.agency.name})" if u.agency else ""))
        for u in act.lead_candidates(case)
    ]
    form.lead_agency.choices = [Opt("", "Not given")] + [
        Opt(a.code, a.label) for a in all_agencies(active_only=True)
    ]
    return form


@bp.route("/cases/<uuid>/safety-plan", methods=["GET", "POST"])
@PANEL
def safety_plan(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    plan = act.plan_for(case.person)
    form = _plan_form(case)
    status = 200
    if request.method == "GET":
        if plan is not None:
            form.status.data = plan.status.value
            form.risks.data = act.text_of(plan, "risks") or ""
            form.protective.data = act.text_of(plan, "protective") or ""
            form.interventions.data = [i.value for i in plan.intervention_list]
            form.lead.data = str(plan.lead_user.uuid)
            form.lead_agency.data = plan.lead_agency.code if plan.lead_agency else ""
            form.review_on.data = plan.review_on
            form.version.data = str(plan.version)
        else:
            form.status.data = act.PlanStatus.OPEN.value
            form.lead.data = str(me().uuid)
            form.lead_agency.data = me().agency.code if me().agency else ""
    elif form.validate_on_submit():
        leads = {str(u.uuid): u for u in act.lead_candidates(case)}
        agency = next(
            (a for a in all_agencies(active_only=True) if a.code == form.lead_agency.data), None
        )
        data = act.PlanInput(
            status=act.PlanStatus(form.status.data),
            risks=form.risks.data,
            protective=form.protective.data,
            interventions=[act.Intervention(v) for v in form.interventions.data or []],
            lead=leads.get(form.lead.data or ""),
            lead_agency=agency,
            review_on=form.review_on.data,
        )
        try:
            # An empty version: the form was opened before any plan existed.
            version = whole_number(form.version.data, default=0)
            plan = act.save_plan(case, data, by=me(), expected_version=version)
        except act.PlanError as err:
            db.session.rollback()
            plan = act.plan_for(case.person)
            field = err.field if err.field in form else "risks"
            form[field].errors = [*form[field].errors, str(err)]
            status = 409 if isinstance(err, act.StalePlan) else 400
        else:
            db.session.commit()
            flash("Safety plan saved.", "success")
            return redirect(url_for("reviews.safety_plan", uuid=case.uuid))
    else:
        status = 400
    return render_template(
        "reviews/safety_plan.html",
        case=case,
        plan=plan,
        form=form,
        new_nfos=[
            c
            for c in act.new_nfos_with_plans(me().area_ids)
            if plan is not None and c.person_id == plan.person_id
        ],
    ), status


@bp.route("/safety-plans")
@PANEL
def safety_plans() -> Any:
    return render_template(
        "reviews/safety_plans.html",
        plans=act.plans_for(me()),
        new_nfos=act.new_nfos_with_plans(me().area_ids),
    )
