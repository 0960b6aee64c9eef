"""The JSON shapes of trends, declared once: the query ``GET /api/v1/trends`` takes and the answer
it gives, each one pydantic model, used to validate and to generate the OpenAPI document
(``dr_panel.trends.api``).

The query model checks each parameter's form (an enum, a month, an ONS code); what depends on the
person or on the other parameters (their own areas, 'from' before 'to', a standardised rate by
age band...) is ``queries.parse_query``'s, the same rules as the dashboard's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from werkzeug.datastructures import MultiDict

from dr_panel.cases.models import CaseType
from dr_panel.trends import queries
from dr_panel.trends.queries import BY_CHOICES, DIMENSION_LABELS, GRAINS, MAX_BY, MEASURES
from dr_panel.webapi import Choice, Code, Fix, QueryModel


def substance_codes() -> list[str]:
    """Every substance's code, as the dashboard and the filter accept them."""
    return list(queries.substance_names())


_ONE = "(" + "|".join(BY_CHOICES) + ")"
BY_PATTERN = f"^({_ONE}(,{_ONE})?)?$"
MONTH_PATTERN = "^[0-9]{4}-(0[1-9]|1[0-2])$"
AREA_PATTERN = "^[EWSNewsn][0-9]{8}$"


def _month(value: str) -> str:
    if not re.fullmatch(MONTH_PATTERN, value):
        raise PydanticCustomError("fix", "give a year and month, YYYY-MM, like 2025-04.")
    return value


Month = Annotated[
    str, Strict(), AfterValidator(_month),
    WithJsonSchema({"type": "string", "pattern": MONTH_PATTERN}),
]
AreaCode = Annotated[str, Strict(), Field(pattern=AREA_PATTERN)]
Key = str | SkipJsonSchema[None]  # a row has the keys of its own dimensions only

Measure = Annotated[str, Choice(MEASURES)]
Grain = Annotated[str, Choice(GRAINS)]
Dimension = Annotated[str, Choice(BY_CHOICES)]
CaseTypeCode = Annotated[str, Choice(CaseType)]
SubstanceCode = Annotated[str, Code(substance_codes)]


class TrendParams(QueryModel):
    """The parameters of ``GET /api/v1/trends``. Each is given once (``area`` may repeat); a
    parameter given empty is refused: leave it out for the default."""

    model_config = ConfigDict(populate_by_name=False)  # 'from', never 'from_'

    measure: Measure = Field(
        "count",
        description="count (default), rate (crude, Byar's interval) or dsr (directly "
        "age-standardised to the 2013 European Standard Population, Dobson's interval).",
    )
    by: Annotated[
        str,
        Strict(),
        Field(pattern=BY_PATTERN),
        Fix(f"break down by at most two of {', '.join(BY_CHOICES)}, separated by a comma "
            "(like period,substance), or give it empty for one total."),
    ] = Field(
        "period",
        description="Up to two dimensions, separated by a comma, like period,substance. "
        "Default: period. Empty: one total.",
    )
    grain: Grain = Field(
        "month",
        description="Periods: month (default), quarter, year, fy (April to March), rolling12 "
        "(12 months ending each month), pooled3 (3 calendar years ending each year).",
    )
    date_from: Month | None = Field(
        None, alias="from", description="First month, YYYY-MM. Default: January two years ago."
    )
    date_to: Month | None = Field(
        None, alias="to", description="Last month (included), YYYY-MM. Default: this month."
    )
    area: Annotated[
        list[AreaCode],
        Fix("give an area as its ONS code, a letter and 8 digits, like E06000009; repeat the "
            "parameter for several areas."),
    ] = Field(
        default_factory=list,
        description="ONS code of one of your areas; repeat for several. Default: all your areas.",
    )
    case_type: CaseTypeCode | None = Field(
        None, description="Only deaths or only non-fatal overdoses. Default: both."
    )
    substance: SubstanceCode | None = Field(
        None, description="Only events where this substance was suspected."
    )

    def args(self) -> MultiDict[str, str]:
        """The parameters as ``queries.parse_query`` reads them (the dashboard's rules)."""
        given: list[tuple[str, str]] = [
            ("measure", self.measure), ("by", self.by), ("grain", self.grain)
        ]
        for name, value in (("from", self.date_from), ("to", self.date_to),
                            ("case_type", self.case_type), ("substance", self.substance)):
            if value is not None:
                given.append((name, value))
        given += [("area", code) for code in self.area]
        return MultiDict(given)


NUMBER_NOTE = "null for measure=count, too few events (for leads: a count shown below 10), or no "


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # a key left out is not sent, never sent as null


def _key(dimension: str) -> Any:
    return Field(None, description=f"{DIMENSION_LABELS[dimension]}: the code.",
                 json_schema_extra=_no_default)


class TrendRow(BaseModel):
    """One cell of the table: its dimensions' codes (those of ``by``), and its figures."""

    model_config = ConfigDict(extra="forbid")

    period: Key = _key("period")
    area: Key = _key("area")
    case_type: Key = _key("case_type")
    substance: Key = _key("substance")
    substance_group: Key = _key("substance_group")
    age_band: Key = _key("age_band")
    sex: Key = _key("sex")
    setting: Key = _key("setting")
    treatment_status: Key = _key("treatment_status")
    nfo_outcome: Key = _key("nfo_outcome")
    labels: dict[str, str] = Field(description="What a person reads for each dimension's code.")
    value: int | None = Field(
        ge=0,
        description="The count as you may see it: for leads perturbed by its cell key, then "
        "rounded; null when suppressed.",
    )
    display: str = Field(description="The count as printed: '*' when suppressed.")
    suppressed: bool
    rate: float | None = Field(
        description="Per 100,000 person-years; " + NUMBER_NOTE + "population estimate. For "
        "leads, from the counts as shown."
    )
    ci_low: float | None = Field(description="Lower 95% confidence limit of the rate.")
    ci_high: float | None = Field(description="Upper 95% confidence limit of the rate.")
    rate_suppressed: bool = Field(
        description="The rate was withheld for too few events (for leads, decided from the "
        "count shown)."
    )
    rate_note: str | None = Field(description="Why there is no rate.")

    @classmethod
    def of(cls, row: queries.TrendRow) -> TrendRow:
        return cls(
            **row.keys,
            labels=row.labels,
            value=row.count.value,
            display=row.count.text,
            suppressed=row.count.suppressed,
            rate=row.rate,
            ci_low=row.ci_low,
            ci_high=row.ci_high,
            rate_suppressed=row.rate_suppressed,
            rate_note=row.rate_note or None,
        )


class TrendResult(BaseModel):
    """The figures of ``GET /api/v1/trends``, already protected for the person asking."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    describes: str = Field(description="What is counted, where, over which months.")
    note: str = Field(description="The disclosure rule applied.")
    notes: list[str]
    exact: bool = Field(
        description="True when counts are exact (a coordinator's own areas)."
    )
    measure: Measure
    grain: Grain
    by: list[Dimension] = Field(max_length=MAX_BY)
    date_from: str = Field(
        alias="from",
        description="The first month the figures cover (YYYY-MM); for leads, the start of a "
        "whole year of the grid.",
    )
    date_to: str = Field(
        alias="to",
        description="The last month the figures cover (YYYY-MM); for leads, the end of a whole "
        "year of the grid.",
    )
    rows: list[TrendRow]
    total: TrendRow | None = Field(
        description="A cell of its own (for leads perturbed and rounded like any other), so rows "
        "may not add up to it; null without a breakdown (the one row is the total)."
    )

    @classmethod
    def of(cls, query: queries.TrendQuery, table: queries.TrendTable) -> TrendResult:
        return cls.model_validate({
            "describes": table.describes,
            "note": table.note,
            "notes": table.notes,
            "exact": table.exact,
            "measure": query.measure,
            "grain": query.grain,
            "by": list(query.by),
            # The months the figures cover: for a lead, widened to whole years of the grid.
            "from": f"{table.date_from or query.date_from:%Y-%m}",
            "to": f"{table.date_to or query.date_to:%Y-%m}",
            "rows": [TrendRow.of(r) for r in table.rows],
            "total": TrendRow.of(table.total) if table.total is not None else None,
        })

    def body(self) -> dict[str, Any]:
        """The answer: a row carries the codes of its own dimensions only."""
        return self.model_dump(mode="json", exclude_unset=True)
