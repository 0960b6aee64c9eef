"""Subscriptions (e-mail and webhook) and an alert's deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from dr_panel.alerts import models as m
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.broadcast import DASHBOARD_STATES
from dr_panel.alerts.models import Channel, DeliveryStatus
from dr_panel.alerts.schemas.base import (
    PER_PAGE_MAX,
    Answer,
    AreaCodes,
    AudienceCodes,
    Count,
    Moment,
    MomentOrNull,
    Need,
    NeedAreaCodes,
    Out,
    Page,
    PerPage,
    QueryWhole,
    Uuid,
    iso,
    omitted,
)
from dr_panel.webapi import ApiModel, Choice, Flag, QueryModel, Text

ChannelChoice = Annotated[str, Choice(Channel), Need()]
Line = Annotated[str, Text(160, newlines=False)]
NeedLine = Annotated[Line, Need()]
Address = Annotated[str, Text(500, newlines=False)]
NeedAddress = Annotated[Address, Need()]
DashboardState = Annotated[str, Choice(DASHBOARD_STATES)]
ChannelFilter = Annotated[str, Choice(Channel)]
DeliveryVersion = Annotated[int, QueryWhole(1, 32767)]
ChannelCode = Annotated[str, Out(Channel)]
EventCode = Annotated[str, Out(["issued", "expired"])]
DeliveryStatusCode = Annotated[str, Out(DeliveryStatus)]


# -- subscriptions and deliveries ----------------------------------------------------------------


class Subscription(Answer):
    uuid: Uuid
    channel: ChannelCode
    name: str
    organisation: str | None
    address: str | None
    areas: list[str]
    audiences: list[str]
    receives_restricted: bool
    active: bool
    disabled_reason: str | None
    disabled_at: MomentOrNull
    consecutive_failures: Count
    previous_secret_until: MomentOrNull
    created_at: Moment
    secret: str | None = omitted("Only when made or rotated.")


class SubscriptionList(Answer):
    items: list[Subscription]


ADDRESS = ("E-mail address, or the webhook's https:// URL with a public DNS name (no IP address, "
           "no local or internal name).")


class NewSubscription(ApiModel):
    channel: ChannelChoice
    name: NeedLine
    organisation: Line | None = None
    address: NeedAddress = Field(description=ADDRESS)
    areas: NeedAreaCodes = Field(description="ONS codes of areas you coordinate.")
    audiences: AudienceCodes | None = Field(None, description="Empty: every audience.")
    receives_restricted: Flag | None = None

    def details(self) -> subs.Details:
        return subs.Details(
            channel=Channel(self.channel), name=self.name, organisation=self.organisation,
            address=self.address, area_codes=self.areas, audiences=self.audiences or [],
            receives_restricted=(True if self.receives_restricted is None
                                 else self.receives_restricted),
        )


class SubscriptionChange(ApiModel):
    name: Line | None = None
    organisation: Line | None = None
    address: Address | None = Field(None, description=ADDRESS)
    areas: AreaCodes | None = Field(None, description="ONS codes of areas you coordinate.")
    audiences: AudienceCodes | None = Field(None, description="Empty: every audience.")
    receives_restricted: Flag | None = None
    active: Flag | None = Field(
        None, description="true re-enables it (clearing the reason), false disables it.")

    def details(self, sub: m.Subscriber) -> subs.Details | None:
        """The subscriber's details with what was given (None if no detail was)."""
        given = self.model_dump(exclude={"active"}, exclude_none=True)
        if not given:
            return None
        return subs.Details(
            channel=sub.channel,
            name=given.get("name", sub.name),
            organisation=given.get("organisation", sub.organisation),
            address=given.get("address", _address(sub)),
            area_codes=given.get("areas", [a.ons_code for a in sub.areas]),
            audiences=given.get("audiences", subs.audiences_of(sub)),
            receives_restricted=given.get("receives_restricted", sub.receives_restricted),
        )


def _address(sub: m.Subscriber) -> str | None:
    return sub.email if sub.channel == Channel.EMAIL else sub.url


def subscription(sub: m.Subscriber, *, secret: str | None = None) -> Subscription:
    return Subscription(
        uuid=str(sub.uuid),
        channel=sub.channel.value,
        name=sub.name,
        organisation=sub.organisation,
        address=_address(sub),
        areas=[a.ons_code for a in sub.areas],
        audiences=subs.audiences_of(sub),
        receives_restricted=sub.receives_restricted,
        active=sub.is_active,
        disabled_reason=sub.disabled_reason,
        disabled_at=iso(sub.disabled_at),
        consecutive_failures=sub.consecutive_failures,
        previous_secret_until=iso(sub.previous_secret_until),
        created_at=iso(sub.created_at) or "",
        secret=secret,
    )


class DeliveryQuery(QueryModel):
    status: DashboardState | None = Field(None, description="Only deliveries in this state.")
    channel: ChannelFilter | None = Field(
        None, description="Only e-mail or only webhook deliveries.")
    version: DeliveryVersion | None = Field(None, description="Only this version's deliveries.")
    page: Page = Field(1, description="Page number, from 1.")
    per_page: PerPage = Field(100, description=f"Deliveries per page (default 100, at most "
                              f"{PER_PAGE_MAX}).")

    def filters(self) -> dict[str, Any]:
        return {"status": self.status, "channel": self.channel, "version": self.version}


class DeliveryCount(Answer):
    version: int
    event: str
    total: Count
    queued: Count
    sent: Count
    failed: Count
    gave_up: Count
    acknowledged: Count


class AlertDelivery(Answer):
    uuid: Uuid
    subscriber: Uuid
    subscriber_name: str
    channel: ChannelCode
    version: int
    event: EventCode
    status: DeliveryStatusCode
    attempts: Count
    last_error: str | None
    response_status: int | None
    next_attempt_at: MomentOrNull
    sent_at: MomentOrNull
    acknowledged_at: MomentOrNull


class DeliveryList(Answer):
    alert: Uuid
    counts: list[DeliveryCount]
    items: list[AlertDelivery]
    elsewhere: Count = Field(description="Deliveries matching the filters to subscribers outside "
                             "your areas: counted, not listed.")
    page: Annotated[int, Field(ge=1)]
    per_page: Annotated[int, Field(ge=1)]
    total: Count
    next: str | None


def delivery(d: m.Delivery) -> AlertDelivery:
    return AlertDelivery(
        uuid=str(d.uuid),
        subscriber=str(d.subscriber.uuid),
        subscriber_name=d.subscriber.name,
        channel=d.channel.value,
        version=d.version.number,
        event=d.event,
        status=d.status.value,
        attempts=d.attempts,
        last_error=d.last_error,
        response_status=d.response_status,
        next_attempt_at=iso(d.next_attempt_at) if d.status == DeliveryStatus.FAILED else None,
        sent_at=iso(d.sent_at),
        acknowledged_at=iso(d.acknowledged_at),
    )
