"""The OpenAPI 3.1 document of the JSON API v1, built from the models' enums, the notification
fields and the API's own limits, so it cannot drift from what the code accepts and answers.
``tests/api`` validate it and run schemathesis against the app with it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from dr_panel.alerts import broadcast_api, drafting_api, settings_api
from dr_panel.api import openapi_parts as parts
from dr_panel.api import services as api
from dr_panel.api.openapi_parts import body as _body
from dr_panel.api.openapi_parts import json_response as _json
from dr_panel.api.openapi_parts import path_uuid as _path_uuid
from dr_panel.api.openapi_parts import problem as _problem
from dr_panel.api.openapi_parts import query as _query
from dr_panel.api.openapi_parts import ref as _ref
from dr_panel.cases.models import (
    AGE_BANDS,
    CaseStatus,
    CaseType,
    MatchStatus,
    NaloxoneBy,
    Sex,
    YesNoUnknown,
)
from dr_panel.cases.services import ENUMS, FIELDS, LABELS, REQUIRED
from dr_panel.cases.workflow import TRANSITIONS
from dr_panel.reviews.actions import ActionStatus, Intervention, PlanStatus
from dr_panel.reviews.findings import Domain, Preventability, Score
from dr_panel.reviews.models import RETURN_TEXTS, Engagement, RequestStatus
from dr_panel.trends import routes as trends_api

PROBLEM = parts.PROBLEM
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


UUID = parts.UUID
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


def _body_schema(
    spec: dict[str, api.Field], description: str, described: dict[str, str]
) -> dict[str, Any]:
    """A request body's schema from the spec ``api.check_body`` checks it against."""
    properties: dict[str, Any] = {}
    for key, field in spec.items():
        if field.kind == "text":
            schema: dict[str, Any] = {"type": "string", "maxLength": field.max_length}
        elif field.kind == "date":
            schema = {"type": "string", "format": "date"}
        elif field.kind == "version":
            schema = {"type": "integer", "minimum": field.minimum, "maximum": api.VERSION_MAX}
        elif field.kind == "bool":
            schema = {"type": "boolean"}
        elif field.kind in ("number", "whole"):
            schema = {"type": "integer" if field.kind == "whole" else "number",
                      "minimum": field.low, "maximum": field.high}
        elif field.kind == "choice":
            schema = {"type": "string", "enum": list(field.values)}
        elif field.kind in ("object", "objects"):
            inner = {
                k[len(key) + 1 :]: text for k, text in described.items() if k.startswith(key + ".")
            }
            schema = _body_schema(dict(field.fields or {}), "", inner)
            del schema["description"]
            if field.kind == "objects":
                schema = {
                    "type": "array",
                    "items": schema,
                    "minItems": field.minimum,
                    "maxItems": field.max_items,
                }
        else:  # choices
            items: dict[str, Any] = {"type": "string"}
            if field.values:
                items["enum"] = list(field.values)
            schema = {
                "type": "array",
                "items": items,
                "minItems": field.minimum,
                # nothing to choose from: only the empty list can pass
                "maxItems": field.max_items if field.values else 0,
                "uniqueItems": True,
            }
        if not field.required:
            schema = _nullable(schema)
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        if key in described:
            schema["description"] = described[key]
        properties[key] = schema
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": [k for k, f in spec.items() if f.required],
        "additionalProperties": False,
    }


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


DATETIME = {"type": "string", "format": "date-time"}
TEXT_OR_NULL = {"type": ["string", NULL]}


def _workflow_schemas(agencies: list[str]) -> dict[str, Any]:
    status = _enum(CaseStatus)
    names = [t.name for t in TRANSITIONS]
    texts = {stem: {**TEXT_OR_NULL, "description": label} for stem, label in RETURN_TEXTS}
    return {
        "TransitionRequest": _body_schema(
            api.transition_spec(),
            "One step in the case's workflow. GET the transitions first: 'available' lists "
            "the steps you may take now and what each needs.",
            {
                "transition": "The step to take.",
                "reason": "Why; needed by the steps whose needs_reason is true. Stored "
                "encrypted; do not put names or other identifiers in it.",
                "expected_on": "When the results or the inquest are expected (YYYY-MM-DD, "
                "today or later); needed by the awaiting steps.",
                "duplicate_of": "The reference of the case to keep, like NFO-2026-0012; needed "
                "by 'duplicate'.",
                "version": "The case's version from GET transitions: if someone changed the "
                "case since, nothing is saved and the answer is 409.",
            },
        ),
        "Transitions": _object(
            {
                "case": UUID,
                "status": status,
                "version": {"type": "integer", "minimum": 1},
                "available": {
                    "type": "array",
                    "items": _object(
                        {
                            "transition": {"type": "string", "enum": names},
                            "label": {"type": "string"},
                            "to_status": status,
                            "needs_reason": {"type": "boolean"},
                            "needs_expected_on": {"type": "boolean"},
                            "needs_duplicate_of": {"type": "boolean"},
                            "hint": {"type": "string"},
                        }
                    ),
                },
                "timeline": {
                    "type": "array",
                    "items": _object(
                        {
                            "uuid": UUID,
                            "occurred_at": DATETIME,
                            "transition": {"type": "string"},
                            "from_status": status,
                            "to_status": status,
                            "by": TEXT_OR_NULL,
                            "reason": TEXT_OR_NULL,
                            "expected_on": _nullable(DATE),
                        }
                    ),
                },
            },
            "The steps you may take on the case now, and its timeline, oldest first.",
        ),
        "NewRequests": _body_schema(
            api.request_spec(agencies),
            "Ask agencies what they knew of the person. Each agency's contributors in the "
            "case's area get an e-mail with a link and the due date, never who the person is.",
            {
                "agencies": "Codes of the agencies to ask; each at most once per case.",
                "due_on": "When the answers are due (YYYY-MM-DD, today or later).",
                "note": "What the panel most needs to know. Stored encrypted.",
            },
        ),
        "InfoRequest": _object(
            {
                "uuid": UUID,
                "case": _object(
                    {
                        "uuid": UUID,
                        "reference": {"type": "string"},
                        "case_type": _enum(CaseType),
                        "area": _object({"code": {"type": "string"}, "name": {"type": "string"}}),
                    }
                ),
                "agency": _object({"code": {"type": "string"}, "name": {"type": "string"}}),
                "status": _enum(RequestStatus),
                "due_on": DATE,
                "overdue": {"type": "boolean"},
                "requested_at": DATETIME,
                "note": TEXT_OR_NULL,
                "known_to_agency": _enum(YesNoUnknown),
                "first_contact_on": _nullable(DATE),
                "last_contact_on": _nullable(DATE),
                "engagement": _enum(Engagement),
                **texts,
                "saved_at": _nullable(DATETIME),
                "returned_at": _nullable(DATETIME),
                "version": {"type": "integer", "minimum": 1},
            },
            "An information request to an agency and its return. No identifier of the person.",
        ),
        "InfoRequestList": _object(
            {"items": {"type": "array", "items": {"$ref": "#/components/schemas/InfoRequest"}}}
        ),
        "SentRequests": _object(
            {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/InfoRequest"}},
                "unreachable": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Codes of the agencies with no one to e-mail in the case's "
                    "area: tell them another way.",
                },
            }
        ),
        "Return": _body_schema(
            api.return_spec(),
            "An agency's return. submit=false saves a draft; submit=true sends it to the "
            "panel, after which it cannot change.",
            {
                "submit": "true to submit the return; false to save a draft.",
                "version": "The request's version from GET /api/v1/requests: if a colleague "
                "saved since, nothing is saved and the answer is 409.",
                **{stem: f"{label}. Stored encrypted." for stem, label in RETURN_TEXTS},
            },
        ),
    }


def _action_schemas(agencies: list[str]) -> dict[str, Any]:
    case = _object(
        {
            "uuid": UUID,
            "reference": {"type": "string"},
            "case_type": _enum(CaseType),
            "area": _object({"code": {"type": "string"}, "name": {"type": "string"}}),
        }
    )
    return {
        "NewAction": _body_schema(
            api.action_spec(agencies),
            "A SMART action for a reviewed case, owned by one agency.",
            {
                "description": "What is to be done, by whom, and how the panel will know it is "
                "done. Stored encrypted.",
                "agency": "The code of the agency that owns the action.",
                "due_on": "When it is due (YYYY-MM-DD, today or later).",
            },
        ),
        "ActionUpdate": _body_schema(
            api.action_update_spec(),
            "The owner agency's update of an action.",
            {
                "evidence": "Needed for 'done': the evidence it is done. Stored encrypted.",
                "reason": "Needed for 'not_accepted': why. Stored encrypted.",
                "version": "The action's version you were given: if a colleague updated it "
                "since, nothing is saved and the answer is 409.",
            },
        ),
        "Action": _object(
            {
                "uuid": UUID,
                "case": case,
                "agency": _object({"code": {"type": "string"}, "name": {"type": "string"}}),
                "description": {"type": "string"},
                "due_on": DATE,
                "status": _enum(ActionStatus),
                "overdue": {"type": "boolean"},
                "evidence": TEXT_OR_NULL,
                "not_accepted_reason": TEXT_OR_NULL,
                "created_at": DATETIME,
                "updated_at": _nullable(DATETIME),
                "completed_at": _nullable(DATETIME),
                "version": {"type": "integer", "minimum": 1},
            },
            "An action from a case review. No identifier of the person.",
        ),
        "ActionList": _object(
            {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Action"}}}
        ),
    }


def _findings_schemas(agencies: list[str], themes: list[str]) -> dict[str, Any]:
    factor = _object(
        {
            "uuid": UUID,
            "description": TEXT_OR_NULL,
            "score": _enum(Score),
            "is_modifiable": {"type": "boolean"},
            "created_at": DATETIME,
        }
    )
    return {
        "FindingsUpdate": _body_schema(
            api.findings_spec(themes),
            "The panel's findings on a case. 'missed_opportunities' and 'preventability' "
            "replace what is saved (absent: cleared, and 'not_known'); the factors and the "
            "learning point are added to those saved. Free text is stored encrypted.",
            {
                "factors": "New contributory or modifiable factors, each in one domain and "
                "scored like the child-death analysis form.",
                "missed_opportunities": "Where a service could have acted differently.",
                "preventability": "Could this have been prevented? Absent: not_known.",
                "learning_point": "A new learning point, tagged with theme codes.",
                "learning_point.themes": "Codes of active themes.",
                "version": "The findings' version from GET (0 when nothing is saved yet): if "
                "a colleague saved since, nothing is saved and the answer is 409.",
            },
        ),
        "Findings": _object(
            {
                "case": UUID,
                "version": {"type": "integer", "minimum": 0},
                "preventability": _enum(Preventability),
                "missed_opportunities": TEXT_OR_NULL,
                "updated_at": _nullable(DATETIME),
                "factors": _object(
                    {d.value: {"type": "array", "items": factor} for d in Domain},
                    "The factors recorded, by domain.",
                ),
                "learning_points": {
                    "type": "array",
                    "items": _object(
                        {
                            "uuid": UUID,
                            "text": TEXT_OR_NULL,
                            "themes": {"type": "array", "items": {"type": "string"}},
                            "created_at": DATETIME,
                        }
                    ),
                },
            },
            "The panel's findings on a case. No identifier of the person.",
        ),
        "SafetyPlanUpdate": _body_schema(
            api.plan_spec(agencies),
            "The person's safety plan: the whole of it, replacing what is saved. Free text is "
            "stored encrypted.",
            {
                "risks": "What the risks are; needed while the plan is open.",
                "protective": "The protective factors.",
                "lead": "The UUID of the lead professional: a coordinator or panel member of "
                "the case's area.",
                "lead_agency": "The code of the lead agency.",
                "review_on": "When the plan is next reviewed (YYYY-MM-DD, today or later while "
                "open).",
                "version": "The plan's version from GET (0 when there is no plan yet): if a "
                "colleague saved since, nothing is saved and the answer is 409.",
            },
        ),
        "SafetyPlan": _object(
            {
                "uuid": UUID,
                "case": _nullable(
                    _object(
                        {"uuid": UUID, "reference": {"type": "string"}},
                        "The case the plan was made from, when you may see it.",
                    )
                ),
                "status": _enum(PlanStatus),
                "risks": TEXT_OR_NULL,
                "protective": TEXT_OR_NULL,
                "interventions": {"type": "array", "items": _enum(Intervention)},
                "lead": _object({"uuid": UUID, "name": {"type": "string"}}),
                "lead_agency": _nullable(
                    _object({"code": {"type": "string"}, "name": {"type": "string"}})
                ),
                "review_on": DATE,
                "review_overdue": {"type": "boolean"},
                "created_at": DATETIME,
                "updated_at": _nullable(DATETIME),
                "version": {"type": "integer", "minimum": 1},
            },
            "A person's safety plan (one per person). No identifier of the person.",
        ),
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


def _workflow_paths() -> dict[str, Any]:
    case_404 = _problem("No such case, or it is outside your areas (the two are not told apart).")
    common = {"401": _ref("Unauthorized"), "403": _ref("Forbidden")}
    too_large = _problem(f"The body is larger than {api.BODY_MAX_BYTES // 1024} KiB.")
    return {
        "/api/v1/cases/{uuid}/transitions": {
            "get": {
                "operationId": "getTransitions",
                "summary": "The steps you may take on a case now, and its timeline.",
                "parameters": [_path_uuid("case")],
                "responses": {
                    "200": _json("Transitions", "The steps and the timeline."),
                    **common,
                    "404": case_404,
                },
            },
            "post": {
                "operationId": "moveCase",
                "summary": "Take one step in a case's workflow (panel coordinators).",
                "parameters": [_path_uuid("case")],
                "requestBody": _body("TransitionRequest"),
                "responses": {
                    "200": _json("Case", "Done. The body is the case, pseudonymised."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": case_404,
                    "409": _problem(
                        "Someone changed the case after the version you gave; nothing was "
                        "saved. Look again, then choose."
                    ),
                    "413": too_large,
                },
            },
        },
        "/api/v1/cases/{uuid}/requests": {
            "get": {
                "operationId": "listCaseRequests",
                "summary": "The information requests of a case, and the agencies' returns.",
                "parameters": [_path_uuid("case")],
                "responses": {
                    "200": _json("InfoRequestList", "The requests, oldest first."),
                    **common,
                    "404": case_404,
                },
            },
            "post": {
                "operationId": "sendRequests",
                "summary": "Ask agencies for information (panel coordinators).",
                "parameters": [_path_uuid("case")],
                "requestBody": _body("NewRequests"),
                "responses": {
                    "201": _json("SentRequests", "Sent: one request per agency."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": case_404,
                    "409": _problem(
                        "A request to one of the agencies was saved at the same moment; "
                        "nothing was saved."
                    ),
                    "413": too_large,
                },
            },
        },
        "/api/v1/requests": {
            "get": {
                "operationId": "listMyRequests",
                "summary": "Your agency's requests in your areas (agency contributors): open "
                "ones first, soonest due first.",
                "responses": {
                    "200": _json("InfoRequestList", "The requests."),
                    **common,
                },
            }
        },
        "/api/v1/requests/{uuid}/return": {
            "put": {
                "operationId": "saveReturn",
                "summary": "Save or submit your agency's return (agency contributors).",
                "parameters": [_path_uuid("request")],
                "requestBody": _body("Return"),
                "responses": {
                    "200": _json("InfoRequest", "Saved. The body is the request and return."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": _problem(
                        "No such request, or it is not addressed to your agency in your areas."
                    ),
                    "409": _problem(
                        "A colleague saved the return after the version you gave, or it was "
                        "already submitted; nothing was saved."
                    ),
                    "413": too_large,
                },
            }
        },
    }


def _action_paths() -> dict[str, Any]:
    common = {"401": _ref("Unauthorized"), "403": _ref("Forbidden")}
    too_large = _problem(f"The body is larger than {api.BODY_MAX_BYTES // 1024} KiB.")
    case_404 = _problem("No such case, or it is outside your areas (the two are not told apart).")
    return {
        "/api/v1/cases/{uuid}/actions": {
            "get": {
                "operationId": "listCaseActions",
                "summary": "The actions set for a case, soonest due first.",
                "parameters": [_path_uuid("case")],
                "responses": {
                    "200": _json("ActionList", "The actions."),
                    **common,
                    "404": case_404,
                },
            },
            "post": {
                "operationId": "addAction",
                "summary": "Set an action for a reviewed case (panel coordinators).",
                "parameters": [_path_uuid("case")],
                "requestBody": _body("NewAction"),
                "responses": {
                    "201": _json("Action", "Added."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": case_404,
                    "413": too_large,
                },
            },
        },
        "/api/v1/actions": {
            "get": {
                "operationId": "listActions",
                "summary": "The action tracker: every action you may see, by owner agency, "
                "overdue first.",
                "responses": {"200": _json("ActionList", "The actions."), **common},
            }
        },
        "/api/v1/actions/{uuid}": {
            "patch": {
                "operationId": "updateAction",
                "summary": "Update an action's status (the owner agency's panel members and "
                "contributors in the case's area).",
                "parameters": [_path_uuid("action")],
                "requestBody": _body("ActionUpdate"),
                "responses": {
                    "200": _json("Action", "Updated."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": _problem("No such action, or you may not see it."),
                    "409": _problem(
                        "A colleague updated the action after the version you gave; nothing "
                        "was saved."
                    ),
                    "413": too_large,
                },
            }
        },
    }


def _findings_paths() -> dict[str, Any]:
    common = {"401": _ref("Unauthorized"), "403": _ref("Forbidden")}
    too_large = _problem(f"The body is larger than {api.BODY_MAX_BYTES // 1024} KiB.")
    case_404 = _problem("No such case, or it is outside your areas (the two are not told apart).")
    return {
        "/api/v1/cases/{uuid}/findings": {
            "get": {
                "operationId": "getFindings",
                "summary": "The panel's findings on a case: factors by domain, missed "
                "opportunities, preventability and learning points.",
                "parameters": [_path_uuid("case")],
                "responses": {
                    "200": _json("Findings", "The findings."),
                    **common,
                    "404": case_404,
                },
            },
            "put": {
                "operationId": "saveFindings",
                "summary": "Record findings (coordinators and panel members of the case's "
                "area, once the case is ready for panel).",
                "parameters": [_path_uuid("case")],
                "requestBody": _body("FindingsUpdate"),
                "responses": {
                    "200": _json("Findings", "Saved."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": case_404,
                    "409": _problem(
                        "A colleague saved the findings after the version you gave, or the case "
                        "is not open for findings; nothing was saved."
                    ),
                    "413": too_large,
                },
            },
        },
        "/api/v1/cases/{uuid}/safety-plan": {
            "get": {
                "operationId": "getSafetyPlan",
                "summary": "The safety plan of the case's person.",
                "parameters": [_path_uuid("case")],
                "responses": {
                    "200": _json("SafetyPlan", "The plan."),
                    **common,
                    "404": _problem(
                        "No such case, it is outside your areas, or its person has no plan."
                    ),
                },
            },
            "put": {
                "operationId": "saveSafetyPlan",
                "summary": "Start or update the safety plan of the case's person (coordinators "
                "and panel members of the area).",
                "parameters": [_path_uuid("case")],
                "requestBody": _body("SafetyPlanUpdate"),
                "responses": {
                    "200": _json("SafetyPlan", "Saved."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": case_404,
                    "409": _problem(
                        "A colleague saved the plan after the version you gave; nothing was saved."
                    ),
                    "413": too_large,
                },
            },
        },
    }


def _ldis_schemas() -> dict[str, Any]:
    """Signals, drug-concern reports and assessments (dr_panel.alerts)."""
    from dr_panel.alerts import assessment as ldis
    from dr_panel.alerts import reports as drug_reports
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

    area = _object({"code": {"type": "string"}, "name": {"type": "string"}})
    number_or_null = {"type": ["number", NULL]}
    report = _object(
        {
            "uuid": UUID,
            "reference": {"type": "string", "description": "DC-<year>-<number>."},
            "source": _enum(ReportSource),
            "area": area,
            "seen_on": DATE,
            "is_urgent": {"type": "boolean"},
            "status": _enum(ItemStatus),
            "received_at": DATETIME,
        },
        "A drug-concern report. 'content' (its text) only in GET /api/v1/reports/{uuid}.",
    )
    report["properties"]["content"] = _object(
        {k: {"type": "string"} for k in drug_reports.TEXT_FIELDS}
    )
    report["properties"]["held"] = {
        "type": "array",
        "description": "With 'content': the words of the text that matched a person held in "
        "dr-panel (the reporter was not told; the report was accepted as any other). Never "
        "copy them into an alert.",
        "items": _object(
            {
                "field": {"type": "string", "enum": list(drug_reports.TEXT_FIELDS)},
                "start": {"type": "integer", "minimum": 0},
                "end": {"type": "integer", "minimum": 0},
                "note": {"type": "string"},
            }
        ),
    }
    described = {
        "area": "ONS code of the area where it was seen, e.g. E06000009.",
        "seen_on": "When it was seen (YYYY-MM-DD), not in the future.",
        "is_urgent": "true if someone died or needed hospital care: assessed within 24 hours.",
    }
    described.update({k: label for k, (label, _) in drug_reports.TEXT_FIELDS.items()})
    return {
        "Signal": _object(
            {
                "uuid": UUID,
                "kind": _enum(SignalKind),
                "method": _enum(SignalMethod),
                "area": area,
                "case_type": _enum(CaseType, nullable=True),
                "subject": {"type": "string"},
                "label": {"type": "string"},
                "day": DATE,
                "observed": {"type": "integer", "minimum": 0},
                "expected": number_or_null,
                "threshold": number_or_null,
                "is_urgent": {"type": "boolean"},
                "status": _enum(ItemStatus),
                "detected_at": DATETIME,
                "evidence": {
                    "type": "object",
                    "description": "Counts, dates and thresholds (spikes: the series; "
                    "clusters: the cases' UUIDs). No identifiers.",
                },
            },
            "A spike or cluster for the LDIS panel to assess. Never broadcast by itself.",
        ),
        "SignalList": _object(
            {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Signal"}}}
        ),
        "DrugReport": report,
        "DrugReportList": _object(
            {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DrugReport"}}}
        ),
        "NewDrugReport": _body_schema(
            drug_reports.report_spec(),
            "A drug-concern report. No names, addresses, dates of birth, NHS numbers, phone "
            "numbers or e-mail addresses: the identifier-leak gate refuses them (400).",
            described,
        ),
        "NewAssessment": _body_schema(
            ldis.assessment_spec(),
            "The LDIS panel's grading and decision on one signal or report.",
            {
                "signal": "The signal's UUID (give this or 'report').",
                "report": "The report's UUID (give this or 'signal').",
                "rationale": "Why the panel decided this. Stored encrypted.",
                "notes": "Stored encrypted.",
            },
        ),
        "Assessment": _object(
            {
                "uuid": UUID,
                "item": _object(
                    {
                        "type": {"type": "string", "enum": ["signal", "report"]},
                        "uuid": UUID,
                        "status": _enum(ItemStatus),
                    }
                ),
                "reliability": _enum(Reliability),
                "plausibility": _enum(Rating),
                "local_relevance": _enum(Rating),
                "severity": _enum(Severity),
                "decision": _enum(Decision),
                "assessed_at": DATETIME,
            }
        ),
    }


def _ldis_paths() -> dict[str, Any]:
    from dr_panel.alerts.models import ItemStatus

    common = {"401": _ref("Unauthorized"), "403": _ref("Forbidden")}
    too_large = _problem(f"The body is larger than {api.BODY_MAX_BYTES // 1024} KiB.")
    status = [_query("status", _enum(ItemStatus), "Only items in this status.")]
    return {
        "/api/v1/signals": {
            "get": {
                "operationId": "listSignals",
                "summary": "Signals in your areas, newest first (panel coordinators).",
                "parameters": status,
                "responses": {
                    "200": _json("SignalList", "The signals."),
                    "400": _ref("BadRequest"),
                    **common,
                },
            }
        },
        "/api/v1/signals/{uuid}": {
            "get": {
                "operationId": "getSignal",
                "summary": "One signal with its evidence.",
                "parameters": [_path_uuid("signal")],
                "responses": {
                    "200": _json("Signal", "The signal."),
                    **common,
                    "404": _problem("No such signal, or it is outside your areas."),
                },
            }
        },
        "/api/v1/reports": {
            "get": {
                "operationId": "listDrugReports",
                "summary": "Drug-concern reports in your areas, newest first (coordinators).",
                "parameters": status,
                "responses": {
                    "200": _json("DrugReportList", "The reports, without their text."),
                    "400": _ref("BadRequest"),
                    **common,
                },
            },
            "post": {
                "operationId": "createDrugReport",
                "summary": "Report a drug concern (any role but admin). The answer gives the "
                "reference; a confirmation e-mail goes to your address.",
                "requestBody": _body("NewDrugReport"),
                "responses": {
                    "201": _json("DrugReport", "Received."),
                    "400": _ref("BadRequest"),
                    **common,
                    "413": too_large,
                },
            },
        },
        "/api/v1/reports/{uuid}": {
            "get": {
                "operationId": "getDrugReport",
                "summary": "One report with its text (coordinators of its area; audited).",
                "parameters": [_path_uuid("report")],
                "responses": {
                    "200": _json("DrugReport", "The report."),
                    **common,
                    "404": _problem("No such report, or it is outside your areas."),
                },
            }
        },
        "/api/v1/assessments": {
            "post": {
                "operationId": "createAssessment",
                "summary": "Grade a signal or report and record the decision (coordinators of "
                "its area). 'No further action' closes it; other decisions mark it assessed.",
                "requestBody": _body("NewAssessment"),
                "responses": {
                    "201": _json("Assessment", "Recorded."),
                    "400": _ref("BadRequest"),
                    **common,
                    "404": _problem("No such signal or report, or it is outside your areas."),
                    "409": _problem("The item is closed or an alert was drafted from it."),
                    "413": too_large,
                },
            }
        },
    }


def document(
    substances: Iterable[str],
    active_substances: Iterable[str],
    *,
    agencies: Iterable[str] = (),
    themes: Iterable[str] = (),
) -> dict[str, Any]:
    """The whole document. ``substances``: every code (for filters); ``active_substances``: the
    codes a new notification may use; ``agencies``: the codes of the agencies that may be
    asked."""
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
                "the web pages: panel coordinators and panel members, in their own areas only; "
                "agency contributors, for their agency's information requests. "
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
            **_workflow_paths(),
            **_action_paths(),
            **_findings_paths(),
            **_ldis_paths(),
            **trends_api.openapi_paths(all_codes),
            **broadcast_api.openapi_paths(),
            **drafting_api.openapi_paths(),
            **settings_api.openapi_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token, 'drp_' and 43 more characters. Shown "
                    "once when made; revoke it at /account/tokens or with 'dr-panel tokens "
                    "revoke'. Never put it in a URL. It expires (90 days by default; the owner "
                    "renews it at /account/tokens) and is revoked when its account's password, "
                    "two-step verification, role, areas or agency change or the account is "
                    "disabled. Where two-step verification is required, it works only once its "
                    "owner has set that up (403 until then). The browser's session cookie is not "
                    "accepted by the API, and a token is accepted nowhere but the API and the "
                    "alert feeds.",
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
                **_workflow_schemas(sorted(agencies)),
                **_action_schemas(sorted(agencies)),
                **_findings_schemas(sorted(agencies), list(themes)),
                **_ldis_schemas(),
                **trends_api.openapi_schemas(),
                **broadcast_api.openapi_schemas(),
                **drafting_api.openapi_schemas(),
                **settings_api.openapi_schemas(_body_schema),
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
                "Forbidden": _problem("Your role does not give access to this."),
            },
        },
    }
