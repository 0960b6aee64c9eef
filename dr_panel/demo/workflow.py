"""Move the demo notifications through the panel's work, so a newcomer sees every stage: recent
notifications wait for triage, older ones are being gathered, ready, reviewed with findings and
themes, have actions (some done, some overdue) or are closed. Every step goes through the real
services (workflow moves, findings, actions); only the dates are then set back to when the step
would have happened, since the services stamp "now".

The learning points here are stock sentences about services, never about a person."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from dr_panel.auth.models import User
from dr_panel.cases import workflow
from dr_panel.cases.models import Case, CaseStatus, CaseType
from dr_panel.extensions import db
from dr_panel.reference.models import Agency
from dr_panel.reviews import actions as tracker
from dr_panel.reviews import findings

POINTS = [
    ("Naloxone was not carried by the people present; offer kits at every contact.",
     ["no_naloxone"]),
    ("Discharge from treatment was not followed by an outreach contact within a week.",
     ["left_treatment"]),
    ("Release from prison was not shared with the community treatment service in time.",
     ["prison_release", "reduced_tolerance"]),
    ("Benzodiazepines and gabapentinoids were used alongside opioids; review prescribing.",
     ["polysubstance_sedatives"]),
    ("The person often used alone; promote buddy schemes and overdose-response lines.",
     ["using_alone"]),
    ("Moves between temporary accommodation broke contact with services.",
     ["housing_instability"]),
    ("A mental-health crisis contact did not trigger a drug-treatment referral.",
     ["mental_health_crisis"]),
    ("Partners reported a stronger or contaminated supply in the weeks before.",
     ["new_supply"]),
]
ACTIONS = [
    "Offer naloxone to everyone leaving custody and record the offer.",
    "Agree a same-week outreach contact after any unplanned treatment exit.",
    "Share release dates with the treatment service ten days before release.",
    "Add overdose-risk questions to the hostel admission form.",
]


def _at(day: date) -> datetime:
    return datetime.combine(day, time(10, 0), tzinfo=UTC)


def advance(today: date, by: User, seed: int = 7) -> int:
    """Advance the demo cases by age; returns how many moved. Call once, after load_cases."""
    rng = random.Random(seed)  # noqa: S311  (synthetic data, repeatable on purpose)
    owners = {
        u.agency_id: u
        for u in db.session.scalars(select(User).where(User.role.in_(tracker.OWNER_ROLES)))
        if u.agency_id is not None
    }
    agencies = [
        a for a in db.session.scalars(select(Agency).where(Agency.is_active))
        if a.id in owners or a.code in ("HOUSING", "PROBATION")
    ]
    findings.ensure_themes()
    moved = 0
    cases = db.session.scalars(select(Case).order_by(Case.notified_on, Case.id)).all()
    for case in cases:
        age = (today - case.notified_on).days
        if age < 21 or case.status is not CaseStatus.NOTIFIED:
            continue  # the last three weeks wait for triage
        if rng.random() < 0.12:
            event = workflow.move(case, "no_review", by=by,
                                  reason="Out of the panel's scope after triage.")
            event.occurred_at = _at(case.notified_on + timedelta(days=rng.randrange(2, 10)))
            moved += 1
            continue
        triaged = case.notified_on + timedelta(days=rng.randrange(2, 10))
        workflow.move(case, "review", by=by).occurred_at = _at(triaged)
        moved += 1
        if age < 60:
            continue  # still gathering information
        ready = triaged + timedelta(days=rng.randrange(14, 35))
        workflow.move(case, "ready", by=by).occurred_at = _at(ready)
        if age < 90:
            continue  # waiting for the next meeting
        _review(case, rng, by)
        reviewed = min(ready + timedelta(days=rng.randrange(7, 31)), today)
        workflow.move(case, "reviewed", by=by).occurred_at = _at(reviewed)
        if case.case_type is CaseType.DEATH or rng.random() < 0.25:
            _actions(case, rng, by, agencies, owners, today, reviewed)
            workflow.move(case, "actions", by=by).occurred_at = _at(reviewed)
        if age > 300:
            workflow.move(case, "close", by=by).occurred_at = _at(
                min(reviewed + timedelta(days=rng.randrange(30, 120)), today)
            )
    db.session.flush()
    return moved


def _review(case: Case, rng: random.Random, by: User) -> None:
    text, themes = POINTS[rng.randrange(len(POINTS))]
    findings.save_findings(
        case,
        findings.FindingsInput(
            missed_opportunities="",
            preventability=rng.choice(list(findings.Preventability)),
            learning_point=text,
            theme_codes=themes,
        ),
        by=by,
        expected_version=0,
    )


def _actions(case: Case, rng: random.Random, by: User, agencies: list[Agency],
             owners: dict[int, User], today: date, reviewed: date) -> None:
    """One or two actions; those due before today are mostly done (updated by the owner agency's
    demo login, where it has one) and the rest are overdue."""
    for _ in range(rng.randrange(1, 3)):
        action = tracker.create_action(
            case,
            description=ACTIONS[rng.randrange(len(ACTIONS))],
            agency=rng.choice(agencies),
            due_on=today + timedelta(days=30),
            by=by,
        )
        # Set back to a due date after the review.
        action.due_on = reviewed + timedelta(days=rng.randrange(30, 90))
        action.created_at = _at(reviewed)
        owner = owners.get(action.owner_agency_id)
        can_close = owner is not None and action.can_update(owner) and action.due_on < today
        if owner is not None and can_close and rng.random() < 0.6:
            tracker.update_action(
                action,
                tracker.ActionUpdate(tracker.ActionStatus.DONE,
                                     evidence="Done; confirmed at the panel's next meeting."),
                by=owner,
                expected_version=None,
            )
            action.completed_at = _at(min(action.due_on, today))
