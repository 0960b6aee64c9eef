"""The field types every alerts model is made of, and the answers' base."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

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
from dr_panel.webapi import PAGE_MAX, Codes, Fix, Text

PER_PAGE_MAX = 200
ONS_FIX = "an ONS code like E06000009."


# -- field types --------------------------------------------------------------------------------


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("missing", "required")
    return value


def Need(kind: Any) -> Any:  # noqa: N802
    """A required key: ``null`` is not a value for it (``key: required.``)."""
    return Annotated[kind, BeforeValidator(_not_null)]


def Choices(values: Sequence[str], *, least: int = 0) -> Any:  # noqa: N802
    """A list of fixed codes (audiences...), each once."""
    allowed = frozenset(values)

    def check(chosen: list[str]) -> list[str]:
        if len(set(chosen)) != len(chosen) or any(v not in allowed for v in chosen):
            raise PydanticCustomError("fix_codes", "not known codes")
        return chosen

    return Annotated[
        list[Annotated[str, Strict(), WithJsonSchema({"type": "string", "enum": list(values)})]],
        Field(min_length=least, max_length=len(values), json_schema_extra={"uniqueItems": True}),
        AfterValidator(check),
        Fix(f"give a list of {'at least one code' if least else 'codes'}, each once, from: "
            + ", ".join(values) + "."),
    ]


def QueryWhole(low: int, high: int) -> Any:  # noqa: N802
    """A whole number in a query (its text is a number's digits)."""
    return Annotated[int, Field(ge=low, le=high), Fix(f"give a whole number from {low} to {high}.")]


def Out(kind: type[enum.Enum] | Sequence[str], *, nullable: bool = False) -> Any:  # noqa: N802
    """An answer's code: one of an enum's values (or a fixed list)."""
    codes: list[Any] = [m.value for m in kind] if isinstance(kind, type) else list(kind)
    if nullable:
        return Annotated[str | None, WithJsonSchema(
            {"anyOf": [{"type": "string", "enum": codes}, {"type": "null"}]})]
    return Annotated[str, WithJsonSchema({"type": "string", "enum": codes})]


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


# mypy sees plain types; pydantic the constrained ones that say how to fix each field, and
# the answers' codes.
if TYPE_CHECKING:
    LongText = str
    NeedLongText = str
    AreaCodes = list[str]
    NeedAreaCodes = list[str]
    AudienceCodes = list[str]
    Page = int
    PerPage = int
else:
    LongText = Text(dr.TEXT_MAX)
    NeedLongText = Need(LongText)
    AreaCodes = Codes(area_codes)
    NeedAreaCodes = Need(AreaCodes)
    AudienceCodes = Choices(list(AUDIENCES))
    Page = QueryWhole(1, PAGE_MAX)
    PerPage = QueryWhole(1, PER_PAGE_MAX)


class Answer(BaseModel):
    """An answer: exactly these keys (the document says so too)."""

    model_config = ConfigDict(extra="forbid")


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
