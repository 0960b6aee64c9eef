"""Alerts: drafting, the archive, approval, and the leak gate's refusal."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field

from dr_panel.alerts import cap, leakgate
from dr_panel.alerts import drafting as dr
from dr_panel.alerts import models as m
from dr_panel.alerts.models import AlertLevel, AlertStatus, MsgType, Scope
from dr_panel.alerts.schemas.base import (
    Answer,
    AreaCodes,
    AudienceCodes,
    Count,
    Need,
    NeedLongText,
    Ons,
    Out,
    Page,
    PerPage,
    Uuid,
    iso,
    omitted,
)
from dr_panel.auth.models import User
from dr_panel.webapi import ApiModel, Choice, Flag, IsoDate, QueryModel, Text, Version

TitleText = Annotated[str, Text(dr.MAX_LENGTH["title"], newlines=False)]
ContentText = Annotated[str, Text(dr.TEXT_MAX)]
LevelChoice = Annotated[str, Choice(AlertLevel)]
ScopeChoice = Annotated[str, Choice(Scope)]
AssessmentRef = Annotated[str, Text(40, newlines=False), Need()]
RevisionFrom1 = Annotated[int, Version()]
SearchText = Annotated[str, Text(200, newlines=False)]
AlertStatusChoice = Annotated[str, Choice(AlertStatus)]
MsgTypeCode = Annotated[str, Out(MsgType)]
VersionState = Annotated[str, Out(["draft", "awaiting_approval", "issued"])]
AlertLevelCode = Annotated[str, Out(AlertLevel)]
ScopeCode = Annotated[str, Out(Scope)]
AlertStatusCode = Annotated[str, Out(AlertStatus)]
LeakKind = Annotated[str, Out(list(leakgate.KIND_MESSAGES))]


def _content_field(key: str) -> Any:
    return Field(None, title=key, description=dr.LABELS[key])


class AlertContent(ApiModel):
    """An alert's text, by field; what is not given stays as it is."""

    title: TitleText | None = _content_field("title")
    substance: ContentText | None = _content_field("substance")
    sold_as: ContentText | None = _content_field("sold_as")
    appearance: ContentText | None = _content_field("appearance")
    adulterant: ContentText | None = _content_field("adulterant")
    signs_of_harm: ContentText | None = _content_field("signs_of_harm")
    advice: ContentText | None = _content_field("advice")
    professional_actions: ContentText | None = _content_field("professional_actions")
    counts: ContentText | None = _content_field("counts")
    note: ContentText | None = _content_field("note")


REVISION = "The version's 'revision' you were given: refused (409) if it has changed since."
DRAFT_KEYS = ("content", "level", "scope", "areas", "audiences", "expires_on")


class DraftChange(ApiModel):
    """What a body may change in a draft (``NewAlert``, ``AlertChange``)."""

    content: AlertContent | None = None
    level: LevelChoice | None = None
    scope: ScopeChoice | None = None
    areas: AreaCodes | None = Field(None, description="ONS codes: your areas and their "
                                    "networks'.")
    audiences: AudienceCodes | None = Field(None, description="Empty: every audience.")
    expires_on: IsoDate | None = None

    def has_draft_fields(self) -> bool:
        return any(getattr(self, k) is not None for k in DRAFT_KEYS)

    def draft_of(self, version: m.AlertVersion) -> dr.DraftInput:
        """The whole draft: what the body gives, the version's current values for the rest."""
        content = dr.content_of(version)
        if self.content is not None:
            content.update(self.content.model_dump(exclude_none=True))
        expires: date | None = self.expires_on or (
            version.expires_at.date() if version.expires_at else None
        )
        return dr.DraftInput(
            content=content,
            level=AlertLevel(self.level or version.level.value),
            scope=Scope(self.scope or version.scope.value),
            area_codes=self.areas or [a.ons_code for a in version.areas],
            audiences=self.audiences if self.audiences is not None else dr.audiences_of(version),
            expires_on=expires,
        )


class NewAlert(DraftChange):
    """Draft an alert from an assessment; the other keys, if given, fill the draft."""

    UNKNOWN = ("Unknown field: not accepted. Use only: assessment, " + ", ".join(DRAFT_KEYS)
               + ".")
    assessment: AssessmentRef = Field(description="The assessment's UUID.")


class AlertChange(DraftChange):
    UNKNOWN = "Unknown field: not accepted. Use only: " + ", ".join(DRAFT_KEYS) + ", revision."
    revision: RevisionFrom1 | None = Field(None, description=REVISION)


class Revision(ApiModel):
    revision: RevisionFrom1 | None = Field(None, description=REVISION)


class Cancellation(ApiModel):
    reason: NeedLongText = Field(description="Why it is cancelled; recipients read it.")
    urgent: Flag | None = None


class ArchiveQuery(QueryModel):
    q: SearchText | None = Field(None, description="Words from the content, or a reference.")
    level: LevelChoice | None = Field(None, description="Only alerts with a version of this "
                                      "level.")
    status: AlertStatusChoice | None = Field(None, description="Only alerts in this state.")
    area: Ons | None = Field(None, description="Only alerts covering this area (ONS code).")
    since: IsoDate | None = Field(None, description="Drafted on or after this day.")
    until: IsoDate | None = Field(None, description="Drafted on or before this day.")
    page: Page = Field(1, description="Page number, from 1.")
    per_page: PerPage = Field(50, description="Alerts a page (50).")

    def archive(self) -> dr.ArchiveQuery:
        return dr.ArchiveQuery(
            text=self.q or "",
            level=AlertLevel(self.level) if self.level else None,
            status=AlertStatus(self.status) if self.status else None,
            area=self.area,
            since=self.since,
            until=self.until,
        )


class AlertVersion(Answer):
    uuid: Uuid
    number: int
    msg_type: MsgTypeCode
    state: VersionState
    level: AlertLevelCode
    scope: ScopeCode
    areas: list[str]
    audiences: list[str]
    content: dict[str, str]
    expires_at: str | None
    drafted_at: str | None
    submitted_at: str | None
    issued_at: str | None
    references: str | None
    revision: int
    cap_url: str | None


class AlertSummary(Answer):
    uuid: Uuid
    reference: str
    status: AlertStatusCode
    area: str
    created_at: str
    title: str
    current_version: int | None


class Alert(AlertSummary):
    versions: list[AlertVersion]
    deliveries: Count | None = omitted("How many deliveries were queued (approve, cancel).")


class AlertList(Answer):
    items: list[AlertSummary]
    page: Annotated[int, Field(ge=1)]
    per_page: Annotated[int, Field(ge=1)]
    total: Count
    next: str | None


def alert_version(version: m.AlertVersion) -> AlertVersion:
    return AlertVersion(
        uuid=str(version.uuid),
        number=version.number,
        msg_type=version.msg_type.value,
        state=dr.state_of(version).replace(" ", "_"),
        level=version.level.value,
        scope=version.scope.value,
        areas=[a.ons_code for a in version.areas],
        audiences=dr.audiences_of(version),
        content=dr.content_of(version),
        expires_at=iso(version.expires_at),
        drafted_at=iso(version.drafted_at),
        submitted_at=iso(version.submitted_at),
        issued_at=iso(version.issued_at),
        references=str(version.references.uuid) if version.references else None,
        revision=version.revision,
        cap_url=cap.cap_url(version) if version.issued_at else None,
    )


def _summary(alert: m.Alert, shown: list[m.AlertVersion]) -> dict[str, Any]:
    return {
        "uuid": str(alert.uuid),
        "reference": alert.reference,
        "status": alert.status.value,
        "area": alert.area.ons_code,
        "created_at": iso(alert.created_at) or "",
        "title": dr.content_of(shown[-1])["title"] if shown else "",
        "current_version": alert.current.number if alert.current else None,
    }


def alert_summary(alert: m.Alert, user: User) -> AlertSummary:
    return AlertSummary(**_summary(alert, dr.visible_versions(alert, user)))


def alert_answer(alert: m.Alert, user: User, *, deliveries: int | None = None) -> Alert:
    """An alert with the versions ``user`` may read."""
    shown = dr.visible_versions(alert, user)
    return Alert(**_summary(alert, shown), versions=[alert_version(v) for v in shown],
                       deliveries=deliveries)


class LeakFinding(Answer):
    field: str
    start: Count
    end: Count
    kind: LeakKind
    message: str


class LeakGateProblem(Answer):
    """Problem details (RFC 9457) of the identifier-leak gate: each span it found."""

    type: str
    title: str
    status: int
    detail: str
    errors: dict[str, str]
    findings: list[LeakFinding]


def leak_findings(findings: list[leakgate.Finding]) -> list[dict[str, Any]]:
    """Where each finding is (field, span, kind), never the text it matched."""
    return [
        LeakFinding(field=f.field, start=f.start, end=f.end, kind=f.kind,
                    message=f.message).model_dump(mode="json")
        for f in findings
    ]


def leak_errors(findings: list[leakgate.Finding]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for f in findings:
        key = f"content.{f.field}"
        note = f"{f.message} (characters {f.start + 1} to {f.end})"
        errors[key] = f"{errors[key]} {note}" if key in errors else note
    return errors
