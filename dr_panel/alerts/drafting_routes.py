"""Drafting, approval, updates, cancellation and the archive: pages on the ``alerts`` blueprint.

=====  =================================  ==================================================
GET    /ldis/alerts                       coordinator, lead, panel member, agency
                                          contributor: the archive of what they may read
GET    /ldis/alerts/new?assessment=<u>    coordinator of the assessed item's area
POST   /ldis/alerts/new?assessment=<u>    the same: starts the draft
GET    /ldis/alerts/<uuid>                the same four roles; ``Alert.can_read``
GET    /ldis/alerts/<uuid>/draft          coordinator, lead; ``Alert.can_view``: the version
                                          being prepared with the leak gate's result
GET    /ldis/alerts/<uuid>/edit           coordinator; ``Alert.can_edit``
POST   /ldis/alerts/<uuid>/edit           coordinator; ``Alert.can_edit``
POST   /ldis/alerts/<uuid>/submit         coordinator; ``Alert.can_edit``
GET    /ldis/alerts/<uuid>/approve        coordinator, lead; ``Alert.can_view`` (the page
                                          says when they may not approve)
POST   /ldis/alerts/<uuid>/approve        coordinator, lead; ``can_view``, then
                                          ``can_approve`` (403, audited)
POST   /ldis/alerts/<uuid>/update         coordinator; ``Alert.can_edit``
GET    /ldis/alerts/<uuid>/cancel         coordinator; ``Alert.can_edit``
POST   /ldis/alerts/<uuid>/cancel         coordinator; ``Alert.can_edit``
POST   /ldis/alerts/<uuid>/discard        coordinator; ``Alert.can_edit``
=====  =================================  ==================================================

Admins reach none of these: alerts are the LDIS's work, not system administration.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import NotFound
from werkzeug.routing import BuildError
from wtforms import SelectChoice as Opt

from dr_panel.alerts import drafting as dr
from dr_panel.alerts import leakgate
from dr_panel.alerts.drafting_forms import (
    SCOPE_LABELS,
    ArchiveForm,
    CancelForm,
    DraftForm,
    RevisionForm,
)
from dr_panel.alerts.models import (
    AUDIENCES,
    Alert,
    AlertLevel,
    AlertStatus,
    AlertVersion,
    Assessment,
    Scope,
)
from dr_panel.alerts.routes import bp
from dr_panel.auth.models import Role, User
from dr_panel.dbtypes import parse_uuid
from dr_panel.extensions import db
from dr_panel.forms import whole_number
from dr_panel.pagination import paginate
from dr_panel.reference.models import Area
from dr_panel.security import deny, get_or_404, roles

readers = roles(Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)
approvers = roles(Role.COORDINATOR, Role.LEAD)
coordinators = roles(Role.COORDINATOR)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _revision(form: Any) -> int | None:
    return whole_number(form.revision.data)


def deliveries_link(alert: Alert) -> str | None:
    """A3's delivery dashboard, if it is there and this person may see it."""
    if not alert.can_edit(me()):
        return None
    try:
        return url_for("alerts.deliveries", uuid=alert.uuid)
    except BuildError:
        return None


def _highlights(version: AlertVersion, findings: list[leakgate.Finding]) -> list[Any]:
    """Per field with findings: its label, pieces of text (highlighted or not), the findings."""
    content = dr.content_of(version)
    out = []
    for key in dr.CONTENT_FIELDS:
        mine = [f for f in findings if f.field == key]
        if mine:
            out.append((key, dr.LABELS[key], leakgate.merged_spans(content[key], mine), mine))
    return out


def _common(alert: Alert) -> dict[str, Any]:
    return {
        "alert": alert,
        "labels": dr.LABELS,
        "content_of": dr.content_of,
        "audiences_of": lambda v: [AUDIENCES[c] for c in dr.audiences_of(v)],
        "state_of": dr.state_of,
        "scope_labels": SCOPE_LABELS,
    }


# -- the archive --------------------------------------------------------------------------------


@bp.get("/alerts")
@readers
def archive() -> Any:
    user = me()
    form = ArchiveForm(request.args)
    areas = db.session.scalars(
        select(Area).where(Area.id.in_(user.area_ids) | Area.network.in_(
            select(Area.network).where(Area.id.in_(user.area_ids), Area.network.is_not(None))
        )).order_by(Area.name)
    ).all()
    form.area.choices = [Opt("", "Any")] + [Opt(a.ons_code, a.label) for a in areas]
    valid = form.validate()
    for name in ("since", "until"):
        if form[name].errors:
            form[name].errors = ["Write the date as YYYY-MM-DD, like 2026-11-20."]
    q = dr.ArchiveQuery()
    if valid:
        q = dr.ArchiveQuery(
            text=form.q.data or "",
            level=AlertLevel(form.level.data) if form.level.data else None,
            status=AlertStatus(form.status.data) if form.status.data else None,
            area=form.area.data or None,
            since=form.since.data,
            until=form.until.data,
        )
    page = paginate(dr.archive(user, q))
    return render_template(
        "alerts/archive.html",
        form=form,
        page=page,
        alerts=dr.filter_readable(page.items, user),
        content_of=dr.content_of,
        can_read_drafts=lambda a: a.can_view(user),
    ), (200 if valid else 400)


@bp.get("/alerts/<uuid>")
@readers
def alert_page(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="read")
    user = me()
    versions = dr.visible_versions(alert, user)
    return render_template(
        "alerts/alert.html",
        versions=list(reversed(versions)),
        can_edit=alert.can_edit(user),
        can_view=alert.can_view(user),
        can_approve=alert.can_approve(user) and alert.draft is not None
        and alert.draft.submitted_at is not None,
        deliveries_url=deliveries_link(alert),
        form=RevisionForm(),
        **_common(alert),
    )


# -- drafting -----------------------------------------------------------------------------------


def _assessment_or_404(raw: str | None) -> Assessment:
    value = parse_uuid(raw or "")
    found = db.session.scalar(select(Assessment).where(Assessment.uuid == value)) if value else None
    if found is None:
        raise NotFound()
    item = dr.assessed_item(found)
    if item is None or not item.can_assess(me()):
        deny(status=404, object_type="assessments", object_uuid=found.uuid, why="record:draft")
    return found


@bp.route("/alerts/new", methods=["GET", "POST"])
@coordinators
def new_draft() -> Any:
    assessment = _assessment_or_404(request.args.get("assessment"))
    existing = dr.alert_for(assessment)
    form = RevisionForm()
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        try:
            alert = dr.start_draft(assessment, by=me())
        except dr.DraftError as err:
            db.session.rollback()
            flash(str(err), "error")
            status = 400
        else:
            db.session.commit()
            flash(f"Draft {alert.reference} started. Write its content, then check it.",
                  "success")
            return redirect(url_for("alerts.edit_draft", uuid=alert.uuid))
    elif request.method == "POST":
        status = 400
    return render_template(
        "alerts/draft_new.html",
        assessment=assessment,
        item=dr.assessed_item(assessment),
        existing=existing,
        level=dr.DECISION_LEVEL.get(assessment.decision),
        counts=dr.counts_sentence(assessment),
        form=form,
    ), status


def _fill(form: DraftForm, user: User) -> None:
    form.areas.choices = [Opt(a.ons_code, a.label) for a in dr.network_areas(user)]


def _load_form(form: DraftForm, version: AlertVersion) -> None:
    content = dr.content_of(version)
    for key in dr.CONTENT_FIELDS:
        form[key].data = content[key]
    form.level.data = version.level.value
    form.scope.data = version.scope.value
    form.areas.data = [a.ons_code for a in version.areas]
    form.audiences.data = dr.audiences_of(version)
    form.expires_on.data = version.expires_at.date() if version.expires_at else None
    form.revision.data = str(version.revision)


@bp.route("/alerts/<uuid>/edit", methods=["GET", "POST"])
@coordinators
def edit_draft(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="edit")
    version = alert.draft
    if version is None:
        flash("Issued versions cannot be changed: start an update or a cancellation.", "error")
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    user = me()
    form = DraftForm()
    _fill(form, user)
    status = 200
    if request.method == "GET":
        _load_form(form, version)
    elif form.validate_on_submit():
        data = dr.DraftInput(
            content={k: form[k].data or "" for k in dr.CONTENT_FIELDS},
            level=AlertLevel(form.level.data),
            scope=Scope(form.scope.data),
            area_codes=list(form.areas.data or []),
            audiences=list(form.audiences.data or []),
            expires_on=form.expires_on.data,
        )
        try:
            dr.edit_draft(alert, data, by=user, expected_revision=_revision(form))
        except dr.DraftError as err:
            db.session.rollback()
            name = err.field if err.field in form else "title"
            form[name].errors = [*form[name].errors, str(err)]
            status = 409 if isinstance(err, dr.StaleDraft) else 400
            if isinstance(err, dr.StaleDraft):
                db.session.refresh(version)
                form.revision.data = str(version.revision)
        else:
            db.session.commit()
            flash("Draft saved. Check the result below, then send it for approval.", "success")
            return redirect(url_for("alerts.draft_page", uuid=alert.uuid))
    else:
        if form.expires_on.errors:
            form.expires_on.errors = ["Write the date as YYYY-MM-DD, like 2026-12-20."]
        status = 400
    return render_template(
        "alerts/draft_form.html", form=form, version=version, **_common(alert)
    ), status


@bp.get("/alerts/<uuid>/draft")
@approvers
def draft_page(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="view")
    version = alert.draft
    if version is None:
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    findings = dr.gate(version)
    return render_template(
        "alerts/draft.html",
        version=version,
        findings=findings,
        highlights=_highlights(version, findings),
        can_edit=alert.can_edit(me()),
        can_approve=alert.can_approve(me()) and version.submitted_at is not None,
        form=RevisionForm(revision=str(version.revision)),
        **_common(alert),
    )


@bp.post("/alerts/<uuid>/submit")
@coordinators
def submit(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="edit")
    form = RevisionForm()
    if not form.validate_on_submit():
        flash("The form had expired: nothing was sent. Try again.", "error")
        return redirect(url_for("alerts.draft_page", uuid=alert.uuid))
    try:
        findings = dr.submit(alert, by=me(), expected_revision=_revision(form))
    except dr.DraftError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("alerts.draft_page", uuid=alert.uuid))
    db.session.commit()
    if findings:
        flash(
            f"Not sent: the leak gate found {len(findings)} possible identifier"
            f"{'s' if len(findings) != 1 else ''}. Each is highlighted below: edit the draft "
            "to remove them.",
            "error",
        )
        return redirect(url_for("alerts.draft_page", uuid=alert.uuid))
    flash("Sent for approval: another coordinator of the area, or a lead covering it, "
          "approves it.", "success")
    return redirect(url_for("alerts.alert_page", uuid=alert.uuid))


@bp.route("/alerts/<uuid>/approve", methods=["GET", "POST"])
@approvers
def approve(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="view")
    version = alert.draft
    if version is None or version.submitted_at is None:
        flash("Nothing of this alert is waiting for approval.", "info")
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    user = me()
    form = RevisionForm()
    status = 200
    findings: list[leakgate.Finding] = []
    if request.method == "POST":
        if not alert.can_approve(user):
            deny(object_type="alerts", object_uuid=alert.uuid, why="record:approve")
        if form.validate_on_submit():
            try:
                issued = dr.approve(alert, by=user, expected_revision=_revision(form))
            except dr.DraftError as err:
                db.session.rollback()
                flash(str(err), "error")
                status = 409 if isinstance(err, dr.StaleDraft) else 400
                db.session.refresh(version)
            else:
                db.session.commit()
                if issued.findings:
                    flash("Not issued: the leak gate now finds possible identifiers, so the "
                          "alert went back to its drafter to edit.", "error")
                    return redirect(url_for("alerts.draft_page", uuid=alert.uuid))
                flash(f"Issued. {issued.deliveries} deliveries queued.", "success")
                return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
        else:
            status = 400
    form.revision.data = str(version.revision)
    return render_template(
        "alerts/alert_approve.html",
        version=version,
        findings=findings,
        is_drafter=version.drafted_by_id == user.id,
        can_approve=alert.can_approve(user),
        form=form,
        **_common(alert),
    ), status


@bp.post("/alerts/<uuid>/update")
@coordinators
def update(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="edit")
    if not RevisionForm().validate_on_submit():
        flash("The form had expired: nothing was started. Try again.", "error")
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    try:
        version = dr.start_update(alert, by=me())
    except dr.DraftError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    db.session.commit()
    flash(f"Version {version.number} started from the live one: change what is new, say what "
          "changed, then send it for approval.", "success")
    return redirect(url_for("alerts.edit_draft", uuid=alert.uuid))


@bp.route("/alerts/<uuid>/cancel", methods=["GET", "POST"])
@coordinators
def cancel(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="edit")
    form = CancelForm()
    status = 200
    highlights: list[Any] = []
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                issued = dr.cancel(
                    alert, reason=form.reason.data or "", urgent=bool(form.urgent.data), by=me()
                )
            except dr.DraftError as err:
                db.session.rollback()
                form.reason.errors = [*form.reason.errors, str(err)]
                status = 400
            else:
                db.session.commit()
                if issued.findings:
                    status = 400
                    form.reason.errors = [
                        "The leak gate found possible identifiers (highlighted below): "
                        "remove them."
                    ]
                    highlights = [(
                        "note", "Why it is cancelled",
                        leakgate.merged_spans((form.reason.data or "").strip(), issued.findings),
                        issued.findings,
                    )]
                elif form.urgent.data:
                    flash(f"Cancelled now. {issued.deliveries} deliveries queued.", "success")
                    return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
                else:
                    flash("The cancellation is waiting for a second person's approval.",
                          "success")
                    return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
        else:
            status = 400
    return render_template(
        "alerts/alert_cancel.html", form=form, highlights=highlights, **_common(alert)
    ), status


@bp.post("/alerts/<uuid>/discard")
@coordinators
def discard(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="edit")
    form = RevisionForm()
    if not form.validate_on_submit():
        flash("The form had expired: nothing was discarded. Try again.", "error")
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    first = alert.current is None
    try:
        dr.discard(alert, by=me(), expected_revision=_revision(form))
    except dr.DraftError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
    db.session.commit()
    flash("Draft discarded.", "success")
    if first:
        return redirect(url_for("alerts.archive"))
    return redirect(url_for("alerts.alert_page", uuid=alert.uuid))
