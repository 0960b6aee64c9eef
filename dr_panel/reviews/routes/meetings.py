"""Panel meetings: scheduling, the agenda, members and attendance, the confidentiality statement
each member accepts before seeing the cases, minutes per case, and the meeting pack."""

from __future__ import annotations

from typing import Any

from flask import flash, make_response, redirect, render_template, request, url_for
from wtforms import SelectChoice as Opt

from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.forms import EmptyForm
from dr_panel.reviews import meetings as mt
from dr_panel.reviews.forms import MeetingForm
from dr_panel.reviews.models import CONFIDENTIALITY_STATEMENT, PANEL_LABELS, RETURN_TEXTS, Meeting
from dr_panel.reviews.routes.blueprint import PANEL, bp, me
from dr_panel.security import get_or_404, roles


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

    try:
        return _coordinator_post(uuid, save, "Minutes saved.")
    except mt.StaleMinutes:
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
