"""Forms for actions and safety plans (dr_panel.reviews.actions)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SubmitField, TextAreaField
from wtforms import SelectChoice as Opt
from wtforms.validators import Optional

from dr_panel.forms import CheckboxListField, ChoiceField
from dr_panel.reviews.actions import (
    INTERVENTION_LABELS,
    ActionStatus,
    Intervention,
    PlanStatus,
)

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
