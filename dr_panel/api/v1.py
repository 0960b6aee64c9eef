"""``/api/v1``: the parent of every domain's API, and the OpenAPI 3.1 document generated from them.

Each domain declares its own operations, request and response models beside its services
(``dr_panel/<domain>/api.py`` and ``schemas.py``); this module only registers them under one
parent and finishes the generated document: the bearer scheme, the shared problem answers
(400, 401, 403) on every operation, and today's reference codes (agencies, themes...) in the
fields that take them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, current_app
from flask_openapi3 import APIBlueprint, OpenAPI
from pydantic import BaseModel

from dr_panel.extensions import csrf
from dr_panel.security import public
from dr_panel.version import __version__
from dr_panel.webapi import (
    MODELS,
    PROBLEM_MIME,
    Problem,
    code_fields,
    json_guard,
    query_guard,
    view_model,
)

parent = APIBlueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(parent)  # bearer tokens, not cookies: no CSRF exposure
parent.before_request(json_guard)
parent.before_request(query_guard)

BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "A personal API token, 'drp_' and 43 more characters. Shown once when made; "
    "revoke it at /account/tokens or with 'dr-panel tokens revoke'. Never put it in a URL. It "
    "expires (90 days by default; the owner renews it at /account/tokens) and is revoked when "
    "its account's password, two-step verification, role, areas or agency change or the "
    "account is disabled. Where two-step verification is required, it works only once its "
    "owner has set that up (403 until then). The browser's session cookie is not accepted by "
    "the API, and a token is accepted nowhere but the API and the alert feeds.",
}
SHARED = {
    "BadRequest": "The request was not valid; 'errors' says what is wrong with each field or "
    "parameter. Nothing was saved.",
    "Unauthorized": "No API token, or it is unknown, revoked, or its account is disabled.",
    "Forbidden": "Your role does not give access to this.",
    "TooLarge": "The body is larger than 64 KiB. Nothing was saved.",
}
DESCRIPTION = (
    "dr-panel's JSON API: the same services, access rules and audit as the pages. Every error "
    "is RFC 9457 problem details; a 400 lists what is wrong with each field in 'errors'."
)


@parent.get(
    "/openapi.json",
    security=[],
    operation_id="getOpenApi",
    responses={200: {"description": "This document.",
                     "content": {"application/json": {"schema": {"type": "object"}}}}},
)
@public
def openapi() -> Response:
    """This document (no token needed: it describes, it holds no data)."""
    import json

    # Not jsonify: its sorted keys would scramble the documented order of the fields.
    return current_app.response_class(json.dumps(document(), indent=1),
                                      mimetype="application/json")


def document() -> dict[str, Any]:
    """The generated document, finished: see the module's docstring."""
    app: Any = current_app
    doc = copy.deepcopy(app.api_doc)
    doc["info"] = {"title": "dr-panel API", "version": __version__, "description": DESCRIPTION}
    components = doc["components"] = doc.get("components") or {}
    components["securitySchemes"] = {**(components.get("securitySchemes") or {}),
                                     "bearerAuth": BEARER}
    schemas = components["schemas"] = components.get("schemas") or {}
    schemas["Problem"] = _schema(Problem)
    components["responses"] = {
        name: {"description": text,
               "content": {PROBLEM_MIME: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for name, text in SHARED.items()
    }
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if PROBLEM_MIME not in (responses.get("422") or {}).get("content", {}):
                responses.pop("422", None)  # the library's own, never answered (400 instead)
            if path.endswith("/openapi.json"):
                responses.pop("400", None)
                operation["security"] = []
                continue
            responses["400"] = {"$ref": "#/components/responses/BadRequest"}
            responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
            responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
            if "requestBody" in operation:  # dr_panel.webapi.json_guard's limit
                responses.setdefault("413", {"$ref": "#/components/responses/TooLarge"})
    _fill_codes(app, doc)
    return doc


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def _fill_codes(app: Any, doc: dict[str, Any]) -> None:
    """Today's codes (agencies, themes, areas, substances) as the enum of every field that
    takes codes from the database (``Code``/``Codes``): in the bodies' schemas by model name,
    and in each operation's query parameters by the view's query model."""
    today: dict[int, list[str]] = {}

    def codes(known: Callable[[], Iterable[str]]) -> list[str]:
        if id(known) not in today:
            today[id(known)] = sorted(known())
        return today[id(known)]

    schemas = doc["components"]["schemas"]
    for name, model in MODELS.items():
        properties = (schemas.get(name) or {}).get("properties") or {}
        for field, known in code_fields(model):
            if field in properties:
                _set_enum(properties[field], codes(known))
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        query = view_model(app.view_functions[rule.endpoint], "query")
        fields = dict(code_fields(query)) if query is not None else {}
        if not fields:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            operation = doc["paths"].get(path, {}).get(method.lower())
            for param in (operation or {}).get("parameters", []):
                if param.get("in") == "query" and param.get("name") in fields:
                    _set_enum(param["schema"], codes(fields[param["name"]]))


def _set_enum(schema: dict[str, Any], values: list[str]) -> None:
    """The enum on the string itself, on a list's items, or on the non-null side of ``| None``."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            _set_enum(branch, values)
    if schema.get("type") == "array":
        schema.setdefault("items", {})["enum"] = values
    elif schema.get("type") == "string":
        schema["enum"] = values


def _domains() -> list[APIBlueprint]:
    from dr_panel.alerts.api import api as alerts
    from dr_panel.cases.api import api as cases
    from dr_panel.reviews.api import api as reviews
    from dr_panel.trends.api import api as trends

    return [cases, reviews, alerts, trends]


for _domain in _domains():  # once, at import: an app factory may run many times
    parent.register_api(_domain)


def register(app: Flask) -> None:
    """The parent, with every domain's API, on the app (an ``OpenAPI`` app)."""
    assert isinstance(app, OpenAPI)
    app.register_api(parent)
