"""Notification forms, built from the service's field list so the page, the CSV and the API cannot
drift apart. Validation is the service's (``parse_notification``); the form carries CSRF and
renders accessible fields."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms import SelectChoice as Opt
from wtforms.validators import DataRequired, Optional

from dr_panel.cases.models import Substance
from dr_panel.cases.services import ENUMS, IDENTITY_FIELDS, LABELS
from dr_panel.forms import CheckboxListField, ChoiceField, audit_reason_field

# (legend, fields) in page order. The short form for partner agencies uses SHORT.
GROUPS: list[tuple[str, list[str]]] = [
    (
        "The event",
        [
            "case_type",
            "area",
            "notifying_agency",
            "notified_on",
            "event_date",
            "event_time",
            "date_is_found",
            "setting",
        ],
    ),
    ("What was taken", ["substances", "route"]),
    ("Naloxone and outcome", ["naloxone_given", "naloxone_by", "naloxone_doses", "nfo_outcome"]),
    (
        "What is known about them",
        [
            "treatment_status",
            "recent_prison_release",
            "housing_status",
            "children_in_household",
            "previous_overdoses",
        ],
    ),
    ("For deaths", ["toxicology", "coroner_stage"]),
    (
        "Who the person is (stored encrypted)",
        ["full_name", "date_of_birth", "sex", "nhs_number", "address", "postcode"],
    ),
]
SHORT = {
    "case_type",
    "area",
    "event_date",
    "event_time",
    "setting",
    "substances",
    "naloxone_given",
    "naloxone_by",
    "nfo_outcome",
    "full_name",
    "date_of_birth",
    "nhs_number",
    "postcode",
}
HINTS = {
    "case_type": "A suspected drug-related death, or a non-fatal overdose.",
    "notified_on": "Leave blank for today.",
    "event_date": "The date it happened; for a death found later, the date found (tick below).",
    "date_is_found": "The date above is when the person was found, not when they died",
    "substances": "Tick every substance suspected; leave all unticked if not known.",
    "naloxone_doses": "Number of doses given, if known.",
    "nfo_outcome": "For non-fatal overdoses only.",
    "previous_overdoses": "The number known to anyone notifying, if any.",
    "full_name": "As far as it is known. Accents and apostrophes are fine.",
    "date_of_birth": "If known.",
    "nhs_number": "10 digits, if known. Checked for typing mistakes.",
    "postcode": "Of their home, if they have one. Only the district (like FY1) is shown on pages.",
}


def _field(name: str, *, areas: list[Any], agencies: list[Any], substances: list[Substance]) -> Any:
    label, hint = LABELS[name], HINTS.get(name, "")
    if name in ENUMS:
        blank = "Choose one" if name in {"case_type", "setting"} else "Not known"
        choices = [Opt("", blank)] + [Opt(m.value, m.label) for m in ENUMS[name]]
        return ChoiceField(label, choices=choices, validate_choice=False, description=hint)
    if name == "area":
        return ChoiceField(
            label,
            choices=[Opt("", "Choose one")] + [Opt(a.ons_code, a.label) for a in areas],
            validate_choice=False,
            description=hint,
        )
    if name == "notifying_agency":
        return ChoiceField(
            label,
            choices=[Opt("", "Not known")] + [Opt(a.code, a.label) for a in agencies],
            validate_choice=False,
            description=hint,
        )
    if name == "substances":
        return CheckboxListField(
            label,
            choices=[Opt(s.code, s.name) for s in substances],
            validate_choice=False,
            description=hint,
        )
    if name == "date_is_found":
        return BooleanField(hint or label)
    if name in {"notified_on", "event_date", "date_of_birth"}:
        return StringField(label, description=hint, render_kw={"type": "date"})
    if name == "event_time":
        return StringField(
            label, description="24-hour clock, if known.", render_kw={"type": "time"}
        )
    if name in {"naloxone_doses", "previous_overdoses"}:
        return StringField(label, description=hint, render_kw={"inputmode": "numeric"})
    if name == "address":
        return TextAreaField(label, description=hint, render_kw={"rows": 3, "autocomplete": "off"})
    return StringField(
        label, description=hint, render_kw={"autocomplete": "off", "spellcheck": "false"}
    )


def notification_form(
    *,
    areas: list[Any],
    agencies: list[Any],
    substances: list[Substance],
    short: bool = False,
    edit: bool = False,
    **kwargs: Any,
) -> FlaskForm:
    """A form class made for this person's areas, then instantiated (with request data)."""
    wanted = [
        (
            legend,
            [
                f
                for f in fields
                if (f in SHORT if short else True) and not (edit and f in IDENTITY_FIELDS)
            ],
        )
        for legend, fields in GROUPS
    ]
    wanted = [(legend, fields) for legend, fields in wanted if fields]

    class NotificationForm(FlaskForm):
        groups = wanted
        version = HiddenField()
        submit = SubmitField("Save changes" if edit else "Save notification")

    for _, fields in wanted:
        for name in fields:
            setattr(
                NotificationForm,
                name,
                _field(name, areas=areas, agencies=agencies, substances=substances),
            )
    return NotificationForm(**kwargs)


def form_values(form: FlaskForm) -> dict[str, Any]:
    return {name: form[name].data for _, fields in form.groups for name in fields}


class RevealForm(FlaskForm):
    reason = audit_reason_field(
        "Why do you need to see who this person is?",
        "Say why you need to see who this is, for example: checking our records before the "
        "panel meeting.",
    )
    submit = SubmitField("Show who this is")


class WorkflowForm(FlaskForm):
    """The next step for a case; which fields matter depends on the step (workflow.TRANSITIONS)."""

    transition = ChoiceField(
        "Next step", validate_choice=False, validators=[DataRequired("Choose the next step.")]
    )
    why = TextAreaField(
        "Why",
        description="Needed for no review, reopening and sending back. "
        "Stored encrypted; shown on the case's timeline.",
        render_kw={"rows": 2},
    )
    expected_on = DateField(
        "Expected date",
        validators=[Optional()],
        description="For awaiting toxicology or an inquest.",
    )
    duplicate_of = StringField(
        "Reference of the case to keep",
        description="For duplicates, like NFO-2026-0012.",
        render_kw={"autocomplete": "off"},
    )
    version = HiddenField()
    submit = SubmitField("Move the case")
