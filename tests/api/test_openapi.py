"""The OpenAPI document is valid, is built from the models so it cannot drift, and matches what
the API really does: real answers validate against it, and a property-based run with
schemathesis finds no server error and no answer outside it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.globals import _cv_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from dr_panel.auth.models import Role
from dr_panel.cases import schemas as api
from dr_panel.cases.models import AGE_BANDS, CaseStatus, CaseType, Sex
from dr_panel.cases.services import ENUMS, FIELDS, REQUIRED, SUBSTANCES
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from tests.api.conftest import notification


@pytest.fixture
def doc(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()  # type: ignore[no-any-return]


def conforms(doc: dict[str, Any], name: str, instance: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(instance)


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_has_a_stable_camel_case_id(doc: dict[str, Any]) -> None:
    """Client generators name their methods after these: a library's default (built from the
    path) would rename every method of every client when a route moves."""
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()
           if isinstance(op, dict) and "responses" in op]
    assert len(ids) == len(set(ids)) == 43
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", i) for i in ids), ids
    assert {"listCases", "listDrugReports", "listAlertDeliveries", "rotateSubscriptionSecret",
            "getOpenApi", "getTrends"} <= set(ids)


def test_the_document_describes_every_api_route(app: Any, doc: dict[str, Any]) -> None:
    routes = {
        (rule.rule.replace("<uuid>", "{uuid}"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    verbs = {"get", "put", "post", "delete", "patch"}  # not a path's shared "parameters"
    documented = {
        (path, method) for path, ops in doc["paths"].items() for method in ops if method in verbs
    }
    assert routes == documented


def test_the_document_takes_its_enums_and_fields_from_the_code(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    body = schemas["Notification"]
    assert list(body["properties"]) == FIELDS and set(body["required"]) == REQUIRED
    assert body["additionalProperties"] is False
    for key, enum_type in ENUMS.items():
        values = [v for v in body["properties"][key]["enum"] if v is not None]
        assert values == [m.value for m in enum_type], key
    items = body["properties"]["substances"]["anyOf"][0]["items"]["enum"]
    assert items == sorted(code for code, _, _ in SUBSTANCES)
    for key, (lo, hi) in api.BODY_INTEGERS.items():
        assert (body["properties"][key]["minimum"], body["properties"][key]["maximum"]) == (lo, hi)
    case = schemas["Case"]
    assert case["properties"]["case_type"]["enum"] == [m.value for m in CaseType]
    assert case["properties"]["status"]["enum"] == [m.value for m in CaseStatus]
    assert case["properties"]["age_band"]["enum"][:-1] == [label for _, _, label in AGE_BANDS]
    assert schemas["Identifiers"]["properties"]["sex"]["enum"] == [m.value for m in Sex]
    # Nothing identifying in the pseudonymised case; the exact age is left out too.
    for key in ("full_name", "date_of_birth", "nhs_number", "address", "postcode", "age_at_event"):
        assert key not in case["properties"]
    params = {p["name"] for p in doc["paths"]["/api/v1/cases"]["get"]["parameters"]}
    assert params == set(api.QUERY_PARAMS)


def test_real_answers_conform_to_the_document(
    client: Any, doc: dict[str, Any], create_user: Any, bearer: Any, create_case: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    created = client.post("/api/v1/cases", json=notification(), headers=headers)
    conforms(doc, "Case", created.get_json())
    death = create_case(
        user,
        case_type="death",
        nfo_outcome=None,
        naloxone_given="no",
        naloxone_by=None,
        naloxone_doses=None,
        event_time=None,
        date_of_birth=None,
        postcode=None,
        nhs_number=None,
    )
    listed = client.get("/api/v1/cases", headers=headers)
    conforms(doc, "CaseList", listed.get_json())
    assert len(listed.get_json()["items"]) == 2
    plain = client.get(f"/api/v1/cases/{death.uuid}", headers=headers).get_json()
    conforms(doc, "Case", plain)
    headers["X-Reveal-Reason"] = "panel review"
    revealed = client.get(f"/api/v1/cases/{death.uuid}?reveal=1", headers=headers).get_json()
    conforms(doc, "RevealedCase", revealed)
    assert revealed["identifiers"]["nhs_number"] is None
    with pytest.raises(Exception):  # noqa: B017  the two shapes are told apart
        conforms(doc, "Case", revealed)
    for response in (
        client.get("/api/v1/cases?type=wizard", headers=headers),
        client.post("/api/v1/cases", json={"x": 1}, headers=headers),
        client.get("/api/v1/cases"),
        client.get(f"/api/v1/cases/{death.uuid}"),
        client.get("/api/v1/cases/00000000-0000-0000-0000-000000000000", headers=headers),
        client.get("/api/v1/cases", headers=bearer(create_user(Role.LEAD))),
    ):
        assert response.mimetype == "application/problem+json"
        conforms(doc, "Problem", response.get_json())


# -- property-based ---------------------------------------------------------------------------


class Isolated:
    """The app as a WSGI callable whose every request runs in its own application context, as
    ``tests.conftest.IsolatedClient`` does for the test client: schemathesis sends some requests
    (its probes without credentials) on a client of its own."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        outer = _cv_app.get(None)
        if outer is not None:
            db.session.commit()
        token = _cv_app.set(None)  # type: ignore[arg-type]
        try:
            return self.app(environ, start_response)
        finally:
            _cv_app.reset(token)
            if outer is not None:
                db.session.rollback()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
EXAMPLES = 25


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error_and_nothing_outside_the_document(
    app: Any,
    doc: dict[str, Any],
    create_user: Any,
    bearer: Any,
    create_case: Any,
    mode: GenerationMode,
) -> None:
    user = create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))
    headers = bearer(user)
    known = create_case(user)
    create_case(user, case_type="death", nfo_outcome=None, area="E06000008", full_name="B Lee")
    schema = schemathesis.openapi.from_dict(doc)
    schema.app = Isolated(app)  # as schemathesis.openapi.from_wsgi does
    # A body over the documented size limit (413) is refused too: as much a rejection as a 400.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operations = [result.ok() for result in schema.get_all_operations()]
    # + signals, reports and assessments (LDIS); + subscriptions and deliveries (broadcast);
    # + alerts: list, get, create, submit, approve, update, cancel (drafting)
    # + an area's signal settings: list, get, change, reset
    assert len(operations) == 19 + 6 + 7 + 7 + 4
    blackpool = db.session.scalar(select(Area).where(Area.ons_code == "E06000009"))
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.path.endswith("/openapi.json"):
            continue  # no parameters and no body: nothing can be made invalid
        strategy = operation.as_strategy(generation_mode=mode)
        if "{uuid}" in operation.path:
            # Half the time a case that exists, so reveal and its reason are exercised too.
            strategy = st.one_of(
                strategy,
                operation.as_strategy(
                    generation_mode=mode,
                    path_parameters={"uuid": str(
                        blackpool.uuid if "signal-settings" in operation.path else known.uuid
                    )},
                ),
            )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
