from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

EMAIL_REQUIRED = "Enter your e-mail address, like name@example.org."


class LoginForm(FlaskForm):
    email = EmailField(
        "E-mail address",
        validators=[
            DataRequired(EMAIL_REQUIRED),
            Length(max=254, message="E-mail addresses are at most 254 characters."),
        ],
        render_kw={"autocomplete": "username", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Sign in")


class CodeForm(FlaskForm):
    code = StringField(
        "Six-digit code from your authenticator app",
        validators=[
            DataRequired("Enter the 6-digit code shown in your authenticator app."),
            Length(min=6, max=8, message="The code has 6 digits, like 123 456."),
        ],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"},
    )
    submit = SubmitField("Continue")


HOW_TO_CHOOSE = (
    "At least 12 characters. Spaces and any characters are allowed; a few "
    "unrelated words make a strong password that is easy to remember."
)


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired("Enter a new password.")],
        description=HOW_TO_CHOOSE,
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "Type the new password again",
        validators=[
            DataRequired("Type the new password a second time."),
            EqualTo(
                "password", message="The two passwords are different. Type the same one twice."
            ),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Save password")


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )

    def __iter__(self):  # type: ignore[no-untyped-def]
        order = ["csrf_token", "current", "password", "confirm", "submit"]
        return iter([self._fields[n] for n in order if n in self._fields])


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        "E-mail address",
        validators=[
            DataRequired(EMAIL_REQUIRED),
            Length(max=254, message="E-mail addresses are at most 254 characters."),
        ],
        description="The address you sign in with.",
        render_kw={"autocomplete": "username", "spellcheck": "false"},
    )
    submit = SubmitField("Send me a link")
