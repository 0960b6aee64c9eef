"""The subject-access request form: a reason, like reveal, and which form to get it in."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SubmitField

from dr_panel.forms import audit_reason_field


class SubjectAccessForm(FlaskForm):
    reason = audit_reason_field(
        "Why are you producing this export?",
        "Say why you are producing the export, for example: subject access request received on "
        "3 March, our log reference SAR-12.",
    )
    show = SubmitField("Show the printable page")
    download = SubmitField("Download as JSON")
