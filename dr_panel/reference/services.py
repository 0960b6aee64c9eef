"""Creating and editing areas and agencies (admins only), audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from dr_panel.audit.services import record
from dr_panel.extensions import db
from dr_panel.reference.models import AGENCY_CODE_RE, ONS_CODE_RE, Agency, Area, Sector

if TYPE_CHECKING:
    from dr_panel.auth.models import User


class ReferenceDataError(ValueError):
    pass


def check_area_code(code: str) -> str:
    code = code.strip().upper()
    if not ONS_CODE_RE.match(code):
        raise ReferenceDataError(
            "An area code is the 9-character ONS code, like E06000009 for Blackpool."
        )
    return code


def check_agency_code(code: str) -> str:
    code = code.strip().upper()
    if not AGENCY_CODE_RE.match(code):
        raise ReferenceDataError(
            "An agency code is 2 to 20 capital letters, digits or underscores, "
            "starting with a letter, like POLICE or NWAS."
        )
    return code


def save_area(
    area: Area | None,
    *,
    ons_code: str,
    name: str,
    network: str | None,
    is_active: bool = True,
    by: User | None = None,
) -> Area:
    code = check_area_code(ons_code)
    clash = db.session.scalar(select(Area).where(Area.ons_code == code))
    if clash is not None and clash is not area:
        raise ReferenceDataError(f"There is already an area with the code {code}.")
    created = area is None
    if area is None:
        area = Area()
        db.session.add(area)
    area.ons_code, area.name = code, name.strip()
    area.network, area.is_active = (network or "").strip() or None, is_active
    db.session.flush()
    record(
        "area.created" if created else "area.updated",
        actor=by,
        actor_label=None if by else "cli",
        object_type="areas",
        object_uuid=area.uuid,
        details={"code": code},
    )
    return area


def save_agency(
    agency: Agency | None,
    *,
    code: str,
    name: str,
    sector: Sector,
    is_active: bool = True,
    by: User | None = None,
) -> Agency:
    code = check_agency_code(code)
    clash = db.session.scalar(select(Agency).where(Agency.code == code))
    if clash is not None and clash is not agency:
        raise ReferenceDataError(f"There is already an agency with the code {code}.")
    created = agency is None
    if agency is None:
        agency = Agency()
        db.session.add(agency)
    agency.code, agency.name, agency.sector, agency.is_active = (
        code,
        name.strip(),
        sector,
        is_active,
    )
    db.session.flush()
    record(
        "agency.created" if created else "agency.updated",
        actor=by,
        actor_label=None if by else "cli",
        object_type="agencies",
        object_uuid=agency.uuid,
        details={"code": code},
    )
    return agency


def all_areas(active_only: bool = False) -> list[Area]:
    stmt = select(Area).order_by(Area.name)
    if active_only:
        stmt = stmt.where(Area.is_active.is_(True))
    return list(db.session.scalars(stmt))


def all_agencies(active_only: bool = False) -> list[Agency]:
    stmt = select(Agency).order_by(Agency.name)
    if active_only:
        stmt = stmt.where(Agency.is_active.is_(True))
    return list(db.session.scalars(stmt))
