"""The JSON shapes of the panel's review work, declared once: each request body the API takes and
each answer it gives is one pydantic model here, used to validate and to generate the OpenAPI
document (``dr_panel.reviews.api``).

Where the page and the API take the same input they share the model and its field names: the
page builds the same request model from its form, and one function per input turns it into what
the service takes (``return_input``, ``action_change``, ``findings_input``, ``plan_input``), so
the two doors cannot map a field differently. The models check JSON types and sizes; the
services judge the values (dates in the past, a lead from another area...) for every door.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from dr_panel.auth.models import User
from dr_panel.cases.models import Case, CaseType, YesNoUnknown
from dr_panel.dbtypes import utcnow
from dr_panel.reference.models import Agency
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import actions as act
from dr_panel.reviews import findings as fd
from dr_panel.reviews import models as m
from dr_panel.reviews import services as rq
from dr_panel.webapi import (
    ApiModel,
    Checks,
    Choice,
    Code,
    Codes,
    Fix,
    Flag,
    IsoDate,
    StrictItems,
    Text,
    Version,
)

LIST_MAX = 30
FACTORS_MAX = 40  # new factors in one save
NOTE_MAX = 2000  # send_requests' limit on a note
RETURN_TEXT_MAX = 20000  # save_return's limit on each text
LEAD_MAX = 40  # a UUID, with room for spaces around it


def agency_codes() -> list[str]:
    """The codes of the agencies that can be asked, own actions or lead a plan today."""
    return [a.code for a in all_agencies(active_only=True)]


def theme_codes() -> list[str]:
    """The codes of the themes a learning point can be tagged with today."""
    return [t.code for t in fd.active_themes()]


def _choices(values: type[enum.Enum]) -> Checks:
    """A list of an enum's values (a ``list[str]``), each once (an empty list is one)."""
    codes = [member.value for member in values]

    def check(given: list[str]) -> list[str]:
        if len(set(given)) != len(given) or any(v not in codes for v in given):
            raise PydanticCustomError("fix_codes", "not known codes")
        return given

    return Checks(
        StrictItems(),
        Field(max_length=LIST_MAX),
        AfterValidator(check),
        WithJsonSchema(
            {
                "type": "array",
                "items": {"type": "string", "enum": codes},
                "maxItems": LIST_MAX,
                "uniqueItems": True,
            }
        ),
        Fix("give a list of codes, each once, from: " + ", ".join(codes) + "."),
    )


def _iso(value: datetime) -> str:
    return value.isoformat()


# Each field type is its plain type to mypy and, to pydantic, the checks that say how to fix it.
AgencyCode = Annotated[str, Code(agency_codes)]
AgencyCodes = Annotated[list[str], Codes(agency_codes, least=1, most=LIST_MAX)]
ThemeCodes = Annotated[list[str], Codes(theme_codes, least=0, most=LIST_MAX)]
Note = Annotated[str, Text(NOTE_MAX)]
ReturnText = Annotated[str, Text(RETURN_TEXT_MAX)]
ShortText = Annotated[str, Text(fd.MAX_SHORT)]
LongText = Annotated[str, Text(fd.MAX_TEXT)]
ActionText = Annotated[str, Text(act.MAX_TEXT)]
Lead = Annotated[str, Text(LEAD_MAX, newlines=False)]
Known = Annotated[str, Choice(YesNoUnknown)]
EngagementCode = Annotated[str, Choice(m.Engagement)]
DomainCode = Annotated[str, Choice(m.Domain)]
ScoreCode = Annotated[str, Choice(m.Score)]
PreventabilityCode = Annotated[str, Choice(m.Preventability)]
ActionStatusCode = Annotated[str, Choice(m.ActionStatus)]
PlanStatusCode = Annotated[str, Choice(m.PlanStatus)]
RequestStatusCode = Annotated[str, Choice(m.RequestStatus)]
CaseTypeCode = Annotated[str, Choice(CaseType)]
Interventions = Annotated[list[str], _choices(m.Intervention)]
VersionFrom0 = Annotated[int, Version(0)]
VersionFrom1 = Annotated[int, Version(1)]
# As the API has always written them ("+00:00"), not pydantic's "Z".
Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Answer(BaseModel):
    """An answer: every key always present, nothing else."""

    model_config = ConfigDict(extra="forbid")


# -- requests and returns -----------------------------------------------------------------------


class NewRequests(ApiModel):
    """Ask agencies what they knew of the person. Each agency's contributors in the case's area
    get an e-mail with a link and the due date, never who the person is."""

    agencies: AgencyCodes = Field(
        description="Codes of the agencies to ask; each at most once per case."
    )
    due_on: IsoDate = Field(description="When the answers are due (YYYY-MM-DD, today or later).")
    note: Note | None = Field(
        None, description="What the panel most needs to know. Stored encrypted."
    )


_TEXTS = dict(m.RETURN_TEXTS)


class Return(ApiModel):
    """An agency's return. submit=false saves a draft; submit=true sends it to the panel, after
    which it cannot change."""

    known_to_agency: Known
    first_contact_on: IsoDate | None = None
    last_contact_on: IsoDate | None = None
    engagement: EngagementCode
    risks: ReturnText | None = Field(None, description=f"{_TEXTS['risks']}. Stored encrypted.")
    services: ReturnText | None = Field(
        None, description=f"{_TEXTS['services']}. Stored encrypted."
    )
    safeguarding: ReturnText | None = Field(
        None, description=f"{_TEXTS['safeguarding']}. Stored encrypted."
    )
    chronology: ReturnText | None = Field(
        None, description=f"{_TEXTS['chronology']}. Stored encrypted."
    )
    submit: Flag = Field(description="true to submit the return; false to save a draft.")
    version: VersionFrom1 | None = Field(
        None,
        description="The request's version from GET /api/v1/requests: if a colleague saved "
        "since, nothing is saved and the answer is 409.",
    )


def return_input(body: Return) -> rq.Return:
    """The return the service saves, from the page's form or the API's body."""
    return rq.Return(
        known_to_agency=YesNoUnknown(body.known_to_agency),
        first_contact_on=body.first_contact_on,
        last_contact_on=body.last_contact_on,
        engagement=m.Engagement(body.engagement),
        texts={stem: getattr(body, stem) for stem, _ in m.RETURN_TEXTS},
    )


class ReviewArea(Answer):
    code: str
    name: str


class ReviewAgency(Answer):
    code: str
    name: str

    @classmethod
    def of(cls, agency: Agency) -> ReviewAgency:
        return cls(code=agency.code, name=agency.name)


class ReviewCase(Answer):
    """The case a request or an action is about: its reference, never who the person is."""

    uuid: str = Field(json_schema_extra={"format": "uuid"})
    reference: str
    case_type: CaseTypeCode
    area: ReviewArea

    @classmethod
    def of(cls, case: Case) -> ReviewCase:
        return cls(
            uuid=str(case.uuid),
            reference=case.reference,
            case_type=case.case_type.value,
            area=ReviewArea(code=case.area.ons_code, name=case.area.name),
        )


class InfoRequest(Answer):
    """An information request to an agency and its return. No identifier of the person."""

    uuid: str = Field(json_schema_extra={"format": "uuid"})
    case: ReviewCase
    agency: ReviewAgency
    status: RequestStatusCode
    due_on: date
    overdue: bool
    requested_at: Timestamp
    note: str | None
    known_to_agency: Known
    first_contact_on: date | None
    last_contact_on: date | None
    engagement: EngagementCode
    risks: str | None = Field(description=_TEXTS["risks"])
    services: str | None = Field(description=_TEXTS["services"])
    safeguarding: str | None = Field(description=_TEXTS["safeguarding"])
    chronology: str | None = Field(description=_TEXTS["chronology"])
    saved_at: Timestamp | None
    returned_at: Timestamp | None
    version: int = Field(ge=1)

    @classmethod
    def of(cls, req: m.InfoRequest) -> InfoRequest:
        return cls(
            uuid=str(req.uuid),
            case=ReviewCase.of(req.case),
            agency=ReviewAgency.of(req.agency),
            status=req.status.value,
            due_on=req.due_on,
            overdue=req.is_overdue(utcnow().date()),
            requested_at=req.requested_at,
            note=rq.text_of(req, "note"),
            known_to_agency=req.known_to_agency.value,
            first_contact_on=req.first_contact_on,
            last_contact_on=req.last_contact_on,
            engagement=req.engagement.value,
            **{stem: rq.text_of(req, stem) for stem, _ in m.RETURN_TEXTS},
            saved_at=req.saved_at,
            returned_at=req.returned_at,
            version=req.version,
        )


class InfoRequestList(Answer):
    items: list[InfoRequest]

    @classmethod
    def of(cls, requests: list[m.InfoRequest]) -> InfoRequestList:
        return cls(items=[InfoRequest.of(r) for r in requests])


class SentRequests(Answer):
    items: list[InfoRequest]
    unreachable: list[str] = Field(
        description="Codes of the agencies with no one to e-mail in the case's area: tell them "
        "another way."
    )

    @classmethod
    def of(cls, sent: rq.Sent) -> SentRequests:
        return cls(
            items=[InfoRequest.of(r) for r in sent],
            unreachable=[a.code for a in sent.unreachable],
        )


# -- actions ------------------------------------------------------------------------------------


class NewAction(ApiModel):
    """A SMART action for a reviewed case, owned by one agency."""

    description: ActionText = Field(
        description="What is to be done, by whom, and how the panel will know it is done. "
        "Stored encrypted."
    )
    agency: AgencyCode = Field(description="The code of the agency that owns the action.")
    due_on: IsoDate = Field(description="When it is due (YYYY-MM-DD, today or later).")


class ActionUpdate(ApiModel):
    """The owner agency's update of an action."""

    status: ActionStatusCode
    evidence: ActionText | None = Field(
        None, description="Needed for 'done': the evidence it is done. Stored encrypted."
    )
    reason: ActionText | None = Field(
        None, description="Needed for 'not_accepted': why. Stored encrypted."
    )
    version: VersionFrom1 | None = Field(
        None,
        description="The action's version you were given: if a colleague updated it since, "
        "nothing is saved and the answer is 409.",
    )


def action_change(body: ActionUpdate) -> act.ActionUpdate:
    """The change the service makes, from the page's form or the API's body."""
    return act.ActionUpdate(
        status=m.ActionStatus(body.status), evidence=body.evidence, reason=body.reason
    )


class Action(Answer):
    """An action from a case review. No identifier of the person."""

    uuid: str = Field(json_schema_extra={"format": "uuid"})
    case: ReviewCase
    agency: ReviewAgency
    description: str
    due_on: date
    status: ActionStatusCode
    overdue: bool
    evidence: str | None
    not_accepted_reason: str | None
    created_at: Timestamp
    updated_at: Timestamp | None
    completed_at: Timestamp | None
    version: int = Field(ge=1)

    @classmethod
    def of(cls, action: m.Action) -> Action:
        return cls(
            uuid=str(action.uuid),
            case=ReviewCase.of(action.case),
            agency=ReviewAgency.of(action.owner_agency),
            description=act.text_of(action, "description") or "",
            due_on=action.due_on,
            status=action.status.value,
            overdue=action.is_overdue(utcnow().date()),
            evidence=act.text_of(action, "evidence"),
            not_accepted_reason=act.text_of(action, "not_accepted_reason"),
            created_at=action.created_at,
            updated_at=action.updated_at,
            completed_at=action.completed_at,
            version=action.version,
        )


class ActionList(Answer):
    items: list[Action]

    @classmethod
    def of(cls, actions: list[m.Action]) -> ActionList:
        return cls(items=[Action.of(a) for a in actions])


# -- findings -----------------------------------------------------------------------------------


class NewFactor(ApiModel):
    """A contributory or modifiable factor, in one domain, scored like the child-death analysis
    form."""

    domain: DomainCode
    description: ShortText
    score: ScoreCode
    is_modifiable: Flag | None = None

    @field_validator("description")
    @classmethod
    def _described(cls, text: str) -> str:
        if not text.strip():
            raise PydanticCustomError("fix", "describe the factor.")
        return text


class NewLearningPoint(ApiModel):
    """A new learning point, tagged with theme codes."""

    text: ShortText
    themes: ThemeCodes | None = Field(None, description="Codes of active themes.")


class FindingsUpdate(ApiModel):
    """The panel's findings on a case. 'missed_opportunities' and 'preventability' replace what
    is saved (absent: cleared, and 'not_known'); the factors and the learning point are added to
    those saved. Free text is stored encrypted."""

    factors: Annotated[
        list[NewFactor],
        Field(max_length=FACTORS_MAX),
        Fix(f"give a list of at most {FACTORS_MAX} objects."),
    ] = Field(
        description="New contributory or modifiable factors, each in one domain and scored like "
        "the child-death analysis form."
    )
    missed_opportunities: LongText | None = Field(
        None, description="Where a service could have acted differently."
    )
    preventability: PreventabilityCode | None = Field(
        None, description="Could this have been prevented? Absent: not_known."
    )
    learning_point: NewLearningPoint | None = None
    version: VersionFrom0 = Field(
        description="The findings' version from GET (0 when nothing is saved yet): if a "
        "colleague saved since, nothing is saved and the answer is 409."
    )


def findings_input(body: FindingsUpdate) -> fd.FindingsInput:
    """The findings the service saves, from the page's form or the API's body. A factor with no
    score reaches the service as ``None``, which says how to score it."""
    point = body.learning_point
    return fd.FindingsInput(
        missed_opportunities=body.missed_opportunities or "",
        preventability=m.Preventability(body.preventability or m.Preventability.NOT_KNOWN),
        factors=[
            fd.NewFactor(
                domain=m.Domain(f.domain),
                description=f.description,
                score=m.Score(f.score) if f.score else None,
                is_modifiable=bool(f.is_modifiable),
            )
            for f in body.factors
        ],
        learning_point=point.text if point is not None else "",
        theme_codes=list(point.themes or []) if point is not None else [],
    )


def findings_errors(err: fd.FindingsError, body: FindingsUpdate) -> dict[str, str]:
    """A FindingsError keyed by the API's names (the service names the page's fields)."""
    field = err.field
    for stem in ("_description", "_score"):
        if field.endswith(stem):
            domain = field[: -len(stem)]
            for i, factor in enumerate(body.factors):
                if factor.domain == domain:
                    return {f"factors[{i}].{stem[1:]}": str(err)}
            return {"factors": str(err)}
    key = {"learning_point": "learning_point.text", "themes": "learning_point.themes"}.get(
        field, "missed_opportunities"
    )
    return {key: str(err)}


class ShownFactor(Answer):
    uuid: str = Field(json_schema_extra={"format": "uuid"})
    description: str | None
    score: ScoreCode
    is_modifiable: bool
    created_at: Timestamp


class FactorsByDomain(Answer):
    """The factors recorded, by domain."""

    person: list[ShownFactor]
    family_social: list[ShownFactor]
    service_provision: list[ShownFactor]
    wider_environment: list[ShownFactor]


class ShownLearningPoint(Answer):
    uuid: str = Field(json_schema_extra={"format": "uuid"})
    text: str | None
    themes: list[str]
    created_at: Timestamp


class Findings(Answer):
    """The panel's findings on a case. No identifier of the person."""

    case: str = Field(json_schema_extra={"format": "uuid"})
    version: int = Field(ge=0)
    preventability: PreventabilityCode
    missed_opportunities: str | None
    updated_at: Timestamp | None
    factors: FactorsByDomain
    learning_points: list[ShownLearningPoint]

    @classmethod
    def of(cls, case: Case, view: fd.FindingsView) -> Findings:
        review = view.review
        return cls(
            case=str(case.uuid),
            version=view.version,
            preventability=(
                review.preventability.value
                if review is not None
                else m.Preventability.NOT_KNOWN.value
            ),
            missed_opportunities=view.missed_opportunities,
            updated_at=review.updated_at if review is not None else None,
            factors=FactorsByDomain(
                **{
                    domain.value: [
                        ShownFactor(
                            uuid=str(s.factor.uuid),
                            description=s.description,
                            score=s.factor.score.value,
                            is_modifiable=s.factor.is_modifiable,
                            created_at=s.factor.created_at,
                        )
                        for s in shown
                    ]
                    for domain, shown in view.factors.items()
                }
            ),
            learning_points=[
                ShownLearningPoint(
                    uuid=str(p.point.uuid),
                    text=p.text,
                    themes=[t.code for t in p.point.themes],
                    created_at=p.point.created_at,
                )
                for p in view.learning_points
            ],
        )


# -- safety plans -------------------------------------------------------------------------------


class SafetyPlanUpdate(ApiModel):
    """The person's safety plan: the whole of it, replacing what is saved. Free text is stored
    encrypted."""

    status: PlanStatusCode
    risks: ActionText | None = Field(
        None, description="What the risks are; needed while the plan is open."
    )
    protective: ActionText | None = Field(None, description="The protective factors.")
    interventions: Interventions
    lead: Lead = Field(
        description="The UUID of the lead professional: a coordinator or panel member of the "
        "case's area."
    )
    lead_agency: AgencyCode | None = Field(None, description="The code of the lead agency.")
    review_on: IsoDate | None = Field(
        None,
        description="When the plan is next reviewed (YYYY-MM-DD, today or later while open).",
    )
    version: VersionFrom0 = Field(
        description="The plan's version from GET (0 when there is no plan yet): if a colleague "
        "saved since, nothing is saved and the answer is 409."
    )


def plan_input(body: SafetyPlanUpdate, case: Case) -> act.PlanInput:
    """The plan the service saves, from the page's form or the API's body: the lead among the
    people who may lead a plan made from ``case``, the lead agency among the active ones (an
    unknown one is ``None``, and the service says why)."""
    leads = {str(u.uuid): u for u in act.lead_candidates(case)}
    agency = next(
        (a for a in all_agencies(active_only=True) if a.code == body.lead_agency), None
    )
    return act.PlanInput(
        status=m.PlanStatus(body.status),
        risks=body.risks,
        protective=body.protective,
        interventions=[m.Intervention(v) for v in body.interventions],
        lead=leads.get(body.lead.strip().lower()),
        lead_agency=agency,
        review_on=body.review_on,
    )


class PlanCase(Answer):
    """The case the plan was made from, when you may see it."""

    uuid: str = Field(json_schema_extra={"format": "uuid"})
    reference: str


class PlanLead(Answer):
    uuid: str = Field(json_schema_extra={"format": "uuid"})
    name: str


class SafetyPlan(Answer):
    """A person's safety plan (one per person). No identifier of the person."""

    uuid: str = Field(json_schema_extra={"format": "uuid"})
    case: PlanCase | None
    status: PlanStatusCode
    risks: str | None
    protective: str | None
    interventions: list[Annotated[str, WithJsonSchema(
        {"type": "string", "enum": [i.value for i in m.Intervention]}
    )]]
    lead: PlanLead
    lead_agency: ReviewAgency | None
    review_on: date
    review_overdue: bool
    created_at: Timestamp
    updated_at: Timestamp | None
    version: int = Field(ge=1)

    @classmethod
    def of(cls, plan: m.SafetyPlan, user: User) -> SafetyPlan:
        made_from = plan.case
        return cls(
            uuid=str(plan.uuid),
            case=(
                PlanCase(uuid=str(made_from.uuid), reference=made_from.reference)
                if made_from.can_view(user)
                else None
            ),
            status=plan.status.value,
            risks=act.text_of(plan, "risks"),
            protective=act.text_of(plan, "protective"),
            interventions=[i.value for i in plan.intervention_list],
            lead=PlanLead(uuid=str(plan.lead_user.uuid), name=plan.lead_user.display_name),
            lead_agency=(
                ReviewAgency.of(plan.lead_agency) if plan.lead_agency is not None else None
            ),
            review_on=plan.review_on,
            review_overdue=plan.review_overdue(utcnow().date()),
            created_at=plan.created_at,
            updated_at=plan.updated_at,
            version=plan.version,
        )

