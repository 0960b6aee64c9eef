"""The JSON API's shared HTTP helpers, in one small module that every domain's ``api.py`` uses.

Each domain declares its API in its own package (``dr_panel.cases.api``, ``dr_panel.reviews.api``,
``dr_panel.alerts.api``, ``dr_panel.trends.api``); ``dr_panel.api`` registers them under one
``/api/v1`` parent and serves the OpenAPI 3.1 document that flask-openapi3 generates from their
pydantic models. The library was chosen over Spectree and APIFlask because its views receive the
validated models as typed arguments (``body: Notification``), it hands every validation error to
one callback (``on_invalid`` below), it names schemas after their models (the document's names
are part of the API), and it is plain Flask underneath (the pages and their blueprints stay as
they are). Spectree hashes schema names and APIFlask is built on marshmallow.

Request models say how to fix each field once: the field types below (``Text``, ``Whole``,
``IsoDate``, ``Choice``...) carry the sentence that ``field_errors`` gives when a value does not
fit, so an answer reads "due_on: write the date as YYYY-MM-DD, like 2026-03-14." and never
pydantic's own wording.
"""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from typing import Annotated, Any, ClassVar

from annotated_types import GroupedMetadata
from flask import Response, current_app, jsonify, request
from flask_login import current_user
from flask_openapi3 import APIBlueprint, Tag
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, PydanticCustomError
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from dr_panel.auth.models import User
from dr_panel.dbtypes import storable
from dr_panel.extensions import csrf
from dr_panel.security import problem

BODY_MAX_BYTES = 64 * 1024
PROBLEM_MIME = "application/problem+json"
NOT_SAVED = "Nothing was saved. Fix the fields listed in 'errors' and send it again."
BAD_QUERY = "Fix the parameters listed in 'errors' and ask again."
VERSION_MAX = 2**31 - 1
PAGE_MAX = 100_000
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def operation_id(*, bp_name: str = "", name: str = "", path: str = "", method: str = "") -> str:
    """The document's operationId of a view that names none: the view's name in camelCase
    (``list_signals``: ``listSignals``), as the API has always named its operations."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def blueprint(name: str, import_name: str, url_prefix: str, tag: str) -> APIBlueprint:
    """One domain's API: registered under the ``/api/v1`` parent by ``dr_panel.api``, so its
    endpoints are ``api.<name>.<view>`` and the bearer token is the only credential there."""
    bp = APIBlueprint(
        name, import_name, url_prefix=url_prefix, abp_tags=[Tag(name=tag)], abp_security=SECURITY,
        operation_id_callback=operation_id,
    )
    csrf.exempt(bp)  # bearer tokens, not cookies: no CSRF exposure (checked per blueprint)
    return bp


def me() -> User:
    """The signed-in person (the token's owner); every API view runs behind the access guard."""
    return current_user._get_current_object()  # type: ignore[no-any-return]


# -- answers ------------------------------------------------------------------------------------


def invalid(errors: dict[str, str], detail: str = NOT_SAVED) -> Response:
    return problem(400, "The request was not valid", detail, errors=errors)


def answer(body: BaseModel | dict[str, Any], status: int = 200, location: str | None = None
           ) -> Response:
    """A JSON answer from a response model (or its dump), with ``Location`` for a 201."""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    response = jsonify(data)
    response.status_code = status
    if location is not None:
        response.headers["Location"] = location
    return response


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="about:blank")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: dict[str, str] = Field(
        default_factory=dict,
        description="What is wrong with each field or parameter, and how to fix it.",
    )


def problems(**described: str) -> dict[Any, Any]:
    """Problem-details answers for an operation, ``problems(_404="No such case...")``: each code
    with its own description; 400, 401 and 403 are added to every operation by ``dr_panel.api``
    with the shared descriptions."""
    return {
        int(code.lstrip("_")): {
            "description": text,
            "content": {PROBLEM_MIME: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code, text in described.items()
    }


# -- request models -----------------------------------------------------------------------------

MODELS: dict[str, type[ApiModel]] = {}


class ApiModel(BaseModel):
    """A request body or query. Unknown keys are refused; ``UNKNOWN`` is the sentence for one
    (by default it lists the accepted keys); ``NOUN`` names the body in the answers about its
    JSON ("the notification"); ``QUERY`` marks a query (the answer says "ask again")."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    UNKNOWN: ClassVar[str | None] = None
    NOUN: ClassVar[str | None] = None
    QUERY: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MODELS[cls.__name__] = cls


class QueryModel(ApiModel):
    QUERY = True
    UNKNOWN: ClassVar[str | None] = None


class Fix:
    """The sentence that tells how to fix a field whose value does not fit its type."""

    def __init__(self, text: str) -> None:
        self.text = text


class Checks(GroupedMetadata):
    """A field type's checks, written once beside its plain type: ``Annotated[str, Text(80)]``
    is a ``str`` to mypy, and pydantic reads the checks, the sentences and the codes' source
    (``Fix``, ``CodesOf``) as if they had been written into the ``Annotated`` one by one."""

    def __init__(self, *items: Any) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            yield from (item if isinstance(item, Checks) else (item,))


class StrictItems:
    """A list's items are strict strings (and, given ``codes``, the document lists them), as
    ``list[Annotated[str, Strict(), ...]]`` would say, for a list whose type is ``list[str]``."""

    def __init__(self, codes: Sequence[str] | None = None) -> None:
        self.codes = None if codes is None else list(codes)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        schema = handler(source)
        items = schema.get("items_schema")
        if items is None or items.get("type") != "str":
            raise TypeError("StrictItems is for a list[str]")
        items["strict"] = True
        return schema

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler
                                     ) -> dict[str, Any]:
        shown = handler(schema)
        if self.codes is not None:
            shown["items"] = {"type": "string", "enum": self.codes}
        return shown


def _storable(newlines: bool) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not storable(value, newlines=newlines):
            raise PydanticCustomError("fix", "remove the control or invalid characters.")
        return value

    return check


def Text(max_length: int, *, newlines: bool = True,  # noqa: N802
         fix: str = "give a string, or null.") -> Checks:
    """Text (``str``) of at most ``max_length`` characters, without control characters."""
    return Checks(
        Strict(), Field(max_length=max_length), AfterValidator(_storable(newlines)), Fix(fix)
    )


def Whole(low: int, high: int, *, fix: str | None = None) -> Checks:  # noqa: N802
    """A whole number (``int``) from ``low`` to ``high`` (``true`` is not one)."""
    return Checks(
        Strict(), Field(ge=low, le=high), Fix(fix or f"give a whole number from {low} to {high}.")
    )


def _plain(number: float) -> str:
    """As a person writes it: 0.000001, not 1e-06; 10, not 10.0 (six decimals at most)."""
    return f"{number:.6f}".rstrip("0").rstrip(".")


def Number(low: float, high: float) -> Checks:  # noqa: N802
    """A finite number (``float``) from ``low`` to ``high`` (whole or not, never ``true``)."""
    return Checks(
        Strict(), Field(ge=low, le=high, allow_inf_nan=False),
        Fix(f"give a number from {_plain(low)} to {_plain(high)}."),
    )


def parse_iso_date(raw: Any) -> date:
    """``YYYY-MM-DD`` only (not a timestamp, not a date with a time)."""
    if isinstance(raw, str) and len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise PydanticCustomError("fix_field", "not an ISO date")


DATE_FIX = "write the date as YYYY-MM-DD, like 2026-03-14."
IsoDate = Annotated[
    date,
    BeforeValidator(parse_iso_date),
    WithJsonSchema({"type": "string", "format": "date"}),
    Fix(DATE_FIX),
]
Flag = Annotated[bool, Strict(), Fix("give true or false.")]


def Version(minimum: int = 1) -> Checks:  # noqa: N802
    """The record's version (``int``) as the client was last given it (optimistic locking)."""
    return Checks(
        Strict(), Field(ge=minimum, le=VERSION_MAX),
        Fix("give the whole number 'version' you were last given."),
    )


def Choice(values: type[enum.Enum] | Sequence[str]) -> Checks:  # noqa: N802
    """One of ``values`` (an enum's values or a fixed list), as a ``str``."""
    codes = [m.value for m in values] if isinstance(values, type) else list(values)
    return Checks(
        Strict(),
        AfterValidator(_member(codes)),
        WithJsonSchema({"type": "string", "enum": codes}),
        Fix("use one of " + ", ".join(codes) + "."),
    )


def _member(codes: Sequence[str]) -> Callable[[str], str]:
    allowed = frozenset(codes)

    def check(value: str) -> str:
        if value not in allowed:
            raise PydanticCustomError("fix_field", "not a member")
        return value

    return check


def Codes(known: Callable[[], Iterable[str]], *, least: int = 1,
          most: int = 30) -> Checks:  # noqa: N802
    """A list of reference codes (a ``list[str]``: agencies, themes...) that live in the
    database: each checked against ``known()`` when the request is validated, each once. The
    document lists today's codes (``dr_panel.api.v1`` finds the field by its ``CodesOf`` and
    fills the enum)."""

    def check(values: list[str]) -> list[str]:
        allowed = set(known())
        if len(set(values)) != len(values) or any(v not in allowed for v in values):
            raise PydanticCustomError("fix_codes", "not known codes")
        return values

    return Checks(
        StrictItems(),
        Field(min_length=least, max_length=most),
        AfterValidator(check),
        Fix(
            f"give a list of {'at least one code' if least else 'codes'}, each once, from: "
            + "{codes}."
        ),
        CodesOf(known),
    )


def Code(known: Callable[[], Iterable[str]]) -> Checks:  # noqa: N802
    """One reference code (a ``str``) that lives in the database (an agency's, an area's...)."""

    def check(value: str) -> str:
        if value not in set(known()):
            raise PydanticCustomError("fix_codes", "not a known code")
        return value

    return Checks(Strict(), AfterValidator(check), Fix("use one of {codes}."), CodesOf(known))


class CodesOf:
    """Where a ``Code``/``Codes`` field's accepted values come from: for its sentence, and for
    the enum ``dr_panel.api.v1`` puts in the document."""

    def __init__(self, known: Callable[[], Iterable[str]]) -> None:
        self.known = known


def code_fields(model: type[BaseModel]) -> list[tuple[str, Callable[[], Iterable[str]]]]:
    """``(name as sent, where its codes come from)`` for each ``Code``/``Codes`` field."""
    found = []
    for name, info in model.model_fields.items():
        source = _metadata(info, CodesOf)
        if source is not None:
            found.append((info.alias or name, source.known))
    return found


def view_model(view: Callable[..., Any], parameter: str) -> type[BaseModel] | None:
    """The model a view takes as ``body``, ``query`` or ``path`` (flask-openapi3's names)."""
    found = inspect.signature(view).parameters.get(parameter)
    annotation = found.annotation if found is not None else None
    if isinstance(annotation, str):
        annotation = MODELS.get(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


# -- validation errors -> the project's sentences ----------------------------------------------


def _field_info(model: type[BaseModel], loc: Sequence[Any]) -> tuple[Any, str | None]:
    """The FieldInfo that ``loc`` points at (following nested models and lists), and its
    title (the label a person reads), if any."""
    info = None
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return info, None
        info = fields[part]
        current = _inner_model(info.annotation)
    return info, (info.title if info is not None else None)


def _inner_model(annotation: Any) -> Any:
    """The model inside ``Model``, ``list[Model]`` or ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _key(loc: Sequence[Any]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += ("." if key else "") + str(part)
    return key


def _metadata(info: Any, kind: type[Any]) -> Any:
    """``kind``'s instance among a field's metadata, also inside ``Annotated[...] | None``."""
    for item in Checks(*(getattr(info, "metadata", ()) or ())):
        if isinstance(item, kind):
            return item
    return _annotated(getattr(info, "annotation", None), kind)


def _annotated(annotation: Any, kind: type[Any]) -> Any:
    for item in Checks(*(getattr(annotation, "__metadata__", ()) or ())):
        if isinstance(item, kind):
            return item
    for arg in typing.get_args(annotation):
        found = _annotated(arg, kind)
        if found is not None:
            return found
    return None


def field_errors(err: ValidationError, model: type[BaseModel] | None = None) -> dict[str, str]:
    """Every problem of a request as ``{key: sentence}``, in the project's words: the one place
    where the library's error types become sentences that say how to fix each field."""
    model = model or MODELS.get(err.title)
    errors: dict[str, str] = {}
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        kind = e["type"]
        if model is None:
            errors[_key(loc) or "body"] = "not valid."
            continue
        if kind == "extra_forbidden":
            parent, _ = _field_info(model, loc[:-1]) if len(loc) > 1 else (None, None)
            owner = _inner_model(parent.annotation) if parent is not None else model
            errors[_key(loc)] = _unknown(owner or model)
            continue
        # A field's message is about the field, not the item of a list of plain values.
        while loc and isinstance(loc[-1], int):
            loc = loc[:-1]
        key = _key(loc)
        if not key:  # the body itself is not an object
            errors["body"] = "The body must be one JSON object."
            continue
        info, title = _field_info(model, loc)
        label = title or key
        if kind == "missing":
            errors.setdefault(key, f"{key}: required.")
        elif kind == "fix":  # a sentence of its own, from a validator
            errors.setdefault(key, f"{label}: {e['msg']}")
        elif kind == "string_too_long":
            errors.setdefault(key, f"{label}: at most {e['ctx']['max_length']} characters.")
        else:
            errors.setdefault(key, f"{label}: {_fix(info, model, loc)}")
    return errors


def _fix(info: Any, model: type[BaseModel], loc: Sequence[Any]) -> str:
    fix = _metadata(info, Fix) if info is not None else None
    if fix is None:
        inner = _inner_model(info.annotation) if info is not None else None
        return "give a JSON object, or null." if inner is not None else "not valid."
    text: str = fix.text
    source = _metadata(info, CodesOf)
    if source is not None and "{codes}" in text:
        text = text.replace("{codes}", ", ".join(sorted(source.known())) or "none")
    return text


def _unknown(owner: type[BaseModel]) -> str:
    own = getattr(owner, "UNKNOWN", None)
    if own:
        return str(own)
    accepted = [f.alias or name for name, f in owner.model_fields.items()]
    what = "parameter" if getattr(owner, "QUERY", False) else "field"
    return f"Unknown {what}: not accepted. Use only: " + ", ".join(accepted) + "."


def on_invalid(err: ValidationError) -> Response:
    """flask-openapi3's validation-error callback: 400 problem details listing every field."""
    model = MODELS.get(err.title)
    detail = BAD_QUERY if model is not None and model.QUERY else NOT_SAVED
    return invalid(field_errors(err, model), detail)


# -- the JSON body, before the library reads it -------------------------------------------------


def body_model() -> type[ApiModel] | None:
    """The request-body model of the view answering this request, if it takes one."""
    view = current_app.view_functions.get(request.endpoint or "")
    model = view_model(view, "body") if view is not None else None
    return model if model is not None and issubclass(model, ApiModel) else None


def json_guard() -> Response | None:
    """Before a view that takes a body: JSON, at most ``BODY_MAX_BYTES``, one object. Each
    refusal says what to send instead, so a client never meets a validation error about a
    body it did not mean to send. (Registered on the ``/api/v1`` parent.)"""
    model = body_model()
    if model is None:
        return None
    noun = model.NOUN
    if not request.is_json:
        what = f"the {noun}" if noun else "a JSON object"
        send = f"Send {what} as a JSON object" if noun else "Send a JSON object"
        return problem(400, "The request was not valid",
                       f"{send}, with 'Content-Type: application/json'.")
    request.max_content_length = BODY_MAX_BYTES
    try:
        body = request.get_json()
    except RequestEntityTooLarge:
        return problem(
            413,
            "The request is too large",
            f"A {noun or 'request'} is at most {BODY_MAX_BYTES // 1024} KiB. Nothing was saved.",
        )
    except (BadRequest, RecursionError):
        return problem(
            400,
            "The request was not valid",
            "The body is not valid JSON (UTF-8). Check the quotes, commas and brackets.",
        )
    if not isinstance(body, dict):
        extra = f", with a key for each field of the {noun}" if noun else ""
        return problem(400, "The request was not valid",
                       f"The body must be one JSON object{extra}.")
    return None


def query_guard() -> Response | None:
    """Before a view that takes a query: a parameter given more than once is refused (the
    library would read the first and drop the rest unseen), unless its field takes a list.
    (Registered on the ``/api/v1`` parent.)"""
    view = current_app.view_functions.get(request.endpoint or "")
    model = view_model(view, "query") if view is not None else None
    if model is None:
        return None
    repeated = {
        name: f"Give {name} once."
        for name in request.args
        if len(request.args.getlist(name)) > 1 and not _takes_list(model, name)
    }
    return invalid(repeated, BAD_QUERY) if repeated else None


def _takes_list(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    if field is None:
        return False
    annotation = field.annotation
    return typing.get_origin(annotation) is list or any(
        typing.get_origin(arg) is list for arg in typing.get_args(annotation)
    )


class UuidPath(BaseModel):
    """A record named by its UUID in the path (an unknown one answers 404)."""

    uuid: str = Field(json_schema_extra={"format": "uuid"})
