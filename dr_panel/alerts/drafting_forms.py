"""Forms for drafting, approving, updating and cancelling alerts, and the archive's filters."""

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
from wtforms.validators import Length, Optional

from dr_panel.alerts.drafting import HINTS, LABELS, MAX_LENGTH, TEXT_MAX
from dr_panel.alerts.models import AUDIENCES, AlertLevel, AlertStatus, Scope
from dr_panel.forms import CheckboxListField, ChoiceField, GetForm

SCOPE_LABELS = {
    Scope.RESTRICTED.value: "Restricted: the professional network only (subscribers and API "
    "tokens)",
    Scope.PUBLIC.value: "Public: anyone may read it in the public feed",
}


def _text(key: str, rows: int = 3) -> TextAreaField:
    return TextAreaField(
        LABELS[key],
        validators=[Optional(), Length(max=TEXT_MAX, message=f"Keep it to {TEXT_MAX:,} "
                                                               "characters.")],
        description=HINTS.get(key, ""),
        render_kw={"rows": rows},
    )


class DraftForm(FlaskForm):
    """Every field a drafter writes. The areas' choices are set per person (their network)."""

    title = StringField(
        LABELS["title"],
        validators=[Optional(), Length(max=MAX_LENGTH["title"],
                                       message="Keep the title to 160 characters.")],
        description=HINTS["title"],
    )
    substance = _text("substance", 2)
    sold_as = _text("sold_as", 2)
    appearance = _text("appearance", 2)
    adulterant = _text("adulterant", 2)
    signs_of_harm = _text("signs_of_harm")
    advice = _text("advice", 4)
    professional_actions = _text("professional_actions", 4)
    counts = _text("counts", 2)
    note = _text("note", 3)
    level = ChoiceField("Level", choices=[Opt(lv.value, lv.label) for lv in AlertLevel])
    scope = ChoiceField("Who may read it", choices=[Opt(k, v) for k, v in SCOPE_LABELS.items()])
    areas = CheckboxListField(
        "Areas covered",
        description="Subscribers in every area of these areas' drug information networks "
        "receive it.",
    )
    audiences = CheckboxListField(
        "Audiences",
        choices=[Opt(k, v) for k, v in AUDIENCES.items()],
        description="Leave all unticked to reach every audience.",
    )
    expires_on = DateField(
        "Expires on",
        validators=[Optional()],
        description="The last day the alert applies, like 2026-12-20.",
    )
    revision = HiddenField()
    submit = SubmitField("Save the draft")

    CONTENT = ("title", "substance", "sold_as", "appearance", "adulterant", "signs_of_harm",
               "advice", "professional_actions", "counts", "note")


class RevisionForm(FlaskForm):
    """A bare button (submit, approve, discard) that names the revision it was shown."""

    revision = HiddenField()


class CancelForm(FlaskForm):
    reason = TextAreaField(
        "Why is the alert cancelled?",
        validators=[Length(max=TEXT_MAX, message=f"Keep it to {TEXT_MAX:,} characters.")],
        description="Recipients read this. No names, dates of birth or other identifiers.",
        render_kw={"rows": 4},
    )
    urgent = BooleanField(
        "Urgent: the alert is wrong in a way that could cause harm; cancel it now, without "
        "a second person's approval"
    )
    submit = SubmitField("Cancel the alert")


def _choices(enum: Any) -> list[Opt]:
    return [Opt("", "Any")] + [Opt(m.value, m.label) for m in enum]


class ArchiveForm(GetForm):
    q = StringField("Search", validators=[Optional(), Length(max=200)],
                    description="A word from the title or text, or a reference like "
                    "LDIS-2026-0001.")
    level = ChoiceField("Level", choices=_choices(AlertLevel), validators=[Optional()])
    status = ChoiceField("Status", choices=_choices(AlertStatus), validators=[Optional()])
    area = ChoiceField("Area", choices=[Opt("", "Any")], validators=[Optional()])
    since = DateField("Drafted from", validators=[Optional()],
                      description="Like 2026-01-31.")
    until = DateField("Drafted to", validators=[Optional()], description="Like 2026-12-31.")
