"""JSON API v1, and the pages where people manage their own API tokens.

Every rule of this area reads here:

=====  ====================================  ===========================================
GET    /api/v1/openapi.json                  public (it describes, it holds no data)
GET    /api/v1/cases                         coordinator, panel member; their areas only
POST   /api/v1/cases                         coordinator, panel member; their areas only
GET    /api/v1/cases/<uuid>                  coordinator, panel member; ``can_view``;
                                             ``?reveal=1`` also ``can_reveal``, audited
GET    /api/v1/cases/<uuid>/transitions      coordinator, panel member; ``can_view``
POST   /api/v1/cases/<uuid>/transitions      coordinator; ``can_edit``
GET    /api/v1/cases/<uuid>/requests         coordinator, panel member; ``can_view``
POST   /api/v1/cases/<uuid>/requests         coordinator; ``can_edit``
GET    /api/v1/requests                      agency contributor: their agency's queue
PUT    /api/v1/requests/<uuid>/return        agency contributor; ``InfoRequest.can_answer``
GET    /api/v1/cases/<uuid>/actions          coordinator, panel member; ``can_view``
POST   /api/v1/cases/<uuid>/actions          coordinator; ``can_edit``
GET    /api/v1/actions                       coordinator, panel member, agency contributor:
                                             the tracker of the actions they may see
PATCH  /api/v1/actions/<uuid>                coordinator, panel member, agency contributor;
                                             ``Action.can_view``, then ``can_update`` (403)
GET    /api/v1/cases/<uuid>/findings         coordinator, panel member; ``can_view``
PUT    /api/v1/cases/<uuid>/findings         coordinator, panel member; ``can_view``, then
                                             ``can_edit_findings`` (403)
GET    /api/v1/cases/<uuid>/safety-plan      coordinator, panel member; ``can_view``
PUT    /api/v1/cases/<uuid>/safety-plan      coordinator, panel member; ``can_view``
GET    /api/v1/trends                        lead, coordinator: counts and rates of their
                                             areas, disclosure-controlled (audited)
GET    /api/v1/alerts                        coordinator, lead, panel member, agency contributor:
                                             the alerts archive they may read (LDIS)
POST   /api/v1/alerts                        coordinator of the assessed item's area
GET    /api/v1/alerts/<uuid>                 the four roles above; ``Alert.can_read``
POST   /api/v1/alerts/<uuid>/submit          coordinator; ``Alert.can_edit``; 422 if the leak
                                             gate blocks it
POST   /api/v1/alerts/<uuid>/approve         coordinator, lead; ``can_view``, then
                                             ``can_approve`` (403, audited; never the drafter)
POST   /api/v1/alerts/<uuid>/update          coordinator; ``Alert.can_edit``
POST   /api/v1/alerts/<uuid>/cancel          coordinator; ``Alert.can_edit``
GET    /api/v1/signals                       coordinator: their areas' signals (LDIS)
GET    /api/v1/signals/<uuid>                coordinator; ``Signal.can_view``
GET    /api/v1/reports                       coordinator: their areas' drug-concern reports
POST   /api/v1/reports                       signed in, not admin: report a drug concern
GET    /api/v1/reports/<uuid>                coordinator; ``DrugReport.can_view`` (audited)
POST   /api/v1/assessments                   coordinator; the item's ``can_assess``
GET    /api/v1/signal-settings               coordinator: the spike-scan settings of their areas
GET    /api/v1/signal-settings/<area uuid>   coordinator; ``Area.can_view`` (their areas)
PATCH  /api/v1/signal-settings/<area uuid>   coordinator; ``Area.can_view``; stale revision: 409
DELETE /api/v1/signal-settings/<area uuid>   coordinator; ``Area.can_view``: the standard again
GET    /account/tokens                       signed in, in a browser: their own tokens
POST   /account/tokens                       signed in, in a browser: create one
POST   /account/tokens/<uuid>/revoke         signed in, in a browser: their own token only
POST   /account/tokens/<uuid>/renew          signed in, in a browser: their own live token only
=====  ====================================  ===========================================

The API calls the same services as the pages (``dr_panel.cases.services``) and answers every
error as RFC 9457 problem details.

Credentials (``dr_panel.security.CREDENTIALS``): the API accepts an API token and nothing else.
The browser's session cookie authenticates nobody under ``/api/``, so another site's page cannot
act through a signed-in person's browser (the API is CSRF-exempt for that reason), and a token
authenticates nobody outside the API and the feeds: the token pages, account, second-factor,
session and admin pages answer it 401, so a leaked token cannot make itself a successor or
replace its owner's second factor. Tokens expire (``API_TOKEN_DAYS``, 90 by default); the owner
renews a live one here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import RequestEntityTooLarge

from dr_panel.api import services as api
from dr_panel.api.forms import TokenForm
from dr_panel.api.openapi import document
from dr_panel.auth.models import ApiToken, Role, User
from dr_panel.cases import workflow
from dr_panel.cases.models import Case, Substance, YesNoUnknown
from dr_panel.cases.services import (
    Lookups,
    create_notification,
    parse_notification,
    refuse_reveal,
    reveal,
    visible_cases,
)
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import csrf, db
from dr_panel.forms import EmptyForm
from dr_panel.privacy.reasons import ReasonRefused
from dr_panel.reference.models import Agency, Area
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import actions as act
from dr_panel.reviews import findings as fd
from dr_panel.reviews import services as reviews
from dr_panel.reviews.models import RETURN_TEXTS, Engagement, InfoRequest, RequestStatus
from dr_panel.security import deny, get_or_404, problem, public, roles, signed_in

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, not cookies: no CSRF exposure

# The token pages are ordinary pages (CSRF-protected, HTML errors) under /account; they are
# registered with the API so that this area's rules stay in one file.
tokens_bp = Blueprint("api_tokens", __name__, url_prefix="/account/tokens")


case_roles = roles(Role.COORDINATOR, Role.PANEL_MEMBER)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def invalid(errors: dict[str, str], detail: str) -> Response:
    return problem(400, "The request was not valid", detail, errors=errors)


# -- the document -------------------------------------------------------------------------------


@bp.get("/openapi.json")
@public
def openapi() -> Any:
    rows = db.session.execute(select(Substance.code, Substance.is_active)).all()
    agencies = db.session.scalars(select(Agency.code).where(Agency.is_active.is_(True)))
    doc = document(
        [c for c, _ in rows],
        [c for c, active in rows if active],
        agencies=sorted(agencies),
        themes=[t.code for t in fd.active_themes()],
    )
    # Not jsonify: its sorted keys would scramble the documented order of the fields.
    return current_app.response_class(json.dumps(doc, indent=1), mimetype="application/json")


# -- cases --------------------------------------------------------------------------------------


@bp.get("/cases")
@case_roles
def list_cases() -> Any:
    user = me()
    query, errors = api.case_query(request.args, user, db.session.scalars(select(Substance.code)))
    if query is None:
        return invalid(errors, "Fix the parameters listed in 'errors' and ask again.")
    page = db.paginate(
        visible_cases(user, query.filter),
        page=query.page,
        per_page=query.per_page,
        error_out=False,
        count=True,
    )
    next_url = None
    if page.has_next:
        next_url = url_for("api.list_cases", **{**request.args.to_dict(), "page": query.page + 1})
    return jsonify(
        items=api.cases_json(page.items, user),
        page=query.page,
        per_page=query.per_page,
        total=page.total,
        next=next_url,
    )


@bp.post("/cases")
@case_roles
def create_case() -> Any:
    user = me()
    if not request.is_json:
        return problem(
            400,
            "The request was not valid",
            "Send the notification as a JSON object, with 'Content-Type: application/json'.",
        )
    request.max_content_length = api.BODY_MAX_BYTES
    try:
        body = json.loads(request.get_data(cache=False))
    except RequestEntityTooLarge:
        return problem(
            413,
            "The request is too large",
            f"A notification is at most {api.BODY_MAX_BYTES // 1024} KiB. Nothing was saved.",
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return problem(
            400,
            "The request was not valid",
            "The body is not valid JSON (UTF-8). Check the quotes, commas and brackets.",
        )
    if not isinstance(body, dict):
        return problem(
            400,
            "The request was not valid",
            "The body must be one JSON object, with a key for each field of the notification.",
        )
    data, shape_errors = api.notification_input(body)
    notification, errors = parse_notification(data, lookups=Lookups(), allowed_areas=user.area_ids)
    errors = {**errors, **shape_errors}
    if errors or notification is None:
        db.session.rollback()
        return invalid(
            errors, "Nothing was saved. Fix the fields listed in 'errors' and send it again."
        )
    try:
        case = create_notification(notification, by=user, source="api")
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return problem(
            409,
            "Please send it again",
            "Another notification was saved at the same moment, so nothing was saved. Send "
            "this one again.",
        )
    response = jsonify(api.case_json(case, api.Linked.for_cases([case], user)))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_case", uuid=case.uuid)
    return response


@bp.get("/cases/<uuid>")
@case_roles
def get_case(uuid: str) -> Any:
    user = me()
    reason, errors = api.reveal_request(request.args, request.headers)
    if errors:
        return invalid(errors, "Nothing was revealed. Fix what 'errors' lists and ask again.")
    case = get_or_404(Case, uuid, need="view")
    body = api.case_json(case, api.Linked.for_cases([case], user))
    if reason is not None:
        if not case.can_reveal(user):
            refuse_reveal(case.uuid, by=user, via="api")
            db.session.commit()
            return problem(
                403,
                "You do not have access to this",
                "Your role may see this case but not who the person is.",
            )
        try:
            identity = reveal(case, reason=reason, by=user, via="api")
        except ReasonRefused as refused:
            db.session.commit()  # the refusal's audit entry; nothing was revealed
            return invalid({"reason": str(refused)}, "Nothing was revealed. " + str(refused))
        db.session.commit()  # the audit entry is safe before a single identifier is sent
        body["identifiers"] = api.identifiers_json(case, identity)
    return jsonify(body)


# -- workflow -----------------------------------------------------------------------------------


def json_body() -> tuple[dict[str, Any] | None, Response | None]:
    """The request's JSON object, or the problem to answer instead."""
    if not request.is_json:
        return None, problem(
            400,
            "The request was not valid",
            "Send a JSON object, with 'Content-Type: application/json'.",
        )
    request.max_content_length = api.BODY_MAX_BYTES
    try:
        body = json.loads(request.get_data(cache=False))
    except RequestEntityTooLarge:
        return None, problem(
            413,
            "The request is too large",
            f"A request is at most {api.BODY_MAX_BYTES // 1024} KiB. Nothing was saved.",
        )
    except (ValueError, RecursionError):
        return None, problem(
            400,
            "The request was not valid",
            "The body is not valid JSON (UTF-8). Check the quotes, commas and brackets.",
        )
    if not isinstance(body, dict):
        return None, problem(400, "The request was not valid", "The body must be one JSON object.")
    return body, None


def checked_body(spec: Any) -> tuple[dict[str, Any] | None, Response | None]:
    """The request's JSON object checked against ``spec``, or the problem to answer instead:
    one door for every write, so no handler can skip a step."""
    body, refused = json_body()
    if body is None:
        return None, refused
    data, errors = api.check_body(body, spec)
    if errors:
        return None, invalid(errors, NOT_SAVED)
    return data, None


NOT_SAVED = "Nothing was saved. Fix the fields listed in 'errors' and send it again."


@bp.get("/cases/<uuid>/transitions")
@case_roles
def list_transitions(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    return jsonify(api.transitions_json(case, me()))


@bp.post("/cases/<uuid>/transitions")
@roles(Role.COORDINATOR)
def move_case(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    data, refused = checked_body(api.transition_spec())
    if data is None:
        return refused
    try:
        workflow.move(
            case,
            data["transition"],
            by=me(),
            reason=data.get("reason"),
            expected_on=data.get("expected_on"),
            duplicate_of_reference=data.get("duplicate_of"),
            expected_version=data.get("version"),
        )
    except workflow.WorkflowError as err:
        db.session.rollback()
        field = api.WORKFLOW_FIELDS.get(err.field, err.field)
        if isinstance(err, workflow.StaleCase):
            return problem(409, "The case has changed", str(err), errors={field: str(err)})
        return invalid({field: str(err)}, NOT_SAVED)
    db.session.commit()
    return jsonify(api.case_json(case, api.Linked.for_cases([case], me())))


# -- requests and returns -----------------------------------------------------------------------


def _requests_of(case: Case) -> list[InfoRequest]:
    return list(
        db.session.scalars(
            select(InfoRequest)
            .where(InfoRequest.case_id == case.id)
            .order_by(InfoRequest.requested_at, InfoRequest.id)
        )
    )


@bp.get("/cases/<uuid>/requests")
@case_roles
def case_requests(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    return jsonify(items=[api.request_json(r) for r in _requests_of(case)])


@bp.post("/cases/<uuid>/requests")
@roles(Role.COORDINATOR)
def send_requests(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    active = all_agencies(active_only=True)
    data, refused = checked_body(api.request_spec([a.code for a in active]))
    if data is None:
        return refused
    chosen = [a for a in active if a.code in data["agencies"]]
    try:
        made = reviews.send_requests(
            case, chosen, due_on=data["due_on"], note=data.get("note"), by=me()
        )
        unreachable = [r.agency.code for r in made if not reviews.email_agency(r)]
        db.session.commit()
    except reviews.RequestError as err:
        db.session.rollback()
        return invalid({err.field: str(err)}, NOT_SAVED)
    except IntegrityError:
        db.session.rollback()
        return problem(
            409,
            "Please send it again",
            "Another request to one of these agencies was saved at the same moment, so nothing "
            "was saved. Look at the case's requests, then send again.",
        )
    response = jsonify(items=[api.request_json(r) for r in made], unreachable=unreachable)
    response.status_code = 201
    return response


@bp.get("/requests")
@roles(Role.AGENCY_CONTRIBUTOR)
def my_requests() -> Any:
    return jsonify(items=[api.request_json(r) for r in reviews.agency_queue(me())])


@bp.put("/requests/<uuid>/return")
@roles(Role.AGENCY_CONTRIBUTOR)
def save_return(uuid: str) -> Any:
    req = get_or_404(InfoRequest, uuid, need="answer")
    body, refused = json_body()  # the raw body: a refusal below names a field only if sent
    if body is None:
        return refused
    data, errors = api.check_body(body, api.return_spec())
    if errors:
        return invalid(errors, NOT_SAVED)
    answer = reviews.Return(
        known_to_agency=YesNoUnknown(data["known_to_agency"]),
        first_contact_on=data.get("first_contact_on"),
        last_contact_on=data.get("last_contact_on"),
        engagement=Engagement(data["engagement"]),
        texts={stem: data.get(stem) for stem, _ in RETURN_TEXTS},
    )
    try:
        reviews.save_return(
            req, answer, submit=data["submit"], by=me(), expected_version=data.get("version")
        )
        db.session.commit()
    except reviews.RequestError as err:
        db.session.rollback()
        if isinstance(err, reviews.StaleReturn):
            return problem(409, "The return has changed", str(err), errors={err.field: str(err)})
        if req.status is RequestStatus.RETURNED:
            return problem(409, "The return was already submitted", str(err))
        field = err.field if err.field in body else "known_to_agency"
        return invalid({field: str(err)}, NOT_SAVED)
    return jsonify(api.request_json(req))


# -- actions ------------------------------------------------------------------------------------

action_readers = roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


@bp.get("/cases/<uuid>/actions")
@case_roles
def case_actions(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    return jsonify(items=[api.action_json(a) for a in act.case_actions(case)])


@bp.post("/cases/<uuid>/actions")
@roles(Role.COORDINATOR)
def add_action(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    active = all_agencies(active_only=True)
    data, refused = checked_body(api.action_spec([a.code for a in active]))
    if data is None:
        return refused
    try:
        action = act.create_action(
            case,
            description=data["description"],
            agency=next(a for a in active if a.code == data["agency"]),
            due_on=data["due_on"],
            by=me(),
        )
        db.session.commit()
    except act.ActionError as err:
        db.session.rollback()
        return invalid({err.field: str(err)}, NOT_SAVED)
    response = jsonify(api.action_json(action))
    response.status_code = 201
    return response


@bp.get("/actions")
@action_readers
def list_actions() -> Any:
    return jsonify(items=[api.action_json(a) for g in act.tracker(me()) for a in g.actions])


@bp.patch("/actions/<uuid>")
@action_readers
def update_action(uuid: str) -> Any:
    action = get_or_404(act.Action, uuid, need="view")
    if not action.can_update(me()):
        deny(object_type="actions", object_uuid=action.uuid, why="record:update")
    data, refused = checked_body(api.action_update_spec())
    if data is None:
        return refused
    change = act.ActionUpdate(
        status=act.ActionStatus(data["status"]),
        evidence=data.get("evidence"),
        reason=data.get("reason"),
    )
    try:
        act.update_action(action, change, by=me(), expected_version=data.get("version"))
        db.session.commit()
    except act.ActionError as err:
        db.session.rollback()
        if isinstance(err, act.StaleAction):
            return problem(409, "The action has changed", str(err), errors={err.field: str(err)})
        return invalid({err.field: str(err)}, NOT_SAVED)
    return jsonify(api.action_json(action))


# -- LDIS: signals, drug-concern reports, assessment (dr_panel.alerts) -------------------------

ldis_coordinators = roles(Role.COORDINATOR)


def _ldis_status_filter() -> tuple[Any, Response | None]:
    """The optional ``status`` filter of the LDIS lists; any other parameter is refused."""
    from dr_panel.alerts.models import ItemStatus

    unknown = sorted(set(request.args) - {"status"})
    if unknown:
        return None, invalid(
            {k: "Unknown parameter: not accepted. Use only: status." for k in unknown},
            "Fix the parameters listed in 'errors' and ask again.",
        )
    raw = request.args.get("status")
    if raw is None:
        return None, None
    if raw not in {s.value for s in ItemStatus}:
        return None, invalid(
            {"status": "status: use one of " + ", ".join(s.value for s in ItemStatus) + "."},
            "Fix the parameters listed in 'errors' and ask again.",
        )
    return ItemStatus(raw), None


@bp.get("/signals")
@ldis_coordinators
def list_signals() -> Any:
    from dr_panel.alerts.models import Signal
    from dr_panel.alerts.signals import signal_json

    status, refused = _ldis_status_filter()
    if refused is not None:
        return refused
    stmt = select(Signal).where(Signal.area_id.in_(me().area_ids or {-1}))
    if status is not None:
        stmt = stmt.where(Signal.status == status)
    rows = db.session.scalars(stmt.order_by(Signal.detected_at.desc(), Signal.id.desc()).limit(500))
    return jsonify(items=[signal_json(s) for s in rows])


@bp.get("/signals/<uuid>")
@ldis_coordinators
def get_signal(uuid: str) -> Any:
    from dr_panel.alerts.models import Signal
    from dr_panel.alerts.signals import signal_json

    return jsonify(signal_json(get_or_404(Signal, uuid, need="view")))


@bp.get("/reports")
@ldis_coordinators
def list_reports() -> Any:
    from dr_panel.alerts import reports as drug_reports

    status, refused = _ldis_status_filter()
    if refused is not None:
        return refused
    rows = drug_reports.visible_reports(me(), status)
    return jsonify(items=[drug_reports.report_json(r) for r in rows])


@bp.post("/reports")
@roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.LEAD)
def create_report() -> Any:
    from dr_panel.alerts import reports as drug_reports

    data, refused = checked_body(drug_reports.report_spec())
    if data is None:
        return refused
    try:
        report = drug_reports.file_report(drug_reports.report_input(data), by=me())
        db.session.commit()
    except drug_reports.ReportRefused as err:
        drug_reports.record_refusal(err, by=me())
        return invalid(err.errors, NOT_SAVED)
    response = jsonify(drug_reports.report_json(report))
    response.status_code = 201
    return response


@bp.get("/reports/<uuid>")
@ldis_coordinators
def get_report(uuid: str) -> Any:
    from dr_panel.alerts import reports as drug_reports
    from dr_panel.alerts.models import DrugReport
    from dr_panel.audit.services import record

    report = get_or_404(DrugReport, uuid, need="view")
    body = drug_reports.report_json(report, content=True, viewer=me())
    record("drug_report.viewed", actor=me(), object_type="drug_reports", object_uuid=report.uuid)
    db.session.commit()
    return jsonify(body)


@bp.post("/assessments")
@ldis_coordinators
def create_assessment() -> Any:
    from dr_panel.alerts import assessment as ldis
    from dr_panel.alerts.models import DrugReport, Signal
    from dr_panel.dbtypes import parse_uuid

    data, refused = checked_body(ldis.assessment_spec())
    if data is None:
        return refused
    named = [k for k in ("signal", "report") if data.get(k)]
    if len(named) != 1:
        message = "Name exactly one item: the UUID of a signal or of a report."
        return invalid({"signal": message, "report": message}, NOT_SAVED)
    key = named[0]
    if parse_uuid(data[key]) is None:
        return invalid({key: f"{key}: give the {key}'s UUID."}, NOT_SAVED)
    item = get_or_404(Signal if key == "signal" else DrugReport, data[key], need="assess")
    try:
        made = ldis.assess(item, ldis.grading_of(data), by=me())
        db.session.commit()
    except ldis.AssessmentError as err:
        db.session.rollback()
        if err.field == "decision":
            return problem(409, "The item cannot be assessed", str(err), errors={key: str(err)})
        return invalid({err.field: str(err)}, NOT_SAVED)
    response = jsonify(ldis.assessment_json(made, item))
    response.status_code = 201
    return response


# -- findings and safety plans ------------------------------------------------------------------


@bp.get("/cases/<uuid>/findings")
@case_roles
def case_findings(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    return jsonify(api.findings_json(case, fd.findings_of(case)))


@bp.put("/cases/<uuid>/findings")
@case_roles
def save_findings(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    if not fd.can_edit_findings(case, me()):
        deny(object_type="cases", object_uuid=case.uuid, why="findings:edit")
    body, refused = json_body()
    if body is None:
        return refused
    themes = [t.code for t in fd.active_themes()]
    data, errors = api.check_body(body, api.findings_spec(themes))
    for i, factor in enumerate(data.get("factors") or []):
        if "description" in factor and not factor["description"].strip():
            errors[f"factors[{i}].description"] = "Describe the factor."
    if errors:
        return invalid(errors, NOT_SAVED)
    if not fd.open_for_findings(case):
        return problem(409, "The case is not open for findings", fd.closed_message(case))
    point = data.get("learning_point") or {}
    given = fd.FindingsInput(
        missed_opportunities=data.get("missed_opportunities") or "",
        preventability=fd.Preventability(data.get("preventability") or "not_known"),
        factors=[
            fd.NewFactor(
                domain=fd.Domain(f["domain"]),
                description=f["description"],
                score=fd.Score(f["score"]),
                is_modifiable=f.get("is_modifiable", False),
            )
            for f in data["factors"]
        ],
        learning_point=point.get("text") or "",
        theme_codes=list(point.get("themes") or []),
    )
    try:
        fd.save_findings(case, given, by=me(), expected_version=data["version"])
        db.session.commit()
    except fd.FindingsError as err:
        db.session.rollback()
        if isinstance(err, fd.StaleFindings):
            return problem(409, "The findings have changed", str(err), errors={"version": str(err)})
        return invalid(api.findings_errors(err, body), NOT_SAVED)
    return jsonify(api.findings_json(case, fd.findings_of(case)))


NO_PLAN = "This person has no safety plan yet. PUT one to this address (version 0) to start it."


@bp.get("/cases/<uuid>/safety-plan")
@case_roles
def case_safety_plan(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    plan = act.plan_for(case.person)
    if plan is None:
        return problem(404, "No safety plan", NO_PLAN)
    return jsonify(api.plan_json(plan, me()))


@bp.put("/cases/<uuid>/safety-plan")
@case_roles
def save_safety_plan(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    active = all_agencies(active_only=True)
    data, refused = checked_body(api.plan_spec([a.code for a in active]))
    if data is None:
        return refused
    leads = {str(u.uuid): u for u in act.lead_candidates(case)}
    given = act.PlanInput(
        status=act.PlanStatus(data["status"]),
        risks=data.get("risks"),
        protective=data.get("protective"),
        interventions=[act.Intervention(v) for v in data["interventions"]],
        lead=leads.get(data["lead"].strip().lower()),
        lead_agency=next((a for a in active if a.code == data.get("lead_agency")), None),
        review_on=data.get("review_on"),
    )
    try:
        plan = act.save_plan(case, given, by=me(), expected_version=data["version"])
        db.session.commit()
    except act.PlanError as err:
        db.session.rollback()
        if isinstance(err, act.StalePlan):
            return problem(
                409, "The safety plan has changed", str(err), errors={"version": str(err)}
            )
        field = err.field if err.field in api.plan_spec(()) else "risks"
        return invalid({field: str(err)}, NOT_SAVED)
    return jsonify(api.plan_json(plan, me()))


# -- trends -------------------------------------------------------------------------------------


@bp.get("/trends")
@roles(Role.LEAD, Role.COORDINATOR)
def trends() -> Any:
    """Counts and rates, with the dashboard's rules and disclosure control (dr_panel.trends)."""
    from dr_panel.trends.routes import api_body

    body, errors = api_body(request.args, me())
    if body is None:
        db.session.rollback()
        return invalid(errors, "Fix the parameters listed in 'errors' and ask again.")
    db.session.commit()  # the audit entry of the query
    return jsonify(body)


# -- LDIS: an area's signal settings (dr_panel.alerts.settings_api) -----------------------------


@bp.get("/signal-settings")
@ldis_coordinators
def list_signal_settings() -> Any:
    from dr_panel.alerts import settings_api

    areas = db.session.scalars(
        select(Area).where(Area.id.in_(me().area_ids)).order_by(Area.name)
    ).all()
    rows = settings_api.rows_for(areas)
    return jsonify(items=[settings_api.settings_json(a, rows) for a in areas])


@bp.get("/signal-settings/<uuid>")
@ldis_coordinators
def get_signal_settings(uuid: str) -> Any:
    from dr_panel.alerts import settings_api

    return jsonify(settings_api.settings_json(get_or_404(Area, uuid, need="view")))


@bp.patch("/signal-settings/<uuid>")
@ldis_coordinators
def update_signal_settings(uuid: str) -> Any:
    from dr_panel.alerts import settings_api
    from dr_panel.alerts import signals as sig

    area = get_or_404(Area, uuid, need="view")
    data, refused = checked_body(settings_api.change_spec())
    if data is None:
        return refused
    try:
        sig.save_area_settings(
            area, settings_api.chosen(sig.settings_for(area.ons_code), data),
            by=me(), revision=data["revision"],
        )
        db.session.commit()
    except (sig.StaleSettings, StaleDataError, IntegrityError):
        db.session.rollback()
        return problem(409, "The settings have changed",
                       "Someone changed this area's settings since your 'revision': read them "
                       "again, then send your change with the new revision.",
                       errors={"revision": "out of date"})
    return jsonify(settings_api.settings_json(area))


@bp.delete("/signal-settings/<uuid>")
@ldis_coordinators
def reset_signal_settings(uuid: str) -> Any:
    from dr_panel.alerts import settings_api
    from dr_panel.alerts import signals as sig

    area = get_or_404(Area, uuid, need="view")
    sig.reset_area_settings(area, by=me())
    db.session.commit()
    return jsonify(settings_api.settings_json(area))


# -- LDIS: subscriptions and deliveries (dr_panel.alerts.broadcast_api) ------------------------


def _subscription_change(sub: Any, data: dict[str, Any]) -> Response | None:
    """Apply a PATCH: details, then the active flag. A problem to answer, or None."""
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts import subscribers as subs

    try:
        details = {k: v for k, v in data.items() if k != "active"}
        if details:
            subs.update(sub, bapi.details_from(details, sub), by=me())
        if data.get("active") is True and not sub.is_active:
            subs.enable(sub, by=me())
        elif data.get("active") is False and sub.is_active:
            subs.disable(sub, None, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        return invalid({err.field or "name": str(err)}, NOT_SAVED)
    return None


@bp.get("/subscriptions")
@ldis_coordinators
def list_subscriptions() -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts import subscribers as subs

    rows = db.session.scalars(subs.query_for(me()))
    return jsonify(items=[bapi.subscription_json(s) for s in rows])


@bp.post("/subscriptions")
@ldis_coordinators
def create_subscription() -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts import subscribers as subs

    codes = list(db.session.scalars(select(Area.ons_code)))
    data, refused = checked_body(bapi.subscription_spec(codes, create=True))
    if data is None:
        return refused
    try:
        sub, secret = subs.create(bapi.details_from(data, None), by=me())
        db.session.commit()
    except subs.SubscriberError as err:
        db.session.rollback()
        return invalid({err.field or "name": str(err)}, NOT_SAVED)
    response = jsonify(bapi.subscription_json(sub, secret=secret))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_subscription", uuid=sub.uuid)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/subscriptions/<uuid>")
@ldis_coordinators
def get_subscription(uuid: str) -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts.models import Subscriber

    return jsonify(bapi.subscription_json(get_or_404(Subscriber, uuid, need="view")))


@bp.patch("/subscriptions/<uuid>")
@ldis_coordinators
def update_subscription(uuid: str) -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts.models import Subscriber

    sub = get_or_404(Subscriber, uuid, need="edit")
    codes = list(db.session.scalars(select(Area.ons_code)))
    data, refused = checked_body(bapi.subscription_spec(codes, create=False))
    if data is None:
        return refused
    refused = _subscription_change(sub, data)
    if refused is not None:
        return refused
    db.session.commit()
    return jsonify(bapi.subscription_json(sub))


@bp.delete("/subscriptions/<uuid>")
@ldis_coordinators
def delete_subscription(uuid: str) -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts import subscribers as subs
    from dr_panel.alerts.models import Subscriber

    sub = get_or_404(Subscriber, uuid, need="edit")
    try:
        subs.disable(sub, "disabled through the API", by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        return problem(409, "Already disabled", str(err))
    db.session.commit()
    return jsonify(bapi.subscription_json(sub))


@bp.post("/subscriptions/<uuid>/rotate-secret")
@ldis_coordinators
def rotate_subscription_secret(uuid: str) -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts import subscribers as subs
    from dr_panel.alerts.models import Subscriber

    sub = get_or_404(Subscriber, uuid, need="edit")
    try:
        secret, _ = subs.rotate_secret(sub, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        return invalid({"channel": str(err)}, "Nothing was changed.")
    db.session.commit()
    response = jsonify(bapi.subscription_json(sub, secret=secret))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/alerts/<uuid>/deliveries")
@ldis_coordinators
def alert_deliveries(uuid: str) -> Any:
    from dr_panel.alerts import broadcast_api as bapi
    from dr_panel.alerts.models import Alert

    alert = get_or_404(Alert, uuid, need="edit")
    filters, errors = bapi.delivery_filters(request.args)
    if filters is None:
        return invalid(errors, "Fix the parameters listed in 'errors' and ask again.")
    page = db.paginate(bapi.deliveries_query(alert, filters), page=filters["page"],
                       per_page=filters["per_page"], error_out=False, count=True)
    return jsonify(bapi.deliveries_body(alert, page, filters, request.args))


# -- LDIS: alerts: drafting, the leak gate, approval (dr_panel.alerts.drafting_api) -------------

alert_readers = roles(Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


def _alert_answer(alert: Any, status: int = 200, **extra: Any) -> Response:
    from dr_panel.alerts import drafting_api as dapi

    response = jsonify({**dapi.alert_json(alert, me()), **extra})
    response.status_code = status
    return response


def _draft_refused(alert: Any, err: Exception) -> Response:
    """A DraftError as problem details: 403 (audited) when not allowed, 409 when stale or not
    in a state that allows it, else 400 naming the field."""
    from dr_panel.alerts import drafting as dr

    db.session.rollback()
    if isinstance(err, dr.NotAllowed):
        deny(object_type="alerts", object_uuid=alert.uuid if alert else None, why=str(err)[:60])
    field = getattr(err, "field", "content")
    key = f"content.{field}" if field in dr.CONTENT_FIELDS else field
    if isinstance(err, dr.StaleDraft | dr.WrongState):
        return problem(409, "The alert cannot change like this", str(err), errors={key: str(err)})
    return invalid({key: str(err)}, NOT_SAVED)


def _gate_refused(findings: list[Any]) -> Response:
    from dr_panel.alerts import drafting_api as dapi

    db.session.commit()  # the audit entry of the refusal
    return problem(
        422,
        "The leak gate found possible identifiers",
        "Nothing was sent. Remove what 'findings' lists (each span is in the field's own text) "
        "and try again.",
        errors=dapi.findings_errors(findings),
        findings=dapi.findings_json(findings),
    )


def _area_codes() -> list[str]:
    return list(db.session.scalars(select(Area.ons_code)))


@bp.get("/alerts")
@alert_readers
def list_alerts() -> Any:
    from dr_panel.alerts import drafting as dr
    from dr_panel.alerts import drafting_api as dapi

    query, page_no, per_page, errors = dapi.archive_query(request.args)
    if query is None:
        return invalid(errors, "Fix the parameters listed in 'errors' and ask again.")
    user = me()
    page = db.paginate(dr.archive(user, query), page=page_no, per_page=per_page,
                       error_out=False, count=True)
    return jsonify(
        items=[dapi.alert_json(a, user, versions=False) for a in dr.filter_readable(page.items,
                                                                                    user)],
        page=page_no,
        per_page=per_page,
        total=page.total,
        next=dapi.next_url(request.args, page_no) if page.has_next else None,
    )


@bp.post("/alerts")
@roles(Role.COORDINATOR)
def create_alert() -> Any:
    from dr_panel.alerts import drafting as dr
    from dr_panel.alerts import drafting_api as dapi
    from dr_panel.alerts.models import Assessment
    from dr_panel.dbtypes import parse_uuid

    data, refused = checked_body(dapi.draft_spec(_area_codes(), create=True))
    if data is None:
        return refused
    value = parse_uuid(data["assessment"])
    assessment = (
        db.session.scalar(select(Assessment).where(Assessment.uuid == value)) if value else None
    )
    if assessment is None:
        return invalid({"assessment": "No assessment has this UUID: give the UUID of the "
                        "assessment to draft from."}, NOT_SAVED)
    item = dr.assessed_item(assessment)
    if item is None or not item.can_assess(me()):
        deny(status=404, object_type="assessments", object_uuid=assessment.uuid,
             why="record:draft")
    alert = None
    try:
        alert = dr.start_draft(assessment, by=me())
        if dapi.has_draft_fields(data):
            dr.edit_draft(alert, dapi.input_from(data, alert.versions[-1]), by=me(),
                          expected_revision=None)
    except dr.DraftError as err:
        return _draft_refused(None, err)
    db.session.commit()
    response = _alert_answer(alert, 201)
    response.headers["Location"] = url_for("api.get_alert", uuid=alert.uuid)
    return response


@bp.get("/alerts/<uuid>")
@alert_readers
def get_alert(uuid: str) -> Any:
    from dr_panel.alerts.models import Alert

    return _alert_answer(get_or_404(Alert, uuid, need="read"))


@bp.post("/alerts/<uuid>/submit")
@roles(Role.COORDINATOR)
def submit_alert(uuid: str) -> Any:
    from dr_panel.alerts import drafting as dr
    from dr_panel.alerts import drafting_api as dapi
    from dr_panel.alerts.models import Alert

    alert = get_or_404(Alert, uuid, need="edit")
    data, refused = checked_body(dapi.revision_spec())
    if data is None:
        return refused
    try:
        findings = dr.submit(alert, by=me(), expected_revision=data.get("revision"))
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    if findings:
        return _gate_refused(findings)
    db.session.commit()
    return _alert_answer(alert)


@bp.post("/alerts/<uuid>/approve")
@roles(Role.COORDINATOR, Role.LEAD)
def approve_alert(uuid: str) -> Any:
    from dr_panel.alerts import drafting as dr
    from dr_panel.alerts import drafting_api as dapi
    from dr_panel.alerts.models import Alert

    alert = get_or_404(Alert, uuid, need="view")
    data, refused = checked_body(dapi.revision_spec())
    if data is None:
        return refused
    try:
        issued = dr.approve(alert, by=me(), expected_revision=data.get("revision"))
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    if issued.findings:
        return _gate_refused(issued.findings)
    db.session.commit()
    return _alert_answer(alert, deliveries=issued.deliveries)


@bp.post("/alerts/<uuid>/update")
@roles(Role.COORDINATOR)
def update_alert(uuid: str) -> Any:
    from dr_panel.alerts import drafting as dr
    from dr_panel.alerts import drafting_api as dapi
    from dr_panel.alerts.models import Alert

    alert = get_or_404(Alert, uuid, need="edit")
    data, refused = checked_body(dapi.draft_spec(_area_codes(), create=False))
    if data is None:
        return refused
    try:
        expected = data.get("revision")
        version = alert.draft
        if version is None:
            version = dr.start_update(alert, by=me())
            expected = None
        dr.edit_draft(alert, dapi.input_from(data, version), by=me(), expected_revision=expected)
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    db.session.commit()
    return _alert_answer(alert)


@bp.post("/alerts/<uuid>/cancel")
@roles(Role.COORDINATOR)
def cancel_alert(uuid: str) -> Any:
    from dr_panel.alerts import drafting as dr
    from dr_panel.alerts import drafting_api as dapi
    from dr_panel.alerts.models import Alert

    alert = get_or_404(Alert, uuid, need="edit")
    data, refused = checked_body(dapi.cancel_spec())
    if data is None:
        return refused
    try:
        result = dr.cancel(alert, reason=data["reason"], urgent=bool(data.get("urgent")),
                           by=me())
    except dr.DraftError as err:
        return _draft_refused(alert, err)
    if result.findings:
        return _gate_refused(result.findings)
    db.session.commit()
    return _alert_answer(alert, deliveries=result.deliveries)


# -- token pages --------------------------------------------------------------------------------


@tokens_bp.get("")
@signed_in
def index() -> Any:
    return _tokens_page(TokenForm())


def _tokens_page(form: TokenForm) -> Any:
    return render_template(
        "api/tokens.html",
        form=form,
        tokens=api.tokens_of(me()),
        prefix=api.TOKEN_PREFIX,
        now=utcnow(),
        days=current_app.config["API_TOKEN_DAYS"],
        needs_second_factor=api.second_factor_missing(me()),
    )


@tokens_bp.post("")
@signed_in
def create() -> Any:
    form = TokenForm()
    if form.validate_on_submit():
        try:
            token, plaintext = api.create_token(me(), form.name.data, by=me())
        except api.TokenError as err:
            db.session.rollback()
            form.name.errors = [*form.name.errors, str(err)]
        else:
            db.session.commit()
            return render_template("api/token_created.html", token=token, plaintext=plaintext)
    return _tokens_page(form)


@tokens_bp.post("/<uuid>/revoke")
@signed_in
def revoke(uuid: str) -> Any:
    return _on_own_token(
        uuid,
        api.revoke_token,
        lambda t: f"Revoked the token '{t.name}'. Programs using it are refused from now on.",
    )


@tokens_bp.post("/<uuid>/renew")
@signed_in
def renew(uuid: str) -> Any:
    return _on_own_token(
        uuid,
        api.renew_token,
        lambda t: f"Renewed the token '{t.name}': it now expires on "
        f"{t.expires_at:%d %B %Y at %H:%M} UTC.",
    )


def _own_token(uuid: str) -> ApiToken:
    token: ApiToken = get_or_404(ApiToken, uuid, need="edit")
    if token.user_id != me().id:  # these pages are for one's own tokens, admins included
        deny(status=404, object_type="api_tokens", object_uuid=token.uuid, why="record:own")
    return token


def _on_own_token(
    uuid: str, change: Callable[..., Any], said: Callable[[ApiToken], str]
) -> Any:
    """One of the owner's buttons on a token (revoke, renew): the CSRF check, the service, one
    commit, and what the page says."""
    token = _own_token(uuid)
    if not EmptyForm().validate_on_submit():
        flash("The form had expired, so nothing was changed. Try again.", "error")
        return redirect(url_for("api_tokens.index"))
    try:
        change(token, by=me())
    except api.TokenError as err:
        db.session.rollback()
        flash(str(err), "error")
    else:
        db.session.commit()
        flash(said(token), "success")
    return redirect(url_for("api_tokens.index"))
    try:
        api.renew_token(token, by=me())
    except api.TokenError as err:
        db.session.rollback()
        flash(str(err), "error")
    else:
        db.session.commit()
        flash(
            f"Renewed the token '{token.name}': it now expires on "
            f"{token.expires_at:%d %B %Y at %H:%M} UTC.",
            "success",
        )
    return redirect(url_for("api_tokens.index"))
