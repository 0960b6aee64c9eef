from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SubmitField, TextAreaField
from wtforms import SelectChoice as Opt
from wtforms.validators import DataRequired, Optional

from dr_panel.cases.models import YesNoUnknown
from dr_panel.forms import CheckboxListField, ChoiceField
from dr_panel.reviews.models import RETURN_TEXTS, Engagement


class RequestForm(FlaskForm):
    agencies = CheckboxListField(
        "Agencies to ask",
        validate_choice=True,
        validators=[DataRequired("Tick at least one agency to ask.")],
        description="The agencies that knew the person.",
    )
    due_on = DateField(
        "Answer by",
        validators=[DataRequired("Give the date the answers are due, like 2026-12-06.")],
    )
    note = TextAreaField(
        "Note to the agencies (optional)",
        validators=[Optional()],
        description="What the panel most needs to know. Stored encrypted.",
        render_kw={"rows": 2},
    )
    submit = SubmitField("Send the requests")


class ReturnForm(FlaskForm):
    known_to_agency = ChoiceField(
        "Was the person known to your agency?",
        choices=[Opt(v.value, v.label) for v in YesNoUnknown],
    )
    first_contact_on = DateField("First contact", validators=[Optional()])
    last_contact_on = DateField("Most recent contact", validators=[Optional()])
    engagement = ChoiceField(
        "How did they engage with your agency?", choices=[Opt(e.value, e.label) for e in Engagement]
    )
    version = HiddenField()
    save = SubmitField("Save a draft")
    submit = SubmitField("Submit the return")


for _stem, _label in RETURN_TEXTS:
    setattr(
        ReturnForm,
        _stem,
        TextAreaField(
            _label, validators=[Optional()], render_kw={"rows": 6 if _stem == "chronology" else 3}
        ),
    )
