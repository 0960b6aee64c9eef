"""Case intake: identifiers never in clear at rest, linking by blind index, reveal, forms."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from dr_panel import counters
from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.cases import services
from dr_panel.cases.models import Case, MatchStatus, Person
from dr_panel.crypto import DecryptionError
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident

PEOPLE = [
    # full name, dob, NHS number (999 test range, valid), postcode
    ("Siân O'Brien-Smith", "1984-02-29", "9990000018", "FY1 3AB"),
    ("Tomasz Wiśniewski", "1979-11-05", "9990000026", "BB2 1QT"),
    ("Kerry-Ann McDonagh", "1991-07-14", "", "PR1 8JL"),
]


def notification(**changes: Any) -> dict[str, Any]:
    name, dob, nhs, postcode = PEOPLE[0]
    data = {
        "case_type": "nfo",
        "area": "E06000009",
        "event_date": "2026-05-03",
        "notified_on": "2026-05-04",
        "setting": "street",
        "substances": "heroin,crack",
        "naloxone_given": "yes",
        "naloxone_by": "ambulance",
        "naloxone_doses": "2",
        "nfo_outcome": "conveyed",
        "full_name": name,
        "date_of_birth": dob,
        "nhs_number": nhs,
        "postcode": postcode,
        "address": "Flat 2, 14 Example Road",
    }
    data.update(changes)
    return data


def create(user: Any, **changes: Any) -> Case:
    n, errors = services.parse_notification(
        notification(**changes), lookups=services.Lookups(), allowed_areas=user.area_ids
    )
    assert not errors, errors
    assert n is not None
    case = services.create_notification(n, by=user)
    db.session.commit()
    return case


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))


# -- at rest --------------------------------------------------------------------------------------


def raw_database_text(app: Any) -> bytes:
    """Everything the database holds, as an attacker with a copy would see it."""
    if db.engine.dialect.name == "sqlite":
        db.session.commit()
        db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        path = Path(db.engine.url.database)
        return path.read_bytes() + (
            Path(str(path) + "-wal").read_bytes() if Path(str(path) + "-wal").exists() else b""
        )
    out = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(text(f"SELECT * FROM {table.name}")):  # noqa: S608
            out.append(" ".join(str(v) for v in row))
    return "\n".join(out).encode()


def test_identifiers_never_reach_the_database_in_clear(app: Any, coordinator: Any) -> None:
    for name, dob, nhs, postcode in PEOPLE:
        create(
            coordinator,
            full_name=name,
            date_of_birth=dob,
            nhs_number=nhs,
            postcode=postcode,
            address=f"{name.split()[0]}'s house, 1 Sample Street",
        )
    raw = raw_database_text(app)
    for name, dob, nhs, postcode in PEOPLE:
        for value in [
            *name.split(),
            dob,
            postcode,
            postcode.replace(" ", ""),
            nhs,
            "Sample Street",
        ]:
            if value:
                assert value.encode() not in raw, "found in clear in the database"
                assert value.encode("utf-16-le") not in raw
    # What pages show instead is derived and coarse.
    case = db.session.scalars(db.select(Case).order_by(Case.id)).first()
    assert (case.age_band, case.postcode_district) == ("35-44", "FY1")


def test_a_ciphertext_moved_to_another_row_or_column_does_not_decrypt(
    app: Any, coordinator: Any
) -> None:
    first = create(coordinator).person
    second = create(
        coordinator,
        full_name="Tomasz Wiśniewski",
        date_of_birth="1979-11-05",
        nhs_number="9990000026",
    ).person
    assert ident.unseal(first).full_name == "Siân O'Brien-Smith"
    # Another person's name copied into this row.
    first.name_enc = second.name_enc
    with pytest.raises(DecryptionError) as err:
        ident.unseal(first)
    assert "Wiśniewski" not in str(err.value)
    db.session.rollback()
    # The date of birth copied into the name column of the same row.
    first.name_enc = first.dob_enc
    with pytest.raises(DecryptionError):
        ident.unseal(first)
    db.session.rollback()


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,field,message",
    [
        ({"nhs_number": "9990000019"}, "nhs_number", "check digit is wrong"),
        ({"nhs_number": "12345"}, "nhs_number", "10 digits"),
        (
            {"event_date": (utcnow().date() + timedelta(days=2)).isoformat()},
            "event_date",
            "in the future",
        ),
        ({"date_of_birth": "2030-01-01"}, "date_of_birth", "in the future"),
        ({"event_date": "03-05-2026"}, "event_date", "YYYY-MM-DD"),
        ({"postcode": "not a postcode"}, "postcode", "full UK postcode"),
        ({"setting": "moon"}, "setting", "use one of home, hostel"),
        ({"substances": "heroin,unobtainium"}, "substances", "Unknown substance unobtainium"),
        ({"area": "E10000017"}, "area", "not one of your areas"),
        ({"full_name": ""}, "full_name", "Enter the person's full name"),
        ({"toxicology": "awaited"}, "toxicology", "for deaths only"),
        ({"naloxone_given": "no"}, "naloxone_given", "set naloxone given to yes"),
        ({"naloxone_doses": "lots"}, "naloxone_doses", "whole number from 1 to 20"),
    ],
)
def test_each_bad_field_gets_a_message_that_says_how_to_fix_it(
    coordinator: Any, changes: Any, field: str, message: str
) -> None:
    n, errors = services.parse_notification(
        notification(**changes), lookups=services.Lookups(), allowed_areas=coordinator.area_ids
    )
    assert n is None and message in errors[field]
    for name, _dob, nhs, _pc in PEOPLE:  # messages never echo an identifier
        assert name not in errors[field] and (not nhs or nhs not in errors[field])


def test_nhs_number_check_digit_rules() -> None:
    assert ident.nhs_number_problem("999 000 0034") is None  # test range, valid check digit
    assert ident.nhs_number_problem("9990000035") is not None
    assert ident.nhs_number_problem("9990000018") is None
    # A check digit that would have to be 10 makes the number invalid outright.
    assert ident.nhs_number_problem("1000000060") is None  # 11 - 0 = 11 means check digit 0
    assert ident.nhs_number_problem("1000000010") is not None  # 11 - 1 = 10: never valid


# -- linking ------------------------------------------------------------------------------------


def test_links_by_nhs_number(app: Any, coordinator: Any) -> None:
    first = create(coordinator)
    second = create(coordinator, event_date="2026-06-01", notified_on="2026-06-01")
    assert second.person_id == first.person_id and second.match_status is MatchStatus.LINKED
    assert db.session.scalar(db.select(db.func.count()).select_from(Person)) == 1


def test_name_and_dob_with_accents_and_case_changed_suggest_the_same_person(
    app: Any, coordinator: Any
) -> None:
    first = create(coordinator, nhs_number="")
    second = create(
        coordinator,
        full_name="SIAN o'brien-SMITH",
        nhs_number="",
        event_date="2026-06-01",
        notified_on="2026-06-01",
    )
    assert second.match_status is MatchStatus.SUGGESTED
    assert second.suggested_person_id == first.person_id
    assert second.person_id != first.person_id  # not linked until a coordinator confirms


def test_nhs_number_with_agreeing_name_links_even_with_different_spelling(
    app: Any, coordinator: Any
) -> None:
    first = create(coordinator)
    second = create(
        coordinator,
        full_name="Sian OBRIEN SMITH",
        event_date="2026-06-01",
        notified_on="2026-06-01",
    )
    assert second.person_id == first.person_id


@pytest.mark.parametrize(
    "changes",
    [
        {"full_name": "Siân O'Brien-Smith", "date_of_birth": "1984-03-01", "nhs_number": ""},
        {"full_name": "Mary O'Brien-Jones", "date_of_birth": "1984-02-29", "nhs_number": ""},
        {"full_name": "Someone Else", "date_of_birth": "1990-01-01", "nhs_number": "9990000026"},
    ],
)
def test_different_people_are_never_linked(app: Any, coordinator: Any, changes: Any) -> None:
    first = create(coordinator)
    other = create(coordinator, event_date="2026-06-01", notified_on="2026-06-01", **changes)
    assert other.person_id != first.person_id
    assert other.match_status is MatchStatus.NONE


def test_same_nhs_number_but_different_person_details_is_only_suggested(
    app: Any, coordinator: Any
) -> None:
    first = create(coordinator)
    other = create(
        coordinator,
        full_name="Dana Holt",
        date_of_birth="1960-01-01",
        event_date="2026-06-01",
        notified_on="2026-06-01",
    )
    assert other.person_id != first.person_id and other.match_status is MatchStatus.SUGGESTED


def test_coordinator_confirms_or_rejects_a_suggested_match(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    first = create(coordinator, nhs_number="")
    second = create(
        coordinator,
        full_name="sian obrien-smith",
        nhs_number="",
        event_date="2026-06-01",
        notified_on="2026-06-01",
    )
    provisional = second.person_id
    login(client, coordinator)
    page = client.get(f"/cases/{second.uuid}").get_data(as_text=True)
    assert "Possible match with a person already known" in page
    response = client.post(
        f"/cases/{second.uuid}/match", data={"decision": "confirm"}, follow_redirects=True
    )
    assert "Match confirmed" in response.get_data(as_text=True)
    db.session.expire_all()
    second = db.session.get(Case, second.id)
    assert second.person_id == first.person_id and second.match_status is MatchStatus.CONFIRMED
    assert db.session.get(Person, provisional) is None  # the provisional person is gone
    page = client.get(f"/persons/{first.person.uuid}").get_data(as_text=True)
    assert first.reference in page and second.reference in page


# -- reveal -------------------------------------------------------------------------------------


def test_reveal_needs_a_reason_and_is_audited(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    case = create(coordinator)
    login(client, coordinator)
    page = client.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "Siân" not in page and "9990000018" not in page and case.reference in page
    refused = client.post(f"/cases/{case.uuid}/reveal", data={"reason": ""})
    assert refused.status_code == 400 and "Say why you need to see who this is" in refused.get_data(
        as_text=True
    )
    shown = client.post(
        f"/cases/{case.uuid}/reveal", data={"reason": "Checking our records before the panel"}
    )
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "Siân O&#39;Brien-Smith" in html and "999 000 0018" in html
    entry = db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.action == "case.reveal")
    ).one()
    assert entry.reason == "Checking our records before the panel"
    assert entry.actor_uuid == coordinator.uuid and entry.object_uuid == str(case.uuid)
    # Only for that view: the next page load is pseudonymised again.
    assert "Siân" not in client.get(f"/cases/{case.uuid}").get_data(as_text=True)


def test_lead_and_out_of_area_users_cannot_see_or_reveal(
    app: Any, create_user: Any, coordinator: Any, login: Any
) -> None:
    case = create(coordinator)
    lead = app.test_client()
    login(lead, create_user(Role.LEAD))
    assert lead.get(f"/cases/{case.uuid}").status_code == 403
    assert (
        lead.post(
            f"/cases/{case.uuid}/reveal", data={"reason": "curious about this one"}
        ).status_code
        == 403
    )
    elsewhere = app.test_client()
    login(elsewhere, create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert elsewhere.get(f"/cases/{case.uuid}").status_code == 404
    response = elsewhere.post(f"/cases/{case.uuid}/reveal", data={"reason": "just looking here"})
    assert response.status_code == 404 and "Siân".encode() not in response.data
    denied = db.session.scalars(
        db.select(AuditEntry).where(
            AuditEntry.outcome == Outcome.DENIED, AuditEntry.object_uuid == str(case.uuid)
        )
    ).all()
    assert len(denied) == 2  # both out-of-area attempts are on record
    assert not db.session.scalars(
        db.select(AuditEntry).where(
            AuditEntry.action == "case.reveal", AuditEntry.outcome == Outcome.SUCCESS
        )
    ).all()


# -- the pages ------------------------------------------------------------------------------------


def test_intake_form_saves_a_unicode_name_and_shows_the_reference(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    login(client, coordinator)
    data = notification(substances=["heroin", "benzo_street"])
    response = client.post("/cases/new", data=data)
    assert response.status_code == 302
    case = db.session.scalars(db.select(Case)).one()
    assert case.reference == "NFO-2026-0001"
    assert ident.unseal(case.person).full_name == "Siân O'Brien-Smith"
    assert {s.code for s in case.substances} == {"heroin", "benzo_street"}
    page = client.get(response.location).get_data(as_text=True)
    assert "Notification NFO-2026-0001 saved." in page
    second = client.post(
        "/cases/new", data=notification(case_type="death", nfo_outcome="", toxicology="awaited")
    )
    assert second.status_code == 302
    assert db.session.scalars(db.select(Case.reference).order_by(Case.id)).all() == [
        "NFO-2026-0001",
        "DRD-2026-0001",
    ]


def test_bad_form_keeps_the_input_says_what_to_fix_and_saves_nothing(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    login(client, coordinator)
    response = client.post(
        "/cases/new", data=notification(nhs_number="9990000019", event_date="2099-01-01")
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "There is a problem" in html
    assert "check digit is wrong" in html and "in the future" in html
    assert 'value="Flat 2, 14 Example Road"' in html or "Flat 2, 14 Example Road" in html
    assert db.session.scalar(db.select(db.func.count()).select_from(Case)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(Person)) == 0


def test_partner_notifies_and_cannot_see_the_case(app: Any, create_user: Any, login: Any) -> None:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR)
    client = app.test_client()
    login(client, contributor)
    response = client.post("/notify", data=notification(nfo_outcome="treated_at_scene"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Notification received" in html
    case = db.session.scalars(db.select(Case)).one()
    assert case.reference in html and case.notifying_agency.code == "TREATMENT"
    assert client.get(f"/cases/{case.uuid}").status_code == 403
    assert client.get("/cases").status_code == 403


def test_case_list_filters_and_shows_no_identifiers(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    create(coordinator)
    create(
        coordinator,
        case_type="death",
        nfo_outcome="",
        full_name="Tomasz Wiśniewski",
        date_of_birth="1979-11-05",
        nhs_number="9990000026",
        substances="alcohol",
        event_date="2026-04-01",
        notified_on="2026-04-02",
        area="E06000008",
    )
    login(client, coordinator)
    html = client.get("/cases").get_data(as_text=True)
    assert "NFO-2026-0001" in html and "DRD-2026-0001" in html
    assert "Siân" not in html and "Wiśniewski" not in html
    html = client.get("/cases?type=death").get_data(as_text=True)
    assert "DRD-2026-0001" in html and "NFO-2026-0001" not in html
    html = client.get("/cases?substance=heroin").get_data(as_text=True)
    assert "NFO-2026-0001" in html and "DRD-2026-0001" not in html
    html = client.get("/cases?since=2026-05-01").get_data(as_text=True)
    assert "NFO-2026-0001" in html and "DRD-2026-0001" not in html
    html = client.get("/cases?area=E06000008").get_data(as_text=True)
    assert "DRD-2026-0001" in html and "NFO-2026-0001" not in html
    html = client.get("/cases?since=yesterday").get_data(as_text=True)
    assert "Not a valid date value" in html


def test_a_stale_edit_is_refused_and_the_input_kept(app: Any, coordinator: Any, login: Any) -> None:
    case = create(coordinator)
    alice, bob = app.test_client(), app.test_client()
    login(alice, coordinator)
    login(bob, coordinator)
    form = notification(route="smoked", version="1")
    for key in ("full_name", "date_of_birth", "nhs_number", "postcode", "address"):
        form.pop(key)
    assert alice.post(f"/cases/{case.uuid}/edit", data=form).status_code == 302
    stale = bob.post(f"/cases/{case.uuid}/edit", data=form | {"route": "injected"})
    html = stale.get_data(as_text=True)
    assert stale.status_code == 409 and "Someone else saved this case" in html
    assert '<option selected value="injected">' in html or 'value="injected" selected' in html
    db.session.expire_all()
    assert db.session.get(Case, case.id).route.value == "smoked"


def test_edit_checks_the_new_date_against_the_stored_date_of_birth(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    case = create(coordinator)
    login(client, coordinator)
    form = notification(event_date="1980-01-01", notified_on="2026-05-04", version="1")
    for key in ("full_name", "date_of_birth", "nhs_number", "postcode", "address"):
        form.pop(key)
    response = client.post(f"/cases/{case.uuid}/edit", data=form)
    assert response.status_code == 200
    assert "does not fit the date of the event" in response.get_data(as_text=True)
    assert "1984" not in response.get_data(as_text=True)  # the stored DOB is not shown


def test_case_list_pages_through_every_case_once_newest_first(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    app.config["PAGE_SIZE"] = 3
    made = []
    for i in range(8):  # two cases share each date, so the id breaks ties
        made.append(
            create(
                coordinator,
                event_date=f"2026-04-{10 + i // 2:02d}",
                notified_on="2026-05-01",
                nhs_number="",
                full_name=f"Person {i} Test",
            )
        )
    login(client, coordinator)
    seen, url = [], "/cases?type=nfo"
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(r">(NFO-2026-\d{4})</a>", html)
        assert "of 8 cases" in html
        more = re.search(r'href="([^"]+)" rel="next"', html)
        url = more.group(1).replace("&amp;", "&") if more else None
        assert url is None or "type=nfo" in url  # filters survive paging
    expected = [c.reference for c in sorted(made, key=lambda c: (c.event_date, c.id), reverse=True)]
    assert seen == expected


def test_references_keep_counting_past_9999(coordinator: Any) -> None:
    case = create(coordinator, notified_on="2026-05-04")
    case.reference = "NFO-2026-9999"
    counters.set_last(*services.reference_key(case.area_id, case.case_type, 2026), 9999)
    db.session.commit()
    later = create(
        coordinator,
        notified_on="2026-05-05",
        event_date="2026-05-05",
        nhs_number="",
        full_name="Person Ten Thousand",
    )
    assert later.reference == "NFO-2026-10000"
    after = create(
        coordinator,
        notified_on="2026-05-05",
        event_date="2026-05-05",
        nhs_number="",
        full_name="Person Ten Thousand One",
    )
    assert after.reference == "NFO-2026-10001"


def test_moving_a_case_to_another_area_or_type_gives_it_that_areas_next_reference(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    moving = create(coordinator)  # NFO-2026-0001 in Blackpool
    create(coordinator, area="E06000008", full_name="Tomasz Wiśniewski",  # the same reference
           date_of_birth="1979-11-05", nhs_number="9990000026")  # in Blackburn with Darwen
    assert moving.reference == "NFO-2026-0001"
    login(client, coordinator)
    form = notification(area="E06000008", version="1")
    for key in ("full_name", "date_of_birth", "nhs_number", "postcode", "address"):
        form.pop(key)
    response = client.post(f"/cases/{moving.uuid}/edit", data=form)
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "now NFO-2026-0002" in page
    db.session.expire_all()
    moved = db.session.get(Case, moving.id)
    assert moved.area.ons_code == "E06000008" and moved.reference == "NFO-2026-0002"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.updated")
    ).one()
    assert json.loads(entry.details or "{}")["changed"] == ["area", "reference"]
    # A death recorded as an overdose by mistake takes a DRD reference.
    form = notification(area="E06000008", case_type="death", version="2")
    for key in ("full_name", "date_of_birth", "nhs_number", "postcode", "address",
                "nfo_outcome", "naloxone_given", "naloxone_by", "naloxone_doses"):
        form.pop(key)
    response = client.post(f"/cases/{moving.uuid}/edit", data=form | {"death_place": "home"})
    assert response.status_code == 302, response.get_data(as_text=True)[-3000:]
    db.session.expire_all()
    assert db.session.get(Case, moving.id).reference == "DRD-2026-0001"
    # Its old references stay taken: the next overdose in Blackpool is 0002, not 0001 again, and
    # in Blackburn 0003, after the retired 0002. The case page lists them.
    page = client.get(f"/cases/{moving.uuid}").get_data(as_text=True)
    assert "Formerly NFO-2026-0001 (Blackpool), NFO-2026-0002 (Blackburn with Darwen)" in page
    # Searching the list for a reference quoted in older minutes finds it under its new one.
    listing = client.get("/cases?q=nfo-2026-0002").get_data(as_text=True)
    assert "DRD-2026-0001" in listing and "NFO-2026-0001" not in listing
    assert create(coordinator, full_name="Kerry-Ann McDonagh", date_of_birth="1991-07-14",
                  nhs_number="").reference == "NFO-2026-0002"
    assert create(coordinator, area="E06000008", full_name="Kerry-Ann McDonagh",
                  date_of_birth="1991-07-14", nhs_number="").reference == "NFO-2026-0003"
