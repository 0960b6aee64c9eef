"""Forms of the trends pages. The dashboard's filters are a GET form, so a view is a URL that
can be bookmarked and shared; the values are checked by ``queries.parse_query`` (the same rules
as the API), and its messages are put on these fields."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectChoice as Opt
from wtforms import StringField, SubmitField

from dr_panel.forms import ChoiceField, GetForm
from dr_panel.trends.queries import (
    BY_CHOICES,
    CASE_TYPE_LABELS,
    DIMENSION_LABELS,
    GRAIN_LABELS,
)

MEASURE_CHOICES = [
    Opt("count", "Number of events"),
    Opt("rate", "Crude rate per 100,000"),
    Opt("dsr", "Age-standardised rate per 100,000"),
]


class TrendFilterForm(GetForm):
    measure = ChoiceField("Measure", choices=MEASURE_CHOICES)
    by = ChoiceField(
        "Break down by",
        choices=[Opt("", "Nothing (one total)")]
        + [Opt(d, DIMENSION_LABELS[d]) for d in BY_CHOICES],
    )
    by2 = ChoiceField(
        "Then by",
        choices=[Opt("", "Nothing")] + [Opt(d, DIMENSION_LABELS[d]) for d in BY_CHOICES],
    )
    grain = ChoiceField(
        "Periods", choices=[Opt(k, v) for k, v in GRAIN_LABELS.items()],
        description="Used when the table is broken down by period.",
    )
    date_from = StringField(
        "From (month)", name="from", render_kw={"type": "month", "placeholder": "YYYY-MM"},
        description="YYYY-MM, like 2024-04.",
    )
    date_to = StringField(
        "To (month)", name="to", render_kw={"type": "month", "placeholder": "YYYY-MM"},
        description="YYYY-MM; the month is included.",
    )
    area = ChoiceField("Area")
    case_type = ChoiceField(
        "Case type",
        choices=[Opt("", "Deaths and non-fatal overdoses")]
        + [Opt(k, v) for k, v in CASE_TYPE_LABELS.items()],
    )
    substance = ChoiceField("Substance")

    #: parse_query's parameter names -> these fields
    PARAMS = {
        "measure": "measure", "by": "by", "by2": "by2", "grain": "grain", "from": "date_from",
        "to": "date_to", "area": "area", "case_type": "case_type", "substance": "substance",
    }

    def show_errors(self, errors: dict[str, str]) -> None:
        for param, message in errors.items():
            f: Any = getattr(self, self.PARAMS.get(param, "measure"))
            f.errors = [*f.errors, message]


class PopulationUploadForm(FlaskForm):
    file = FileField(
        "CSV file of population estimates",
        validators=[FileRequired("Choose the CSV file of mid-year population estimates.")],
        description="UTF-8 CSV in the ONS mid-year estimates layout or the long layout below; "
        "at most 10 MB.",
    )
    submit = SubmitField("Import populations")
