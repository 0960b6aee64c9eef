"""`dr-panel demo load`: a believable synthetic area (issue text): agencies, users for every role,
a few hundred cases over two years with repeat NFOs and some deaths; nobody real, nothing in clear.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Text, cast, func, select

from dr_panel import demo
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Case, CaseType, MatchStatus, Person
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity
from dr_panel.reference.models import Agency, Area


def counts() -> tuple[int, ...]:
    return tuple(
        db.session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Case, Person, User, Area, Agency, AuditEntry)
    )


def raw_database_text() -> bytes:
    """Everything the database holds, as its bytes on disk (SQLite) or every row as text
    (PostgreSQL): what someone with a copy of the database, but not the keys, could read."""
    db.session.commit()
    if db.engine.dialect.name == "sqlite":
        path = Path(db.engine.url.database or "")
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    parts = []
    for table in db.metadata.sorted_tables:
        every_column = select(*(cast(column, Text) for column in table.columns))
        for row in db.session.execute(every_column):
            parts.append("|".join(value or "" for value in row).encode())
    return b"\n".join(parts)


def test_demo_load_builds_a_believable_synthetic_area(app: Flask, runner: Any) -> None:
    result = runner.invoke(main, ["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "Loaded demo data." in result.output

    # A login for every role, and each one signs in.
    logins = {
        line.split()[-2]: line.split()[-1]
        for line in result.output.splitlines()
        if "@example.org" in line
    }
    users = {u.email: u for u in db.session.scalars(select(User))}
    assert {users[email].role for email in logins} == set(Role)
    for email, password in logins.items():
        response = app.test_client().post("/login", data={"email": email, "password": password})
        assert response.status_code == 302 and not response.location.endswith("/login")

    cases = list(db.session.scalars(select(Case).order_by(Case.event_date)))
    assert 300 <= len(cases) <= 450
    types = Counter(c.case_type for c in cases)
    assert types[CaseType.NFO] > 250 and 25 <= types[CaseType.DEATH] <= 90

    # Over the last two years, most in Blackpool, all created by the demo coordinator.
    today = utcnow().date()
    assert min(c.event_date for c in cases) >= today - timedelta(days=731)
    assert max(c.notified_on for c in cases) <= today
    areas = Counter(c.area.ons_code for c in cases)
    assert set(areas) == {"E06000009", "E06000008", "E10000017"}
    assert areas.most_common(1)[0][0] == "E06000009" and areas["E06000009"] > len(cases) / 2
    coordinator = users[demo.COORDINATOR]
    assert {c.created_by_id for c in cases} == {coordinator.id}
    created = db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "case.created")
    )
    assert created == len(cases)

    # Repeat NFOs, and deaths of people who had overdosed before.
    by_person: dict[int, list[Case]] = defaultdict(list)
    for case in cases:
        by_person[case.person_id].append(case)
    repeaters = [cs for cs in by_person.values() if len(cs) >= 2]
    assert len(repeaters) >= 20
    deaths_after_nfo = [
        cs
        for cs in by_person.values()
        if any(
            d.case_type is CaseType.DEATH
            and any(n.case_type is CaseType.NFO and n.event_date < d.event_date for n in cs)
            for d in cs
        )
    ]
    assert len(deaths_after_nfo) >= 5
    matches = Counter(c.match_status for c in cases)
    assert matches[MatchStatus.LINKED] >= 30 and matches[MatchStatus.SUGGESTED] >= 5

    # A realistic mix: nitazenes rising, naloxone at most overdoses, deaths often after
    # leaving treatment.
    recent = [c for c in cases if c.event_date > today - timedelta(days=365)]
    older = [c for c in cases if c.event_date <= today - timedelta(days=365)]

    def share(group: list[Case], code: str) -> float:
        return sum(any(s.code == code for s in c.substances) for c in group) / len(group)

    assert share(recent, "nitazenes") > 2 * share(older, "nitazenes") > 0
    assert share(cases, "heroin") > 0.35 and share(cases, "crack") > 0.2
    for code in ("benzo_street", "gabapentinoids", "alcohol"):
        assert share(cases, code) > 0.1
    nfos = [c for c in cases if c.case_type is CaseType.NFO]
    assert sum(c.naloxone_given.value == "yes" for c in nfos) > len(nfos) / 2
    deaths = [c for c in cases if c.case_type is CaseType.DEATH]
    left = Counter(c.treatment_status.value for c in deaths)
    assert left.most_common(1)[0][0] == "left_6m"
    assert len({c.setting for c in cases}) >= 5 and len({c.housing_status for c in cases}) >= 5
    ages = [c.age_at_event for c in cases if c.age_at_event is not None]
    assert sum(25 <= a <= 60 for a in ages) > 0.8 * len(ages)

    # Clearly synthetic: names from the lists, NHS numbers from the 999 range and valid; some
    # people known by name and date of birth only.
    first_names = set(demo.MALE) | set(demo.FEMALE) | set(demo.NICKNAMES.values())
    secrets: set[str] = set()
    without_nhs = 0
    for person in db.session.scalars(select(Person)):
        who = identity.unseal(person)
        first, last = who.full_name.split(" ")
        assert first in first_names and last in demo.SURNAMES
        secrets.add(who.full_name)
        if who.nhs_number is None:
            without_nhs += 1
        else:
            assert who.nhs_number.startswith("999")
            assert identity.nhs_number_problem(who.nhs_number) is None
            secrets.update({who.nhs_number, identity.format_nhs(who.nhs_number)})
        if who.address:
            secrets.add(who.address)
        if who.postcode:
            assert who.postcode[:3] in {o for outs in demo.OUTWARD.values() for o, _ in outs}
            secrets.add(who.postcode)
        if who.dob:
            assert date(1940, 1, 1) < who.dob < today - timedelta(days=18 * 365)
    assert without_nhs >= 10
    assert not {u.display_name for u in users.values()} & secrets  # no demo user is a "person"

    # Nothing identifying is in the database in clear.
    raw = raw_database_text()
    assert b"Lancashire Constabulary" in raw and coordinator.email.encode() in raw  # it reads
    leaked = [s for s in secrets if s.encode() in raw]
    assert not leaked, f"{len(leaked)} identifiers stored in clear"

    # Running it again adds nothing.
    before = counts()
    again = runner.invoke(main, ["demo", "load"])
    assert again.exit_code == 0 and "already loaded" in again.output
    assert counts() == before


def test_demo_notifications_are_repeatable_and_valid(app: Flask) -> None:
    today = date(2026, 3, 14)
    rows = demo.synthetic_notifications(today)
    assert rows == demo.synthetic_notifications(today)
    assert rows != demo.synthetic_notifications(today, seed=demo.SEED + 1)
    numbers = {r["nhs_number"].replace(" ", "") for r in rows if "nhs_number" in r}
    assert all(n.startswith("999") and identity.nhs_number_problem(n) is None for n in numbers)
    assert all(r["event_date"] <= r["notified_on"] <= today.isoformat() for r in rows)
