"""The five roles, with what each may ever reach (DESIGN.md's access model). A leaf module beneath
every domain, so any model or service compares roles through this enum, never as strings
(``dr_panel.auth.models`` imports it where people are)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    PANEL_MEMBER = "panel_member"
    AGENCY_CONTRIBUTOR = "agency_contributor"
    LEAD = "lead"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]

    @property
    def can_reach_identifiers(self) -> bool:
        """Roles that may ever see who a person is (DESIGN.md): coordinators, panel members,
        and agency contributors through their requests. Leads and admins never do."""
        return self in {Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}

    @property
    def needs_second_factor(self) -> bool:
        """With REQUIRE_2FA on: every role that reaches identifiers, and admins, who hold the
        keys to every account."""
        return self.can_reach_identifiers or self is Role.ADMIN

    @property
    def needs_agency(self) -> bool:
        return self in {Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}


ROLE_LABELS = {
    Role.ADMIN: "System administrator",
    Role.COORDINATOR: "Panel coordinator",
    Role.PANEL_MEMBER: "Panel member",
    Role.AGENCY_CONTRIBUTOR: "Agency contributor",
    Role.LEAD: "Public-health lead",
}
