"""The field types every alerts model is made of, and the answers' base."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from dr_panel.alerts import drafting as dr
from dr_panel.alerts.models import AUDIENCES
from dr_panel.alerts.schemas import area_codes
from dr_panel.webapi import PAGE_MAX, Checks, Codes, Fix, StrictItems, Text

PER_PAGE_MAX = 200
ONS_FIX = "an ONS code like E06000009."


# -- field types --------------------------------------------------------------------------------


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("missing", "required")
    return value


def Need() -> Checks:  # noqa: N802
    """A required key: ``null`` is not a value for it (``key: required.``)."""
    return Checks(BeforeValidator(_not_null))


def Choices(values: Sequence[str], *, least: int = 0) -> Checks:  # noqa: N802
    """A list of fixed codes (audiences...), each once (a ``list[str]``)."""
    allowed = frozenset(values)

    def check(chosen: list[str]) -> list[str]:
        if len(set(chosen)) != len(chosen) or any(v not in allowed for v in chosen):
            raise PydanticCustomError("fix_codes", "not known codes")
        return chosen

    return Checks(
        StrictItems(values),
        Field(min_length=least, max_length=len(values), json_schema_extra={"uniqueItems": True}),
        AfterValidator(check),
        Fix(f"give a list of {'at least one code' if least else 'codes'}, each once, from: "
            + ", ".join(values) + "."),
    )


def QueryWhole(low: int, high: int) -> Checks:  # noqa: N802
    """A whole number (``int``) in a query (its text is a number's digits)."""
    return Checks(Field(ge=low, le=high), Fix(f"give a whole number from {low} to {high}."))


def Out(kind: type[enum.Enum] | Sequence[str], *, nullable: bool = False) -> Checks:  # noqa: N802
    """An answer's code (a ``str``, or ``str | None`` if ``nullable``): one of an enum's values
    (or a fixed list)."""
    codes: list[Any] = [m.value for m in kind] if isinstance(kind, type) else list(kind)
    shown: dict[str, Any] = {"type": "string", "enum": codes}
    return Checks(WithJsonSchema({"anyOf": [shown, {"type": "null"}]} if nullable else shown))


def omitted(description: str = "") -> Any:
    """A key the answer leaves out when it has no value."""
    return Field(default=None, exclude_if=lambda v: v is None, description=description or None)


Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Day = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
Moment = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
MomentOrNull = Annotated[str | None, WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})]
Count = Annotated[int, Field(ge=0)]
Ons = Annotated[str, Strict(), Field(pattern="^[A-Za-z0-9]{9}$"), Fix(ONS_FIX)]


# Each field type is its plain type to mypy and, to pydantic, the checks that say how to fix
# each field, and the answers' codes.
LongText = Annotated[str, Text(dr.TEXT_MAX)]
NeedLongText = Annotated[LongText, Need()]
AreaCodes = Annotated[list[str], Codes(area_codes)]
NeedAreaCodes = Annotated[AreaCodes, Need()]
AudienceCodes = Annotated[list[str], Choices(list(AUDIENCES))]
Page = Annotated[int, QueryWhole(1, PAGE_MAX)]
PerPage = Annotated[int, QueryWhole(1, PER_PAGE_MAX)]


class Answer(BaseModel):
    """An answer: exactly these keys (the document says so too)."""

    model_config = ConfigDict(extra="forbid")


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
