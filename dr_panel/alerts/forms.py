"""Forms for signals, drug-concern reports and assessment (A2 and A3 keep theirs in
``drafting_forms.py`` and ``broadcast_forms.py``)."""

from __future__ import annotations

import math
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
)
from wtforms import SelectChoice as Opt
from wtforms.validators import Optional

from dr_panel.alerts.assessment import DECISION_LABELS, RELIABILITY_LABELS
from dr_panel.alerts.models import Decision, ItemStatus, Rating, Reliability, Severity
from dr_panel.alerts.reports import TEXT_FIELDS
from dr_panel.alerts.signals import METHOD_KEYS, SETTING_RANGES
from dr_panel.forms import ChoiceField, GetForm, plain_number


def _text(key: str, rows: int, hint: str) -> TextAreaField:
    label, limit = TEXT_FIELDS[key]
    return TextAreaField(
        label,
        validators=[Optional()],
        description=f"{hint} At most {limit:,} characters.",
        render_kw={"rows": rows, "maxlength": limit},
    )


NO_NAMES = "No names, addresses, dates of birth or other details of anyone."


class ReportForm(FlaskForm):
    """The signed-in "report a drug concern" form; the public form adds two fields."""

    area = ChoiceField("Area where it was seen", validators=[Optional()])
    place = _text("place", 1, "A district or kind of place, like “town centre” or “hostel”. "
                  "No street addresses.")
    seen_on = DateField(
        "When it was seen", validators=[Optional()], description="The date, today or earlier."
    )
    substance = _text("substance", 2, "Say what you know, even if you are not sure. " + NO_NAMES)
    form = _text("form", 1, "")
    sold_as = _text("sold_as", 1, "")
    appearance = _text("appearance", 3, "")
    effects = _text("effects", 4, "What happened to people who used it. " + NO_NAMES)
    is_urgent = BooleanField(
        "Someone died or needed hospital care after using it",
        description="The team aims to look at these within 24 hours.",
    )
    submit = SubmitField("Send the report")


class PublicReportForm(ReportForm):
    contact = StringField(
        "Your e-mail address (optional)",
        validators=[Optional()],
        description="Only to send you the report's reference. Leave it empty to stay anonymous.",
        render_kw={"autocomplete": "email", "inputmode": "email", "maxlength": 254},
    )
    # A honeypot: hidden from people by CSS and from screen readers by aria-hidden; bots fill it.
    website = StringField("Leave this empty", validators=[Optional()])


def _choices(labels: dict[object, str], members: list[object]) -> list[Opt]:
    return [Opt(m.value, labels.get(m, m.label)) for m in members]  # type: ignore[attr-defined]


class AssessmentForm(FlaskForm):
    reliability = ChoiceField(
        "Source reliability",
        choices=[Opt(r.value, RELIABILITY_LABELS[r]) for r in Reliability],
        validators=[Optional()],
    )
    plausibility = ChoiceField(
        "Plausibility", choices=[Opt(r.value, r.label) for r in Rating], validators=[Optional()]
    )
    local_relevance = ChoiceField(
        "Local relevance", choices=[Opt(r.value, r.label) for r in Rating], validators=[Optional()]
    )
    severity = ChoiceField(
        "Severity of harm",
        choices=[Opt(s.value, s.label) for s in Severity],
        validators=[Optional()],
        description="Extreme: deaths or risk to life. Severe: hospital admissions.",
    )
    notes = TextAreaField(
        "Notes", validators=[Optional()], description="Stored encrypted.", render_kw={"rows": 4}
    )
    decision = ChoiceField(
        "Decision",
        choices=[Opt(d.value, DECISION_LABELS[d]) for d in Decision],
        validators=[Optional()],
    )
    rationale = TextAreaField(
        "Rationale",
        validators=[Optional()],
        description="Why the panel decided this. Stored encrypted.",
        render_kw={"rows": 4},
    )
    submit = SubmitField("Record the assessment")


class ItemFilterForm(GetForm):
    status = ChoiceField(
        "Status",
        choices=[Opt("", "Any status"), *[Opt(s.value, s.label) for s in ItemStatus]],
        validators=[Optional()],
    )
    submit = SubmitField("Filter")


# -- an area's signal settings ------------------------------------------------------------------


def _number(key: str, label: str, hint: str) -> StringField:
    """A setting's number, in its range (``signals.SETTING_RANGES``), checked with a message
    that says what to type; the value is left on the field as ``field.number``."""
    low, high, whole = SETTING_RANGES[key]
    kind = "a whole number" if whole else "a number"
    span = f"from {plain_number(low)} to {plain_number(high)}"

    def check(form: Any, field: Any) -> None:
        raw = (field.data or "").strip()
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            raise ValidationError(f"Enter {kind} {span}.") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ValidationError(f"Enter {kind} {span}.")
        field.number = value

    return StringField(label, validators=[check], description=hint,
                       render_kw={"inputmode": "numeric" if whole else "decimal"})


class SignalSettingsForm(FlaskForm):
    c1 = BooleanField("C1: today against the 7 days before")
    c2 = BooleanField("C2: today against 7 days, leaving a 2-day gap")
    c3 = BooleanField("C3: C2 over the last 3 days")
    poisson = BooleanField("Poisson: more events than chance would give")
    threshold = _number("threshold", "C1 and C2 threshold (standard deviations above the mean)",
                        "Higher means fewer, surer signals. Default 3.")
    c3_threshold = _number("c3_threshold", "C3 threshold (summed standard deviations)",
                           "Default 2.")
    min_sigma = _number("min_sigma", "Smallest standard deviation used",
                        "Stops a flat, sparse series from flagging every single event. "
                        "Default 0.5.")
    min_count = _number("min_count", "Fewest events on the day to flag",
                        "A day with fewer events is never a signal. Default 3.")
    alpha = _number("alpha", "Poisson: chance of a false alarm on a quiet day",
                    "Smaller means fewer, surer signals. Default 0.001 (1 in 1,000).")
    poisson_baseline = _number("poisson_baseline", "Poisson: days of baseline", "Default 28.")
    lookback = _number("lookback", "Days back each scan records signals for",
                       "A scan that missed some days catches up over this many. Default 14.")
    revision = HiddenField()
    submit = SubmitField("Save the settings")

    NUMBERS = tuple(SETTING_RANGES)
    METHODS = METHOD_KEYS
