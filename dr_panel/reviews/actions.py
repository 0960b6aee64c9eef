"""Recommendations and actions, and safety plans.

Actions: the coordinator of a reviewed case sets SMART actions, each owned by one agency with a
due date. The owner agency's people (its panel members and contributors in the case's area)
update the status (open, in progress, done with evidence, not accepted with a reason). The
tracker lists every action a user may see, by agency, overdue first; ``dr-panel actions remind``
e-mails the owners a week before and on and after the due date.

Safety plans: for a person judged at risk (NFO survivors and others), one plan per person: risks,
protective factors, interventions, a lead professional and agency, a review date. A new NFO
notification for a person with an open plan alerts the lead at once.

Free text is encrypted at rest, bound to its row's UUID (set before the insert). E-mails carry
only a link and written dates, never who the person is. Every change is audited, never its text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dr_panel.audit.services import record
from dr_panel.auth.models import Role, User, user_areas
from dr_panel.cases.models import Case, CaseStatus, CaseType, Person
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail import services as mail
from dr_panel.privacy.identity import keys
from dr_panel.reference.models import Agency
from dr_panel.reviews.models import (
    INTERVENTION_LABELS,
    OPEN_ACTION,
    OWNER_ROLES,
    Action,
    ActionStatus,
    Intervention,
    PlanStatus,
    SafetyPlan,
)
from dr_panel.reviews.services import panel_of

# The models live in dr_panel.reviews.models; other packages still import them from here.
__all__ = [
    "INTERVENTION_LABELS",
    "OPEN_ACTION",
    "OWNER_ROLES",
    "Action",
    "ActionStatus",
    "Intervention",
    "PlanStatus",
    "SafetyPlan",
]

# Actions are set once the panel has reviewed the case.
OPEN_FOR_ACTIONS = {CaseStatus.REVIEWED, CaseStatus.ACTIONS_IN_PROGRESS}


# -- encryption -----------------------------------------------------------------------------------


Sealed = Action | SafetyPlan


def _encrypt(row: Sealed, table: str, stem: str, text: str) -> str:
    return keys().encrypt(text, table=table, column=stem, record=str(row.uuid))


def _seal(row: Sealed, table: str, stem: str, text: str | None) -> str | None:
    text = (text or "").strip()
    return _encrypt(row, table, stem, text) if text else None


def text_of(row: Sealed, stem: str) -> str | None:
    stored = getattr(row, f"{stem}_enc")
    if not stored:
        return None
    return keys().decrypt(stored, table=row.__tablename__, column=stem, record=str(row.uuid))


def written(d: date) -> str:
    """A date as words, the only way a date goes into an e-mail: 3 March 2026."""
    return f"{d.day} {d:%B %Y}"


# -- actions --------------------------------------------------------------------------------------

MAX_TEXT = 4000


class ActionError(ValueError):
    def __init__(self, message: str, field: str = "description") -> None:
        super().__init__(message)
        self.field = field


class StaleAction(ActionError):
    pass


STALE_ACTION = (
    "A colleague updated this action after you opened it, so your changes were not "
    "saved. Your entries are still below: compare, then save again."
)


def create_action(
    case: Case, *, description: str, agency: Agency | None, due_on: date | None, by: User
) -> Action:
    if not case.can_edit(by):
        raise ActionError("Only the case's coordinator can set actions.")
    if case.status not in OPEN_FOR_ACTIONS:
        raise ActionError(
            f"Actions are set once the panel has reviewed a case; this case is "
            f"“{case.status.label}”."
        )
    description = (description or "").strip()
    if not description:
        raise ActionError("Say what is to be done, by whom, and how you will know it is done.")
    if len(description) > MAX_TEXT:
        raise ActionError("Keep the action to 4,000 characters.")
    if agency is None or not agency.is_active:
        raise ActionError("Choose the agency that owns the action.", "agency")
    if due_on is None:
        raise ActionError("Give the date the action is due, like 2026-12-06.", "due_on")
    if due_on < utcnow().date():
        raise ActionError("The due date is in the past: give a date from today on.", "due_on")
    action = Action(
        uuid=uuid.uuid4(),
        case=case,
        owner_agency=agency,
        due_on=due_on,
        status=ActionStatus.OPEN,
        created_by_id=by.id,
    )
    # Bound to the UUID, so sealed before the insert.
    action.description_enc = _encrypt(action, "actions", "description", description)
    db.session.add(action)
    db.session.flush()
    record(
        "action.created",
        actor=by,
        object_type="actions",
        object_uuid=action.uuid,
        details={"case": str(case.uuid), "agency": agency.code, "due_on": due_on.isoformat()},
    )
    return action


@dataclass
class ActionUpdate:
    status: ActionStatus
    evidence: str | None = None
    reason: str | None = None

    def __repr__(self) -> str:
        return f"<ActionUpdate {self.status.value}>"


def update_action(
    action: Action, change: ActionUpdate, *, by: User, expected_version: int | None
) -> None:
    if not action.can_update(by):
        raise ActionError("Only the owner agency's people can update this action.", "status")
    if expected_version is not None and expected_version != action.version:
        raise StaleAction(STALE_ACTION, "status")
    evidence = (change.evidence or "").strip()
    reason = (change.reason or "").strip()
    if len(evidence) > MAX_TEXT or len(reason) > MAX_TEXT:
        raise ActionError("Keep each answer to 4,000 characters.", "evidence")
    if change.status is ActionStatus.NOT_ACCEPTED and not reason:
        raise ActionError("Say why your agency does not accept this action.", "reason")
    if change.status is ActionStatus.DONE and not evidence:
        raise ActionError("Give the evidence that the action is done.", "evidence")
    before = action.status
    action.status = change.status
    action.evidence_enc = _seal(action, "actions", "evidence", evidence)
    action.not_accepted_reason_enc = (
        _seal(action, "actions", "not_accepted_reason", reason)
        if change.status is ActionStatus.NOT_ACCEPTED
        else None
    )
    if change.status is ActionStatus.DONE:
        action.completed_at = action.completed_at if before is ActionStatus.DONE else utcnow()
    else:
        action.completed_at = None
    action.updated_by_id, action.updated_at = by.id, utcnow()
    flush_or(lambda: StaleAction(STALE_ACTION, "status"))
    record(
        "action.updated",
        actor=by,
        object_type="actions",
        object_uuid=action.uuid,
        details={"from": before.value, "to": change.status.value},
    )


def case_actions(case: Case) -> list[Action]:
    return list(
        db.session.scalars(
            select(Action).where(Action.case_id == case.id).order_by(Action.due_on, Action.id)
        )
    )


@dataclass
class AgencyGroup:
    agency: Agency
    actions: list[Action] = field(default_factory=list)

    def overdue(self, today: date) -> int:
        return sum(1 for a in self.actions if a.is_overdue(today))


def tracker(user: User, today: date | None = None) -> list[AgencyGroup]:
    """The actions a user may see, grouped by owner agency: agencies with overdue actions first,
    and in each group overdue first, then open by due date, then the closed ones."""
    today = today or utcnow().date()
    stmt = select(Action).join(Action.case).where(Case.area_id.in_(user.area_ids or {-1}))
    if user.role is Role.AGENCY_CONTRIBUTOR:
        stmt = stmt.where(Action.owner_agency_id == (user.agency_id or -1))
    elif user.role not in (Role.COORDINATOR, Role.PANEL_MEMBER):
        return []
    groups: dict[int, AgencyGroup] = {}
    for a in db.session.scalars(stmt):
        groups.setdefault(a.owner_agency_id, AgencyGroup(a.owner_agency)).actions.append(a)
    for g in groups.values():
        g.actions.sort(key=lambda a: (not a.is_overdue(today), not a.is_open, a.due_on, a.id))
    return sorted(groups.values(), key=lambda g: (g.overdue(today) == 0, g.agency.name))


def owners_of(action: Action) -> list[User]:
    """Who at the owner agency is told: its active panel members and contributors in the case's
    area."""
    return list(
        db.session.scalars(
            select(User)
            .join(user_areas, user_areas.c.user_id == User.id)
            .where(
                user_areas.c.area_id == action.case.area_id,
                User.agency_id == action.owner_agency_id,
                User.role.in_(OWNER_ROLES),
                User.disabled_at.is_(None),
            )
            .order_by(User.id)
        )
    )


REMIND_DAYS_BEFORE = 7


def remind(today: date | None = None) -> int:
    """Queue reminders: a week before the due date, and every day from the due date on while the
    action is open. At most once a day per action, stage and person. Returns e-mails queued."""
    today = today or utcnow().date()
    queued = 0
    soon = today + timedelta(days=REMIND_DAYS_BEFORE)
    for action in db.session.scalars(
        select(Action)
        .where(Action.status.in_(OPEN_ACTION), Action.due_on <= soon)
        .order_by(Action.id)
    ):
        if action.due_on == soon:
            stage = "before"
        elif action.due_on <= today:
            stage = "due" if action.due_on == today else "overdue"
        else:
            continue
        due = written(action.due_on)
        subject = {
            "before": f"Panel action due in a week ({due})",
            "due": f"Panel action due today ({due})",
            "overdue": f"Reminder: panel action overdue (due {due})",
        }[stage]
        text = (
            f"The {action.case.area.name} drug-related death and overdose panel set an action "
            f"for {action.owner_agency.name}, due on {due}."
            f"{' It is now overdue.' if stage == 'overdue' else ''}\n\n"
            f"Open the action and update its status (sign-in needed): "
            f"{mail.link('reviews.action', uuid=action.uuid)}\n\n"
            "Do not reply to this e-mail with personal details: use the link.\n"
        )
        sent = 0
        for user in owners_of(action):
            if (
                mail.queue(
                    user.email,
                    subject,
                    text,
                    kind=f"action.{stage}",
                    dedupe_key=f"action:{action.uuid}:{stage}:{today.isoformat()}:{user.uuid}",
                )
                is not None
            ):
                sent += 1
        if sent:
            record(
                "action.reminded",
                actor_label="system",
                object_type="actions",
                object_uuid=action.uuid,
                details={"stage": stage, "recipients": sent},
            )
            queued += sent
    db.session.flush()
    return queued


# -- safety plans ---------------------------------------------------------------------------------


class PlanError(ValueError):
    def __init__(self, message: str, field: str = "risks") -> None:
        super().__init__(message)
        self.field = field


class StalePlan(PlanError):
    pass


def plan_for(person: Person) -> SafetyPlan | None:
    return db.session.scalar(select(SafetyPlan).where(SafetyPlan.person_id == person.id))


def lead_candidates(case: Case) -> list[User]:
    """Who can lead a plan made from this case: coordinators and panel members of its area."""
    return panel_of(case.area_id)


@dataclass
class PlanInput:
    status: PlanStatus
    risks: str | None
    protective: str | None
    interventions: list[Intervention]
    lead: User | None
    lead_agency: Agency | None
    review_on: date | None

    def __repr__(self) -> str:
        return f"<PlanInput {self.status.value}>"


def save_plan(case: Case, data: PlanInput, *, by: User, expected_version: int | None) -> SafetyPlan:
    if by.role not in (Role.COORDINATOR, Role.PANEL_MEMBER) or not case.can_view(by):
        raise PlanError("Only coordinators and panel members of the area keep safety plans.")
    plan = plan_for(case.person)
    if plan is not None and expected_version is not None and expected_version != plan.version:
        raise StalePlan(
            "A colleague saved this plan after you opened it, so your changes were not saved. "
            "Your entries are still below: compare, then save again."
        )
    if data.lead is None or data.lead.id not in {u.id for u in lead_candidates(case)}:
        raise PlanError(
            "Choose the lead professional from the coordinators and panel members of "
            f"{case.area.name}.",
            "lead",
        )
    if data.review_on is None:
        raise PlanError("Give the date the plan is next reviewed, like 2026-12-06.", "review_on")
    if data.review_on < utcnow().date() and data.status is PlanStatus.OPEN:
        raise PlanError("The review date is in the past: give a date from today on.", "review_on")
    risks, protective = (data.risks or "").strip(), (data.protective or "").strip()
    if not risks and data.status is PlanStatus.OPEN:
        raise PlanError("Say what the risks are.", "risks")
    if len(risks) > MAX_TEXT or len(protective) > MAX_TEXT:
        raise PlanError("Keep each answer to 4,000 characters.", "risks")
    new = plan is None
    if plan is None:
        plan = SafetyPlan(
            uuid=uuid.uuid4(),
            person=case.person,
            case=case,
            created_by_id=by.id,
        )
    plan.status = data.status
    plan.risks_enc = _seal(plan, "safety_plans", "risks", risks)
    plan.protective_enc = _seal(plan, "safety_plans", "protective", protective)
    plan.interventions = ",".join(i.value for i in Intervention if i in data.interventions)
    plan.lead_user = data.lead
    plan.lead_agency = data.lead_agency
    plan.review_on = data.review_on
    if not new:
        plan.updated_at = utcnow()
    db.session.add(plan)
    try:
        with db.session.begin_nested():  # two people starting a plan for one person at once
            db.session.flush()
    except IntegrityError:
        raise StalePlan(
            "A colleague started a safety plan for this person while you were writing yours, "
            "so yours was not saved. Your entries are still below: compare, then save again."
        ) from None
    record(
        "safety_plan.created" if new else "safety_plan.updated",
        actor=by,
        object_type="safety_plans",
        object_uuid=plan.uuid,
        details={
            "case": str(case.uuid),
            "status": plan.status.value,
            "interventions": plan.interventions,
            "review_on": plan.review_on.isoformat(),
        },
    )
    return plan


def alert_plan_leads(cases: Sequence[Case]) -> int:
    """New overdoses of people known before (the intake's effect, wired by the app): alert the
    lead of each open safety plan among them (one query for the plans). Returns how many."""
    people = {c.person_id for c in cases}
    open_plans = set(
        db.session.scalars(
            select(SafetyPlan.person_id).where(
                SafetyPlan.person_id.in_(people), SafetyPlan.status == PlanStatus.OPEN
            )
        )
    ) if people else set()
    return sum(alert_plan_lead(c) for c in cases if c.person_id in open_plans)


def alert_plan_lead(case: Case) -> bool:
    """A new NFO for a person with an open safety plan: e-mail the plan's lead at once (a link,
    no identifiers) and audit it. Returns whether an alert was queued."""
    if case.case_type is not CaseType.NFO:
        return False
    plan = plan_for(case.person)
    if plan is None or plan.status is not PlanStatus.OPEN:
        return False
    lead = plan.lead_user
    if lead is None or lead.disabled_at is not None:
        return False
    target = case if case.area_id in lead.area_ids else plan.case
    text = (
        "A new non-fatal overdose has been notified for a person whose safety plan you lead. "
        "Please look at the plan now and decide whether it needs to change.\n\n"
        f"Open the safety plan (sign-in needed): "
        f"{mail.link('reviews.safety_plan', uuid=target.uuid)}\n\n"
        "Do not reply to this e-mail with personal details: use the link.\n"
    )
    queued = mail.queue(
        lead.email,
        "A person with a safety plan you lead has had another overdose",
        text,
        kind="safety_plan.alert",
        dedupe_key=f"plan-alert:{case.uuid}:{lead.uuid}",
    )
    record(
        "safety_plan.alerted",
        actor_label="system",
        object_type="safety_plans",
        object_uuid=plan.uuid,
        details={"case": str(case.uuid), "queued": queued is not None},
    )
    return queued is not None


def plans_for(user: User) -> list[SafetyPlan]:
    """Open plans made from cases in the user's areas: overdue reviews first."""
    if user.role not in (Role.COORDINATOR, Role.PANEL_MEMBER):
        return []
    rows = db.session.scalars(
        select(SafetyPlan)
        .join(SafetyPlan.case)
        .where(Case.area_id.in_(user.area_ids or {-1}), SafetyPlan.status == PlanStatus.OPEN)
    ).all()
    return sorted(rows, key=lambda p: (p.review_on, p.id))


def new_nfos_with_plans(area_ids: set[int]) -> list[Case]:
    """NFO notifications still waiting for triage, in these areas, for people with an open plan."""
    return list(
        db.session.scalars(
            select(Case)
            .join(SafetyPlan, SafetyPlan.person_id == Case.person_id)
            .where(
                Case.area_id.in_(area_ids or {-1}),
                Case.case_type == CaseType.NFO,
                Case.status == CaseStatus.NOTIFIED,
                SafetyPlan.status == PlanStatus.OPEN,
                Case.created_at >= SafetyPlan.created_at,
            )
            .order_by(Case.created_at)
        )
    )


def overdue_plan_reviews(area_ids: set[int], today: date | None = None) -> int:
    today = today or utcnow().date()
    return sum(
        1
        for p in db.session.scalars(
            select(SafetyPlan)
            .join(SafetyPlan.case)
            .where(
                Case.area_id.in_(area_ids or {-1}),
                SafetyPlan.status == PlanStatus.OPEN,
                SafetyPlan.review_on < today,
            )
        )
    )
