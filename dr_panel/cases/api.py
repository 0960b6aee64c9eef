"""The JSON API of cases: notifications, the case list and a case's workflow.

Registered under ``/api/v1`` by ``dr_panel.api.v1``; shared HTTP helpers in ``dr_panel.webapi``.
Every rule of this area reads here:

=====  ================================  ====================================================
GET    /api/v1/cases                     coordinator, panel member; their areas only
POST   /api/v1/cases                     coordinator, panel member; their areas only
GET    /api/v1/cases/<uuid>              coordinator, panel member; ``can_view``; ``?reveal=1``
                                         also ``can_reveal``, with a reason, audited
GET    /api/v1/cases/<uuid>/transitions  coordinator, panel member; ``can_view``
POST   /api/v1/cases/<uuid>/transitions  coordinator; ``can_edit``
=====  ================================  ====================================================

The views call the same services as the pages (``dr_panel.cases.services``, ``workflow``,
``listing``): one rule, two doors.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from sqlalchemy.exc import IntegrityError

from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.cases.listing import CaseSearch, area_problem, linked_counts, matching_cases
from dr_panel.cases.models import Case as CaseRecord
from dr_panel.cases.models import CaseStatus, CaseType
from dr_panel.cases.reasons import ReasonRefused
from dr_panel.cases.schemas import (
    WORKFLOW_FIELDS,
    Case,
    CaseAnswer,
    CaseList,
    CaseQuery,
    Notification,
    RevealedCase,
    RevealHeader,
    RevealQuery,
    TransitionRequest,
    Transitions,
    reveal_reason,
)
from dr_panel.cases.services import (
    CaseFilter,
    Lookups,
    create_notification,
    parse_notification,
    refuse_reveal,
    reveal,
)
from dr_panel.extensions import db
from dr_panel.security import get_or_404, problem, roles
from dr_panel.webapi import BAD_QUERY, NOT_SAVED, UuidPath, answer, blueprint, invalid, me, problems

api = blueprint("cases", __name__, "", "Cases")

CASE_READERS = roles(Role.COORDINATOR, Role.PANEL_MEMBER)
NO_CASE = "No such case, or it is outside your areas (the two are not told apart)."
NOT_REVEALED = "Nothing was revealed. Fix what 'errors' lists and ask again."
CREATED = {
    "description": "Created. The body is the new case, pseudonymised.",
    "headers": {"Location": {"required": True, "schema": {"type": "string"},
                             "description": "The new case's URL."}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Case"}}},
}


# -- the list and intake ------------------------------------------------------------------------


@api.get("/cases", operation_id="listCases", responses={200: CaseList})
@CASE_READERS
def list_cases(query: CaseQuery) -> Response:
    """Cases in your areas, newest event first, pseudonymised.

    The same filters, under the same names, as the case list page (q: a reference); paged by
    number."""
    user = me()
    if (wrong := area_problem(user, query.area)) is not None:
        return invalid({"area": f"area: {wrong}"}, BAD_QUERY)
    search = CaseSearch(
        CaseFilter(
            case_type=CaseType(query.type) if query.type else None,
            area_code=query.area,
            status=CaseStatus(query.status) if query.status else None,
            since=query.since,
            until=query.until,
            substance=query.substance,
        ),
        q=query.q,
    )
    page = db.paginate(matching_cases(user, search), page=query.page, per_page=query.per_page,
                       error_out=False, count=True)
    linked = linked_counts(page.items, user)
    next_url = None
    if page.has_next:
        args: dict[str, Any] = {**request.args.to_dict(), "page": query.page + 1}
        next_url = url_for("api.cases.list_cases", **args)
    return answer(CaseList(
        items=[Case.of(c, linked) for c in page.items],
        page=query.page,
        per_page=query.per_page,
        total=page.total or 0,
        next=next_url,
    ))


@api.post(
    "/cases",
    operation_id="createCase",
    responses={201: CREATED, **problems(
        _409="Another notification took the same reference at the same moment; nothing was "
        "saved. Send it again.",
        _413="The body is larger than 64 KiB; nothing was saved.",
    )},
)
@CASE_READERS
def create_case(body: Notification) -> Response:
    """Notify a suspected drug-related death or a non-fatal overdose."""
    user = me()
    # The model checked the JSON types; every value is judged by the one parser of every door.
    notification, errors = parse_notification(
        body.model_dump(), lookups=Lookups(), allowed_areas=user.area_ids
    )
    if errors or notification is None:
        db.session.rollback()
        return invalid(errors)
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
    return answer(Case.of(case, linked_counts([case], user)), 201,
                  location=url_for("api.cases.get_case", uuid=case.uuid))


# -- one case -----------------------------------------------------------------------------------


@api.get(
    "/cases/<uuid>",
    operation_id="getCase",
    summary="One case, pseudonymised; with reveal=1 and a reason, with the person's identifiers "
    "(audited).",
    responses={200: CaseAnswer, **problems(_404=NO_CASE)},
)
@CASE_READERS
def get_case(path: UuidPath, query: RevealQuery, header: RevealHeader) -> Response:
    """Pseudonymised, or revealed after the audit entry is committed; a refusal is audited."""
    user = me()
    reason, errors = reveal_reason(query, header)
    if errors:
        return invalid(errors, NOT_REVEALED)
    case = get_or_404(CaseRecord, path.uuid, need="view")
    linked = linked_counts([case], user)
    if reason is None:
        return answer(Case.of(case, linked))
    if not case.can_reveal(user):
        refuse_reveal(case.uuid, by=user, via="api")
        db.session.commit()
        return problem(403, "You do not have access to this",
                       "Your role may see this case but not who the person is.")
    try:
        identity = reveal(case, reason=reason, by=user, via="api")
    except ReasonRefused as refused:
        db.session.commit()  # the refusal's audit entry; nothing was revealed
        return invalid({"reason": str(refused)}, "Nothing was revealed. " + str(refused))
    db.session.commit()  # the audit entry is safe before a single identifier is sent
    return answer(RevealedCase.revealed(case, linked, identity))


# -- the workflow -------------------------------------------------------------------------------


@api.get(
    "/cases/<uuid>/transitions",
    operation_id="getTransitions",
    responses={200: Transitions, **problems(_404=NO_CASE)},
)
@CASE_READERS
def list_transitions(path: UuidPath) -> Response:
    """The steps you may take on a case now, and its timeline."""
    case = get_or_404(CaseRecord, path.uuid, need="view")
    return answer(Transitions.of(case, me()))


@api.post(
    "/cases/<uuid>/transitions",
    operation_id="moveCase",
    responses={200: Case, **problems(
        _404=NO_CASE,
        _409="Someone changed the case after the version you gave; nothing was saved. Look "
        "again, then choose.",
        _413="The body is larger than 64 KiB.",
    )},
)
@roles(Role.COORDINATOR)
def move_case(path: UuidPath, body: TransitionRequest) -> Response:
    """Take one step in a case's workflow (panel coordinators)."""
    case = get_or_404(CaseRecord, path.uuid, need="edit")
    try:
        workflow.move(
            case,
            body.transition,
            by=me(),
            reason=body.reason,
            expected_on=body.expected_on,
            duplicate_of_reference=body.duplicate_of,
            expected_version=body.version,
        )
    except workflow.WorkflowError as err:
        db.session.rollback()
        field = WORKFLOW_FIELDS.get(err.field, err.field)
        if isinstance(err, workflow.StaleCase):
            return problem(409, "The case has changed", str(err), errors={field: str(err)})
        return invalid({field: str(err)}, NOT_SAVED)
    db.session.commit()
    return answer(Case.of(case, linked_counts([case], me())))
