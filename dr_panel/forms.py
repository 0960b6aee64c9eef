"""Form pieces shared by every area."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, widgets


class EmptyForm(FlaskForm):
    """For bare POST buttons (sign out, disable, reset): carries the CSRF token."""


class CheckboxListField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class GetForm(FlaskForm):
    """Filter forms submitted by GET: no CSRF (they change nothing), values in the URL."""

    class Meta:
        csrf = False
