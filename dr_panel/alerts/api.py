"""The JSON API of alerts (LDIS): signals, drug-concern reports, assessment, alerts, subscriptions
and deliveries, and an area's spike-scan settings. Every rule of this door reads here:

=====  ==========================================  ===========================================
GET    /api/v1/signals                             coordinator: their areas' signals
GET    /api/v1/signals/<uuid>                      coordinator; ``Signal.can_view``
GET    /api/v1/reports                             coordinator: their areas' drug-concern reports
POST   /api/v1/reports                             signed in, not admin: report a drug concern
GET    /api/v1/reports/<uuid>                      coordinator; ``DrugReport.can_view`` (audited)
POST   /api/v1/assessments                         coordinator; the item's ``can_assess``
GET    /api/v1/alerts                              coordinator, lead, panel member, agency
                                                   contributor: the archive they may read
POST   /api/v1/alerts                              coordinator of the assessed item's area
GET    /api/v1/alerts/<uuid>                       the four roles above; ``Alert.can_read``
POST   /api/v1/alerts/<uuid>/submit                coordinator; ``Alert.can_edit``; 422 if the
                                                   leak gate blocks it
POST   /api/v1/alerts/<uuid>/approve               coordinator, lead; ``can_view``, then
                                                   ``can_approve`` (403, audited; never the
                                                   drafter)
POST   /api/v1/alerts/<uuid>/update                coordinator; ``Alert.can_edit``
POST   /api/v1/alerts/<uuid>/cancel                coordinator; ``Alert.can_edit``
GET    /api/v1/alerts/<uuid>/deliveries            coordinator; ``Alert.can_edit``
GET    /api/v1/subscriptions                       coordinator: their areas' subscribers
POST   /api/v1/subscriptions                       coordinator (areas they coordinate)
GET    /api/v1/subscriptions/<uuid>                coordinator; ``Subscriber.can_view``
PATCH  /api/v1/subscriptions/<uuid>                coordinator; ``Subscriber.can_edit``
DELETE /api/v1/subscriptions/<uuid>                coordinator; ``Subscriber.can_edit``
POST   /api/v1/subscriptions/<uuid>/rotate-secret  coordinator; ``Subscriber.can_edit``
GET    /api/v1/signal-settings                     coordinator: the settings of their areas
GET    /api/v1/signal-settings/<area uuid>         coordinator; ``Area.can_view``
PATCH  /api/v1/signal-settings/<area uuid>         coordinator; ``Area.can_view``; stale: 409
DELETE /api/v1/signal-settings/<area uuid>         coordinator; ``Area.can_view``: the standard
=====  ==========================================  ===========================================

The views call the services the pages call (``drafting``, ``subscribers``, ``signals``,
``reports``, ``assessment``); bodies, queries and answers are the models of
``dr_panel.alerts.schemas``. Registered under ``/api/v1`` by ``dr_panel.api.v1``; shared HTTP
helpers in ``dr_panel.webapi``.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Response, url_for
from flask_openapi3.models import Schema
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from dr_panel.alerts import assessment as ldis
from dr_panel.alerts import broadcast, leakgate
from dr_panel.alerts import drafting as dr
from dr_panel.alerts import models as m
from dr_panel.alerts import reports as drug_reports
from dr_panel.alerts import signals as sig
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.schemas import broadcast as bs
from dr_panel.alerts.schemas import drafting as ds
from dr_panel.alerts.schemas import ldis as ls
from dr_panel.audit.services import record
from dr_panel.auth.models import Role
from dr_panel.dbtypes import parse_uuid
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from dr_panel.security import deny, get_or_404, problem, roles
from dr_panel.webapi import PROBLEM_MIME, UuidPath, answer, blueprint, invalid, me, problems

api = blueprint("alerts", __name__, "", "Alerts")

coordinators = roles(Role.COORDINATOR)
alert_readers = roles(Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


def _component(model: type[BaseModel]) -> None:
    """A model only a problem answer names (``problems`` refers to components by name)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, inner in schema.pop("$defs", {}).items():
        api.components_schemas[name] = Schema(**inner)
    api.components_schemas[model.__name__] = Schema(**schema)


_component(ds.LeakGateProblem)
LEAK_GATE: dict[Any, Any] = {
    422: {
        "description": "The identifier-leak gate found possible identifiers: 'findings' lists "
        "each span (field, start, end, kind) and 'errors' says what to fix. Nothing changed but "
        "the audit entry.",
        "content": {PROBLEM_MIME: {"schema": {"$ref": "#/components/schemas/LeakGateProblem"}}},
    }
}


# -- signals, drug-concern reports, assessments ---------------------------------------------------


@api.get("/signals", responses={200: ls.SignalList})
@coordinators
def list_signals(query: ls.ItemQuery) -> Response:
    """Signals in your areas, newest first (panel coordinators)."""
    stmt = select(m.Signal).where(m.Signal.area_id.in_(me().area_ids or {-1}))
    if query.status is not None:
        stmt = stmt.where(m.Signal.status == m.ItemStatus(query.status))
    rows = db.session.scalars(
        stmt.order_by(m.Signal.detected_at.desc(), m.Signal.id.desc()).limit(500)
    )
    return answer(ls.SignalList(items=[ls.Signal.model_validate(sig.signal_json(x)) for x in rows]))


@api.get("/signals/<uuid>", responses={
    200: ls.Signal, **problems(_404="No such signal, or it is outside your areas.")})
@coordinators
def get_signal(path: UuidPath) -> Response:
    """One signal with its evidence."""
    found = get_or_404(m.Signal, path.uuid, need="view")
    return answer(ls.Signal.model_validate(sig.signal_json(found)))


@api.get("/reports", operation_id="listDrugReports", responses={200: ls.DrugReportList})
@coordinators
def list_reports(query: ls.ItemQuery) -> Response:
    """Drug-concern reports in your areas, newest first, without their text (coordinators)."""
    status = m.ItemStatus(query.status) if query.status is not None else None
    rows = drug_reports.visible_reports(me(), status)
    return answer(ls.DrugReportList(
        items=[ls.DrugReport.model_validate(drug_reports.report_json(r)) for r in rows]))


@api.post("/reports", operation_id="createDrugReport", responses={201: ls.DrugReport})
@roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.LEAD)
def create_report(body: ls.NewDrugReport) -> Response:
    """Report a drug concern (any role but admin).

    The answer gives the reference; a confirmation e-mail goes to your address."""
    try:
        report = drug_reports.file_report(body.entered(), by=me())
        db.session.commit()
    except drug_reports.ReportRefused as err:
        drug_reports.record_refusal(err, by=me())
        return invalid(err.errors)
    return answer(ls.DrugReport.model_validate(drug_reports.report_json(report)), 201)


@api.get("/reports/<uuid>", operation_id="getDrugReport", responses={
    200: ls.DrugReport, **problems(_404="No such report, or it is outside your areas.")})
@coordinators
def get_report(path: UuidPath) -> Response:
    """One report with its text (coordinators of its area; audited)."""
    report = get_or_404(m.DrugReport, path.uuid, need="view")
    body = ls.DrugReport.model_validate(
        drug_reports.report_json(report, content=True, viewer=me()))
    record("drug_report.viewed", actor=me(), object_type="drug_reports", object_uuid=report.uuid)
    db.session.commit()
    return answer(body)


ONE_ITEM = "Name exactly one item: the UUID of a signal or of a report."


@api.post("/assessments", responses={201: ls.Assessment, **problems(
    _404="No such signal or report, or it is outside your areas.",
    _409="The item is closed or an alert was drafted from it.")})
@coordinators
def create_assessment(body: ls.NewAssessment) -> Response:
    """Grade a signal or report and record the decision (coordinators of its area).

    'No further action' closes it; other decisions mark it assessed."""
    named = [k for k in ("signal", "report") if getattr(body, k)]
    if len(named) != 1:
        return invalid({"signal": ONE_ITEM, "report": ONE_ITEM})
    key = named[0]
    raw: str = getattr(body, key)
    if parse_uuid(raw) is None:
        return invalid({key: f"{key}: give the {key}'s UUID."})
    item = get_or_404(m.Signal if key == "signal" else m.DrugReport, raw, need="assess")
    try:
        made = ldis.assess(item, body.grading(), by=me())
        db.session.commit()
    except ldis.AssessmentError as err:
        db.session.rollback()
        if err.field == "decision":
            return problem(409, "The item cannot be assessed", str(err), errors={key: str(err)})
        return invalid({err.field: str(err)})
    return answer(ls.Assessment.model_validate(ldis.assessment_json(made, item)), 201)


# -- an area's spike-scan settings ---------------------------------------------------------------

NO_AREA = "No such area, or it is not one of yours (the two are not told apart)."


@api.get("/signal-settings", responses={200: ls.SignalSettingsList})
@coordinators
def list_signal_settings() -> Response:
    """The spike-scan settings in use in each of your areas; coordinators."""
    areas = db.session.scalars(
        select(Area).where(Area.id.in_(me().area_ids)).order_by(Area.name)
    ).all()
    rows = ls.settings_rows(areas)
    return answer(ls.SignalSettingsList(items=[ls.signal_settings(a, rows) for a in areas]))


@api.get("/signal-settings/<uuid>", responses={200: ls.SignalSettings, **problems(_404=NO_AREA)})
@coordinators
def get_signal_settings(path: UuidPath) -> Response:
    """One area's spike-scan settings."""
    return answer(ls.signal_settings(get_or_404(Area, path.uuid, need="view")))


@api.patch("/signal-settings/<uuid>", responses={200: ls.SignalSettings, **problems(
    _404=NO_AREA, _409="The settings were changed since your 'revision'; nothing was saved.")})
@coordinators
def update_signal_settings(path: UuidPath, body: ls.SignalSettingsChange) -> Response:
    """Change an area's spike-scan settings from the next scan.

    Give the 'revision' you last read: a change made since is refused with 409."""
    area = get_or_404(Area, path.uuid, need="view")
    try:
        sig.save_area_settings(area, body.applied_to(sig.settings_for(area.ons_code)),
                               by=me(), revision=body.revision)
        db.session.commit()
    except (sig.StaleSettings, StaleDataError, IntegrityError):
        db.session.rollback()
        return problem(409, "The settings have changed",
                       "Someone changed this area's settings since your 'revision': read them "
                       "again, then send your change with the new revision.",
                       errors={"revision": "out of date"})
    return answer(ls.signal_settings(area))


@api.delete("/signal-settings/<uuid>", responses={200: ls.SignalSettings,
                                                  **problems(_404=NO_AREA)})
@coordinators
def reset_signal_settings(path: UuidPath) -> Response:
    """Drop the area's own settings: the standard ones apply again."""
    area = get_or_404(Area, path.uuid, need="view")
    sig.reset_area_settings(area, by=me())
    db.session.commit()
    return answer(ls.signal_settings(area))


# -- subscriptions and deliveries ----------------------------------------------------------------

NO_SUBSCRIPTION = ("No such subscription or alert, or it is outside your areas (the two are not "
                   "told apart).")


def _secret_answer(sub: m.Subscriber, secret: str | None, status: int = 200,
                   location: str | None = None) -> Response:
    """An answer that may hold a webhook's new signing secret: never cached."""
    response = answer(bs.subscription(sub, secret=secret), status, location=location)
    response.headers["Cache-Control"] = "no-store"
    return response


@api.get("/subscriptions", responses={200: bs.SubscriptionList})
@coordinators
def list_subscriptions() -> Response:
    """Alert subscribers (e-mail and webhook) of your areas; coordinators."""
    rows = cast("list[m.Subscriber]", db.session.scalars(subs.query_for(me())).all())
    return answer(bs.SubscriptionList(items=[bs.subscription(x) for x in rows]))


@api.post("/subscriptions", responses={201: bs.Subscription})
@coordinators
def create_subscription(body: bs.NewSubscription) -> Response:
    """Add an e-mail subscriber or a webhook endpoint (coordinators).

    A webhook's signing secret ('whsec_...') is in the answer this once only."""
    try:
        sub, secret = subs.create(body.details(), by=me())
        db.session.commit()
    except subs.SubscriberError as err:
        db.session.rollback()
        return invalid({err.field or "name": str(err)})
    return _secret_answer(sub, secret, 201,
                          location=url_for("api.alerts.get_subscription", uuid=sub.uuid))


@api.get("/subscriptions/<uuid>", responses={200: bs.Subscription,
                                             **problems(_404=NO_SUBSCRIPTION)})
@coordinators
def get_subscription(path: UuidPath) -> Response:
    """One subscriber (never its secret)."""
    return answer(bs.subscription(get_or_404(m.Subscriber, path.uuid, need="view")))


@api.patch("/subscriptions/<uuid>", responses={200: bs.Subscription, **problems(
    _404=NO_SUBSCRIPTION, _409="The subscription is already in that state; nothing changed.")})
@coordinators
def update_subscription(path: UuidPath, body: bs.SubscriptionChange) -> Response:
    """Change a subscriber; what is not given stays as it is.

    'active': true re-enables it (clearing the reason), false disables it."""
    sub = get_or_404(m.Subscriber, path.uuid, need="edit")
    try:
        details = body.details(sub)
        if details is not None:
            subs.update(sub, details, by=me())
        if body.active is True and not sub.is_active:
            subs.enable(sub, by=me())
        elif body.active is False and sub.is_active:
            subs.disable(sub, None, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        return invalid({err.field or "name": str(err)})
    db.session.commit()
    return answer(bs.subscription(sub))


@api.delete("/subscriptions/<uuid>", responses={200: bs.Subscription, **problems(
    _404=NO_SUBSCRIPTION, _409="The subscription is already disabled; nothing changed.")})
@coordinators
def delete_subscription(path: UuidPath) -> Response:
    """Disable a subscriber: nothing more is sent to it.

    Its waiting deliveries are given up. The record stays, for the delivery history."""
    sub = get_or_404(m.Subscriber, path.uuid, need="edit")
    try:
        subs.disable(sub, "disabled through the API", by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        return problem(409, "Already disabled", str(err))
    db.session.commit()
    return answer(bs.subscription(sub))


@api.post("/subscriptions/<uuid>/rotate-secret", responses={
    200: bs.Subscription, **problems(_404=NO_SUBSCRIPTION)})
@coordinators
def rotate_subscription_secret(path: UuidPath) -> Response:
    """A new signing secret for a webhook, in the answer this once only.

    The previous one keeps signing too (a second signature) until 'previous_secret_until'."""
    sub = get_or_404(m.Subscriber, path.uuid, need="edit")
    try:
        secret, _ = subs.rotate_secret(sub, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        return invalid({"channel": str(err)}, "Nothing was changed.")
    db.session.commit()
    return _secret_answer(sub, secret)


@api.get("/alerts/<uuid>/deliveries", operation_id="listAlertDeliveries",
         responses={200: bs.DeliveryList, **problems(_404=NO_SUBSCRIPTION)})
@coordinators
def alert_deliveries(path: UuidPath, query: bs.DeliveryQuery) -> Response:
    """Who an alert's versions went to (coordinators of the alert's area).

    Counts per version and state across the network, and one page of the deliveries to
    subscribers of your areas ('elsewhere' counts the others, unnamed)."""
    alert = get_or_404(m.Alert, path.uuid, need="edit")
    user = me()
    page = db.paginate(broadcast.delivery_query(alert, viewer=user, **query.filters()),
                       page=query.page, per_page=query.per_page, error_out=False, count=True)
    following = None
    if page.has_next:
        following = url_for("api.alerts.alert_deliveries", uuid=alert.uuid,
                            **{**query.model_dump(mode="json", exclude_none=True),
                               "page": query.page + 1})
    return answer(bs.DeliveryList(
        alert=str(alert.uuid),
        counts=[bs.DeliveryCount(**c) for c in broadcast.delivery_counts(alert)],
        items=[bs.delivery(d) for d in page.items],
        elsewhere=broadcast.deliveries_elsewhere(alert, viewer=user, **query.filters()),
        page=query.page,
        per_page=query.per_page,
        total=page.total or 0,
        next=following,
    ))


# -- alerts: drafting, the leak gate, approval -----------------------------------------------------

NO_ALERT = ("No such alert (or assessment), or it is outside your areas (the two are not told "
            "apart).")
ALERT_409 = ("The alert changed since you read it ('revision'), or it is not in a state that "
             "allows this; nothing was saved.")


def _draft_refused(alert: m.Alert | None, err: dr.DraftError) -> Response:
    """A DraftError as problem details: 403 (audited) when not allowed, 409 when stale or not
    in a state that allows it, else 400 naming the field."""
    db.session.rollback()
    if isinstance(err, dr.NotAllowed):
        deny(object_type="alerts", object_uuid=alert.uuid if alert else None, why=str(err)[:60])
    field = getattr(err, "field", "content")
    key = f"content.{field}" if field in dr.CONTENT_FIELDS else field
    if isinstance(err, dr.StaleDraft | dr.WrongState):
        return problem(409, "The alert cannot change like this", str(err), errors={key: str(err)})
    return invalid({key: str(err)})


def _gate_refused(findings: list[leakgate.Finding]) -> Response:
    db.session.commit()  # the audit entry of the refusal
    return problem(
        422,
        "The leak gate found possible identifiers",
        "Nothing was sent. Remove what 'findings' lists (each span is in the field's own text) "
        "and try again.",
        errors=ds.leak_errors(findings),
        findings=ds.leak_findings(findings),
    )


@api.get("/alerts", responses={200: ds.AlertList})
@alert_readers
def list_alerts(query: ds.ArchiveQuery) -> Response:
    """The alerts archive: alerts you may read, newest first.

    Coordinators and leads see drafts of their areas' alerts; panel members and agency
    contributors see issued alerts covering their areas."""
    user = me()
    page = db.paginate(dr.archive(user, query.archive()), page=query.page,
                       per_page=query.per_page, error_out=False, count=True)
    following = None
    if page.has_next:
        following = url_for("api.alerts.list_alerts",
                            **{**query.model_dump(mode="json", exclude_none=True),
                               "page": query.page + 1})
    return answer(ds.AlertList(
        items=[ds.alert_summary(a, user) for a in dr.filter_readable(page.items, user)],
        page=query.page,
        per_page=query.per_page,
        total=page.total or 0,
        next=following,
    ))


@api.post("/alerts", responses={201: ds.Alert, **problems(_404=NO_ALERT, _409=ALERT_409)})
@roles(Role.COORDINATOR)
def create_alert(body: ds.NewAlert) -> Response:
    """Draft an alert from an assessment whose decision is a notice or an alert.

    Coordinators of the item's area. The level and area come from the assessment and the counts
    sentence is written under the disclosure rule; the other keys, if given, fill the draft in
    the same request."""
    user = me()
    value = parse_uuid(body.assessment)
    assessment = (
        db.session.scalar(select(m.Assessment).where(m.Assessment.uuid == value))
        if value else None
    )
    if assessment is None:
        return invalid({"assessment": "No assessment has this UUID: give the UUID of the "
                        "assessment to draft from."})
    item = dr.assessed_item(assessment)
    if item is None or not item.can_assess(user):
        deny(status=404, object_type="assessments", object_uuid=assessment.uuid,
             why="record:draft")
    try:
        alert = dr.start_draft(assessment, by=user)
        if body.has_draft_fields():
            dr.edit_draft(alert, body.draft_of(alert.versions[-1]), by=user,
                          expected_revision=None)
    except dr.DraftError as err:
        return _draft_refused(None, err)
    db.session.commit()
    return answer(ds.alert_answer(alert, user), 201,
                  location=url_for("api.alerts.get_alert", uuid=alert.uuid))


@api.get("/alerts/<uuid>", responses={200: ds.Alert, **problems(_404=NO_ALERT)})
@alert_readers
def get_alert(path: UuidPath) -> Response:
    """One alert with the versions you may read."""
    return answer(ds.alert_answer(get_or_404(m.Alert, path.uuid, need="read"), me()))


@api.post("/alerts/<uuid>/submit", responses={
    200: ds.Alert, **problems(_404=NO_ALERT, _409=ALERT_409), **LEAK_GATE})
@roles(Role.COORDINATOR)
def submit_alert(path: UuidPath, body: ds.Revision) -> Response:
    """Send the version being prepared for approval, if the leak gate finds nothing."""
    alert = get_or_404(m.Alert, path.uuid, need="edit")
    try:
        findings = dr.submit(alert, by=me(), expected_revision=body.revision)
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    if findings:
        return _gate_refused(findings)
    db.session.commit()
    return answer(ds.alert_answer(alert, me()))


@api.post("/alerts/<uuid>/approve", responses={
    200: ds.Alert, **problems(_404=NO_ALERT, _409=ALERT_409), **LEAK_GATE})
@roles(Role.COORDINATOR, Role.LEAD)
def approve_alert(path: UuidPath, body: ds.Revision) -> Response:
    """Approve and issue the submitted version; never its drafter (403).

    Another coordinator of the area or a lead covering it. Issuing freezes it and queues its
    deliveries in the same transaction."""
    alert = get_or_404(m.Alert, path.uuid, need="view")
    try:
        issued = dr.approve(alert, by=me(), expected_revision=body.revision)
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    if issued.findings:
        return _gate_refused(issued.findings)
    db.session.commit()
    return answer(ds.alert_answer(alert, me(), deliveries=issued.deliveries))


@api.post("/alerts/<uuid>/update", responses={
    200: ds.Alert, **problems(_404=NO_ALERT, _409=ALERT_409)})
@roles(Role.COORDINATOR)
def update_alert(path: UuidPath, body: ds.AlertChange) -> Response:
    """Change the content: of the version being prepared, or in a new Update version.

    While a version is being prepared, send the 'revision' you were given, so a colleague's
    later change is not overwritten. A live alert with nothing pending gets an Update version
    (it references the live one and needs the same gate and approval)."""
    alert = get_or_404(m.Alert, path.uuid, need="edit")
    try:
        expected = body.revision
        version = alert.draft
        if version is None:
            version = dr.start_update(alert, by=me())
            expected = None
        dr.edit_draft(alert, body.draft_of(version), by=me(), expected_revision=expected)
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    db.session.commit()
    return answer(ds.alert_answer(alert, me()))


@api.post("/alerts/<uuid>/cancel", responses={
    200: ds.Alert, **problems(_404=NO_ALERT, _409=ALERT_409), **LEAK_GATE})
@roles(Role.COORDINATOR)
def cancel_alert(path: UuidPath, body: ds.Cancellation) -> Response:
    """Cancel a live alert: a Cancel version referencing it, with the reason.

    It waits for a second person's approval unless 'urgent' is true, when it is issued at
    once."""
    alert = get_or_404(m.Alert, path.uuid, need="edit")
    try:
        result = dr.cancel(alert, reason=body.reason, urgent=bool(body.urgent), by=me())
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    if result.findings:
        return _gate_refused(result.findings)
    db.session.commit()
    return answer(ds.alert_answer(alert, me(), deliveries=result.deliveries))
