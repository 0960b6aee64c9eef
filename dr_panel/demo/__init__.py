"""Synthetic demonstration data: the real codes and names of three neighbouring Lancashire
areas that share one drug information network, partner agencies, one login per role, and a few
hundred notifications over the last two years.

Every person here is made up: names drawn from short lists of common first names and surnames,
NHS numbers only from the 999 range (never issued to patients), dates of birth and postcodes
drawn at random. Demo passwords are random per installation. The notifications come from a fixed
random seed, dated back from the day they are loaded, and go through the same parser and intake
service as real ones (validated, encrypted, linked, audited)."""

from __future__ import annotations

import logging
import os
import random
import secrets
import time as clock
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import func, select

from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.cases import services as cases
from dr_panel.cases.models import Case
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity
from dr_panel.reference import services as reference
from dr_panel.reference.models import Agency, Area, Sector

log = logging.getLogger("dr_panel.demo")

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
COORDINATOR = "coordinator@example.org"
LEAD = "lead@example.org"
# (email, name, role, areas, agency) -- one login per role, all synthetic.
USERS = [
    ("admin@example.org", "Alex Morgan", Role.ADMIN, ["E06000009", "E06000008", "E10000017"], None),
    (
        COORDINATOR,
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
        LEAD,
        "Dr Ellis Hart",
        Role.LEAD,
        ["E06000009", "E06000008", "E10000017"],
        "PUBHEALTH",
    ),
]

Progress = Callable[[int, int], None]


class DemoDataError(RuntimeError):
    """The demo notifications did not load (a bug in the generator, not in anyone's data)."""


def logins_file() -> Path:
    return Path(current_app.instance_path) / "demo-logins.txt"


def demo_password() -> str:
    """Four random hex groups: strong, random per install, easy to copy."""
    return "demo-" + "-".join(secrets.token_hex(3) for _ in range(3))


def load(progress: Progress | None = None) -> bool:
    """Create what is missing; True if anything was created. Safe to run twice: areas, agencies
    and logins are added when absent, the notifications only while there is no case at all.
    ``progress(done, total)`` is called after each notification."""
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
    if load_cases(progress=progress):
        created = True
    from dr_panel.trends.populations import load_demo_populations

    if load_demo_populations():  # synthetic mid-year estimates, for rates
        created = True
    if load_ldis():
        created = True
    return created


def load_ldis() -> int:
    """Subscribers, reports, signals and alerts (dr_panel.demo.alerts), once, as the demo
    coordinator with the demo lead approving."""
    from dr_panel.demo import alerts

    coordinator = db.session.scalar(select(User).where(User.email == COORDINATOR))
    lead = db.session.scalar(select(User).where(User.email == LEAD))
    if coordinator is None or lead is None:
        return 0
    try:
        issued = alerts.load(coordinator, lead, utcnow().date())
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return issued


def _write_logins(lines: list[str]) -> None:
    path = logins_file()
    text = "\n".join(lines) + "\n"
    mode = "a" if path.exists() else "w"
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC), 0o600
    )
    with os.fdopen(fd, mode, encoding="utf-8") as fh:
        fh.write(text)


# -- notifications ------------------------------------------------------------------------------

SEED = 20240917  # fixed: the same people and events on every installation
PEOPLE = 265  # about 360 notifications from them
CLUSTER = 9  # and a recent burst of overdoses (_recent_cluster)
DAYS = 730  # two years back from the day of loading
# Most cases in Blackpool, whose drug-death rate is the highest in England.
AREA_WEIGHTS = {"E06000009": 60, "E06000008": 15, "E10000017": 25}
# Outward codes per area; the inward parts are drawn at random (synthetic).
OUTWARD = {
    "E06000009": [("FY1", "Blackpool"), ("FY2", "Blackpool"), ("FY3", "Blackpool"),
                  ("FY4", "Blackpool")],
    "E06000008": [("BB1", "Blackburn"), ("BB2", "Blackburn")],
    "E10000017": [("PR1", "Preston"), ("PR2", "Preston"), ("LA1", "Lancaster"),
                  ("LA3", "Morecambe")],
}
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters used in the inward code
STREETS = [
    "Hawthorn Street", "Mill Lane", "Victoria Road", "Chapel Street", "Station Road",
    "Park View", "Church Street", "Albert Road", "Rose Terrace", "Willow Grove", "Back Lane",
    "Coronation Street", "Union Street", "Queen Street", "Moor Lane", "Elm Avenue",
    "Brook Street", "Alder Close", "Cedar Walk", "Orchard Road",
]
HOSTELS = ["Harbour House", "Anchor Court", "St Jude's Lodge", "Bridge House", "Beacon Court"]
MALE = [
    "Daniel", "Lee", "Craig", "Wayne", "Gary", "Paul", "Mark", "Stephen", "Darren", "Jason",
    "Dean", "Carl", "Shaun", "Martin", "Anthony", "Michael", "Kevin", "Ryan", "Jordan", "Liam",
]
FEMALE = [
    "Kelly", "Lisa", "Michelle", "Donna", "Nicola", "Sarah", "Emma", "Gemma", "Leanne", "Jodie",
    "Claire", "Joanne", "Amy", "Stacey", "Kirsty",
]
SURNAMES = [
    "Pike", "Ashworth", "Holt", "Booth", "Barlow", "Hargreaves", "Whittaker", "Duckworth",
    "Pilling", "Marsden", "Ainsworth", "Crook", "Heap", "Greenhalgh", "Fletcher", "Walsh", "Kay",
    "Riley", "Dixon", "Parkinson", "Hindle", "Entwistle", "Haworth", "Sutcliffe", "Butterworth",
    "Openshaw", "Clegg", "Shorrock", "Lord", "Nuttall",
]
# The name a later notifier may use instead (still the same surname, so linking holds).
NICKNAMES = {
    "Daniel": "Danny", "Stephen": "Steve", "Michael": "Mick", "Anthony": "Tony",
    "Nicola": "Nicky", "Joanne": "Jo", "Kevin": "Kev", "Gemma": "Gem",
}
# Base chance of each substance being suspected in an event (nitazenes rise over the period).
SUBSTANCE_CHANCE = {
    "heroin": 0.48, "crack": 0.34, "benzo_street": 0.24, "gabapentinoids": 0.18,
    "alcohol": 0.24, "methadone": 0.07, "cocaine": 0.1, "other_opioids": 0.04,
    "benzo_prescribed": 0.04, "synthetic_cannabinoids": 0.04, "ketamine": 0.02,
    "fentanyl": 0.01,
}

T = TypeVar("T")


def _pick(rng: random.Random, weights: Mapping[T, float]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def synthetic_nhs_number(rng: random.Random) -> str:
    """A 999-range number (never issued to a patient) with a valid modulus-11 check digit."""
    while True:
        body = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        total = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        if check == 10:
            continue  # no valid check digit: draw again
        number = body + str(0 if check == 11 else check)
        if identity.nhs_number_problem(number) is not None:  # never: the rule is the same
            raise DemoDataError("a generated NHS number failed its check")
        return number


@dataclass
class _Person:
    first: str
    surname: str
    sex: str
    dob: date
    nhs: str
    area: str
    housing: str
    address: str | None
    postcode: str | None
    treatment: str
    events: list[tuple[str, date]] = field(default_factory=list)  # (case type, event date)


def _person(rng: random.Random, nhs_numbers: set[str], first_event: date, dies: bool) -> _Person:
    sex = "male" if rng.random() < 0.72 else "female"
    age = max(19, min(72, round(rng.gauss(44 if dies else 41, 9))))
    dob = date(first_event.year - age, 1, 1) + timedelta(days=rng.randrange(365))
    if dob > first_event - timedelta(days=19 * 365):
        dob -= timedelta(days=365)
    nhs = synthetic_nhs_number(rng)
    while nhs in nhs_numbers:
        nhs = synthetic_nhs_number(rng)
    nhs_numbers.add(nhs)
    area = _pick(rng, AREA_WEIGHTS)
    housing = _pick(
        rng,
        {"settled": 40, "temporary": 14, "hostel_supported": 20, "rough_sleeping": 9,
         "no_fixed_abode": 9, "unknown": 8},
    )
    address = postcode = None
    if housing in ("settled", "temporary", "hostel_supported", "unknown"):
        outward, town = rng.choice(OUTWARD[area])
        postcode = (
            f"{outward} {rng.randrange(1, 10)}{rng.choice(INWARD_LETTERS)}"
            f"{rng.choice(INWARD_LETTERS)}"
        )
        street = rng.choice(STREETS)
        if housing == "hostel_supported":
            address = f"Room {rng.randrange(1, 30)}, {rng.choice(HOSTELS)}, {street}, {town}"
        elif rng.random() < 0.4:
            address = f"Flat {rng.randrange(1, 9)}, {rng.randrange(1, 180)} {street}, {town}"
        else:
            address = f"{rng.randrange(1, 180)} {street}, {town}"
    return _Person(
        first=rng.choice(MALE if sex == "male" else FEMALE),
        surname=rng.choice(SURNAMES),
        sex=sex,
        dob=dob,
        nhs=nhs,
        area=area,
        housing=housing,
        address=address,
        postcode=postcode,
        treatment=_pick(
            rng,
            {"in_treatment": 33, "left_6m": 14, "previously": 25, "never": 18, "unknown": 10},
        ),
    )


def _substances(rng: random.Random, day: date, today: date, death: bool) -> list[str]:
    through = 1 - (today - day).days / DAYS  # 0 two years ago, 1 today
    chances = dict(SUBSTANCE_CHANCE)
    chances["nitazenes"] = 0.02 + 0.2 * through**2  # a rising recent threat
    chances["xylazine"] = 0.03 * through**3
    scale = 1.3 if death else 1.0  # deaths are more often polysubstance
    found = [code for code, p in chances.items() if rng.random() < p * scale]
    if not found and rng.random() < 0.9:
        found = [_pick(rng, {"heroin": 5, "alcohol": 2, "crack": 2, "benzo_street": 1})]
    rng.shuffle(found)
    return found[:4]


def _route(rng: random.Random, substances: list[str]) -> str:
    if not substances or rng.random() < 0.15:
        return "unknown"
    if "heroin" in substances or "nitazenes" in substances:
        return _pick(rng, {"injected": 45, "smoked": 35, "mixed": 20})
    if "crack" in substances or "synthetic_cannabinoids" in substances:
        return "smoked"
    return "oral" if rng.random() < 0.85 else "mixed"


def _row(
    rng: random.Random, p: _Person, case_type: str, day: date, today: date, nth: int, of: int
) -> dict[str, str]:
    """One notification as a CSV row would give it: strings, blanks for what is not known."""
    death = case_type == "death"
    later = nth > 0
    substances = _substances(rng, day, today, death)
    notified = min(today, day + timedelta(days=rng.randrange(1, 8) if death else rng.randrange(5)))
    street_life = p.housing in ("rough_sleeping", "no_fixed_abode")
    if death:
        setting = _pick(rng, {"home": 62, "hostel": 15, "street": 11, "other": 6, "prison": 3,
                              "hospital": 3})
        agency = _pick(rng, {"POLICE": 55, "CORONER": 35, "TREATMENT": 10})
    else:
        setting = _pick(
            rng,
            {"street": 45, "home": 15, "hostel": 25, "other": 10, "custody": 5}
            if street_life
            else {"home": 44, "street": 18, "hostel": 16, "other": 10, "custody": 4,
                  "hospital": 4, "prison": 4},
        )
        agency = _pick(
            rng,
            {"NWAS": 50, "BTH": 18 if p.area == "E06000009" else 4, "POLICE": 10,
             "TREATMENT": 10, "LIVEDEXP": 5, "HOUSING": 7},
        )
    if p.housing == "hostel_supported" and setting == "home":
        setting = "hostel"
    row: dict[str, Any] = {
        "case_type": case_type,
        "area": p.area,
        "notifying_agency": agency,
        "notified_on": notified.isoformat(),
        "event_date": day.isoformat(),
        "setting": setting,
        "substances": ",".join(substances),
        "route": _route(rng, substances),
        "sex": p.sex,
        "housing_status": p.housing,
        "recent_prison_release": _pick(
            rng, {"yes": 12 if death else 7, "no": 55, "unknown": 33 if death else 38}
        ),
        "children_in_household": _pick(rng, {"yes": 12, "no": 58, "unknown": 30}),
    }
    # Treatment: deaths after overdoses have often just left treatment (DESIGN.md).
    if death:
        row["treatment_status"] = _pick(
            rng,
            {"left_6m": 55, "in_treatment": 15, "previously": 15, "never": 5, "unknown": 10}
            if of > 1
            else {"left_6m": 35, "in_treatment": 20, "previously": 20, "never": 15,
                  "unknown": 10},
        )
    elif later and rng.random() < 0.35:
        p.treatment = _pick(rng, {"in_treatment": 50, "left_6m": 30, "previously": 20})
        row["treatment_status"] = p.treatment
    else:
        row["treatment_status"] = p.treatment
    if later:
        row["previous_overdoses"] = str(nth + rng.randrange(0, 3))
    elif rng.random() < 0.5:
        row["previous_overdoses"] = str(_pick(rng, {0: 5, 1: 3, 2: 2, 3: 1, 5: 1}))
    # Naloxone: often given at a non-fatal overdose, by the ambulance crew or a peer.
    given = _pick(
        rng, {"yes": 20, "no": 40, "unknown": 40} if death else {"yes": 62, "no": 20, "unknown": 18}
    )
    row["naloxone_given"] = given
    if given == "yes":
        row["naloxone_by"] = _pick(
            rng,
            {"ambulance": 44, "peer": 15, "family_friend": 12, "hostel_staff": 12, "police": 8,
             "treatment_staff": 5, "other": 2, "unknown": 2},
        )
        if rng.random() < 0.85:
            doses = _pick(rng, {1: 40, 2: 35, 3: 15, 4: 10})
            row["naloxone_doses"] = str(doses + (1 if "nitazenes" in substances else 0))
    if death:
        age_days = (today - day).days
        row["date_is_found"] = "yes" if setting in ("home", "hostel") and rng.random() < 0.7 else ""
        row["toxicology"] = (
            _pick(rng, {"received": 75, "awaited": 25})
            if age_days > 120
            else _pick(rng, {"awaited": 85, "not_requested": 5, "unknown": 10})
        )
        row["coroner_stage"] = (
            _pick(rng, {"inquest_concluded": 60, "inquest_opened": 35, "referred": 5})
            if age_days > 270
            else _pick(rng, {"inquest_opened": 60, "referred": 40})
            if age_days > 60
            else _pick(rng, {"referred": 85, "not_referred": 5, "unknown": 10})
        )
        if rng.random() < 0.3:
            row["event_time"] = f"{rng.randrange(24):02d}:{rng.randrange(0, 60, 5):02d}"
    else:
        row["nfo_outcome"] = _pick(
            rng,
            {"conveyed": 45, "treated_at_scene": 22, "refused_conveyance": 20,
             "self_discharged": 6, "other": 2, "unknown": 5},
        )
        if rng.random() < 0.85:  # more in the evening and at night
            hour = _pick(rng, {h: (3 if 16 <= h <= 23 or h <= 2 else 1) for h in range(24)})
            row["event_time"] = time(hour, rng.randrange(60)).strftime("%H:%M")
    row.update(_identifiers(rng, p, death, later))
    return {k: v for k, v in row.items() if v not in ("", None)}


def _identifiers(rng: random.Random, p: _Person, death: bool, later: bool) -> dict[str, str]:
    """What the notifier knew. Police and ambulance often lack the NHS number, so some rows
    carry only a name and date of birth: the intake then suggests a match to the coordinator."""
    first = p.first
    if later and first in NICKNAMES and rng.random() < 0.3:
        first = NICKNAMES[first]
    out = {"full_name": f"{first} {p.surname}"}
    has_nhs = rng.random() < (0.95 if death else 0.9 if not later else 0.8)
    has_dob = has_nhs or rng.random() < 0.9
    if has_nhs:
        out["nhs_number"] = identity.format_nhs(p.nhs) if rng.random() < 0.5 else p.nhs
    if has_dob:
        dob = p.dob
        if later and has_nhs and rng.random() < 0.03:  # a mistyped date: a suggested match
            dob += timedelta(days=rng.choice([-1, 1, 30, 365]))
        out["date_of_birth"] = dob.isoformat() if rng.random() < 0.7 else dob.strftime("%d/%m/%Y")
    if p.address and rng.random() < 0.8:
        out["address"] = p.address
    if p.postcode and rng.random() < 0.9:
        out["postcode"] = p.postcode
    return out


def synthetic_notifications(today: date, seed: int = SEED) -> list[dict[str, str]]:
    """The demo notifications as import rows, oldest notification first. About a fifth of the
    people have 2-4 overdoses, and about a third of those later die."""
    rng = random.Random(seed)  # noqa: S311  (synthetic data, repeatable on purpose)
    start = today - timedelta(days=DAYS)
    nhs_numbers: set[str] = set()
    people: list[_Person] = []
    for _ in range(PEOPLE):
        if rng.random() < 0.2:  # repeat overdoses
            count = _pick(rng, {2: 55, 3: 30, 4: 15})
            dies = rng.random() < 0.35
            gaps = [rng.randrange(7, 150) for _ in range(count - 1)]
            if dies:
                gaps.append(rng.randrange(5, 200))
            span = sum(gaps)
            first = start + timedelta(days=rng.randrange(max(1, DAYS - span - 10)))
            p = _person(rng, nhs_numbers, first, dies)
            day = first
            p.events.append(("nfo", day))
            for i, gap in enumerate(gaps):
                day += timedelta(days=gap)
                p.events.append(("death" if dies and i == len(gaps) - 1 else "nfo", day))
        else:
            dies = rng.random() < 0.16
            first = start + timedelta(days=rng.randrange(DAYS - 3))
            p = _person(rng, nhs_numbers, first, dies)
            p.events.append(("death" if dies else "nfo", first))
        people.append(p)
    rows = []
    for p in people:
        for nth, (case_type, day) in enumerate(p.events):
            rows.append(_row(rng, p, case_type, day, today, nth, len(p.events)))
    rows.extend(_recent_cluster(rng, nhs_numbers, today))
    rows.sort(key=lambda r: (r["notified_on"], r["event_date"]))
    return rows


def _recent_cluster(rng: random.Random, nhs_numbers: set[str], today: date) -> list[dict[str, str]]:
    """A burst of opioid overdoses in Blackpool over the last week, with nitazenes suspected:
    the spike a scan finds and the demo's urgent alert is about."""
    rows = []
    for i in range(CLUSTER):
        day = today - timedelta(days=2 + i % 3)
        p = _person(rng, nhs_numbers, day, False)
        p.area = "E06000009"
        row = _row(rng, p, "nfo", day, today, 0, 1)
        row.update(notified_on=day.isoformat(), substances="heroin,nitazenes",
                   naloxone_given="yes", naloxone_by="ambulance", naloxone_doses="3")
        rows.append(row)
    return rows


def load_cases(progress: Progress | None = None) -> int:
    """Create the demo notifications through the real intake, as the demo coordinator, in one
    transaction. Does nothing (returns 0) once any case exists."""
    if db.session.scalar(select(func.count()).select_from(Case)):
        return 0
    started = clock.perf_counter()
    cases.ensure_substances()
    by = db.session.scalar(select(User).where(User.email == COORDINATOR))
    lookups = cases.Lookups()
    allowed = by.area_ids if by is not None else {a.id for a in lookups.areas.values()}
    today = utcnow().date()
    rows = synthetic_notifications(today)
    try:
        for done, row in enumerate(rows, 1):
            notification, errors = cases.parse_notification(
                row, lookups=lookups, allowed_areas=allowed, today=today
            )
            if notification is None:  # field names only: the messages may quote values
                raise DemoDataError(
                    f"demo notification {done} was refused ({', '.join(sorted(errors))})"
                )
            cases.create_notification(notification, by=by, source="demo")
            if progress is not None:
                progress(done, len(rows))
        if by is not None:
            from dr_panel.demo import workflow

            workflow.advance(today, by)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.info(
        "demo: %d synthetic notifications loaded in %.1f s",
        len(rows),
        clock.perf_counter() - started,
    )
    return len(rows)
