"""The one blueprint of the reviews pages; each part registers its views on it."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from dr_panel.auth.models import Role, User
from dr_panel.security import roles

bp = Blueprint("reviews", __name__)

PANEL = roles(Role.COORDINATOR, Role.PANEL_MEMBER)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]
