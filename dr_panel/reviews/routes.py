"""Information requests: the coordinator asks from the case page; agency contributors see their
agency's requests only, and answer them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, StringField, SubmitField
from wtforms import SelectChoice as Opt
from wtforms.validators import DataRequired

from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Case, YesNoUnknown
from dr_panel.extensions import db
from dr_panel.forms import ChoiceField, EmptyForm
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import meetings as mt
from dr_panel.reviews import services
from dr_panel.reviews.forms import RequestForm, ReturnForm
from dr_panel.reviews.models import (
    CONFIDENTIALITY_STATEMENT,
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
            version = int(form.version.data) if (form.version.data or "").isdigit() else None
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
    def save(m: Meeting) -> None:
        item = next((i for i in m.items if str(i.case.uuid) == case_uuid), None)
        if item is None:
            raise mt.MeetingError("That case is not on this meeting's agenda.", "minutes")
        mt.save_minutes(item, request.form.get("minutes", ""), by=me())

    return _coordinator_post(uuid, save, "Minutes saved.")


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
        "reviews/pack.html", meeting=m, cases=cases, labels=RETURN_TEXTS, download=download
    )
    if not download:
        return html
    response = make_response(html)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="meeting-pack-{m.held_on.isoformat()}.html"'
    )
    return response
