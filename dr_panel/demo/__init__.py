"""Synthetic demonstration data: the real codes and names of three neighbouring Lancashire
areas that share one drug information network, partner agencies, and one login per role.
Every person here is made up; demo passwords are random per installation."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from dr_panel.reference import services as reference
from dr_panel.reference.models import Agency, Area, Sector

NETWORK = "Pan-Lancashire drug information network"
AREAS = [
    ("E06000009", "Blackpool"),
    ("E06000008", "Blackburn with Darwen"),
    ("E10000017", "Lancashire"),
]
AGENCIES = [
    ("POLICE", "Lancashire Constabulary", Sector.POLICE),
    ("NWAS", "North West Ambulance Service NHS Trust", Sector.AMBULANCE),
    ("BTH", "Blackpool Teaching Hospitals NHS Foundation Trust", Sector.HOSPITAL),
    ("ICB", "Lancashire and South Cumbria Integrated Care Board", Sector.GP_ICB),
    ("TREATMENT", "Community drug and alcohol treatment service", Sector.TREATMENT),
    ("LSCFT", "Lancashire and South Cumbria NHS Foundation Trust", Sector.MENTAL_HEALTH),
    ("PROBATION", "Probation Service North West", Sector.PROBATION),
    ("HOUSING", "Housing options and homelessness service", Sector.HOUSING),
    ("SOCIALCARE", "Adult social care", Sector.SOCIAL_CARE),
    ("CORONER", "Coroner's office", Sector.CORONER),
    ("LIVEDEXP", "Lived-experience recovery organisation", Sector.LIVED_EXPERIENCE),
    ("PUBHEALTH", "Public health team", Sector.PUBLIC_HEALTH),
]
# (email, name, role, areas, agency) -- one login per role, all synthetic.
USERS = [
    ("admin@example.org", "Alex Morgan", Role.ADMIN, ["E06000009", "E06000008", "E10000017"], None),
    (
        "coordinator@example.org",
        "Sam Okafor",
        Role.COORDINATOR,
        ["E06000009", "E06000008", "E10000017"],
        "PUBHEALTH",
    ),
    ("panel.member@example.org", "Jo Whitfield", Role.PANEL_MEMBER, ["E06000009"], "POLICE"),
    (
        "contributor@example.org",
        "Chris Mensah",
        Role.AGENCY_CONTRIBUTOR,
        ["E06000009"],
        "TREATMENT",
    ),
    (
        "lead@example.org",
        "Dr Ellis Hart",
        Role.LEAD,
        ["E06000009", "E06000008", "E10000017"],
        "PUBHEALTH",
    ),
]


def logins_file() -> Path:
    return Path(current_app.instance_path) / "demo-logins.txt"


def demo_password() -> str:
    """Four random hex groups: strong, random per install, easy to copy."""
    return "demo-" + "-".join(secrets.token_hex(3) for _ in range(3))


def load() -> bool:
    """Create what is missing; True if anything was created. Safe to run twice."""
    created = False
    for code, name in AREAS:
        if db.session.scalar(select(Area).where(Area.ons_code == code)) is None:
            reference.save_area(None, ons_code=code, name=name, network=NETWORK)
            created = True
    for code, name, sector in AGENCIES:
        if db.session.scalar(select(Agency).where(Agency.code == code)) is None:
            reference.save_agency(None, code=code, name=name, sector=sector)
            created = True
    lines = []
    for email, name, role, areas, agency in USERS:
        if db.session.scalar(select(User).where(User.email == email)) is not None:
            continue
        password = demo_password()
        accounts.create_user(
            accounts.AccountDetails(
                email=email, display_name=name, role=role, area_codes=areas, agency_code=agency
            ),
            password=password,
            by=None,
            must_change=False,
        )
        lines.append(f"  {role.label:24} {email:28} {password}")
        created = True
    db.session.commit()
    if lines:
        _write_logins(lines)
    return created


def _write_logins(lines: list[str]) -> None:
    path = logins_file()
    text = "\n".join(lines) + "\n"
    mode = "a" if path.exists() else "w"
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC), 0o600
    )
    with os.fdopen(fd, mode, encoding="utf-8") as fh:
        fh.write(text)
