"""Every model, imported in one place so that Alembic and ``create_all`` see all tables."""

from dr_panel.alerts.models import (
    Alert,
    AlertVersion,
    Assessment,
    Delivery,
    DrugReport,
    Signal,
    Subscriber,
    alert_version_areas,
    subscriber_areas,
)
from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import (
    ApiToken,
    PasswordLink,
    PendingSignIn,
    Role,
    User,
    UserSession,
    user_areas,
)
from dr_panel.cases.models import Case, CaseEvent, Person, Substance, case_substances
from dr_panel.counters import Counter
from dr_panel.mail.models import OutboxMessage
from dr_panel.privacy.models import PersonToken
from dr_panel.reference.models import Agency, Area, Sector
from dr_panel.reviews.actions import Action, SafetyPlan
from dr_panel.reviews.findings import (
    CaseReview,
    Factor,
    LearningPoint,
    Theme,
    learning_point_themes,
)
from dr_panel.reviews.models import InfoRequest, Meeting, MeetingItem, MeetingMember
from dr_panel.runtime.models import JobLease
from dr_panel.trends.models import DailyCount, Population, TrendCount

__all__ = [
    "JobLease",
    "Agency", "ApiToken", "Area", "AuditEntry", "Case", "CaseEvent", "Counter", "InfoRequest",
    "Meeting",
    "MeetingItem", "MeetingMember", "Outcome",
    "OutboxMessage", "Person", "Role", "Sector", "Substance", "User", "UserSession",
    "case_substances", "user_areas",
    "Action", "SafetyPlan",
    "CaseReview", "Factor", "LearningPoint", "Theme", "learning_point_themes",
    "DailyCount", "Population", "TrendCount",
    "Alert", "AlertVersion", "Assessment", "Delivery", "DrugReport", "Signal", "Subscriber",
    "alert_version_areas", "subscriber_areas",
    "PersonToken",
    "PasswordLink", "PendingSignIn",
]
