"""The case workflow: an explicit state machine. Every allowed move, who may make it and what it
needs is one row of ``TRANSITIONS``; anything else is refused with a message that says why.

    notified --triage--> information gathering | no review (reason) | duplicate (of a case)
    information gathering -> ready for panel -> reviewed -> actions in progress -> closed
    deaths: information gathering / ready for panel / reviewed -> awaiting toxicology or inquest
            (expected date) -> results arrived -> information gathering
    closed / no review --reopen (reason)--> information gathering

Each move writes a ``CaseEvent`` (who, when, why, encrypted) for the timeline, and an audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from dr_panel.audit.services import record
from dr_panel.auth.models import User
from dr_panel.cases.models import Case, CaseEvent, CaseStatus, CaseType
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.identity import keys
from dr_panel.roles import Role

S = CaseStatus
COORDINATOR = frozenset({Role.COORDINATOR})


@dataclass(frozen=True)
class Transition:
    name: str
    label: str
    source: frozenset[CaseStatus]
    target: CaseStatus
    roles: frozenset[Role] = COORDINATOR
    needs_reason: bool = False
    needs_date: bool = False
    needs_duplicate_of: bool = False
    deaths_only: bool = False
    hint: str = ""


TRANSITIONS = [
    Transition(
        "review",
        "Review at panel",
        frozenset({S.NOTIFIED}),
        S.INFORMATION_GATHERING,
        hint="Triage: the panel will review it; gather information from agencies.",
    ),
    Transition(
        "no_review",
        "No review needed",
        frozenset({S.NOTIFIED}),
        S.NO_REVIEW,
        needs_reason=True,
        hint="Triage: say why the panel need not review it.",
    ),
    Transition(
        "duplicate",
        "Duplicate of another case",
        frozenset({S.NOTIFIED}),
        S.DUPLICATE,
        needs_duplicate_of=True,
        hint="Triage: the same event was notified twice; name the case to keep.",
    ),
    Transition(
        "ready",
        "Ready for panel",
        frozenset({S.INFORMATION_GATHERING}),
        S.READY_FOR_PANEL,
        hint="The agencies' information is in: put it on a meeting agenda.",
    ),
    Transition(
        "more_information",
        "Back to information gathering",
        frozenset({S.READY_FOR_PANEL}),
        S.INFORMATION_GATHERING,
        needs_reason=True,
    ),
    Transition("reviewed", "Reviewed at panel", frozenset({S.READY_FOR_PANEL}), S.REVIEWED),
    Transition("actions", "Actions in progress", frozenset({S.REVIEWED}), S.ACTIONS_IN_PROGRESS),
    Transition("close", "Close", frozenset({S.REVIEWED, S.ACTIONS_IN_PROGRESS}), S.CLOSED),
    Transition(
        "await_toxicology",
        "Awaiting toxicology",
        frozenset({S.INFORMATION_GATHERING, S.READY_FOR_PANEL}),
        S.AWAITING_TOXICOLOGY,
        needs_date=True,
        deaths_only=True,
        hint="Pause until the results are expected.",
    ),
    Transition(
        "await_inquest",
        "Awaiting inquest",
        frozenset({S.INFORMATION_GATHERING, S.READY_FOR_PANEL, S.REVIEWED}),
        S.AWAITING_INQUEST,
        needs_date=True,
        deaths_only=True,
        hint="Pause until the inquest is expected to conclude.",
    ),
    Transition(
        "results_arrived",
        "Results arrived: reopen",
        frozenset({S.AWAITING_TOXICOLOGY, S.AWAITING_INQUEST}),
        S.INFORMATION_GATHERING,
    ),
    Transition(
        "reopen",
        "Reopen",
        frozenset({S.CLOSED, S.NO_REVIEW}),
        S.INFORMATION_GATHERING,
        needs_reason=True,
        hint="New information: say what it is.",
    ),
]
BY_NAME = {t.name: t for t in TRANSITIONS}


class WorkflowError(ValueError):
    """A move the rules refuse; ``field`` names the form field the message belongs to."""

    def __init__(self, message: str, field: str = "transition") -> None:
        super().__init__(message)
        self.field = field


class StaleCase(WorkflowError):
    pass


STALE_CASE = (
    "Someone else changed this case after you opened it. Look at its status now, then "
    "choose again."
)


def available(case: Case, user: User) -> list[Transition]:
    """The moves this person may make on this case now (for the buttons on its page)."""
    return [
        t
        for t in TRANSITIONS
        if case.status in t.source
        and user.role in t.roles
        and (not t.deaths_only or case.case_type is CaseType.DEATH)
    ]


def move(
    case: Case,
    name: str,
    *,
    by: User,
    reason: str | None = None,
    expected_on: date | None = None,
    duplicate_of_reference: str | None = None,
    expected_version: int | None = None,
) -> CaseEvent:
    """Make one move, or raise WorkflowError saying why it cannot be made."""
    t = BY_NAME.get(name)
    if t is None:
        raise WorkflowError("Choose one of the steps offered on the case page.")
    if expected_version is not None and expected_version != case.version:
        raise StaleCase(STALE_CASE)
    if by.role not in t.roles:
        raise WorkflowError(f"Only a panel coordinator can mark a case “{t.label}”.")
    if case.status not in t.source:
        allowed = ", ".join(sorted(s.label.lower() for s in t.source))
        raise WorkflowError(
            f"A case that is “{case.status.label}” cannot move to “{t.label}”; "
            f"that step is for cases that are {allowed}."
        )
    if t.deaths_only and case.case_type is not CaseType.DEATH:
        raise WorkflowError(f"“{t.label}” is for deaths only.")
    reason = (reason or "").strip() or None
    if t.needs_reason and not reason:
        raise WorkflowError(f"Say why, for “{t.label}”.", "why")
    if reason and len(reason) > 2000:
        raise WorkflowError("Keep the reason to 2,000 characters.", "why")
    if t.needs_date:
        if expected_on is None:
            raise WorkflowError(
                "Give the date the results are expected (an estimate is fine).", "expected_on"
            )
        if expected_on < utcnow().date():
            raise WorkflowError(
                "The expected date is in the past: give a date from today on.", "expected_on"
            )
    if t.needs_duplicate_of:
        case.duplicate_of = _duplicate_target(case, duplicate_of_reference, by)
    case.awaiting_until = expected_on if t.needs_date else None
    event = CaseEvent(
        case=case,
        actor_id=by.id,
        transition=t.name,
        from_status=case.status,
        to_status=t.target,
        expected_on=expected_on,
    )
    db.session.add(event)
    db.session.flush()
    if reason:
        event.reason_enc = keys().encrypt(
            reason, table="case_events", column="reason", record=str(event.uuid)
        )
    case.status = t.target
    flush_or(lambda: StaleCase(STALE_CASE))  # a move racing past the version check
    record(
        "case.transition",
        actor=by,
        object_type="cases",
        object_uuid=case.uuid,
        details={"transition": t.name, "from": event.from_status.value, "to": t.target.value},
    )
    return event


def _duplicate_target(case: Case, reference: str | None, by: User) -> Case:
    reference = (reference or "").strip().upper()
    if not reference:
        raise WorkflowError(
            "Give the reference of the case to keep, like NFO-2026-0012.", "duplicate_of"
        )
    # References are unique per area, and a duplicate notification is of the same event,
    # so the case to keep is looked up in this case's own area.
    target: Case | None = db.session.scalar(
        select(Case).where(Case.reference == reference, Case.area_id == case.area_id)
    )
    if target is None or not target.can_view(by):
        raise WorkflowError(
            f"No case {reference} in {case.area.name}. Check the reference.", "duplicate_of"
        )
    if target.id == case.id:
        raise WorkflowError("A case cannot be a duplicate of itself.", "duplicate_of")
    if target.status is CaseStatus.DUPLICATE:
        raise WorkflowError(
            f"{reference} is itself a duplicate; name the case it was merged into.", "duplicate_of"
        )
    return target


def reason_of(event: CaseEvent) -> str | None:
    if not event.reason_enc:
        return None
    return keys().decrypt(
        event.reason_enc, table="case_events", column="reason", record=str(event.uuid)
    )
