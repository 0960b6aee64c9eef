"""Forms of the API token pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from dr_panel.api.services import NAME_MAX, NAME_REQUIRED


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired(NAME_REQUIRED),
            Length(max=NAME_MAX, message=f"Token names are at most {NAME_MAX} characters."),
        ],
        description="Where or by what the token will be used, so you can tell your tokens apart.",
        render_kw={"autocomplete": "off", "maxlength": NAME_MAX},
    )
    submit = SubmitField("Create token")
