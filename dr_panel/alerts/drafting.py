"""Drafting, the leak gate, second-person approval, updates, cancellation and expiry of alerts.

Every state change is a function here that also writes its audit entry; none commits (the
request, or the worker, commits once). The pages (``drafting_routes``) and the JSON API call
the same functions.

The life of a version: drafted (editable by the area's coordinators) -> submitted for approval
(only if the identifier-leak gate finds nothing; any later edit withdraws the submission) ->
approved by someone else, which issues it: ``issued_at`` freezes it, the alert becomes ISSUED
(or CANCELLED for a Cancel), and one delivery per matching subscriber is queued in the same
transaction (``broadcast.queue_deliveries``, the outbox). An update or a cancellation is a new
version that ``references`` the live one and goes through the same gate and approval.

Choices written down:
- A cancellation needs a second person like any version, except when the drafter marks it
  urgent (the alert is wrong in a way that could hurt someone): then it is issued at once,
  by the drafter, and the audit entry says so. It still passes the leak gate.
- Nothing is copied from a case's or a report's free text. A new draft starts with the level
  (from the decision), the area of the signal or report, a counts sentence written under the
  disclosure rule, and for a signal the substance group it is about: everything else is typed.
- Counts follow ``dr_panel.privacy.disclosure``: 1..7 become "fewer than 8", others are rounded
  to the nearest 5 and said "about"; exact counts never appear in an alert.
- Drafts default to restricted scope (the professional network); making one public is a choice.
"""

from __future__ import annotations

import json
import uuid as uuid_mod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, select

from dr_panel import counters
from dr_panel.alerts import leakgate
from dr_panel.alerts.models import (
    AUDIENCES,
    Alert,
    AlertLevel,
    AlertStatus,
    AlertVersion,
    Assessment,
    Decision,
    ItemStatus,
    MsgType,
    ReportSource,
    Scope,
    SignalKind,
    alert_version_areas,
)
from dr_panel.audit.services import record
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.disclosure import shown_count, suppress_below
from dr_panel.reference.models import Area
from dr_panel.roles import Role
from dr_panel.search import contains, starts_with

if TYPE_CHECKING:
    from dr_panel.auth.models import User

CONTENT_FIELDS = (
    "title",
    "substance",
    "sold_as",
    "appearance",
    "adulterant",
    "signs_of_harm",
    "advice",
    "professional_actions",
    "counts",
    "note",
)
LABELS: dict[str, str] = {
    "title": "Title",
    "substance": "What it is (suspected)",
    "sold_as": "Sold as",
    "appearance": "Appearance",
    "adulterant": "Suspected adulterant",
    "signs_of_harm": "Signs of harm",
    "advice": "Harm-reduction advice",
    "professional_actions": "What professionals should do",
    "counts": "How many people",
    "note": "What changed, or why it is cancelled",
}
HINTS: dict[str, str] = {
    "title": "A short headline, e.g. 'Blue tablets sold as diazepam: suspected nitazene'.",
    "counts": "Written for you under the disclosure rule; edit the wording, keep the rule "
    "('fewer than 8', or rounded to 5).",
    "note": "For an update or a cancellation: say what changed, or why it is withdrawn.",
}
REQUIRED = ("title", "substance", "signs_of_harm", "advice")
MAX_LENGTH = {"title": 160}
TEXT_MAX = 2000
DECISION_LEVEL = {
    Decision.INFORMATION_NOTICE: AlertLevel.INFORMATION_NOTICE,
    Decision.DRUG_ALERT: AlertLevel.DRUG_ALERT,
    Decision.URGENT_ALERT: AlertLevel.URGENT_ALERT,
}
DEFAULT_DAYS = {
    AlertLevel.INFORMATION_NOTICE: 56,
    AlertLevel.DRUG_ALERT: 28,
    AlertLevel.URGENT_ALERT: 14,
}
MAX_DAYS = 366


class DraftError(ValueError):
    """A change refused; the message says what to do. ``field`` names the form field."""

    def __init__(self, message: str, field: str = "title") -> None:
        super().__init__(message)
        self.field = field


class StaleDraft(DraftError):
    """Someone else changed the version after this person opened it."""


class WrongState(DraftError):
    """The alert is not in a state that allows this (nothing pending, already submitted...)."""


class NotAllowed(DraftError):
    """The person may see the alert but not do this to it (the drafter approving, say)."""


# -- reading ------------------------------------------------------------------------------------


def content_of(version: AlertVersion) -> dict[str, str]:
    """The version's structured content, every key of ``CONTENT_FIELDS`` present (empty if not
    written), in that order."""
    try:
        raw = json.loads(version.content or "{}")
    except ValueError:
        raw = {}
    raw = raw if isinstance(raw, dict) else {}
    return {k: str(raw.get(k) or "") for k in CONTENT_FIELDS}


def audiences_of(version: AlertVersion) -> list[str]:
    try:
        raw = json.loads(version.audiences or "[]")
    except ValueError:
        return []
    return [c for c in raw if c in AUDIENCES] if isinstance(raw, list) else []


def state_of(version: AlertVersion) -> str:
    """'issued', 'awaiting approval' or 'draft': what the version's page says."""
    if version.issued_at is not None:
        return "issued"
    return "awaiting approval" if version.submitted_at is not None else "draft"


def network_areas(user: User) -> list[Area]:
    """Areas a drafter may cover: their own, and every area sharing a network with one."""
    own = db.session.scalars(select(Area).where(Area.id.in_(user.area_ids))).all()
    networks = {a.network for a in own if a.network}
    query = select(Area).where(Area.is_active.is_(True))
    if networks:
        query = query.where(Area.id.in_(user.area_ids) | Area.network.in_(networks))
    else:
        query = query.where(Area.id.in_(user.area_ids))
    return list(db.session.scalars(query.order_by(Area.name)))


def can_read(alert: Alert, user: User) -> bool:
    """The archive's rule (also ``Alert.can_read``)."""
    return alert.can_read(user)


def visible_versions(alert: Alert, user: User) -> list[AlertVersion]:
    if alert.can_view(user):
        return list(alert.versions)
    return [v for v in alert.versions if v.issued_at is not None]


def gate(version: AlertVersion) -> list[leakgate.Finding]:
    """The identifier-leak gate over every text field of the version."""
    return leakgate.check_fields(content_of(version))


# -- counts under the disclosure rule -----------------------------------------------------------


def said(n: int) -> str:
    """A count as an alert may say it: 'no', 'fewer than 8', or 'about 15'."""
    shown = shown_count(n, exact=False)
    if shown.value == 0:
        return "no"
    if shown.suppressed:
        return f"fewer than {suppress_below()}"
    return f"about {shown.text}"


def _written(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def counts_sentence(assessment: Assessment) -> str:
    """The sentence quoting counts, from the signal's numbers only (never its case list), or
    for a report, that a report was received. No identifier, no free text."""
    signal = assessment.signal
    if signal is not None:
        what = {"death": "suspected drug-related deaths", "nfo": "non-fatal overdoses"}.get(
            signal.case_type.value if signal.case_type else "", "drug-related events"
        )
        subject = signal.subject.replace("_", " ")
        if signal.kind is SignalKind.CLUSTER:
            return (
                f"The panel has reviewed {said(signal.observed)} cases sharing "
                f"'{subject}' in {signal.area.name} in the period to {_written(signal.day)}."
            )
        return (
            f"{said(signal.observed).capitalize()} {what} involving {subject} were recorded "
            f"in {signal.area.name} on {_written(signal.day)}, more than usual."
        )
    report = assessment.report
    if report is not None:
        public = report.source is ReportSource.PUBLIC
        source = "a member of the public" if public else "a partner"
        return f"Reported by {source} in {report.area.name}, seen in {report.seen_on:%B %Y}."
    return ""


# -- input --------------------------------------------------------------------------------------


@dataclass
class DraftInput:
    """What a drafter may change on a version; checked by ``check_input``."""

    content: dict[str, str]
    level: AlertLevel
    scope: Scope
    area_codes: list[str]
    audiences: list[str] = field(default_factory=list)
    expires_on: date | None = None

    def __repr__(self) -> str:  # the content may hold what the gate is about to refuse
        return f"<DraftInput {self.level.value} {self.scope.value}>"


def _clean(text: str | None) -> str:
    return "\n".join(line.rstrip() for line in (text or "").strip().splitlines())


def check_input(data: DraftInput, user: User) -> tuple[dict[str, str], list[Area]]:
    """The cleaned content and the areas, or ``DraftError`` on the first field to fix."""
    unknown = set(data.content) - set(CONTENT_FIELDS)
    if unknown:
        raise DraftError("Only the alert's listed fields can be written.", sorted(unknown)[0])
    content = {k: _clean(data.content.get(k)) for k in CONTENT_FIELDS}
    for key, value in content.items():
        limit = MAX_LENGTH.get(key, TEXT_MAX)
        if len(value) > limit:
            raise DraftError(f"{LABELS[key]}: keep it to {limit:,} characters.", key)
        if key == "title" and "\n" in value:
            raise DraftError("Title: keep it to one line.", key)
    if not data.area_codes:
        raise DraftError("Choose at least one area the alert covers.", "areas")
    allowed = {a.ons_code: a for a in network_areas(user)}
    wrong = [c for c in data.area_codes if c not in allowed]
    if wrong:
        raise DraftError(
            "An alert can cover only your areas and the areas of their drug information "
            "network: choose from the list.",
            "areas",
        )
    bad = [c for c in data.audiences if c not in AUDIENCES]
    if bad:
        raise DraftError("Choose audiences from the list.", "audiences")
    if data.expires_on is not None:
        today = utcnow().date()
        if data.expires_on <= today:
            raise DraftError(
                "The expiry date has passed: give a date after today, like "
                f"{(today + timedelta(days=28)).isoformat()}.",
                "expires_on",
            )
        if data.expires_on > today + timedelta(days=MAX_DAYS):
            raise DraftError(
                "An alert lasts at most a year: give an earlier expiry date, and update it "
                "then if it still holds.",
                "expires_on",
            )
    return content, [allowed[c] for c in dict.fromkeys(data.area_codes)]


def _dump(content: dict[str, str]) -> str:
    """Content as stored: readable JSON (not \\u escapes), so the archive's search finds "Siân"."""
    return json.dumps(content, ensure_ascii=False)


def _expires_at(day: date | None) -> datetime | None:
    return datetime.combine(day, time(23, 59), tzinfo=UTC) if day else None


STALE_DRAFT = (
    "Someone else changed this alert after you opened it, so nothing was saved. "
    "Your entries are still below: compare them with the current version, then save again."
)


def _check_revision(version: AlertVersion, expected: int | None) -> None:
    if expected is not None and expected != version.revision:
        raise StaleDraft(STALE_DRAFT, "title")


def _pending(alert: Alert) -> AlertVersion:
    version = alert.draft
    if version is None:
        raise WrongState(
            "This alert has no version being prepared: issued versions cannot be changed. "
            "Start an update (or a cancellation) instead.",
            "title",
        )
    return version


def _details(version: AlertVersion, **extra: Any) -> dict[str, Any]:
    return {
        "alert": version.alert.reference,
        "version": version.number,
        "msg_type": version.msg_type.value,
        **extra,
    }


# -- the services -------------------------------------------------------------------------------


def _highest(prefix: str) -> int:
    last = db.session.scalar(
        select(func.max(Alert.reference)).where(starts_with(Alert.reference, prefix))
    )
    return int(last.rsplit("-", 1)[1]) if last else 0


def _next_reference(year: int) -> str:
    """From the year's counter row, locked until the draft commits (``dr_panel.counters``)."""
    prefix = f"LDIS-{year}-"
    return f"{prefix}{counters.take('alerts', prefix, floor=lambda: _highest(prefix)):04d}"


def alert_for(assessment: Assessment) -> Alert | None:
    return db.session.scalar(select(Alert).where(Alert.assessment_id == assessment.id))


def assessed_item(assessment: Assessment) -> Any:
    return assessment.signal or assessment.report


def start_draft(assessment: Assessment, *, by: User) -> Alert:
    """A new alert with its first version, from an assessment whose decision is a notice or an
    alert. Nothing is copied from free text (see the module's notes)."""
    item = assessed_item(assessment)
    if item is None or not item.can_assess(by):
        raise NotAllowed("Only a coordinator of the item's area can draft an alert from it.")
    level = DECISION_LEVEL.get(assessment.decision)
    if level is None:
        raise DraftError(
            "The panel decided no further action for this item: record a new assessment "
            "deciding a notice or an alert before drafting one.",
            "assessment",
        )
    existing = alert_for(assessment)
    if existing is not None:
        raise WrongState(
            f"An alert was already drafted from this assessment ({existing.reference}): "
            "open it from the alerts archive.",
            "assessment",
        )
    now = utcnow()
    content = dict.fromkeys(CONTENT_FIELDS, "")
    content["counts"] = counts_sentence(assessment)
    if assessment.signal is not None:
        content["substance"] = assessment.signal.subject.replace("_", " ")
    alert = Alert(
        uuid=uuid_mod.uuid4(),
        reference=_next_reference(now.year),
        status=AlertStatus.DRAFT,
        assessment_id=assessment.id,
        created_by_id=by.id,
        area_id=item.area_id,
    )
    version = AlertVersion(
        uuid=uuid_mod.uuid4(),
        number=1,
        msg_type=MsgType.ALERT,
        level=level,
        scope=Scope.RESTRICTED,
        content=_dump(content),
        audiences="[]",
        expires_at=_expires_at(now.date() + timedelta(days=DEFAULT_DAYS[level])),
        drafted_by_id=by.id,
        drafted_at=now,
    )
    version.areas = [item.area]
    alert.versions.append(version)
    db.session.add(alert)
    item.status = ItemStatus.ALERTED
    db.session.flush()
    record(
        "alert.drafted",
        actor=by,
        object_type="alerts",
        object_uuid=alert.uuid,
        details=_details(version, assessment=str(assessment.uuid), level=level.value),
    )
    return alert


def edit_draft(
    alert: Alert, data: DraftInput, *, by: User, expected_revision: int | None
) -> AlertVersion:
    """Save the version being prepared. A submitted version goes back to draft: what the
    approver sees is always what the gate checked."""
    if not alert.can_edit(by):
        raise NotAllowed("Only the coordinators of the alert's area can edit it.")
    version = _pending(alert)
    _check_revision(version, expected_revision)
    content, areas = check_input(data, by)
    version.content = _dump(content)
    version.level = data.level
    version.scope = data.scope
    version.areas = areas
    version.audiences = json.dumps(list(dict.fromkeys(data.audiences)))
    version.expires_at = _expires_at(data.expires_on)
    version.drafted_by_id = by.id  # the last editor: they may not approve it either
    version.drafted_at = utcnow()
    withdrawn = version.submitted_at is not None
    version.submitted_at = None
    if alert.status is AlertStatus.AWAITING_APPROVAL:
        alert.status = AlertStatus.DRAFT
    flush_or(lambda: StaleDraft(STALE_DRAFT, "title"))  # an edit racing past the check
    record(
        "alert.edited",
        actor=by,
        object_type="alerts",
        object_uuid=alert.uuid,
        details=_details(version, withdrawn_from_approval=withdrawn),
    )
    return version


def _ready_problems(version: AlertVersion) -> None:
    content = content_of(version)
    missing = [k for k in REQUIRED if not content[k]]
    if missing:
        raise DraftError(
            "Fill in " + ", ".join(LABELS[k].lower() for k in missing) + " before sending the "
            "alert for approval.",
            missing[0],
        )
    if version.msg_type is not MsgType.ALERT and not content["note"]:
        raise DraftError(
            "Say what changed (or why the alert is cancelled) before sending it for approval.",
            "note",
        )
    if version.expires_at is None or version.expires_at <= utcnow():
        raise DraftError(
            "Give an expiry date after today before sending the alert for approval.",
            "expires_on",
        )


def _blocked(alert: Alert, version: AlertVersion, findings: list[leakgate.Finding], by: User,
             step: str) -> None:
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    record(
        "alert.blocked",
        actor=by,
        object_type="alerts",
        object_uuid=alert.uuid,
        details=_details(version, step=step, findings=kinds,
                         fields=sorted({f.field for f in findings})),
    )


def submit(alert: Alert, *, by: User, expected_revision: int | None) -> list[leakgate.Finding]:
    """Send the version for approval, if the leak gate finds nothing. Returns the gate's
    findings: when there are any nothing changes but the audit entry (the caller commits it)."""
    if not alert.can_edit(by):
        raise NotAllowed("Only the coordinators of the alert's area can send it for approval.")
    version = _pending(alert)
    _check_revision(version, expected_revision)
    if version.submitted_at is not None:
        raise WrongState("This version is already waiting for approval.", "title")
    _ready_problems(version)
    findings = gate(version)
    if findings:
        _blocked(alert, version, findings, by, "submit")
        return findings
    version.submitted_at = utcnow()
    if alert.status is AlertStatus.DRAFT:
        alert.status = AlertStatus.AWAITING_APPROVAL
    db.session.flush()
    record(
        "alert.submitted", actor=by, object_type="alerts", object_uuid=alert.uuid,
        details=_details(version),
    )
    return []


@dataclass
class Issued:
    version: AlertVersion
    deliveries: int
    findings: list[leakgate.Finding] = field(default_factory=list)


def _issue(alert: Alert, version: AlertVersion, *, by: User) -> int:
    from dr_panel.alerts import broadcast

    version.issued_at = utcnow()
    version.approved_by_id = by.id
    alert.status = (
        AlertStatus.CANCELLED if version.msg_type is MsgType.CANCEL else AlertStatus.ISSUED
    )
    db.session.flush()
    return broadcast.queue_deliveries(version)


def approve(alert: Alert, *, by: User, expected_revision: int | None) -> Issued:
    """Approve and issue the submitted version (someone other than its drafter). The gate runs
    again (people may have been added since); if it finds anything nothing is issued."""
    version = _pending(alert)
    if version.drafted_by_id == by.id:
        raise NotAllowed(
            "You drafted (or last edited) this version, so someone else must approve it: "
            "another coordinator of the area, or a lead covering it.",
            "title",
        )
    if not alert.can_approve(by):
        raise NotAllowed("Only another coordinator of the area or a lead covering it can "
                         "approve this alert.")
    _check_revision(version, expected_revision)
    if version.submitted_at is None:
        raise WrongState("This version has not been sent for approval yet.", "title")
    _ready_problems(version)
    findings = gate(version)
    if findings:
        _blocked(alert, version, findings, by, "approve")
        version.submitted_at = None  # back to the drafter, who must edit it
        if alert.status is AlertStatus.AWAITING_APPROVAL:
            alert.status = AlertStatus.DRAFT
        return Issued(version, 0, findings)
    queued = _issue(alert, version, by=by)
    record(
        "alert.issued",
        actor=by,
        object_type="alerts",
        object_uuid=alert.uuid,
        details=_details(version, deliveries=queued, scope=version.scope.value),
    )
    return Issued(version, queued)


def _follow_up(alert: Alert, msg_type: MsgType, *, by: User) -> AlertVersion:
    if not alert.can_edit(by):
        raise NotAllowed("Only the coordinators of the alert's area can change it.")
    if alert.status is not AlertStatus.ISSUED or alert.current is None:
        raise WrongState(
            f"Only a live alert can be updated or cancelled; this one is "
            f"{alert.status.label.lower()}.",
            "title",
        )
    if alert.draft is not None:
        raise WrongState(
            "A new version of this alert is already being prepared: finish or edit it.",
            "title",
        )
    live = alert.current
    content = content_of(live)
    content["note"] = ""
    version = AlertVersion(
        uuid=uuid_mod.uuid4(),
        number=max(v.number for v in alert.versions) + 1,
        msg_type=msg_type,
        level=live.level,
        scope=live.scope,
        content=_dump(content),
        audiences=live.audiences,
        expires_at=live.expires_at,
        drafted_by_id=by.id,
        drafted_at=utcnow(),
        references=live,
    )
    version.areas = list(live.areas)
    alert.versions.append(version)
    db.session.flush()
    return version


def start_update(alert: Alert, *, by: User) -> AlertVersion:
    """A new version (msg_type Update) starting from the live one's content."""
    version = _follow_up(alert, MsgType.UPDATE, by=by)
    record("alert.update_started", actor=by, object_type="alerts", object_uuid=alert.uuid,
           details=_details(version, references=version.references.number))  # type: ignore[union-attr]
    return version


def cancel(alert: Alert, *, reason: str, urgent: bool, by: User) -> Issued:
    """A Cancel version referencing the live one, carrying the reason. It is sent for approval
    (``urgent=False``) or, when urgent, issued at once by this person. Either way it passes the
    leak gate first; if it is blocked, nothing is saved but the audit entry."""
    reason = _clean(reason)
    if not reason:
        raise DraftError("Say why the alert is cancelled: recipients will read it.", "reason")
    if len(reason) > TEXT_MAX:
        raise DraftError(f"Keep the reason to {TEXT_MAX:,} characters.", "reason")
    findings = leakgate.check_fields({"note": reason})
    if findings:
        if alert.current is not None:
            _blocked(alert, alert.current, findings, by, "cancel")
        return Issued(alert.current, 0, findings)  # type: ignore[arg-type]
    version = _follow_up(alert, MsgType.CANCEL, by=by)
    content = content_of(version)
    content["note"] = reason
    version.content = _dump(content)
    version.submitted_at = utcnow()
    record("alert.cancel_started", actor=by, object_type="alerts", object_uuid=alert.uuid,
           details=_details(version, urgent=urgent))
    if not urgent:
        return Issued(version, 0)
    queued = _issue(alert, version, by=by)
    record(
        "alert.issued",
        actor=by,
        object_type="alerts",
        object_uuid=alert.uuid,
        details=_details(version, deliveries=queued, urgent_without_second_person=True),
    )
    return Issued(version, queued)


def discard(alert: Alert, *, by: User, expected_revision: int | None) -> None:
    """Drop the version being prepared. A first version takes the alert with it (nothing was
    ever issued); an update or cancellation leaves the live version as it was."""
    if not alert.can_edit(by):
        raise NotAllowed("Only the coordinators of the alert's area can discard a draft.")
    version = _pending(alert)
    _check_revision(version, expected_revision)
    details = _details(version)
    if alert.current is None:
        if alert.assessment is not None:
            item = assessed_item(alert.assessment)
            if item is not None and item.status is ItemStatus.ALERTED:
                item.status = ItemStatus.ASSESSED
        db.session.delete(alert)
    else:
        alert.versions.remove(version)
        db.session.delete(version)
    db.session.flush()
    record("alert.discarded", actor=by, object_type="alerts", object_uuid=alert.uuid,
           details=details)


def expire_due(now: datetime | None = None) -> int:
    """Mark live alerts whose version has run out EXPIRED and queue the 'expired' notice to
    their subscribers. Run by the broadcast worker each round; the caller commits."""
    from dr_panel.alerts import broadcast

    now = now or utcnow()
    # Only live alerts with an issued version past its expiry are read (each round is cheap
    # however many alerts are live); the check below is on the current version.
    live = db.session.scalars(
        select(Alert)
        .where(
            Alert.status == AlertStatus.ISSUED,
            Alert.id.in_(
                select(AlertVersion.alert_id).where(
                    AlertVersion.issued_at.is_not(None), AlertVersion.expires_at <= now
                )
            ),
        )
        .order_by(Alert.id)
    ).all()
    done = 0
    for alert in live:
        current = alert.current
        if current is None or current.expires_at is None or current.expires_at > now:
            continue
        alert.status = AlertStatus.EXPIRED
        db.session.flush()
        queued = broadcast.queue_deliveries(current, event="expired")
        record(
            "alert.expired",
            actor_label="worker",
            object_type="alerts",
            object_uuid=alert.uuid,
            details=_details(current, deliveries=queued),
        )
        done += 1
    return done


# -- the archive --------------------------------------------------------------------------------


@dataclass
class ArchiveQuery:
    text: str = ""
    level: AlertLevel | None = None
    status: AlertStatus | None = None
    area: str | None = None  # ONS code
    since: date | None = None
    until: date | None = None


def archive(user: User, q: ArchiveQuery) -> Select[Alert]:
    """A select of the alerts the user may read, filtered, newest first. The text search runs
    over the versions' content (it is not encrypted: it is published once issued)."""
    query = select(Alert)
    user_areas = list(user.area_ids)
    covers = select(AlertVersion.alert_id).join(
        alert_version_areas, alert_version_areas.c.version_id == AlertVersion.id
    )
    if user.role == Role.COORDINATOR:
        query = query.where(
            Alert.area_id.in_(user_areas)
            | Alert.id.in_(
                covers.where(
                    alert_version_areas.c.area_id.in_(user_areas),
                    AlertVersion.issued_at.is_not(None),
                )
            )
        )
    elif user.role == Role.LEAD:
        query = query.where(
            Alert.id.in_(covers.where(alert_version_areas.c.area_id.in_(user_areas)))
            | Alert.area_id.in_(user_areas)
        )
    else:
        query = query.where(
            Alert.id.in_(
                covers.where(
                    alert_version_areas.c.area_id.in_(user_areas),
                    AlertVersion.issued_at.is_not(None),
                )
            )
        )
    if q.level is not None:
        query = query.where(
            Alert.id.in_(select(AlertVersion.alert_id).where(AlertVersion.level == q.level))
        )
    if q.status is not None:
        query = query.where(Alert.status == q.status)
    if q.area:
        query = query.where(
            Alert.id.in_(
                covers.join(Area, Area.id == alert_version_areas.c.area_id).where(
                    Area.ons_code == q.area
                )
            )
            | Alert.area_id.in_(select(Area.id).where(Area.ons_code == q.area))
        )
    if q.since is not None:
        query = query.where(Alert.created_at >= datetime.combine(q.since, time(0), tzinfo=UTC))
    if q.until is not None:
        end = datetime.combine(q.until + timedelta(days=1), time(0), tzinfo=UTC)
        query = query.where(Alert.created_at < end)
    text = q.text.strip()
    if text:
        searched = contains(AlertVersion.content, text, ignore_case=True)
        if user.role != Role.LEAD:  # leads see drafts of what they cover; others only issued text
            readable: ColumnElement[bool] = AlertVersion.issued_at.is_not(None)
            if user.role == Role.COORDINATOR:
                readable = readable | AlertVersion.alert_id.in_(
                    select(Alert.id).where(Alert.area_id.in_(user_areas))
                )
            searched = searched & readable
        query = query.where(
            contains(Alert.reference, text, ignore_case=True)
            | Alert.id.in_(select(AlertVersion.alert_id).where(searched))
        )
    return query.order_by(Alert.created_at.desc(), Alert.id.desc())


def filter_readable(alerts: Iterable[Alert], user: User) -> list[Alert]:
    return [a for a in alerts if can_read(a, user)]
