"""The local drug information system's pages (blueprint ``alerts``, ``/ldis``): signals, drug-
concern reports, the queue and assessment here; drafting and approval in ``drafting_routes``;
subscribers and deliveries in ``broadcast_routes``. Every rule of this part reads here:

=====  =====================================  ==============================================
GET    /ldis/queue                            coordinator: new signals and reports of their
                                              areas, due times, overdue first
GET    /ldis/signals                          coordinator: signals of their areas
GET    /ldis/signals/<uuid>                   coordinator; ``Signal.can_view``
GET    /ldis/signals/<uuid>/chart.svg         coordinator; ``Signal.can_view``
GET    /ldis/signals/<uuid>/assess            coordinator; ``Signal.can_assess``
POST   /ldis/signals/<uuid>/assess            coordinator; ``Signal.can_assess``
GET    /ldis/reports                          coordinator: reports of their areas
GET    /ldis/reports/new                      signed in, not admin: report a drug concern
POST   /ldis/reports/new                      signed in, not admin
GET    /ldis/reports/<uuid>                   coordinator; ``DrugReport.can_view`` (audited)
GET    /ldis/reports/<uuid>/assess            coordinator; ``DrugReport.can_assess``
POST   /ldis/reports/<uuid>/assess            coordinator; ``DrugReport.can_assess``
GET    /report-a-drug-concern                 public
POST   /report-a-drug-concern                 public; rate-limited per client; honeypot
=====  =====================================  ==============================================

Admins have nothing here: reports and signals are the LDIS's work, not system administration.
Leads approve alerts (drafting) but do not see raw reports or signals. Panel members, agency
contributors and leads file reports; none of them sees any report afterwards (the confirmation
page and e-mail give the reference). A report whose words match a stored person the reporter may
not see is accepted as any other and held (``reports.py``); its coordinators' page marks the
words. Opening a report's decrypted content is audited as a view
(``drug_report.viewed``): it is free text a reporter wrote, not an identifier reveal, so no
reason is asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from werkzeug.routing import BuildError

from dr_panel.alerts import assessment as asm
from dr_panel.alerts import reports as rep
from dr_panel.alerts import signals as sig
from dr_panel.alerts.forms import AssessmentForm, ItemFilterForm, PublicReportForm, ReportForm
from dr_panel.alerts.models import (
    Decision,
    DrugReport,
    ItemStatus,
    Rating,
    Reliability,
    Severity,
    Signal,
)
from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record, record_now
from dr_panel.auth.models import Role, User
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db, limiter
from dr_panel.security import get_or_404, public, roles

bp = Blueprint("alerts", __name__, url_prefix="/ldis")
public_bp = Blueprint("drug_concern", __name__)

coordinators = roles(Role.COORDINATOR)
reporters = roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.LEAD)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


# -- queue and signals ----------------------------------------------------------------------------


@bp.get("/queue")
@coordinators
def queue() -> Any:
    return render_template(
        "alerts/queue.html", items=asm.queue(me()), now=utcnow(), label=sig.subject_label
    )


def _status_filter() -> tuple[ItemFilterForm, ItemStatus | None]:
    form = ItemFilterForm(request.args)
    value = request.args.get("status") or ""
    status = ItemStatus(value) if value in {s.value for s in ItemStatus} else None
    return form, status


@bp.get("/signals")
@coordinators
def signals() -> Any:
    form, status = _status_filter()
    stmt = select(Signal).where(Signal.area_id.in_(me().area_ids or {-1}))
    if status is not None:
        stmt = stmt.where(Signal.status == status)
    rows = db.session.scalars(
        stmt.order_by(Signal.detected_at.desc(), Signal.day.desc()).limit(500)
    )
    return render_template(
        "alerts/signals.html",
        signals=list(rows),
        form=form,
        label=sig.subject_label,
        methods=sig.METHOD_LABELS,
    )


def _assessment_context(item: Signal | DrugReport, since: datetime) -> dict[str, Any]:
    """What a signal's and a report's pages both show of its assessment: the gradings so far,
    the due time, and what may be done next."""
    return {
        "assessments": asm.assessments_of(item),
        "due": asm.due_at(since, item.is_urgent),
        "now": utcnow(),
        "decisions": asm.DECISION_LABELS,
        "reliabilities": asm.RELIABILITY_LABELS,
        "can_assess": item.status in asm.OPEN_FOR_ASSESSMENT,
        "draft_link": _draft_link,
        "alert_decisions": asm.ALERT_DECISIONS,
    }


@bp.get("/signals/<uuid>")
@coordinators
def signal(uuid: str) -> Any:
    s = get_or_404(Signal, uuid, need="view")
    return render_template(
        "alerts/signals_detail.html",
        signal=s,
        evidence=sig.evidence_of(s),
        label=sig.subject_label(s),
        method=sig.method_text(s),
        **_assessment_context(s, s.detected_at),
    )


@bp.get("/signals/<uuid>/chart.svg")
@coordinators
def signal_chart(uuid: str) -> Any:
    s = get_or_404(Signal, uuid, need="view")
    svg = sig.chart_svg(s)
    if svg is None:
        return Response("This signal has no series to draw.", status=404, mimetype="text/plain")
    return Response(svg, mimetype="image/svg+xml")


# -- reports --------------------------------------------------------------------------------------


@bp.get("/reports")
@coordinators
def reports() -> Any:
    form, status = _status_filter()
    return render_template(
        "alerts/reports.html", reports=rep.visible_reports(me(), status), form=form, now=utcnow()
    )


@bp.get("/reports/<uuid>")
@coordinators
def report(uuid: str) -> Any:
    from dr_panel.alerts.leakgate import merged_spans

    r = get_or_404(DrugReport, uuid, need="view")
    content = rep.content_of(r)
    held = rep.held_for_viewer(r, me()) if r.is_held else {}
    pieces = {key: merged_spans(content[key], held.get(key, [])) for key in rep.TEXT_FIELDS}
    record("drug_report.viewed", actor=me(), object_type="drug_reports", object_uuid=r.uuid)
    db.session.commit()
    return render_template(
        "alerts/reports_detail.html",
        report=r,
        content=content,
        pieces=pieces,
        held_fields=[rep.TEXT_FIELDS[k][0].split(" (")[0] for k in rep.TEXT_FIELDS if k in held],
        fields=rep.TEXT_FIELDS,
        **_assessment_context(r, r.received_at),
    )


def _fill_areas(form: ReportForm) -> None:
    areas = [(a.ons_code, a.name) for a in rep.area_choices()]
    form.area.choices = [("", "Choose an area"), *areas]


def _report_input(form: ReportForm, *, contact: str = "") -> rep.ReportInput:
    return rep.ReportInput(
        area=form.area.data or "",
        seen_on=form.seen_on.data,
        is_urgent=bool(form.is_urgent.data),
        contact=contact,
        texts={k: getattr(form, k).data or "" for k in rep.TEXT_FIELDS},
    )


def _refused(form: ReportForm, err: rep.ReportRefused) -> dict[str, Any]:
    """Put the service's messages on the fields; the gate's spans go to the page."""
    for key, message in err.errors.items():
        target = form[key] if key in form else form.substance
        target.errors = [*target.errors, message]
    highlights = []
    for key in rep.TEXT_FIELDS:
        found = [f for f in err.findings if f.field == key]
        if found:
            from dr_panel.alerts.leakgate import merged_spans

            text = (getattr(form, key).data or "").strip()
            highlights.append((form[key].label.text, form[key].id, merged_spans(text, found)))
    return {"highlights": highlights}


def _date_errors(form: ReportForm) -> None:
    # DateField's own message ("Not a valid date value") does not say how to fix it.
    if form.seen_on.errors:
        form.seen_on.errors = ["Write the date as YYYY-MM-DD, like 2026-11-20."]


@bp.route("/reports/new", methods=["GET", "POST"])
@reporters
def new_report() -> Any:
    form = ReportForm()
    _fill_areas(form)
    extra: dict[str, Any] = {}
    status = 200
    if request.method == "GET" and len(me().area_ids) == 1:
        form.area.data = next(a.ons_code for a in rep.area_choices() if a.id in me().area_ids)
    if request.method == "POST":
        form.validate_on_submit()
        _date_errors(form)
        csrf_failed = "csrf_token" in form.errors
        if not csrf_failed:
            try:
                made = rep.file_report(_report_input(form), by=me())
            except rep.ReportRefused as err:
                rep.record_refusal(err, by=me())
                extra = _refused(form, err)
                status = 400
            else:
                db.session.commit()
                return render_template("alerts/reports_sent.html", report=made, public=False)
        else:
            status = 400
    return render_template(
        "alerts/report_form.html", form=form, public=False, **extra
    ), status


def _report_limit() -> str:
    return str(current_app.config["DRUG_REPORT_LIMIT"])


@public_bp.route("/report-a-drug-concern", methods=["GET", "POST"])
@public
@limiter.limit(_report_limit, methods=["POST"])
def public_report() -> Any:
    form = PublicReportForm()
    _fill_areas(form)
    extra: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        form.validate_on_submit()
        _date_errors(form)
        if (form.website.data or "").strip():
            # The honeypot: people never see the field; say nothing useful to a bot.
            record_now(
                "drug_report.refused",
                outcome=Outcome.DENIED,
                actor_label="public",
                details={"why": "honeypot"},
            )
            page = render_template(
                "alerts/public_report.html", form=form, public=True, refused=True
            )
            return page, 400
        if "csrf_token" in form.errors:
            status = 400
        else:
            try:
                made = rep.file_report(
                    _report_input(form, contact=form.contact.data or ""), by=None
                )
            except rep.ReportRefused as err:
                rep.record_refusal(err, by=None)
                extra = _refused(form, err)
                status = 400
            else:
                db.session.commit()
                return render_template("alerts/reports_sent.html", report=made, public=True)
    return render_template("alerts/public_report.html", form=form, public=True, **extra), status


# -- assessment -----------------------------------------------------------------------------------


def _draft_link(a: Any) -> str:
    """A2's drafting page for this assessment (a plain path if that view is not there)."""
    try:
        return url_for("alerts.new_draft", assessment=a.uuid)
    except BuildError:
        return f"{bp.url_prefix}/alerts/new?assessment={a.uuid}"


def _grading(form: AssessmentForm) -> asm.Grading | None:
    """The grading, or None with a message on each field left unchosen."""
    picks = {
        "reliability": (Reliability, "Choose the source reliability, A to E."),
        "plausibility": (Rating, "Choose how plausible the information is."),
        "local_relevance": (Rating, "Choose how relevant it is locally."),
        "severity": (Severity, "Choose the severity of harm."),
        "decision": (Decision, "Choose the decision."),
    }
    values: dict[str, Any] = {}
    for name, (enum_type, message) in picks.items():
        raw = form[name].data or ""
        if raw not in {m.value for m in enum_type}:
            form[name].errors = [message]
        else:
            values[name] = enum_type(raw)
    if len(values) < len(picks):
        return None
    return asm.Grading(
        rationale=form.rationale.data or "", notes=form.notes.data or "", **values
    )


def _assess(item: Signal | DrugReport, back: str) -> Any:
    form = AssessmentForm()
    status = 200
    if request.method == "POST":
        form.validate_on_submit()  # CSRF and lengths; the choices get plainer messages below
        if "csrf_token" not in form.errors:
            grading = _grading(form)
            if grading is not None:
                try:
                    a = asm.assess(item, grading, by=me())
                except asm.AssessmentError as err:
                    db.session.rollback()
                    field = err.field if err.field in form else "decision"
                    form[field].errors = [*form[field].errors, str(err)]
                else:
                    db.session.commit()
                    flash(f"Assessment recorded: {asm.DECISION_LABELS[a.decision]}.", "success")
                    if a.decision in asm.ALERT_DECISIONS:
                        flash("Next: draft the alert from this assessment.", "info")
                        return redirect(_draft_link(a))
                    return redirect(back)
        status = 400
    return render_template(
        "alerts/assess.html",
        form=form,
        item=item,
        is_signal=isinstance(item, Signal),
        title=(
            sig.subject_label(item) if isinstance(item, Signal) else f"Report {item.reference}"
        ),
        back=back,
        can_assess=item.status in asm.OPEN_FOR_ASSESSMENT,
    ), status


@bp.route("/signals/<uuid>/assess", methods=["GET", "POST"])
@coordinators
def assess_signal(uuid: str) -> Any:
    s = get_or_404(Signal, uuid, need="assess")
    return _assess(s, url_for("alerts.signal", uuid=s.uuid))


@bp.route("/reports/<uuid>/assess", methods=["GET", "POST"])
@coordinators
def assess_report(uuid: str) -> Any:
    r = get_or_404(DrugReport, uuid, need="assess")
    return _assess(r, url_for("alerts.report", uuid=r.uuid))


# The other parts of the LDIS add their views to ``bp`` in their own modules.
from dr_panel.alerts import (  # noqa: E402,F401
    broadcast_routes,
    drafting_routes,
    settings_routes,
)
