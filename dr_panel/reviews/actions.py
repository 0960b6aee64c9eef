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
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import Date, ForeignKey, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dr_panel.audit.services import record
from dr_panel.auth.models import Role, User, user_areas
from dr_panel.cases.identity import keys
from dr_panel.cases.models import Case, CaseStatus, CaseType, Labelled, Person, str_enum
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency

# -- models ---------------------------------------------------------------------------------------


class ActionStatus(Labelled):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    NOT_ACCEPTED = "not_accepted"


class PlanStatus(Labelled):
    OPEN = "open"
    CLOSED = "closed"


class Intervention(Labelled):
    NALOXONE = "naloxone"
    TREATMENT_REFERRAL = "treatment_referral"
    HOUSING_REFERRAL = "housing_referral"
    MENTAL_HEALTH_REFERRAL = "mental_health_referral"
    OTHER = "other"


INTERVENTION_LABELS = {
    Intervention.NALOXONE: "Naloxone supplied",
    Intervention.TREATMENT_REFERRAL: "Treatment referral",
    Intervention.HOUSING_REFERRAL: "Housing referral",
    Intervention.MENTAL_HEALTH_REFERRAL: "Mental-health referral",
    Intervention.OTHER: "Other",
}

OPEN_ACTION = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)
# Actions are set once the panel has reviewed the case.
OPEN_FOR_ACTIONS = {CaseStatus.REVIEWED, CaseStatus.ACTIONS_IN_PROGRESS}
OWNER_ROLES = (Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


class Action(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    description_enc: Mapped[str] = mapped_column(Text, nullable=False)
    owner_agency_id: Mapped[int] = mapped_column(
        ForeignKey("agencies.id"), nullable=False, index=True
    )
    due_on: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[ActionStatus] = mapped_column(
        str_enum(ActionStatus, 14), nullable=False, default=ActionStatus.OPEN
    )
    not_accepted_reason_enc: Mapped[str | None] = mapped_column(Text)
    evidence_enc: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    case: Mapped[Case] = relationship(lazy="joined")
    owner_agency: Mapped[Agency] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Action {self.uuid} {self.status.value}>"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ACTION

    def is_overdue(self, today: date) -> bool:
        return self.is_open and self.due_on < today

    # Per-record rules: the case's readers see its actions; the owner agency's panel members and
    # contributors in the case's area see and update them; the coordinator sets them.
    def can_view(self, user: Any) -> bool:
        return self.case.can_view(user) or self.can_update(user)

    def can_update(self, user: Any) -> bool:
        return bool(
            user.role in OWNER_ROLES
            and user.agency_id is not None
            and user.agency_id == self.owner_agency_id
            and self.case.area_id in user.area_ids
        )

    def can_edit(self, user: Any) -> bool:
        return self.case.can_edit(user)


class SafetyPlan(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One plan per person, made from one of their cases (the case it links back to)."""

    __tablename__ = "safety_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), nullable=False, index=True)
    status: Mapped[PlanStatus] = mapped_column(
        str_enum(PlanStatus, 10), nullable=False, default=PlanStatus.OPEN
    )
    risks_enc: Mapped[str | None] = mapped_column(Text)
    protective_enc: Mapped[str | None] = mapped_column(Text)
    interventions: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    lead_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    lead_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    review_on: Mapped[date] = mapped_column(Date, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    person: Mapped[Person] = relationship()
    case: Mapped[Case] = relationship(lazy="joined")
    lead_user: Mapped[User] = relationship(foreign_keys=[lead_user_id], lazy="joined")
    lead_agency: Mapped[Agency | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<SafetyPlan {self.uuid} {self.status.value}>"

    @property
    def intervention_list(self) -> list[Intervention]:
        return [Intervention(v) for v in self.interventions.split(",") if v]

    @property
    def intervention_labels(self) -> list[str]:
        return [INTERVENTION_LABELS[i] for i in self.intervention_list]

    def review_overdue(self, today: date) -> bool:
        return self.status is PlanStatus.OPEN and self.review_on < today

    def can_view(self, user: Any) -> bool:
        return self.person.can_view(user)

    def can_edit(self, user: Any) -> bool:
        return user.role in (Role.COORDINATOR, Role.PANEL_MEMBER) and self.can_view(user)


# -- encryption -----------------------------------------------------------------------------------


def _seal(row: Any, table: str, stem: str, text: str | None) -> str | None:
    text = (text or "").strip()
    if not text:
        return None
    return keys().encrypt(text, table=table, column=stem, record=str(row.uuid))


def text_of(row: Any, stem: str) -> str | None:
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
    case: Case, *, description: str, agency: Agency | None, due_on: date | None, by: Any
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
        created_by_id=getattr(by, "id", None),
    )
    action.description_enc = _seal(action, "actions", "description", description)  # before insert
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
    action: Action, change: ActionUpdate, *, by: Any, expected_version: int | None
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
    action.updated_by_id, action.updated_at = getattr(by, "id", None), utcnow()
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


def tracker(user: Any, today: date | None = None) -> list[AgencyGroup]:
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
    from dr_panel.mail import services as mail

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
    return list(
        db.session.scalars(
            select(User)
            .join(user_areas, user_areas.c.user_id == User.id)
            .where(
                user_areas.c.area_id == case.area_id,
                User.role.in_([Role.COORDINATOR, Role.PANEL_MEMBER]),
                User.disabled_at.is_(None),
            )
            .order_by(User.display_name)
        )
    )


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


def save_plan(case: Case, data: PlanInput, *, by: Any, expected_version: int | None) -> SafetyPlan:
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
            created_by_id=getattr(by, "id", None),
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


def alert_plan_lead(case: Case) -> bool:
    """A new NFO for a person with an open safety plan: e-mail the plan's lead at once (a link,
    no identifiers) and audit it. Returns whether an alert was queued."""
    from dr_panel.mail import services as mail

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


def plans_for(user: Any) -> list[SafetyPlan]:
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


# -- command line ---------------------------------------------------------------------------------


@click.group("actions")
def actions_cli() -> None:
    """Panel actions."""


@actions_cli.command("remind")
@with_appcontext
def remind_command() -> None:
    """Queue reminders for actions due in a week, due today or overdue (run daily from cron;
    safe to run more often)."""
    n = remind()
    db.session.commit()
    click.echo(f"Queued {n} reminder{'s' if n != 1 else ''}.")
