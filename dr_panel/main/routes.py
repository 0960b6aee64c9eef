from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template
from flask_login import current_user
from sqlalchemy import func, select

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role, User
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.security import public, signed_in

bp = Blueprint("main", __name__)


@bp.route("/")
@signed_in
def home() -> Any:
    """What needs this person's attention, by role."""
    attention: list[dict[str, Any]] = []
    if not current_user.has_second_factor:
        required = current_app.config["REQUIRE_2FA"] and current_user.role.needs_second_factor
        attention.append(
            {
                "text": "Set up two-step verification" + (" (required)" if required else ""),
                "hint": "A code from an app on your phone keeps your account safe even if your "
                "password is stolen.",
                "endpoint": "auth.two_factor",
            }
        )
    if current_user.role is Role.COORDINATOR:
        attention += _coordinator_items()
        attention += _ldis_queue_items()
    if current_user.role in (Role.COORDINATOR, Role.LEAD):
        attention += _approval_items()
    if current_user.role is Role.AGENCY_CONTRIBUTOR:
        attention += _contributor_items()
    failed = _failed_signins_since_last_login()
    admin = _admin_summary() if current_user.role is Role.ADMIN else None
    return render_template("main/home.html", attention=attention, failed=failed, admin=admin)


def _coordinator_items() -> list[dict[str, Any]]:
    from dr_panel.cases.models import Case, CaseStatus, MatchStatus

    mine = Case.area_id.in_(current_user.area_ids or {-1})
    count = select(func.count()).select_from(Case).where(mine)
    items = []
    matches = db.session.scalar(count.where(Case.match_status == MatchStatus.SUGGESTED)) or 0
    if matches:
        plural = "es" if matches != 1 else ""
        items.append(
            {
                "text": f"{matches} possible match{plural} to confirm or reject",
                "hint": "A new notification may be about someone already known.",
                "endpoint": "cases.list_cases",
            }
        )
    new = db.session.scalar(count.where(Case.status == CaseStatus.NOTIFIED)) or 0
    if new:
        items.append(
            {
                "text": f"{new} notification{'s' if new != 1 else ''} waiting for triage",
                "hint": "Decide: review at panel, no review, or duplicate.",
                "endpoint": "cases.list_cases",
            }
        )
    items += _safety_plan_items()
    return items


def _ldis_queue_items() -> list[dict[str, Any]]:
    from dr_panel.alerts import assessment

    waiting = assessment.queue(current_user)
    if not waiting:
        return []
    now = utcnow()
    overdue = sum(1 for item in waiting if item.is_overdue(now))
    urgent = sum(1 for item in waiting if item.is_urgent)
    plural = "s" if len(waiting) != 1 else ""
    notes = [f"{urgent} urgent"] if urgent else []
    notes += [f"{overdue} overdue"] if overdue else []
    return [
        {
            "text": f"{len(waiting)} signal{plural} or drug-concern report{plural} to grade"
            + (f" ({', '.join(notes)})" if notes else ""),
            "hint": "Grade each and decide: no further action, a notice, an alert or an urgent "
            "alert. Urgent items within 24 hours, others within 48 working hours.",
            "endpoint": "alerts.queue",
        }
    ]


def _approval_items() -> list[dict[str, Any]]:
    from dr_panel.alerts.models import Alert, AlertStatus

    waiting = [
        a
        for a in db.session.scalars(
            select(Alert).where(Alert.status == AlertStatus.AWAITING_APPROVAL)
        )
        if a.can_approve(current_user)
    ]
    if not waiting:
        return []
    plural = "s" if len(waiting) != 1 else ""
    return [
        {
            "text": f"{len(waiting)} alert{plural} waiting for a second person to approve",
            "hint": "Someone else drafted it: read it as recipients will, then approve it.",
            "endpoint": "alerts.archive",
        }
    ]


def _safety_plan_items() -> list[dict[str, Any]]:
    from dr_panel.reviews import actions as act

    items = []
    alerts = len(act.new_nfos_with_plans(current_user.area_ids))
    if alerts:
        plural = "s" if alerts != 1 else ""
        items.append(
            {
                "text": f"{alerts} new overdose{plural} for people with an open safety plan",
                "hint": "The plan's lead has been e-mailed; review the plan.",
                "endpoint": "reviews.safety_plans",
            }
        )
    overdue = act.overdue_plan_reviews(current_user.area_ids)
    if overdue:
        plural = "s" if overdue != 1 else ""
        items.append(
            {
                "text": f"{overdue} safety plan review{plural} overdue",
                "hint": "Review the plan with its lead and set the next review date.",
                "endpoint": "reviews.safety_plans",
            }
        )
    return items


def _contributor_items() -> list[dict[str, Any]]:
    from dr_panel.reviews.services import agency_queue

    waiting = [r for r in agency_queue(current_user) if r.is_open]
    if not waiting:
        return []
    overdue = sum(1 for r in waiting if r.is_overdue(utcnow().date()))
    plural = "s" if len(waiting) != 1 else ""
    return [
        {
            "text": f"{len(waiting)} information request{plural} waiting for your agency"
            + (f" ({overdue} overdue)" if overdue else ""),
            "hint": "The panel asks what your agency knew of a person.",
            "endpoint": "reviews.my_requests",
        }
    ]


def _failed_signins_since_last_login() -> int:
    logins = db.session.scalars(
        select(AuditEntry.occurred_at)
        .where(AuditEntry.actor_uuid == current_user.uuid, AuditEntry.action == "auth.login")
        .order_by(AuditEntry.seq.desc())
        .limit(2)
    ).all()
    since = logins[1] if len(logins) > 1 else None
    stmt = (
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.actor_uuid == current_user.uuid, AuditEntry.action == "auth.login_failed")
    )
    if since is not None:
        stmt = stmt.where(AuditEntry.occurred_at > since)
    return db.session.scalar(stmt) or 0


def _admin_summary() -> dict[str, Any]:
    day_ago = utcnow() - timedelta(days=1)

    def count(stmt: Any) -> int:
        return db.session.scalar(stmt) or 0

    users = select(func.count()).select_from(User)
    entries = select(func.count()).select_from(AuditEntry).where(AuditEntry.occurred_at >= day_ago)
    return {
        "active": count(users.where(User.disabled_at.is_(None))),
        "disabled": count(users.where(User.disabled_at.is_not(None))),
        "no_2fa": count(users.where(User.disabled_at.is_(None), User.totp_enabled_at.is_(None))),
        "failed_24h": count(entries.where(AuditEntry.action == "auth.login_failed")),
        "denied_24h": count(entries.where(AuditEntry.outcome == Outcome.DENIED)),
    }


@bp.route("/healthz")
@public
def healthz() -> Any:
    """Liveness: the process answers. Nothing else is checked (a database outage must not make
    the orchestrator restart every web process) and nothing else is said."""
    return jsonify(status="ok")


@bp.route("/readyz")
@public
def readyz() -> Any:
    """Readiness, for the load balancer: database, migrations at head, keys, Redis when
    configured. Answers ok (200) or not ok (503) with the failing checks' names only."""
    from dr_panel.runtime.web import failing_checks

    failing = failing_checks(current_app._get_current_object())  # type: ignore[attr-defined]
    if failing:
        return jsonify(status="not ok", failing=failing), 503
    return jsonify(status="ok")
