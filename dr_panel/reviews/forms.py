"""The forms of the reviews pages (WTForms). Their field names are the API's where the two take
the same input (``dr_panel.reviews.schemas``); each page turns its form into the API's request
model, so one function maps both to what the service takes."""

from __future__ import annotations

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

from dr_panel.cases.models import YesNoUnknown
from dr_panel.forms import CheckboxListField, ChoiceField
from dr_panel.reviews.models import (
    INTERVENTION_LABELS,
    RETURN_TEXTS,
    ActionStatus,
    Domain,
    Engagement,
    Intervention,
    PlanStatus,
    Preventability,
    Score,
)

# -- requests and returns ------------------------------------------------------------------------

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


# -- meetings ------------------------------------------------------------------------------------


class MeetingForm(FlaskForm):
    area = ChoiceField("Area", validators=[DataRequired("Choose the area.")])
    held_on = DateField(
        "Date", validators=[DataRequired("Give the meeting's date, like 2026-12-10.")]
    )
    location = StringField("Where", validators=[DataRequired("Say where: a room, or 'Teams'.")])
    submit = SubmitField("Schedule the meeting")


# -- findings and learning -----------------------------------------------------------------------


class FindingsForm(FlaskForm):
    version = HiddenField()
    missed_opportunities = TextAreaField(
        "Missed opportunities",
        validators=[Optional()],
        description="Where a service could have acted differently. Stored encrypted.",
        render_kw={"rows": 4},
    )
    preventability = ChoiceField(
        "Could this have been prevented?",
        choices=[Opt(p.value, p.label) for p in Preventability],
    )
    learning_point = TextAreaField(
        "A new learning point (optional)",
        validators=[Optional()],
        description="What partners should learn from this case. Stored encrypted.",
        render_kw={"rows": 3},
    )
    themes = CheckboxListField(
        "Themes of the learning point",
        description="Themes are counted, without the text, for signals and trends.",
    )
    submit = SubmitField("Save the findings")


# One new factor per domain: <domain>_description, <domain>_score, <domain>_modifiable.
for _domain in Domain:
    setattr(
        FindingsForm,
        f"{_domain.value}_description",
        TextAreaField("Describe a new factor", validators=[Optional()], render_kw={"rows": 2}),
    )
    setattr(
        FindingsForm,
        f"{_domain.value}_score",
        ChoiceField(
            "Score",
            choices=[Opt("", "Choose a score")] + [Opt(s.value, s.label) for s in Score],
        ),
    )
    setattr(FindingsForm, f"{_domain.value}_modifiable", BooleanField("Modifiable"))


# -- actions and safety plans --------------------------------------------------------------------

ACTION_STATUS_LABELS = {
    ActionStatus.OPEN: "Open",
    ActionStatus.IN_PROGRESS: "In progress",
    ActionStatus.DONE: "Done",
    ActionStatus.NOT_ACCEPTED: "Not accepted",
}


class ActionForm(FlaskForm):
    description = TextAreaField(
        "The action",
        validators=[Optional()],
        description="Specific and measurable: what is to be done, and how the panel will know it "
        "is done. Stored encrypted.",
        render_kw={"rows": 3},
    )
    agency = ChoiceField("Owner agency", validators=[Optional()])
    due_on = DateField("Due by", validators=[Optional()])
    submit = SubmitField("Add the action")


class ActionUpdateForm(FlaskForm):
    status = ChoiceField(
        "Status", choices=[Opt(s.value, ACTION_STATUS_LABELS[s]) for s in ActionStatus]
    )
    evidence = TextAreaField(
        "Evidence of completion",
        validators=[Optional()],
        description="Needed when the action is done. Stored encrypted.",
        render_kw={"rows": 4},
    )
    reason = TextAreaField(
        "Why your agency does not accept it",
        validators=[Optional()],
        description="Needed when the action is not accepted. Stored encrypted.",
        render_kw={"rows": 3},
    )
    version = HiddenField()
    submit = SubmitField("Save")


class PlanForm(FlaskForm):
    status = ChoiceField("Status", choices=[Opt(s.value, s.label) for s in PlanStatus])
    risks = TextAreaField(
        "Risks", validators=[Optional()], description="Stored encrypted.", render_kw={"rows": 4}
    )
    protective = TextAreaField(
        "Protective factors",
        validators=[Optional()],
        description="Stored encrypted.",
        render_kw={"rows": 3},
    )
    interventions = CheckboxListField(
        "Interventions",
        validate_choice=True,
        validators=[Optional()],
        choices=[Opt(i.value, INTERVENTION_LABELS[i]) for i in Intervention],
    )
    lead = ChoiceField("Lead professional", validators=[Optional()])
    lead_agency = ChoiceField("Lead agency", validators=[Optional()])
    review_on = DateField("Review by", validators=[Optional()])
    version = HiddenField()
    submit = SubmitField("Save the plan")
