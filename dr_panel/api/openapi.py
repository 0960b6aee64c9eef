"""The OpenAPI 3.1 document of the JSON API v1, built from the models' enums, the notification
fields and the API's own limits, so it cannot drift from what the code accepts and answers.
``tests/api`` validate it and run schemathesis against the app with it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from dr_panel.api import services as api
from dr_panel.cases.models import (
    AGE_BANDS,
    CaseStatus,
    CaseType,
    MatchStatus,
    NaloxoneBy,
    Sex,
)
from dr_panel.cases.services import ENUMS, FIELDS, LABELS, REQUIRED

PROBLEM = "application/problem+json"
NULL = "null"


def _enum(e: type[enum.Enum], *, nullable: bool = False, description: str = "") -> dict[str, Any]:
    values: list[Any] = [m.value for m in e]
    schema: dict[str, Any] = {"type": "string", "enum": values}
    if nullable:
        schema = {"type": ["string", NULL], "enum": [*values, None]}
    if description:
        schema["description"] = description
    return schema


def _text(description: str, *, nullable: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "type": ["string", NULL] if nullable else "string",
        "maxLength": api.STRING_MAX,
        "description": description,
        **extra,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [kind, NULL]}


UUID = {"type": "string", "format": "uuid"}
DATE = {"type": "string", "format": "date"}


def _case_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "uuid": {**UUID, "description": "The case's identifier in URLs."},
        "reference": {"type": "string", "description": "Like NFO-2026-0001; unique per area."},
        "case_type": _enum(CaseType),
        "status": _enum(CaseStatus),
        "area": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "ONS code."},
                "name": {"type": "string"},
            },
            "required": ["code", "name"],
            "additionalProperties": False,
        },
        "notifying_agency": {"type": ["string", NULL], "description": "Agency code."},
        "notified_on": DATE,
        "event_date": DATE,
        "event_time": {"type": ["string", NULL], "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "date_is_found": {"type": "boolean"},
        "setting": _enum(ENUMS["setting"]),
        "substances": {"type": "array", "items": {"type": "string"}},
        "route": _enum(ENUMS["route"]),
        "naloxone_given": _enum(ENUMS["naloxone_given"]),
        "naloxone_by": _enum(NaloxoneBy, nullable=True),
        "naloxone_doses": {"type": ["integer", NULL]},
        "nfo_outcome": _enum(ENUMS["nfo_outcome"], nullable=True),
        "treatment_status": _enum(ENUMS["treatment_status"]),
        "recent_prison_release": _enum(ENUMS["recent_prison_release"]),
        "housing_status": _enum(ENUMS["housing_status"]),
        "children_in_household": _enum(ENUMS["children_in_household"]),
        "previous_overdoses": {"type": ["integer", NULL]},
        "toxicology": _enum(ENUMS["toxicology"], nullable=True),
        "coroner_stage": _enum(ENUMS["coroner_stage"], nullable=True),
        "age_band": {
            "type": ["string", NULL],
            "enum": [label for _, _, label in AGE_BANDS] + [None],
            "description": "Age at the event, banded. The exact age is not given.",
        },
        "postcode_district": {
            "type": ["string", NULL],
            "description": "The outward code of the postcode only, like FY1.",
        },
        "match_status": _enum(MatchStatus),
        "person": {
            **UUID,
            "description": "A pseudonymous identifier of the person, the same on each of their "
            "cases.",
        },
        "linked_cases": {
            "type": "integer",
            "minimum": 0,
            "description": "How many other cases of the same person you can see.",
        },
    }
    return {
        "type": "object",
        "description": "A case, pseudonymised: no name, date of birth, NHS number, address or "
        "postcode.",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _identifiers_schema() -> dict[str, Any]:
    properties = {
        "full_name": {"type": "string"},
        "date_of_birth": {**_nullable(DATE)},
        "nhs_number": {"type": ["string", NULL], "pattern": "^[0-9]{10}$"},
        "address": {"type": ["string", NULL]},
        "postcode": {"type": ["string", NULL]},
        "sex": _enum(Sex),
    }
    return {
        "type": "object",
        "description": "Who the person is. Only with reveal=1 and a reason; every reveal is "
        "written to the audit log with its reason.",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _revealed_case_schema() -> dict[str, Any]:
    base = _case_schema()
    return {
        **base,
        "description": "A case with the person's identifiers.",
        "properties": {
            **base["properties"],
            "identifiers": {"$ref": "#/components/schemas/Identifiers"},
        },
        "required": [*base["required"], "identifiers"],
    }


def _notification_schema(active_substances: list[str]) -> dict[str, Any]:
    date_text = "YYYY-MM-DD, like 2026-03-14 (DD/MM/YYYY is also accepted)."
    described = {
        "area": _text(
            "ONS code of one of your areas, like E06000009.",
            nullable=False,
            pattern="^[EWSNewsn][0-9]{8}$",
        ),
        "notifying_agency": _text("Code of the agency that notified, like POLICE."),
        "event_time": _text("HH:MM on the 24-hour clock, like 23:15."),
        "full_name": _text(
            "The person's full name, as far as known: letters, at most 120 characters.",
            nullable=False,
        ),
        "nhs_number": _text("10 digits with a valid check digit; spaces or hyphens allowed."),
        "address": _text("At most 300 characters. Stored encrypted."),
        "postcode": _text("A full UK postcode, like FY1 1AA. Stored encrypted."),
    }
    properties: dict[str, Any] = {}
    for key in FIELDS:
        label = LABELS[key]
        if key in described:
            schema = described[key]
        elif key in ENUMS:
            schema = _enum(ENUMS[key], nullable=key not in REQUIRED, description=label)
        elif key in api.BODY_DATES:
            schema = {
                "type": "string" if key in REQUIRED else ["string", NULL],
                "format": "date",
                "maxLength": api.STRING_MAX,
                "description": f"{label}: {date_text}",
            }
        elif key in api.BODY_INTEGERS:
            lo, hi = api.BODY_INTEGERS[key]
            schema = {"type": ["integer", NULL], "minimum": lo, "maximum": hi, "description": label}
        elif key in api.BODY_BOOLEANS:
            schema = {"type": ["boolean", NULL], "description": label}
        elif key in api.BODY_LISTS:
            schema = {
                "description": f"{label}: a list of codes, or one string of codes separated "
                "by commas.",
                "anyOf": [
                    {
                        "type": "array",
                        "maxItems": api.LIST_MAX,
                        "items": {"type": "string", "enum": active_substances},
                    },
                    {"type": "string", "maxLength": api.STRING_MAX},
                    {"type": NULL},
                ],
            }
        else:  # pragma: no cover  (a new field must be described above)
            raise KeyError(f"describe the notification field {key} in the OpenAPI document")
        properties[key] = schema
    return {
        "type": "object",
        "description": "A notification of a suspected drug-related death or a non-fatal "
        "overdose. The same fields as the web form and the CSV import; null means not known. "
        "Unknown fields are refused.",
        "properties": properties,
        "required": [k for k in FIELDS if k in REQUIRED],
        "additionalProperties": False,
    }


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "properties": {
            "type": {"type": "string", "description": "about:blank"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "object",
                "description": "What is wrong with each field or parameter, and how to fix it.",
                "additionalProperties": {"type": "string"},
            },
        },
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
    }


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def document(substances: Iterable[str], active_substances: Iterable[str]) -> dict[str, Any]:
    """The whole document. ``substances``: every code (for filters); ``active_substances``: the
    codes a new notification may use."""
    all_codes = sorted(substances)
    active = sorted(active_substances)
    list_params = [
        _query("type", _enum(CaseType), "Only cases of this type."),
        _query(
            "area",
            {"type": "string", "pattern": "^[EWSN][0-9]{8}$"},
            "ONS code of one of your areas; another area is refused (400).",
        ),
        _query("status", _enum(CaseStatus), "Only cases in this status."),
        _query("since", DATE, "Events on or after this date (YYYY-MM-DD)."),
        _query("until", DATE, "Events on or before this date (YYYY-MM-DD)."),
        _query(
            "substance",
            {"type": "string", "enum": all_codes},
            "Only cases where this substance was suspected.",
        ),
        _query(
            "page",
            {"type": "integer", "minimum": 1, "maximum": api.PAGE_MAX, "default": 1},
            "Page number, from 1.",
        ),
        _query(
            "per_page",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": api.PER_PAGE_MAX,
                "default": api.PER_PAGE_DEFAULT,
            },
            f"Cases per page, at most {api.PER_PAGE_MAX}.",
        ),
    ]
    reason_text = (
        "Why you need to see who this person is (for example 'preparing the panel review'). "
        "Written to the audit log; never put names or other identifiers in it."
    )
    get_params = [
        {
            "name": "uuid",
            "in": "path",
            "required": True,
            "schema": UUID,
            "description": "The case's UUID.",
        },
        _query(
            "reveal",
            {"type": "integer", "enum": [0, 1]},
            "1 to add the person's identifiers; needs a reason.",
        ),
        _query(
            "reason",
            {"type": "string", "maxLength": api.REASON_MAX},
            reason_text + f" Prefer the {api.REASON_HEADER} header, which keeps the reason out "
            "of web server access logs. Give it in one place only.",
        ),
        {
            "name": api.REASON_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": api.REASON_MAX},
            "description": reason_text + " UTF-8.",
        },
    ]
    unauthorised = _ref("Unauthorized")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dr-panel API",
            "version": "1.0.0",
            "description": (
                "Drug-related death and non-fatal overdose cases, with the same access rules as "
                "the web pages: panel coordinators and panel members, in their own areas only. "
                "Authenticate with a personal API token (create one at /account/tokens, or with "
                "'dr-panel tokens create EMAIL') sent as 'Authorization: Bearer drp_...'. "
                "Cases are pseudonymised; identifiers are given only with reveal=1 and a "
                "reason, and every reveal is audited. Errors are RFC 9457 problem details, with "
                "a message per field or parameter in 'errors'. A case outside your areas "
                "answers 404, a role without access 403; both are audited."
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/api/v1/cases": {
                "get": {
                    "operationId": "listCases",
                    "summary": "Cases in your areas, newest event first, pseudonymised.",
                    "parameters": list_params,
                    "responses": {
                        "200": {
                            "description": "One page of cases.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/CaseList"}
                                }
                            },
                        },
                        "400": _ref("BadRequest"),
                        "401": unauthorised,
                        "403": _ref("Forbidden"),
                    },
                },
                "post": {
                    "operationId": "createCase",
                    "summary": "Notify a suspected drug-related death or a non-fatal overdose.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Notification"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created. The body is the new case, pseudonymised.",
                            "headers": {
                                "Location": {
                                    "required": True,
                                    "schema": {"type": "string"},
                                    "description": "The new case's URL.",
                                }
                            },
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Case"}
                                }
                            },
                        },
                        "400": _ref("BadRequest"),
                        "401": unauthorised,
                        "403": _ref("Forbidden"),
                        "409": _problem(
                            "Another notification took the same reference at the same moment; "
                            "nothing was saved. Send it again."
                        ),
                        "413": _problem(
                            f"The body is larger than {api.BODY_MAX_BYTES // 1024} KiB; nothing "
                            "was saved."
                        ),
                    },
                },
            },
            "/api/v1/cases/{uuid}": {
                "get": {
                    "operationId": "getCase",
                    "summary": "One case, pseudonymised; with reveal=1 and a reason, with the "
                    "person's identifiers (audited).",
                    "parameters": get_params,
                    "responses": {
                        "200": {
                            "description": "The case.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Case"},
                                            {"$ref": "#/components/schemas/RevealedCase"},
                                        ]
                                    }
                                }
                            },
                        },
                        "400": _ref("BadRequest"),
                        "401": unauthorised,
                        "403": _ref("Forbidden"),
                        "404": _problem(
                            "No such case, or it is outside your areas (the two are not told "
                            "apart)."
                        ),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token, 'drp_' and 43 more characters. Shown "
                    "once when made; revoke it at /account/tokens or with 'dr-panel tokens "
                    "revoke'. Never put it in a URL.",
                }
            },
            "schemas": {
                "Case": _case_schema(),
                "RevealedCase": _revealed_case_schema(),
                "Identifiers": _identifiers_schema(),
                "CaseList": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}},
                        "page": {"type": "integer", "minimum": 1},
                        "per_page": {"type": "integer", "minimum": 1, "maximum": api.PER_PAGE_MAX},
                        "total": {"type": "integer", "minimum": 0},
                        "next": {
                            "type": ["string", NULL],
                            "description": "The URL of the next page, or null on the last.",
                        },
                    },
                    "required": ["items", "page", "per_page", "total", "next"],
                    "additionalProperties": False,
                },
                "Notification": _notification_schema(active),
                "Problem": _problem_schema(),
            },
            "responses": {
                "BadRequest": _problem(
                    "The request was not valid; 'errors' says what is wrong with each field or "
                    "parameter. Nothing was saved."
                ),
                "Unauthorized": _problem(
                    "No API token, or it is unknown, revoked, or its account is disabled."
                ),
                "Forbidden": _problem("Your role does not give access to cases."),
            },
        },
    }
