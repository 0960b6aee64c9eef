"""Alerts in the JSON API: the bodies, their checks and the OpenAPI description. The routes live
in ``dr_panel.api.routes`` (one file for the API's rules) and call ``dr_panel.alerts.drafting``,
the services the pages call.

``POST /alerts/<uuid>/update`` changes an alert's content: while a version is being prepared it
edits that version (send the ``revision`` you were given, so a colleague's later change is not
overwritten); once the alert is live with nothing pending it starts an Update version with the
body's content, which is then submitted and approved like any other.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import url_for

from dr_panel.alerts import drafting as dr
from dr_panel.alerts import leakgate
from dr_panel.alerts.models import (
    AUDIENCES,
    Alert,
    AlertLevel,
    AlertStatus,
    AlertVersion,
    MsgType,
    Scope,
)
from dr_panel.api import openapi_parts as parts
from dr_panel.api import services as api
from dr_panel.api.openapi_parts import body as _body
from dr_panel.api.openapi_parts import ok as _json
from dr_panel.api.openapi_parts import query as _query
from dr_panel.api.services import Field

QUERY = ("q", "level", "status", "area", "since", "until", "page", "per_page")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def version_json(version: AlertVersion) -> dict[str, Any]:
    from dr_panel.alerts import cap

    return {
        "uuid": str(version.uuid),
        "number": version.number,
        "msg_type": version.msg_type.value,
        "state": dr.state_of(version).replace(" ", "_"),
        "level": version.level.value,
        "scope": version.scope.value,
        "areas": [a.ons_code for a in version.areas],
        "audiences": dr.audiences_of(version),
        "content": dr.content_of(version),
        "expires_at": _iso(version.expires_at),
        "drafted_at": _iso(version.drafted_at),
        "submitted_at": _iso(version.submitted_at),
        "issued_at": _iso(version.issued_at),
        "references": str(version.references.uuid) if version.references else None,
        "revision": version.revision,
        "cap_url": cap.cap_url(version) if version.issued_at else None,
    }


def alert_json(alert: Alert, user: Any, *, versions: bool = True) -> dict[str, Any]:
    shown = dr.visible_versions(alert, user)
    body: dict[str, Any] = {
        "uuid": str(alert.uuid),
        "reference": alert.reference,
        "status": alert.status.value,
        "area": alert.area.ons_code,
        "created_at": _iso(alert.created_at),
        "title": dr.content_of(shown[-1])["title"] if shown else "",
        "current_version": alert.current.number if alert.current else None,
    }
    if versions:
        body["versions"] = [version_json(v) for v in shown]
    return body


def findings_json(findings: list[leakgate.Finding]) -> list[dict[str, Any]]:
    return [
        {"field": f.field, "start": f.start, "end": f.end, "kind": f.kind, "message": f.message}
        for f in findings
    ]


def findings_errors(findings: list[leakgate.Finding]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for f in findings:
        key = f"content.{f.field}"
        note = f"{f.message} (characters {f.start + 1} to {f.end})"
        errors[key] = f"{errors[key]} {note}" if key in errors else note
    return errors


# -- bodies ------------------------------------------------------------------------------------


def content_spec() -> dict[str, Field]:
    return {
        k: Field("text", max_length=dr.MAX_LENGTH.get(k, dr.TEXT_MAX), newlines=k != "title")
        for k in dr.CONTENT_FIELDS
    }


def draft_spec(area_codes: list[str], *, create: bool) -> dict[str, Field]:
    spec = {
        "content": Field("object", fields=content_spec()),
        "level": Field("choice", values=tuple(lv.value for lv in AlertLevel)),
        "scope": Field("choice", values=tuple(s.value for s in Scope)),
        "areas": Field("choices", values=tuple(area_codes), minimum=1),
        "audiences": Field("choices", values=tuple(AUDIENCES), minimum=0,
                           max_items=len(AUDIENCES)),
        "expires_on": Field("date"),
    }
    if create:
        return {"assessment": Field("text", required=True, max_length=40, newlines=False),
                **spec}
    return {**spec, "revision": Field("version")}


def revision_spec() -> dict[str, Field]:
    return {"revision": Field("version")}


def cancel_spec() -> dict[str, Field]:
    return {
        "reason": Field("text", required=True, max_length=dr.TEXT_MAX),
        "urgent": Field("bool"),
    }


def has_draft_fields(data: dict[str, Any]) -> bool:
    return any(k in data for k in ("content", "level", "scope", "areas", "audiences",
                                    "expires_on"))


def input_from(data: dict[str, Any], version: AlertVersion) -> dr.DraftInput:
    """The whole draft: what the body gives, the version's current values for the rest."""
    content = dr.content_of(version)
    content.update(data.get("content") or {})
    expires: date | None = data.get("expires_on") or (
        version.expires_at.date() if version.expires_at else None
    )
    return dr.DraftInput(
        content=content,
        level=AlertLevel(data.get("level") or version.level.value),
        scope=Scope(data.get("scope") or version.scope.value),
        area_codes=data.get("areas") or [a.ons_code for a in version.areas],
        audiences=data.get("audiences") if "audiences" in data else dr.audiences_of(version),
        expires_on=expires,
    )


def archive_query(args: Any) -> tuple[dr.ArchiveQuery | None, int, int, dict[str, str]]:
    errors: dict[str, str] = {}
    for name in args:
        if name not in QUERY:
            errors[name] = f"{name}: unknown parameter. Use only: {', '.join(QUERY)}."
    text = api._one(args, "q", errors) or ""
    if len(text) > 200 or not api.storable(text):
        errors["q"] = "q: at most 200 characters, no control characters."
    level = api._one(args, "level", errors)
    if level is not None and level not in {lv.value for lv in AlertLevel}:
        errors["level"] = "level: use one of " + ", ".join(lv.value for lv in AlertLevel) + "."
    status = api._one(args, "status", errors)
    if status is not None and status not in {s.value for s in AlertStatus}:
        errors["status"] = "status: use one of " + ", ".join(s.value for s in AlertStatus) + "."
    area = api._one(args, "area", errors)
    if area is not None and (len(area) != 9 or not area.isalnum()):
        errors["area"] = "area: an ONS code like E06000009."
    dates: dict[str, date | None] = {}
    for name in ("since", "until"):
        raw = api._one(args, name, errors)
        dates[name] = api.iso_date(raw) if raw is not None else None
        if raw is not None and dates[name] is None:
            errors[name] = f"{name}: write the date as YYYY-MM-DD, like 2026-03-14."
    page = api._whole(api._one(args, "page", errors), "page", 1, api.PAGE_MAX, 1, errors)
    per_page = api._whole(api._one(args, "per_page", errors), "per_page", 1, api.PER_PAGE_MAX,
                          50, errors)
    if errors:
        return None, 1, 50, errors
    query = dr.ArchiveQuery(
        text=text,
        level=AlertLevel(level) if level else None,
        status=AlertStatus(status) if status else None,
        area=area,
        since=dates["since"],
        until=dates["until"],
    )
    return query, page, per_page, {}


def next_url(args: Any, page: int) -> str:
    return url_for("api.list_alerts", **{**args.to_dict(), "page": page + 1})


# -- OpenAPI ------------------------------------------------------------------------------------


PROBLEMS = {
    "400": parts.ref("BadRequest"),
    "404": parts.problem("No such alert (or assessment), or it is outside your areas (the two "
                         "are not told apart)."),
    "409": parts.problem("The alert changed since you read it ('revision'), or it is not in a "
                         "state that allows this; nothing was saved."),
    "422": {
        "description": "The identifier-leak gate found possible identifiers: 'findings' "
        "lists each span (field, start, end, kind) and 'errors' says what to fix. Nothing "
        "changed but the audit entry.",
        "content": {parts.PROBLEM: {"schema": {
            "$ref": "#/components/schemas/LeakGateProblem"}}},
    },
}


def _responses(success: dict[str, Any], *codes: str) -> dict[str, Any]:
    return parts.responses(success, PROBLEMS, *codes)


def _uuid_param() -> dict[str, Any]:
    return parts.path_uuid("alert")


def openapi_paths() -> dict[str, Any]:
    return {
        "/api/v1/alerts": {
            "get": {
                "operationId": "listAlerts",
                "summary": "The alerts archive: alerts you may read, newest first. Coordinators "
                "and leads see drafts of their areas' alerts; panel members and agency "
                "contributors see issued alerts covering their areas.",
                "parameters": [
                    _query("q", {"type": "string", "maxLength": 200},
                           "Words from the content, or a reference."),
                    _query("level", {"type": "string", "enum": [lv.value for lv in AlertLevel]},
                           "Only alerts with a version of this level."),
                    _query("status", {"type": "string", "enum": [s.value for s in AlertStatus]},
                           "Only alerts in this state."),
                    _query("area", {"type": "string", "pattern": "^[A-Za-z0-9]{9}$"},
                           "Only alerts covering this area (ONS code)."),
                    _query("since", {"type": "string", "format": "date"},
                           "Drafted on or after this day."),
                    _query("until", {"type": "string", "format": "date"},
                           "Drafted on or before this day."),
                    _query("page", {"type": "integer", "minimum": 1, "maximum": api.PAGE_MAX},
                           "Page number, from 1."),
                    _query("per_page", {"type": "integer", "minimum": 1,
                                        "maximum": api.PER_PAGE_MAX}, "Alerts a page (50)."),
                ],
                "responses": _responses(_json("AlertList", "The alerts."), "400"),
            },
            "post": {
                "operationId": "createAlert",
                "summary": "Draft an alert from an assessment whose decision is a notice or an "
                "alert; coordinators of the item's area. The level and area come from the "
                "assessment and the counts sentence is written under the disclosure rule; the "
                "other keys, if given, fill the draft in the same request.",
                "requestBody": _body("NewAlert"),
                "responses": _responses(_json("Alert", "Drafted.", "201"), "400", "404", "409"),
            },
        },
        "/api/v1/alerts/{uuid}": {
            "parameters": [_uuid_param()],
            "get": {
                "operationId": "getAlert",
                "summary": "One alert with the versions you may read.",
                "responses": _responses(_json("Alert", "The alert."), "404"),
            },
        },
        "/api/v1/alerts/{uuid}/submit": {
            "parameters": [_uuid_param()],
            "post": {
                "operationId": "submitAlert",
                "summary": "Send the version being prepared for approval, if the leak gate "
                "finds nothing; coordinators of the alert's area.",
                "requestBody": _body("Revision"),
                "responses": _responses(_json("Alert", "Waiting for approval."), "400", "404",
                                        "409", "422"),
            },
        },
        "/api/v1/alerts/{uuid}/approve": {
            "parameters": [_uuid_param()],
            "post": {
                "operationId": "approveAlert",
                "summary": "Approve and issue the submitted version: another coordinator of "
                "the area or a lead covering it, never its drafter (403). Issuing freezes it "
                "and queues its deliveries in the same transaction.",
                "requestBody": _body("Revision"),
                "responses": _responses(_json("Alert", "Issued."), "400", "404", "409", "422"),
            },
        },
        "/api/v1/alerts/{uuid}/update": {
            "parameters": [_uuid_param()],
            "post": {
                "operationId": "updateAlert",
                "summary": "Change the content: edits the version being prepared, or starts an "
                "Update version of a live alert (it references the live one and needs the "
                "same gate and approval).",
                "requestBody": _body("AlertChange"),
                "responses": _responses(_json("Alert", "Saved."), "400", "404", "409"),
            },
        },
        "/api/v1/alerts/{uuid}/cancel": {
            "parameters": [_uuid_param()],
            "post": {
                "operationId": "cancelAlert",
                "summary": "Cancel a live alert: a Cancel version referencing it, with the "
                "reason. It waits for a second person's approval unless 'urgent' is true, "
                "when it is issued at once.",
                "requestBody": _body("Cancellation"),
                "responses": _responses(_json("Alert", "Cancelled, or waiting for approval."),
                                        "400", "404", "409", "422"),
            },
        },
    }


def openapi_schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    content_props = {
        k: {"type": ["string", "null"], "maxLength": dr.MAX_LENGTH.get(k, dr.TEXT_MAX),
            "description": dr.LABELS[k]}
        for k in dr.CONTENT_FIELDS
    }
    change = {
        "content": {"type": ["object", "null"], "properties": content_props,
                    "additionalProperties": False},
        "level": {"type": ["string", "null"], "enum": [lv.value for lv in AlertLevel] + [None]},
        "scope": {"type": ["string", "null"], "enum": [s.value for s in Scope] + [None]},
        "areas": {"type": ["array", "null"], "minItems": 1, "maxItems": api.LIST_MAX,
                  "uniqueItems": True, "items": {"type": "string", "pattern": "^[EWSN][0-9]{8}$"},
                  "description": "ONS codes: your areas and their networks'."},
        "audiences": {"type": ["array", "null"], "uniqueItems": True,
                      "maxItems": len(AUDIENCES),
                      "items": {"type": "string", "enum": list(AUDIENCES)},
                      "description": "Empty: every audience."},
        "expires_on": {"type": ["string", "null"], "format": "date"},
    }
    revision = {"type": ["integer", "null"], "minimum": 1, "maximum": api.VERSION_MAX,
                "description": "The version's 'revision' you were given: refused (409) if it "
                "has changed since."}
    version = {
        "type": "object",
        "properties": {
            "uuid": {"type": "string", "format": "uuid"},
            "number": {"type": "integer"},
            "msg_type": {"type": "string", "enum": [m.value for m in MsgType]},
            "state": {"type": "string", "enum": ["draft", "awaiting_approval", "issued"]},
            "level": {"type": "string", "enum": [lv.value for lv in AlertLevel]},
            "scope": {"type": "string", "enum": [s.value for s in Scope]},
            "areas": {"type": "array", "items": {"type": "string"}},
            "audiences": {"type": "array", "items": {"type": "string"}},
            "content": {"type": "object", "additionalProperties": {"type": "string"}},
            "expires_at": text,
            "drafted_at": text,
            "submitted_at": text,
            "issued_at": text,
            "references": text,
            "revision": {"type": "integer"},
            "cap_url": text,
        },
        "required": ["uuid", "number", "msg_type", "state", "level", "scope", "content",
                     "revision"],
    }
    summary = {
        "uuid": {"type": "string", "format": "uuid"},
        "reference": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in AlertStatus]},
        "area": {"type": "string"},
        "created_at": {"type": "string"},
        "title": {"type": "string"},
        "current_version": {"type": ["integer", "null"]},
    }
    return {
        "AlertVersion": version,
        "Alert": {
            "type": "object",
            "properties": {**summary, "versions": {"type": "array", "items": {
                "$ref": "#/components/schemas/AlertVersion"}},
                "deliveries": {"type": "integer", "minimum": 0}},
            "required": ["uuid", "reference", "status", "area", "versions"],
        },
        "AlertList": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object", "properties": summary,
                                                     "required": ["uuid", "reference"]}},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1},
                "total": {"type": "integer", "minimum": 0},
                "next": text,
            },
            "required": ["items", "page", "per_page", "total", "next"],
        },
        "NewAlert": {
            "type": "object",
            "properties": {"assessment": {"type": "string", "format": "uuid",
                                          "description": "The assessment's UUID."}, **change},
            "required": ["assessment"],
            "additionalProperties": False,
        },
        "AlertChange": {
            "type": "object",
            "properties": {**change, "revision": revision},
            "additionalProperties": False,
        },
        "Revision": {
            "type": "object",
            "properties": {"revision": revision},
            "additionalProperties": False,
        },
        "Cancellation": {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "minLength": 1, "maxLength": dr.TEXT_MAX,
                           "description": "Why it is cancelled; recipients read it."},
                "urgent": {"type": ["boolean", "null"]},
            },
            "required": ["reason"],
            "additionalProperties": False,
        },
        "LeakGateProblem": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "object", "additionalProperties": {"type": "string"}},
                "findings": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "start": {"type": "integer", "minimum": 0},
                        "end": {"type": "integer", "minimum": 0},
                        "kind": {"type": "string", "enum": list(leakgate.KIND_MESSAGES)},
                        "message": {"type": "string"},
                    },
                    "required": ["field", "start", "end", "kind", "message"],
                }},
            },
            "required": ["title", "status", "findings"],
        },
    }
