"""The JSON API of reviews: information requests and returns, actions, findings and safety plans.

Registered under ``/api/v1`` by ``dr_panel.api.v1``; shared HTTP helpers in ``dr_panel.webapi``;
request and answer models in ``dr_panel.reviews.schemas``. The same services, access rules and
audit as the pages (``dr_panel.reviews.routes``):

=====  ==============================  ============================================================
GET    /cases/<uuid>/requests          coordinator, panel member; ``can_view``
POST   /cases/<uuid>/requests          coordinator; ``can_edit``
GET    /requests                       agency contributor: their agency's queue
PUT    /requests/<uuid>/return         agency contributor; ``InfoRequest.can_answer``
GET    /cases/<uuid>/actions           coordinator, panel member; ``can_view``
POST   /cases/<uuid>/actions           coordinator; ``can_edit``
GET    /actions                        coordinator, panel member, agency contributor: the tracker
PATCH  /actions/<uuid>                 the three above; ``Action.can_view``, then ``can_update``
GET    /cases/<uuid>/findings          coordinator, panel member; ``can_view``
PUT    /cases/<uuid>/findings          coordinator, panel member; ``can_view``, then
                                       ``can_edit_findings`` (403)
GET    /cases/<uuid>/safety-plan       coordinator, panel member; ``can_view``
PUT    /cases/<uuid>/safety-plan       coordinator, panel member; ``can_view``
=====  ==============================  ============================================================
"""

from __future__ import annotations

from flask import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dr_panel.auth.models import Role
from dr_panel.cases.models import Case
from dr_panel.extensions import db
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import actions as act
from dr_panel.reviews import findings as fd
from dr_panel.reviews import services as rq
from dr_panel.reviews.models import InfoRequest, RequestStatus
from dr_panel.reviews.schemas import (
    Action,
    ActionList,
    ActionUpdate,
    Findings,
    FindingsUpdate,
    InfoRequestList,
    NewAction,
    NewRequests,
    Return,
    SafetyPlan,
    SafetyPlanUpdate,
    SentRequests,
    action_change,
    findings_errors,
    findings_input,
    plan_input,
    return_input,
)
from dr_panel.reviews.schemas import InfoRequest as InfoRequestAnswer
from dr_panel.security import deny, get_or_404, problem, roles
from dr_panel.webapi import BODY_MAX_BYTES, UuidPath, answer, blueprint, invalid, me, problems

api = blueprint("reviews", __name__, "", "Reviews")

PANEL = roles(Role.COORDINATOR, Role.PANEL_MEMBER)
ACTION_READERS = roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)
NO_CASE = "No such case, or it is outside your areas (the two are not told apart)."
TOO_LARGE = f"The body is larger than {BODY_MAX_BYTES // 1024} KiB."
NO_PLAN = "This person has no safety plan yet. PUT one to this address (version 0) to start it."


# -- requests and returns -----------------------------------------------------------------------


def _requests_of(case: Case) -> list[InfoRequest]:
    return list(
        db.session.scalars(
            select(InfoRequest)
            .where(InfoRequest.case_id == case.id)
            .order_by(InfoRequest.requested_at, InfoRequest.id)
        )
    )


@api.get(
    "/cases/<uuid>/requests",
    operation_id="listCaseRequests",
    responses={200: InfoRequestList, **problems(_404=NO_CASE)},
)
@PANEL
def case_requests(path: UuidPath) -> Response:
    """The information requests of a case, and the agencies' returns."""
    case = get_or_404(Case, path.uuid, need="view")
    return answer(InfoRequestList.of(_requests_of(case)))


@api.post(
    "/cases/<uuid>/requests",
    operation_id="sendRequests",
    responses={
        201: SentRequests,
        **problems(
            _404=NO_CASE,
            _409="A request to one of the agencies was saved at the same moment; nothing was "
            "saved.",
            _413=TOO_LARGE,
        ),
    },
)
@roles(Role.COORDINATOR)
def send_requests(path: UuidPath, body: NewRequests) -> Response:
    """Ask agencies for information (panel coordinators)."""
    case = get_or_404(Case, path.uuid, need="edit")
    chosen = [a for a in all_agencies(active_only=True) if a.code in body.agencies]
    try:
        sent = rq.send_requests(case, chosen, due_on=body.due_on, note=body.note, by=me())
        db.session.commit()
    except rq.RequestError as err:
        db.session.rollback()
        return invalid({err.field: str(err)})
    except IntegrityError:
        db.session.rollback()
        return problem(
            409,
            "Please send it again",
            "Another request to one of these agencies was saved at the same moment, so nothing "
            "was saved. Look at the case's requests, then send again.",
        )
    return answer(SentRequests.of(sent), 201)


@api.get("/requests", operation_id="listMyRequests", responses={200: InfoRequestList})
@roles(Role.AGENCY_CONTRIBUTOR)
def my_requests() -> Response:
    """Your agency's requests in your areas (agency contributors): open ones first, soonest due
    first."""
    return answer(InfoRequestList.of(rq.agency_queue(me())))


@api.put(
    "/requests/<uuid>/return",
    operation_id="saveReturn",
    responses={
        200: InfoRequestAnswer,
        **problems(
            _404="No such request, or it is not addressed to your agency in your areas.",
            _409="A colleague saved the return after the version you gave, or it was already "
            "submitted; nothing was saved.",
            _413=TOO_LARGE,
        ),
    },
)
@roles(Role.AGENCY_CONTRIBUTOR)
def save_return(path: UuidPath, body: Return) -> Response:
    """Save or submit your agency's return (agency contributors)."""
    req = get_or_404(InfoRequest, path.uuid, need="answer")
    try:
        rq.save_return(
            req, return_input(body), submit=body.submit, by=me(), expected_version=body.version
        )
        db.session.commit()
    except rq.RequestError as err:
        db.session.rollback()
        if isinstance(err, rq.StaleReturn):
            return problem(409, "The return has changed", str(err), errors={err.field: str(err)})
        if req.status is RequestStatus.RETURNED:
            return problem(409, "The return was already submitted", str(err))
        # A refusal names a field only if it was sent.
        field = err.field if err.field in body.model_fields_set else "known_to_agency"
        return invalid({field: str(err)})
    return answer(InfoRequestAnswer.of(req))


# -- actions ------------------------------------------------------------------------------------


@api.get(
    "/cases/<uuid>/actions",
    operation_id="listCaseActions",
    responses={200: ActionList, **problems(_404=NO_CASE)},
)
@PANEL
def case_actions(path: UuidPath) -> Response:
    """The actions set for a case, soonest due first."""
    case = get_or_404(Case, path.uuid, need="view")
    return answer(ActionList.of(act.case_actions(case)))


@api.post(
    "/cases/<uuid>/actions",
    operation_id="addAction",
    responses={201: Action, **problems(_404=NO_CASE, _413=TOO_LARGE)},
)
@roles(Role.COORDINATOR)
def add_action(path: UuidPath, body: NewAction) -> Response:
    """Set an action for a reviewed case (panel coordinators)."""
    case = get_or_404(Case, path.uuid, need="edit")
    agency = next((a for a in all_agencies(active_only=True) if a.code == body.agency), None)
    try:
        action = act.create_action(
            case, description=body.description, agency=agency, due_on=body.due_on, by=me()
        )
        db.session.commit()
    except act.ActionError as err:
        db.session.rollback()
        return invalid({err.field: str(err)})
    return answer(Action.of(action), 201)


@api.get("/actions", operation_id="listActions", responses={200: ActionList})
@ACTION_READERS
def list_actions() -> Response:
    """The action tracker: every action you may see, by owner agency, overdue first."""
    return answer(ActionList.of([a for g in act.tracker(me()) for a in g.actions]))


@api.patch(
    "/actions/<uuid>",
    operation_id="updateAction",
    responses={
        200: Action,
        **problems(
            _404="No such action, or you may not see it.",
            _409="A colleague updated the action after the version you gave; nothing was saved.",
            _413=TOO_LARGE,
        ),
    },
)
@ACTION_READERS
def update_action(path: UuidPath, body: ActionUpdate) -> Response:
    """Update an action's status (the owner agency's panel members and contributors in the
    case's area)."""
    action = get_or_404(act.Action, path.uuid, need="view")
    if not action.can_update(me()):
        deny(object_type="actions", object_uuid=action.uuid, why="record:update")
    try:
        act.update_action(action, action_change(body), by=me(), expected_version=body.version)
        db.session.commit()
    except act.ActionError as err:
        db.session.rollback()
        if isinstance(err, act.StaleAction):
            return problem(409, "The action has changed", str(err), errors={err.field: str(err)})
        return invalid({err.field: str(err)})
    return answer(Action.of(action))


# -- findings and safety plans ------------------------------------------------------------------


@api.get(
    "/cases/<uuid>/findings",
    operation_id="getFindings",
    responses={200: Findings, **problems(_404=NO_CASE)},
)
@PANEL
def case_findings(path: UuidPath) -> Response:
    """The panel's findings on a case: factors by domain, missed opportunities, preventability
    and learning points."""
    case = get_or_404(Case, path.uuid, need="view")
    return answer(Findings.of(case, fd.findings_of(case)))


@api.put(
    "/cases/<uuid>/findings",
    operation_id="saveFindings",
    responses={
        200: Findings,
        **problems(
            _404=NO_CASE,
            _409="A colleague saved the findings after the version you gave, or the case is not "
            "open for findings; nothing was saved.",
            _413=TOO_LARGE,
        ),
    },
)
@PANEL
def save_findings(path: UuidPath, body: FindingsUpdate) -> Response:
    """Record findings (coordinators and panel members of the case's area, once the case is
    ready for panel)."""
    case = get_or_404(Case, path.uuid, need="view")
    if not fd.can_edit_findings(case, me()):
        deny(object_type="cases", object_uuid=case.uuid, why="findings:edit")
    if not fd.open_for_findings(case):
        return problem(409, "The case is not open for findings", fd.closed_message(case))
    try:
        fd.save_findings(case, findings_input(body), by=me(), expected_version=body.version)
        db.session.commit()
    except fd.FindingsError as err:
        db.session.rollback()
        if isinstance(err, fd.StaleFindings):
            return problem(409, "The findings have changed", str(err), errors={"version": str(err)})
        return invalid(findings_errors(err, body))
    return answer(Findings.of(case, fd.findings_of(case)))


@api.get(
    "/cases/<uuid>/safety-plan",
    operation_id="getSafetyPlan",
    responses={
        200: SafetyPlan,
        **problems(_404="No such case, it is outside your areas, or its person has no plan."),
    },
)
@PANEL
def case_safety_plan(path: UuidPath) -> Response:
    """The safety plan of the case's person."""
    case = get_or_404(Case, path.uuid, need="view")
    plan = act.plan_for(case.person)
    if plan is None:
        return problem(404, "No safety plan", NO_PLAN)
    return answer(SafetyPlan.of(plan, me()))


@api.put(
    "/cases/<uuid>/safety-plan",
    operation_id="saveSafetyPlan",
    responses={
        200: SafetyPlan,
        **problems(
            _404=NO_CASE,
            _409="A colleague saved the plan after the version you gave; nothing was saved.",
            _413=TOO_LARGE,
        ),
    },
)
@PANEL
def save_safety_plan(path: UuidPath, body: SafetyPlanUpdate) -> Response:
    """Start or update the safety plan of the case's person (coordinators and panel members of
    the area)."""
    case = get_or_404(Case, path.uuid, need="view")
    try:
        plan = act.save_plan(case, plan_input(body, case), by=me(), expected_version=body.version)
        db.session.commit()
    except act.PlanError as err:
        db.session.rollback()
        if isinstance(err, act.StalePlan):
            return problem(
                409, "The safety plan has changed", str(err), errors={"version": str(err)}
            )
        field = err.field if err.field in SafetyPlanUpdate.model_fields else "risks"
        return invalid({field: str(err)})
    return answer(SafetyPlan.of(plan, me()))
