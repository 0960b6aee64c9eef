"""The broadcast in the JSON API: subscriptions and an alert's deliveries. The routes live in
``dr_panel.api.routes`` (one file for the API's rules); the bodies, their checks and the OpenAPI
description live here, next to the services they call (``dr_panel.alerts.subscribers``)."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_login import current_user
from sqlalchemy import Select

from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.broadcast import (
    DASHBOARD_STATES,
    deliveries_elsewhere,
    delivery_counts,
    delivery_query,
)
from dr_panel.alerts.models import AUDIENCES, Alert, Channel, Delivery, Subscriber
from dr_panel.api import openapi_parts as parts
from dr_panel.api import services as api
from dr_panel.api.openapi_parts import ok as _json
from dr_panel.api.openapi_parts import path_uuid as _uuid_param
from dr_panel.api.openapi_parts import query as _query
from dr_panel.api.services import Field

ONS_PATTERN = "^[EWSN][0-9]{8}$"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def subscription_json(sub: Subscriber, *, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uuid": str(sub.uuid),
        "channel": sub.channel.value,
        "name": sub.name,
        "organisation": sub.organisation,
        "address": sub.email if sub.channel == Channel.EMAIL else sub.url,
        "areas": [a.ons_code for a in sub.areas],
        "audiences": subs.audiences_of(sub),
        "receives_restricted": sub.receives_restricted,
        "active": sub.is_active,
        "disabled_reason": sub.disabled_reason,
        "disabled_at": _iso(sub.disabled_at),
        "consecutive_failures": sub.consecutive_failures,
        "previous_secret_until": _iso(sub.previous_secret_until),
        "created_at": _iso(sub.created_at),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def subscription_spec(area_codes: list[str], *, create: bool) -> dict[str, Field]:
    spec = {
        "name": Field("text", required=create, max_length=160, newlines=False),
        "organisation": Field("text", max_length=160, newlines=False),
        "address": Field("text", required=create, max_length=500, newlines=False),
        "areas": Field("choices", required=create, values=tuple(area_codes), minimum=1),
        "audiences": Field("choices", values=tuple(AUDIENCES), minimum=0,
                           max_items=len(AUDIENCES)),
        "receives_restricted": Field("bool"),
    }
    if create:
        return {"channel": Field("choice", required=True, values=tuple(c.value for c in Channel)),
                **spec}
    return {**spec, "active": Field("bool")}


def details_from(data: dict[str, Any], sub: Subscriber | None) -> subs.Details:
    """The entered details: for a PATCH, what is not given stays as it is."""
    def get(key: str, current: Any) -> Any:
        return data[key] if key in data else current

    if sub is None:
        return subs.Details(
            channel=Channel(data["channel"]), name=data["name"],
            organisation=data.get("organisation"), address=data["address"],
            area_codes=data["areas"], audiences=data.get("audiences") or [],
            receives_restricted=data.get("receives_restricted", True),
        )
    return subs.Details(
        channel=sub.channel,
        name=get("name", sub.name),
        organisation=get("organisation", sub.organisation),
        address=get("address", sub.email if sub.channel == Channel.EMAIL else sub.url),
        area_codes=get("areas", [a.ons_code for a in sub.areas]),
        audiences=get("audiences", subs.audiences_of(sub)),
        receives_restricted=get("receives_restricted", sub.receives_restricted),
    )


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "uuid": str(d.uuid),
        "subscriber": str(d.subscriber.uuid),
        "subscriber_name": d.subscriber.name,
        "channel": d.channel.value,
        "version": d.version.number,
        "event": d.event,
        "status": d.status.value,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "response_status": d.response_status,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status.value == "failed" else None,
        "sent_at": _iso(d.sent_at),
        "acknowledged_at": _iso(d.acknowledged_at),
    }


def delivery_filters(args: Any) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The dashboard's filters and page, each checked: unknown values are refused."""
    errors: dict[str, str] = {}
    filters: dict[str, Any] = {}
    for name in args:
        if name not in ("status", "channel", "version", "page", "per_page"):
            errors[name] = f"{name}: unknown parameter."
    status = api._one(args, "status", errors)
    if status is not None and status not in DASHBOARD_STATES:
        errors["status"] = "status: use one of " + ", ".join(DASHBOARD_STATES) + "."
    channel = api._one(args, "channel", errors)
    if channel is not None and channel not in {c.value for c in Channel}:
        errors["channel"] = "channel: use email or webhook."
    version = api._one(args, "version", errors)
    filters["version"] = api._whole(version, "version", 1, 32767, 0, errors) or None
    filters["page"] = api._whole(api._one(args, "page", errors), "page", 1, api.PAGE_MAX, 1,
                                 errors)
    filters["per_page"] = api._whole(api._one(args, "per_page", errors), "per_page", 1,
                                     api.PER_PAGE_MAX, 100, errors)
    if errors:
        return None, errors
    filters.update(status=status, channel=channel)
    return filters, {}


def _viewer(viewer: Any) -> Any:
    return viewer if viewer is not None else current_user._get_current_object()


def _query_filters(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: filters[k] for k in ("status", "channel", "version")}


def deliveries_query(
    alert: Alert, filters: dict[str, Any], viewer: Any = None
) -> Select[tuple[Delivery]]:
    """The page of deliveries the signed-in coordinator may see: to their areas' subscribers
    (``broadcast.delivery_query``); the rest are counted in ``elsewhere``."""
    return delivery_query(alert, viewer=_viewer(viewer), **_query_filters(filters))


def deliveries_body(
    alert: Alert, page: Any, filters: dict[str, Any], args: Any, viewer: Any = None
) -> dict[str, Any]:
    next_url = None
    if page.has_next:
        next_url = url_for("api.alert_deliveries", uuid=alert.uuid,
                           **{**args.to_dict(), "page": filters["page"] + 1})
    return {
        "alert": str(alert.uuid),
        "counts": delivery_counts(alert),
        "items": [delivery_json(d) for d in page.items],
        "elsewhere": deliveries_elsewhere(alert, viewer=_viewer(viewer),
                                          **_query_filters(filters)),
        "page": filters["page"],
        "per_page": filters["per_page"],
        "total": page.total,
        "next": next_url,
    }


# -- OpenAPI ------------------------------------------------------------------------------------

NULLABLE_TEXT = {"type": ["string", "null"]}
DATETIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}


PROBLEMS = {
    "400": parts.ref("BadRequest"),
    "404": parts.problem("No such subscription or alert, or it is outside your areas (the two "
                         "are not told apart)."),
    "409": parts.problem("The subscription is already in that state; nothing changed."),
}


def _responses(success: dict[str, Any], *codes: str) -> dict[str, Any]:
    return parts.responses(success, PROBLEMS, *codes)


def openapi_paths() -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/NewSubscription"}}}}
    patch = {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/SubscriptionChange"}}}}
    return {
        "/api/v1/subscriptions": {
            "get": {
                "operationId": "listSubscriptions",
                "summary": "Alert subscribers (e-mail and webhook) of your areas; coordinators.",
                "responses": _responses(_json("SubscriptionList", "The subscribers.")),
            },
            "post": {
                "operationId": "createSubscription",
                "summary": "Add an e-mail subscriber or a webhook endpoint. A webhook's signing "
                "secret ('whsec_...') is in the answer this once only.",
                "requestBody": body,
                "responses": _responses(
                    _json("Subscription", "Created.", "201"), "400"),
            },
        },
        "/api/v1/subscriptions/{uuid}": {
            "parameters": [_uuid_param("subscription")],
            "get": {
                "operationId": "getSubscription",
                "summary": "One subscriber (never its secret).",
                "responses": _responses(_json("Subscription", "The subscriber."), "404"),
            },
            "patch": {
                "operationId": "updateSubscription",
                "summary": "Change a subscriber; 'active': true re-enables it (clearing the "
                "reason), false disables it.",
                "requestBody": patch,
                "responses": _responses(_json("Subscription", "Saved."), "400", "404", "409"),
            },
            "delete": {
                "operationId": "deleteSubscription",
                "summary": "Disable a subscriber: nothing more is sent to it; its waiting "
                "deliveries are given up. The record stays, for the delivery history.",
                "responses": _responses(_json("Subscription", "Disabled."), "404", "409"),
            },
        },
        "/api/v1/subscriptions/{uuid}/rotate-secret": {
            "parameters": [_uuid_param("subscription")],
            "post": {
                "operationId": "rotateSubscriptionSecret",
                "summary": "A new signing secret for a webhook, in the answer this once only. "
                "The previous one keeps signing too (a second signature) until "
                "'previous_secret_until'.",
                "responses": _responses(_json("Subscription", "Rotated."), "400", "404"),
            },
        },
        "/api/v1/alerts/{uuid}/deliveries": {
            "parameters": [_uuid_param("alert")],
            "get": {
                "operationId": "listAlertDeliveries",
                "summary": "Who an alert's versions went to: counts per version and state "
                "across the network, and one page of the deliveries to subscribers of your "
                "areas ('elsewhere' counts the others, unnamed); coordinators of the alert's "
                "area.",
                "parameters": [
                    _query("status", {"type": "string", "enum": list(DASHBOARD_STATES)},
                           "Only deliveries in this state."),
                    _query("channel", {"type": "string", "enum": [c.value for c in Channel]},
                           "Only e-mail or only webhook deliveries."),
                    _query("version", {"type": "integer", "minimum": 1, "maximum": 32767},
                           "Only this version's deliveries."),
                    _query("page", {"type": "integer", "minimum": 1, "maximum": api.PAGE_MAX},
                           "Page number, from 1."),
                    _query("per_page", {"type": "integer", "minimum": 1,
                                        "maximum": api.PER_PAGE_MAX},
                           f"Deliveries per page (default 100, at most {api.PER_PAGE_MAX})."),
                ],
                "responses": _responses(_json("DeliveryList", "The deliveries."), "400", "404"),
            },
        },
    }


def openapi_schemas() -> dict[str, Any]:
    channel = {"type": "string", "enum": [c.value for c in Channel]}
    areas = {"type": "array", "minItems": 1, "maxItems": api.LIST_MAX, "uniqueItems": True,
             "items": {"type": "string", "pattern": ONS_PATTERN},
             "description": "ONS codes of areas you coordinate."}
    audiences = {"type": "array", "uniqueItems": True, "maxItems": len(AUDIENCES),
                 "items": {"type": "string", "enum": list(AUDIENCES)},
                 "description": "Empty: every audience."}
    name = {"type": "string", "minLength": 1, "maxLength": 160}
    change_props = {
        "name": name,
        "organisation": {"type": ["string", "null"], "maxLength": 160},
        "address": {"type": "string", "minLength": 1, "maxLength": 500,
                    "description": "E-mail address, or the webhook's https:// URL with a "
                    "public DNS name (no IP address, no local or internal name)."},
        "areas": areas,
        "audiences": audiences,
        "receives_restricted": {"type": "boolean"},
    }
    states = {s: {"type": "integer", "minimum": 0} for s in DASHBOARD_STATES}
    return {
        "Subscription": {
            "type": "object",
            "properties": {
                "uuid": {"type": "string", "format": "uuid"},
                "channel": channel,
                "name": {"type": "string"},
                "organisation": NULLABLE_TEXT,
                "address": NULLABLE_TEXT,
                "areas": {"type": "array", "items": {"type": "string"}},
                "audiences": {"type": "array", "items": {"type": "string"}},
                "receives_restricted": {"type": "boolean"},
                "active": {"type": "boolean"},
                "disabled_reason": NULLABLE_TEXT,
                "disabled_at": DATETIME_OR_NULL,
                "consecutive_failures": {"type": "integer", "minimum": 0},
                "previous_secret_until": DATETIME_OR_NULL,
                "created_at": {"type": "string", "format": "date-time"},
                "secret": {"type": "string", "description": "Only when made or rotated."},
            },
            "required": ["uuid", "channel", "name", "areas", "audiences", "active"],
        },
        "SubscriptionList": {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {
                "$ref": "#/components/schemas/Subscription"}}},
            "required": ["items"],
        },
        "NewSubscription": {
            "type": "object",
            "properties": {"channel": channel, **change_props},
            "required": ["channel", "name", "address", "areas"],
            "additionalProperties": False,
        },
        "SubscriptionChange": {
            "type": "object",
            "properties": {**change_props, "active": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "DeliveryList": {
            "type": "object",
            "properties": {
                "alert": {"type": "string", "format": "uuid"},
                "counts": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"version": {"type": "integer"}, "event": {"type": "string"},
                                   "total": {"type": "integer"}, **states},
                }},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "uuid": {"type": "string", "format": "uuid"},
                        "subscriber": {"type": "string", "format": "uuid"},
                        "subscriber_name": {"type": "string"},
                        "channel": channel,
                        "version": {"type": "integer"},
                        "event": {"type": "string", "enum": ["issued", "expired"]},
                        "status": {"type": "string",
                                   "enum": ["queued", "sent", "failed", "gave_up"]},
                        "attempts": {"type": "integer", "minimum": 0},
                        "last_error": NULLABLE_TEXT,
                        "response_status": {"type": ["integer", "null"]},
                        "next_attempt_at": DATETIME_OR_NULL,
                        "sent_at": DATETIME_OR_NULL,
                        "acknowledged_at": DATETIME_OR_NULL,
                    },
                }},
                "elsewhere": {"type": "integer", "minimum": 0,
                              "description": "Deliveries matching the filters to subscribers "
                              "outside your areas: counted, not listed."},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1},
                "total": {"type": "integer", "minimum": 0},
                "next": NULLABLE_TEXT,
            },
            "required": ["alert", "counts", "items", "elsewhere", "page", "per_page", "total",
                         "next"],
        },
    }
