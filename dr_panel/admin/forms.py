from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField, SubmitField
from wtforms import SelectChoice as Opt
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from dr_panel.auth.models import ROLE_LABELS, Role
from dr_panel.forms import CheckboxListField, ChoiceField, GetForm
from dr_panel.reference.models import SECTOR_LABELS, Sector
from dr_panel.reference.services import (
    ReferenceDataError,
    all_agencies,
    all_areas,
    check_agency_code,
    check_area_code,
)


class UserForm(FlaskForm):
    display_name = StringField(
        "Full name",
        validators=[
            DataRequired("Enter the person's name as colleagues know it."),
            Length(max=120, message="Use at most 120 characters."),
        ],
    )
    email = EmailField(
        "E-mail address",
        validators=[
            DataRequired("Enter the person's work e-mail address."),
            Email(
                "Enter an e-mail address in the form name@example.org.", check_deliverability=False
            ),
            Length(max=254),
        ],
    )
    role = ChoiceField(
        "Role",
        choices=[Opt("", "Choose a role")] + [Opt(r.value, ROLE_LABELS[r]) for r in Role],
        validators=[DataRequired("Choose the person's role.")],
    )
    agency = ChoiceField(
        "Agency",
        validators=[Optional()],
        description="Required for panel members and agency contributors.",
    )
    areas = CheckboxListField("Areas", validators=[DataRequired("Grant at least one area.")])
    submit = SubmitField("Save account")

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.agency.choices = [Opt("", "No agency")] + [
            Opt(a.code, a.label) for a in all_agencies()
        ]
        self.areas.choices = [Opt(a.ons_code, a.label) for a in all_areas()]

    def chosen_role(self) -> Role | None:
        """The role picked, or None for anything that is not one (the select's own check says
        so). Never an exception: other fields' checks run on garbage too (issue 13)."""
        try:
            return Role(self.role.data)
        except ValueError:
            return None

    def validate_agency(self, field):  # type: ignore[no-untyped-def]
        role = self.chosen_role()
        if role is not None and role.needs_agency and not field.data:
            raise ValidationError(
                f"A {ROLE_LABELS[role].lower()} must belong to an agency. Choose their agency."
            )


class AreaForm(FlaskForm):
    ons_code = StringField(
        "ONS code",
        validators=[DataRequired("Enter the area's ONS code.")],
        description="9 characters, like E06000009 for Blackpool.",
    )
    name = StringField("Name", validators=[DataRequired("Enter the area's name."), Length(max=120)])
    network = StringField(
        "Drug information network",
        validators=[Optional(), Length(max=120)],
        description="Areas with the same network share early-warning alerts.",
    )
    is_active = BooleanField("In use", default=True)
    submit = SubmitField("Save area")

    def validate_ons_code(self, field):  # type: ignore[no-untyped-def]
        try:
            field.data = check_area_code(field.data)
        except ReferenceDataError as err:
            raise ValidationError(str(err)) from None


class AgencyForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[DataRequired("Enter a short code for the agency.")],
        description="Capital letters, digits or underscores, like POLICE or NWAS.",
    )
    name = StringField(
        "Name", validators=[DataRequired("Enter the agency's name."), Length(max=160)]
    )
    sector = ChoiceField("Sector", choices=[Opt(s.value, SECTOR_LABELS[s]) for s in Sector])
    is_active = BooleanField("In use", default=True)
    submit = SubmitField("Save agency")

    def validate_code(self, field):  # type: ignore[no-untyped-def]
        try:
            field.data = check_agency_code(field.data)
        except ReferenceDataError as err:
            raise ValidationError(str(err)) from None


class UserFilterForm(GetForm):
    q = StringField("Name or e-mail contains", validators=[Optional(), Length(max=100)])
    role = ChoiceField(
        "Role",
        choices=[Opt("", "Any role")] + [Opt(r.value, ROLE_LABELS[r]) for r in Role],
        validators=[Optional()],
    )
    status = ChoiceField(
        "Status",
        choices=[
            Opt("", "Any"),
            Opt("active", "Active"),
            Opt("disabled", "Disabled"),
            Opt("no2fa", "No two-step verification"),
        ],
        validators=[Optional()],
    )
