"""An area's spike-scan settings in the JSON API. The routes live in ``dr_panel.api.routes``
(one file for the API's rules); the body's check, the JSON and the OpenAPI description live here,
next to the services they call (``dr_panel.alerts.signals``). The same rules as the page
(``settings_routes``): coordinators of the area, ranges from ``signals.SETTING_RANGES``, a stale
``revision`` refused, every change audited."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from sqlalchemy import select

from dr_panel.alerts import ears
from dr_panel.alerts import signals as sig
from dr_panel.alerts.models import SignalSettings
from dr_panel.api import openapi_parts as parts
from dr_panel.api.services import Field
from dr_panel.extensions import db
from dr_panel.reference.models import Area


def rows_for(areas: Iterable[Area]) -> dict[int, SignalSettings]:
    ids = [a.id for a in areas]
    return {row.area_id: row for row in db.session.scalars(
        select(SignalSettings).where(SignalSettings.area_id.in_(ids)))}


def change_spec() -> dict[str, Field]:
    """A PATCH body: the revision last read (0 when the area had no settings of its own), and
    any of the settings; what is not given stays as it is."""
    spec: dict[str, Field] = {"revision": Field("version", required=True, minimum=0)}
    spec.update({key: Field("bool") for key in sig.METHOD_KEYS})
    spec.update({
        key: Field("whole" if whole else "number", low=low, high=high)
        for key, (low, high, whole) in sig.SETTING_RANGES.items()
    })
    return spec


def chosen(current: ears.Settings, data: dict[str, Any]) -> ears.Settings:
    return replace(current, **{k: v for k, v in data.items() if k != "revision"})


def settings_json(
    area: Area, rows: Mapping[int, SignalSettings] | None = None
) -> dict[str, Any]:
    """An area's settings; ``rows`` (area id -> row), read once for a list, saves a query per
    area."""
    row = rows.get(area.id) if rows is not None else sig.stored_row(area.id)
    own = sig.own_overrides(row)
    in_use = sig.settings_for(area.ons_code, own)
    return {
        "area": area.ons_code,
        "area_uuid": str(area.uuid),
        "area_name": area.name,
        "settings": {f.name: getattr(in_use, f.name) for f in fields(ears.Settings)},
        "set_here": sorted(own),
        "revision": row.revision if row else 0,
    }


# -- OpenAPI ------------------------------------------------------------------------------------


PROBLEMS = {
    "400": parts.ref("BadRequest"),
    "404": parts.problem("No such area, or it is not one of yours (the two are not told apart)."),
    "409": parts.problem("The settings were changed since your 'revision'; nothing was saved."),
}


def responses(success: dict[str, Any], *codes: str) -> dict[str, Any]:
    return parts.responses(success, PROBLEMS, *codes)


def openapi_paths() -> dict[str, Any]:
    json_ref, uuid_param = parts.ok, parts.path_uuid
    body = parts.body("SignalSettingsChange")
    return {
        "/api/v1/signal-settings": {
            "get": {
                "operationId": "listSignalSettings",
                "summary": "The spike-scan settings in use in each of your areas; coordinators.",
                "responses": responses(json_ref("SignalSettingsList", "Per area.")),
            },
        },
        "/api/v1/signal-settings/{uuid}": {
            "parameters": [uuid_param("area")],
            "get": {
                "operationId": "getSignalSettings",
                "summary": "One area's spike-scan settings.",
                "responses": responses(json_ref("SignalSettings", "The settings."), "404"),
            },
            "patch": {
                "operationId": "updateSignalSettings",
                "summary": "Change an area's spike-scan settings from the next scan. Give the "
                "'revision' you last read: a change made since is refused with 409.",
                "requestBody": body,
                "responses": responses(json_ref("SignalSettings", "Saved."), "400", "404",
                                       "409"),
            },
            "delete": {
                "operationId": "resetSignalSettings",
                "summary": "Drop the area's own settings: the standard ones apply again.",
                "responses": responses(json_ref("SignalSettings", "Reset."), "404"),
            },
        },
    }


def openapi_schemas(body_schema: Any) -> dict[str, Any]:
    settings = {key: {"type": "boolean"} for key in sig.METHOD_KEYS}
    settings.update({
        key: {"type": "integer" if whole else "number", "minimum": low, "maximum": high}
        for key, (low, high, whole) in sig.SETTING_RANGES.items()
    })
    one = {
        "type": "object",
        "properties": {
            "area": {"type": "string"},
            "area_uuid": {"type": "string", "format": "uuid"},
            "area_name": {"type": "string"},
            "settings": {"type": "object", "properties": settings,
                         "required": list(settings), "additionalProperties": False},
            "set_here": {"type": "array", "items": {"type": "string", "enum": list(settings)},
                         "description": "The settings this area set itself; the rest are "
                         "the standard ones."},
            "revision": {"type": "integer", "minimum": 0},
        },
        "required": ["area", "area_uuid", "area_name", "settings", "set_here", "revision"],
        "additionalProperties": False,
    }
    return {
        "SignalSettings": one,
        "SignalSettingsList": {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {
                "$ref": "#/components/schemas/SignalSettings"}}},
            "required": ["items"],
            "additionalProperties": False,
        },
        "SignalSettingsChange": body_schema(
            change_spec(),
            "Any of an area's settings, with the revision last read.",
            {"revision": "The 'revision' you last read (0 when the area had none of its own)."},
        ),
    }
