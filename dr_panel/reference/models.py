from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.dbtypes import PublicIdMixin
from dr_panel.extensions import db
from dr_panel.roles import Role

if TYPE_CHECKING:
    from dr_panel.auth.models import User

# ONS GSS codes: a letter for the nation, two digits for the entity type, six digits.
ONS_CODE_RE = re.compile(r"^[EWSN]\d{8}$")
AGENCY_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,19}$")


class Sector(enum.StrEnum):
    POLICE = "police"
    AMBULANCE = "ambulance"
    HOSPITAL = "hospital"
    GP_ICB = "gp_icb"
    TREATMENT = "treatment"
    MENTAL_HEALTH = "mental_health"
    PROBATION = "probation"
    HOUSING = "housing"
    SOCIAL_CARE = "social_care"
    CORONER = "coroner"
    LIVED_EXPERIENCE = "lived_experience"
    PUBLIC_HEALTH = "public_health"
    OTHER = "other"

    @property
    def label(self) -> str:
        return SECTOR_LABELS[self]


SECTOR_LABELS = {
    Sector.POLICE: "Police",
    Sector.AMBULANCE: "Ambulance service",
    Sector.HOSPITAL: "Hospital",
    Sector.GP_ICB: "GP / integrated care board",
    Sector.TREATMENT: "Drug and alcohol treatment",
    Sector.MENTAL_HEALTH: "Mental health",
    Sector.PROBATION: "Probation",
    Sector.HOUSING: "Housing",
    Sector.SOCIAL_CARE: "Social care",
    Sector.CORONER: "Coroner's office",
    Sector.LIVED_EXPERIENCE: "Lived-experience organisation",
    Sector.PUBLIC_HEALTH: "Public health",
    Sector.OTHER: "Other",
}


class Area(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A local authority or partnership; every case and every grant belongs to one."""

    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(primary_key=True)
    ons_code: Mapped[str] = mapped_column(String(9), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    # Areas that share one local drug information system (e.g. a county and two unitaries).
    network: Mapped[str | None] = mapped_column(String(120))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)

    def __repr__(self) -> str:
        return f"<Area {self.ons_code}>"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.ons_code})"

    def can_view(self, user: User) -> bool:
        return bool(user.role == Role.ADMIN or self.id in user.area_ids)

    def can_edit(self, user: User) -> bool:
        return bool(user.role == Role.ADMIN)


class Agency(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A partner organisation: police force, ambulance trust, treatment provider..."""

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(160), nullable=False)
    sector: Mapped[Sector] = mapped_column(
        Enum(
            Sector,
            native_enum=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
        nullable=False,
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)

    def __repr__(self) -> str:
        return f"<Agency {self.code}>"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.code})"

    def can_view(self, user: User) -> bool:
        return bool(user.is_authenticated)

    def can_edit(self, user: User) -> bool:
        return bool(user.role == Role.ADMIN)
