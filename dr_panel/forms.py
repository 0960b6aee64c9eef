"""Form pieces shared by every area."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length


class EmptyForm(FlaskForm):
    """For bare POST buttons (sign out, disable, reset): carries the CSRF token."""


class ChoiceField(SelectField):
    """A select whose refusal says what to do, not only "Not a valid choice"."""

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any) -> None:
        # "Required" belongs to the group (its legend and message), not to every box: otherwise
        # a screen reader announces each option as required.
        kwargs["render_kw"] = {**kwargs.get("render_kw", {}), "required": False}
        kwargs.setdefault(
            "invalid_choice_message",
            f"Choose one of the options listed for {(label or 'this').lower()}.",
        )
        super().__init__(label, validators, **kwargs)


class CheckboxListField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault(
            "invalid_choice_message",
            "%(value)s is not one of the "
            + (label or "options").lower()
            + " listed. Tick from the list.",
        )
        super().__init__(label, validators, **kwargs)


class GetForm(FlaskForm):
    """Filter forms submitted by GET: no CSRF (they change nothing), values in the URL."""

    class Meta:
        csrf = False


def plain_number(value: float) -> str:
    """A number as a person writes it in a form or a message: 0.000001, not 1e-06; 10, not
    10.0 (six decimal places at most)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def whole_number(raw: str | None, *, default: int | None = None) -> int | None:
    """A whole number as a form's hidden ``version`` or ``revision`` (or ``?page=``) carries it,
    or ``default`` for anything else. ``str.isdigit`` also accepts "²" and other digits that
    ``int`` refuses, and ``int`` refuses more than 4,300 digits: a tampered field must read as
    stale or absent, never answer 500. Ten ASCII digits at most (a 32-bit column's range)."""
    text = (raw or "").strip()
    if not text or len(text) > 10 or not (text.isascii() and text.isdigit()):
        return default
    value = int(text)
    return value if value < 2**31 else default


def audit_reason_field(label: str, required: str) -> TextAreaField:
    """The "why" of an access to someone's identifiers (reveal, subject access): 10 to 300
    characters, kept in the audit log with the person's name, and checked for identifiers by
    ``dr_panel.cases.reasons`` before it is stored."""
    return TextAreaField(
        label,
        validators=[
            DataRequired(required),
            Length(min=10, max=300, message="Give a reason of 10 to 300 characters."),
        ],
        description="Recorded in the audit log with your name. Do not type names or other "
        "identifiers here.",
        render_kw={"rows": 2},
    )
