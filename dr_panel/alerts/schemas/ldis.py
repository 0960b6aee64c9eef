"""Signals, drug-concern reports, assessments and an area's spike-scan settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import select

from dr_panel.alerts import assessment as ldis
from dr_panel.alerts import ears
from dr_panel.alerts import models as m
from dr_panel.alerts import reports as drug_reports
from dr_panel.alerts import signals as sig
from dr_panel.alerts.models import (
    Decision,
    ItemStatus,
    Rating,
    Reliability,
    ReportSource,
    Severity,
    SignalKind,
    SignalMethod,
)
from dr_panel.alerts.schemas.base import (
    Answer,
    Count,
    Day,
    LongText,
    Moment,
    Need,
    NeedLongText,
    Out,
    Uuid,
    omitted,
)
from dr_panel.cases.models import CaseType
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from dr_panel.webapi import (
    ApiModel,
    Checks,
    Choice,
    Flag,
    IsoDate,
    Number,
    QueryModel,
    Text,
    Version,
    Whole,
)


def _range(key: str, kind: type[float]) -> Checks:
    """A spike-scan setting's range; ``kind`` (``int`` or ``float``) must be the setting's."""
    low, high, whole = sig.SETTING_RANGES[key]
    if whole != (kind is int):
        raise TypeError(f"{key} is {'a whole number' if whole else 'a number'}, not {kind}")
    return Whole(int(low), int(high)) if whole else Number(low, high)


def _limit(key: str) -> int:
    return drug_reports.TEXT_FIELDS[key][1]


ItemStatusChoice = Annotated[str, Choice(ItemStatus)]
ReportAreaText = Annotated[str, Text(9, newlines=False), Need()]
SeenOn = Annotated[IsoDate, Need()]
SubstanceText = Annotated[str, Text(_limit("substance")), Need()]
FormText = Annotated[str, Text(_limit("form"))]
SoldAsText = Annotated[str, Text(_limit("sold_as"))]
AppearanceText = Annotated[str, Text(_limit("appearance"))]
EffectsText = Annotated[str, Text(_limit("effects")), Need()]
PlaceText = Annotated[str, Text(_limit("place"))]
UuidText = Annotated[str, Text(36, newlines=False)]
ReliabilityChoice = Annotated[str, Choice(Reliability), Need()]
RatingChoice = Annotated[str, Choice(Rating), Need()]
SeverityChoice = Annotated[str, Choice(Severity), Need()]
DecisionChoice = Annotated[str, Choice(Decision), Need()]
RevisionFrom0 = Annotated[int, Version(0), Need()]
Threshold = Annotated[float, _range("threshold", float)]
C3Threshold = Annotated[float, _range("c3_threshold", float)]
MinSigma = Annotated[float, _range("min_sigma", float)]
MinCount = Annotated[int, _range("min_count", int)]
Alpha = Annotated[float, _range("alpha", float)]
PoissonBaseline = Annotated[int, _range("poisson_baseline", int)]
Lookback = Annotated[int, _range("lookback", int)]
SignalKindCode = Annotated[str, Out(SignalKind)]
SignalMethodCode = Annotated[str, Out(SignalMethod)]
CaseTypeOrNull = Annotated[str | None, Out(CaseType, nullable=True)]
ItemStatusCode = Annotated[str, Out(ItemStatus)]
ReportSourceCode = Annotated[str, Out(ReportSource)]
ReportField = Annotated[str, Out(list(drug_reports.TEXT_FIELDS))]
ItemType = Annotated[str, Out(["signal", "report"])]
ReliabilityCode = Annotated[str, Out(Reliability)]
RatingCode = Annotated[str, Out(Rating)]
SeverityCode = Annotated[str, Out(Severity)]
DecisionCode = Annotated[str, Out(Decision)]
SettingName = Annotated[str, Out([f.name for f in fields(ears.Settings)])]


# -- signals, drug-concern reports, assessments -------------------------------------------------


class ItemQuery(QueryModel):
    """The LDIS lists' one filter."""

    status: ItemStatusChoice | None = Field(None, description="Only items in this status.")


class LdisArea(Answer):
    code: str
    name: str


class Signal(Answer):
    """A spike or cluster for the LDIS panel to assess. Never broadcast by itself."""

    uuid: Uuid
    kind: SignalKindCode
    method: SignalMethodCode
    area: LdisArea
    case_type: CaseTypeOrNull
    subject: str
    label: str
    day: Day
    observed: Count
    expected: float | None
    threshold: float | None
    is_urgent: bool
    status: ItemStatusCode
    detected_at: Moment
    evidence: dict[str, Any] = Field(
        description="Counts, dates and thresholds (spikes: the series; clusters: the cases' "
        "UUIDs). No identifiers."
    )


class SignalList(Answer):
    items: list[Signal]


class ReportContent(Answer):
    substance: str
    form: str
    sold_as: str
    appearance: str
    effects: str
    place: str


class HeldWords(Answer):
    field: ReportField
    start: Count
    end: Count
    note: str


class DrugReport(Answer):
    """A drug-concern report. 'content' (its text) only in GET /api/v1/reports/{uuid}."""

    uuid: Uuid
    reference: str = Field(description="DC-<year>-<number>.")
    source: ReportSourceCode
    area: LdisArea
    seen_on: Day
    is_urgent: bool
    status: ItemStatusCode
    received_at: Moment
    content: ReportContent | None = omitted()
    held: list[HeldWords] | None = omitted(
        "With 'content': the words of the text that matched a person held in dr-panel (the "
        "reporter was not told; the report was accepted as any other). Never copy them into "
        "an alert."
    )


class DrugReportList(Answer):
    items: list[DrugReport]


class NewDrugReport(ApiModel):
    """A drug-concern report. No names, addresses, dates of birth, NHS numbers, phone numbers or
    e-mail addresses: the identifier-leak gate refuses them (400)."""

    area: ReportAreaText = Field(
        description="ONS code of the area where it was seen, e.g. E06000009.")
    seen_on: SeenOn = Field(description="When it was seen (YYYY-MM-DD), not in the future.")
    is_urgent: Flag | None = Field(
        None, description="true if someone died or needed hospital care: assessed within 24 hours.")
    substance: SubstanceText = Field(
        description=drug_reports.TEXT_FIELDS["substance"][0])
    form: FormText | None = Field(
        None, description=drug_reports.TEXT_FIELDS["form"][0])
    sold_as: SoldAsText | None = Field(
        None, description=drug_reports.TEXT_FIELDS["sold_as"][0])
    appearance: AppearanceText | None = Field(
        None, description=drug_reports.TEXT_FIELDS["appearance"][0])
    effects: EffectsText = Field(
        description=drug_reports.TEXT_FIELDS["effects"][0])
    place: PlaceText | None = Field(
        None, description=drug_reports.TEXT_FIELDS["place"][0])

    def entered(self) -> drug_reports.ReportInput:
        texts = self.model_dump(include=set(drug_reports.TEXT_FIELDS))
        return drug_reports.ReportInput(
            area=self.area,
            seen_on=self.seen_on,
            is_urgent=bool(self.is_urgent),
            texts={k: texts.get(k) or "" for k in drug_reports.TEXT_FIELDS},
        )


class NewAssessment(ApiModel):
    """The LDIS panel's grading and decision on one signal or report."""

    signal: UuidText | None = Field(None, description="The signal's UUID (give this or 'report').")
    report: UuidText | None = Field(None, description="The report's UUID (give this or 'signal').")
    reliability: ReliabilityChoice
    plausibility: RatingChoice
    local_relevance: RatingChoice
    severity: SeverityChoice
    decision: DecisionChoice
    rationale: NeedLongText = Field(
        description="Why the panel decided this. Stored encrypted.")
    notes: LongText | None = Field(None, description="Stored encrypted.")

    def grading(self) -> ldis.Grading:
        return ldis.Grading(
            reliability=Reliability(self.reliability),
            plausibility=Rating(self.plausibility),
            local_relevance=Rating(self.local_relevance),
            severity=Severity(self.severity),
            decision=Decision(self.decision),
            rationale=self.rationale,
            notes=self.notes or "",
        )


class AssessedItem(Answer):
    type: ItemType
    uuid: Uuid
    status: ItemStatusCode


class Assessment(Answer):
    uuid: Uuid
    item: AssessedItem
    reliability: ReliabilityCode
    plausibility: RatingCode
    local_relevance: RatingCode
    severity: SeverityCode
    decision: DecisionCode
    assessed_at: Moment


# -- an area's spike-scan settings ---------------------------------------------------------------


class SpikeSettings(Answer):
    c1: bool
    c2: bool
    c3: bool
    poisson: bool
    threshold: Annotated[float, Field(ge=0.5, le=10)]
    c3_threshold: Annotated[float, Field(ge=0.5, le=10)]
    min_sigma: Annotated[float, Field(ge=0, le=10)]
    min_count: Annotated[int, Field(ge=1, le=1000)]
    alpha: Annotated[float, Field(ge=0.000001, le=0.1)]
    poisson_baseline: Annotated[int, Field(ge=7, le=365)]
    lookback: Annotated[int, Field(ge=1, le=90)]


class SignalSettings(Answer):
    area: str
    area_uuid: Uuid
    area_name: str
    settings: SpikeSettings
    set_here: list[SettingName] = Field(
        description="The settings this area set itself; the rest are the standard ones.")
    revision: Count


class SignalSettingsList(Answer):
    items: list[SignalSettings]


class SignalSettingsChange(ApiModel):
    """Any of an area's settings, with the revision last read."""

    revision: RevisionFrom0 = Field(
        description="The 'revision' you last read (0 when the area had none of its own).")
    c1: Flag | None = None
    c2: Flag | None = None
    c3: Flag | None = None
    poisson: Flag | None = None
    threshold: Threshold | None = None
    c3_threshold: C3Threshold | None = None
    min_sigma: MinSigma | None = None
    min_count: MinCount | None = None
    alpha: Alpha | None = None
    poisson_baseline: PoissonBaseline | None = None
    lookback: Lookback | None = None

    def applied_to(self, current: ears.Settings) -> ears.Settings:
        """``current`` with what was given; the rest stays as it is."""
        return replace(current, **self.model_dump(exclude={"revision"}, exclude_none=True))


def settings_rows(areas: Iterable[Area]) -> dict[int, m.SignalSettings]:
    """Each area's own settings row, read once for a list."""
    ids = [a.id for a in areas]
    return {row.area_id: row for row in db.session.scalars(
        select(m.SignalSettings).where(m.SignalSettings.area_id.in_(ids)))}


def signal_settings(
    area: Area, rows: Mapping[int, m.SignalSettings] | None = None
) -> SignalSettings:
    """An area's settings in use; ``rows`` (area id -> row), read once for a list, saves a
    query per area."""
    row = rows.get(area.id) if rows is not None else sig.stored_row(area.id)
    own = sig.own_overrides(row)
    in_use = sig.settings_for(area.ons_code, own)
    return SignalSettings(
        area=area.ons_code,
        area_uuid=str(area.uuid),
        area_name=area.name,
        settings=SpikeSettings(**{f.name: getattr(in_use, f.name) for f in fields(ears.Settings)}),
        set_here=sorted(own),
        revision=row.revision if row else 0,
    )
