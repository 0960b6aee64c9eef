"""Forms of the broadcast pages: subscribers, their filters, the delivery dashboard's filters."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, SubmitField
from wtforms import SelectChoice as Opt
from wtforms.validators import DataRequired, Length, Optional

from dr_panel.alerts.models import AUDIENCES, Channel, DeliveryStatus
from dr_panel.forms import CheckboxListField, ChoiceField, GetForm
from dr_panel.reference.models import Area

CHANNEL_LABELS = {Channel.EMAIL: "E-mail", Channel.WEBHOOK: "Webhook (partner system)"}


class SubscriberForm(FlaskForm):
    channel = ChoiceField(
        "How alerts reach them",
        choices=[Opt(c.value, CHANNEL_LABELS[c]) for c in Channel],
        validators=[DataRequired("Choose e-mail or webhook.")],
    )
    name = StringField(
        "Name",
        validators=[
            DataRequired("Enter the subscriber's name (a person, a team or a system)."),
            Length(max=160, message="Use at most 160 characters."),
        ],
    )
    organisation = StringField(
        "Organisation",
        validators=[Optional(), Length(max=160, message="Use at most 160 characters.")],
    )
    address = StringField(
        "E-mail address or webhook URL",
        validators=[DataRequired("Enter the e-mail address, or the webhook's https:// URL.")],
        description="For e-mail: name@example.org. For a webhook: the partner's https:// URL "
        "with its public DNS name, like https://alerts.partner.example.org/hooks (not an IP "
        "address, nor a local or internal name).",
        render_kw={"autocomplete": "off", "maxlength": 500},
    )
    areas = CheckboxListField(
        "Areas", validators=[DataRequired("Choose at least one area they receive alerts for.")],
        description="Alerts for an area also reach subscribers of the areas in its network.",
    )
    audiences = CheckboxListField(
        "Audiences",
        choices=[Opt(code, label) for code, label in AUDIENCES.items()],
        validators=[Optional()],
        description="Leave all unticked to receive alerts for every audience.",
    )
    receives_restricted = BooleanField(
        "Receives restricted alerts (professionals only)", default=True
    )
    submit = SubmitField("Save subscriber")

    def __init__(self, *args: Any, areas: list[Area] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.areas.choices = [Opt(a.ons_code, a.label) for a in areas or []]


class DisableForm(FlaskForm):
    reason = StringField(
        "Reason (optional)",
        validators=[Optional(), Length(max=160, message="Use at most 160 characters.")],
        description="Shown on the subscriber's page, e.g. 'left the service'.",
    )
    submit = SubmitField("Disable subscriber")


class SubscriberFilterForm(GetForm):
    q = StringField("Name or organisation contains", validators=[Optional(), Length(max=100)])
    channel = ChoiceField(
        "Channel",
        choices=[Opt("", "Any")] + [Opt(c.value, CHANNEL_LABELS[c]) for c in Channel],
        validators=[Optional()],
    )
    status = ChoiceField(
        "Status",
        choices=[Opt("", "Any"), Opt("active", "Active"), Opt("disabled", "Disabled")],
        validators=[Optional()],
    )


class DeliveryFilterForm(GetForm):
    status = ChoiceField(
        "Status",
        choices=[Opt("", "Any")]
        + [Opt(s.value, s.label) for s in DeliveryStatus]
        + [Opt("acknowledged", "Acknowledged")],
        validators=[Optional()],
    )
    channel = ChoiceField(
        "Channel",
        choices=[Opt("", "Any")] + [Opt(c.value, CHANNEL_LABELS[c]) for c in Channel],
        validators=[Optional()],
    )
    version = ChoiceField("Version", validators=[Optional()])

    def __init__(self, *args: Any, versions: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version.choices = [Opt("", "Any")] + [
            Opt(str(n), f"Version {n}") for n in versions or []
        ]
