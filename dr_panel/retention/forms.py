"""The subject-access request form: a reason, like reveal, and which form to get it in."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length


class SubjectAccessForm(FlaskForm):
    reason = TextAreaField(
        "Why are you producing this export?",
        validators=[
            DataRequired(
                "Say why you are producing the export, for example: subject access request "
                "received on 3 March, our log reference SAR-12."
            ),
            Length(min=10, max=300, message="Give a reason of 10 to 300 characters."),
        ],
        description="Recorded in the audit log with your name. Do not type names or other "
        "identifiers here.",
        render_kw={"rows": 2},
    )
    show = SubmitField("Show the printable page")
    download = SubmitField("Download as JSON")
