"""The pieces every part of the OpenAPI document builds its paths from: problem responses, the
shared 401/403, JSON bodies and answers, query and path parameters. ``dr_panel.api.openapi``
assembles the document; the LDIS parts (``dr_panel.alerts.*_api``) describe their own paths with
these, so each piece is written once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBLEM = "application/problem+json"
UUID = {"type": "string", "format": "uuid"}


def problem(description: str) -> dict[str, Any]:
    """A problem-details answer (RFC 9457) with its own description."""
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def ref(name: str) -> dict[str, str]:
    """One of the shared answers in ``components/responses`` (Unauthorized, BadRequest...)."""
    return {"$ref": f"#/components/responses/{name}"}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def json_response(name: str, description: str) -> dict[str, Any]:
    """An answer whose body is the schema ``name``."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def ok(name: str, description: str, status: str = "200") -> dict[str, Any]:
    """``{status: json_response(...)}``, to open a ``responses`` mapping."""
    return {status: json_response(name, description)}


def body(name: str) -> dict[str, Any]:
    """A required JSON request body of the schema ``name``."""
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def path_uuid(what: str) -> dict[str, Any]:
    return {
        "name": "uuid",
        "in": "path",
        "required": True,
        "schema": UUID,
        "description": f"The {what}'s UUID.",
    }


def responses(
    success: dict[str, Any], problems: Mapping[str, dict[str, Any]], *codes: str
) -> dict[str, Any]:
    """An operation's answers: ``success``, the shared 401 and 403, and the ``codes`` chosen
    from ``problems`` (a part's own descriptions of its 400, 404, 409...)."""
    return {
        **success,
        "401": ref("Unauthorized"),
        "403": ref("Forbidden"),
        **{code: problems[code] for code in codes},
    }
