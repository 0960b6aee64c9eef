"""Every model, imported in one place so that Alembic and ``create_all`` see all tables."""

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role, User, UserSession, user_areas
from dr_panel.reference.models import Agency, Area, Sector

__all__ = [
    "Agency",
    "Area",
    "AuditEntry",
    "Outcome",
    "Role",
    "Sector",
    "User",
    "UserSession",
    "user_areas",
]
