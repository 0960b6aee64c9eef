"""The identifier-leak gate: a draft naming, numbering or dating a stored person is blocked with
the span shown; a clean, realistic alert passes."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import leakgate
from dr_panel.cases.models import Person
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from dr_panel.privacy.models import PersonToken
from dr_panel.privacy.tokens import person_tokens

NAME = "Siân O'Brien-Smith"
DOB = date(1985, 4, 3)
NHS = "9990000018"


@pytest.fixture
def stored(app: Flask) -> Person:
    """One synthetic person stored as intake stores them, and another to show no cross-talk."""
    people = []
    for who in (
        ident.Identity(full_name=NAME, dob=DOB, nhs_number=NHS, postcode="FY1 1AA"),
        ident.Identity(full_name="Bartholomew Quincey", dob=date(1990, 1, 2)),
    ):
        person = Person(uuid=uuid.uuid4())
        ident.seal(person, who)
        db.session.add(person)
        people.append(person)
    db.session.commit()
    return people[0]


def spans(text: str, findings: list[leakgate.Finding]) -> list[tuple[str, str]]:
    return [(text[f.start : f.end], f.kind) for f in findings]


CLEAN = (
    f"Since {utcnow().date():%d %B %Y}, fewer than 8 people in Blackpool have needed hospital "
    f"care after taking blue tablets sold as diazepam ({utcnow().date():%d/%m/%Y}). Tablets "
    "weigh about 10mg and are marked DB. Reports came from Talbot Road and Central Drive. "
    "Signs: pinpoint pupils, slow breathing, blue lips. Do not use alone; carry naloxone; "
    "call 999 in an emergency. Around 15 people in the region, about 20 in 2024."
)


def test_a_clean_realistic_alert_passes(stored: Person) -> None:
    findings = leakgate.check_fields({"description": CLEAN, "title": "Blue tablets: nitazene"})
    assert findings == []


@pytest.mark.parametrize(
    "written",
    [
        "Siân O'Brien-Smith",
        "SIAN O'BRIEN-SMITH",
        "sian obrien-smith",
        "O'Brien-Smith, Siân",
        "Sian Marie O'Brien-Smith",
    ],
)
def test_a_stored_name_is_blocked_with_accents_or_case_changed(
    stored: Person, written: str
) -> None:
    text = f"A woman, {written}, was found in a hostel."
    findings = leakgate.check_fields({"advice": text})
    assert findings, written
    # The same kind (and message) as a name-shaped pattern: nothing says the person is held.
    assert {f.kind for f in findings} == {"name"}
    assert all(f.stored and f.person_ids == {stored.id} for f in findings)
    assert all(f.field == "advice" for f in findings)
    start = text.index(written)
    # The whole name is covered by the highlighted span(s), and nothing before it.
    covered = leakgate.merged_spans(text, findings)
    marked = "".join(piece for piece, why in covered if why)
    assert marked == written
    assert min(f.start for f in findings) == start


def test_a_name_not_stored_passes(stored: Person) -> None:
    # (Not "Smith Sian": a part of a double-barrelled surname with the given name is hers.)
    assert leakgate.check_fields({"advice": "Jane Doe and Jones Sian are not stored."}) == []


@pytest.mark.parametrize("written", ["9990000018", "999 000 0018", "999-000-0018"])
def test_a_stored_nhs_number_is_blocked_with_or_without_spaces(
    stored: Person, written: str
) -> None:
    text = f"NHS number {written} was seen at A&E."
    findings = leakgate.check_fields({"counts": text})
    # The pattern's finding, and the stored person's apart from it with the same words.
    assert spans(text, findings) == [(written, "nhs_number"), (written, "nhs_number")]
    assert [f.stored for f in findings] == [False, True]
    assert findings[0].message == findings[1].message
    assert "NHS number" in findings[0].message and "held" not in findings[0].message


def test_any_valid_nhs_number_is_blocked_even_if_not_stored(app: Flask) -> None:
    text = "Ref 9990000026 and 999 000 0034."
    assert spans(text, leakgate.find_patterns(text)) == [
        ("9990000026", "nhs_number"),
        ("999 000 0034", "nhs_number"),
    ]
    # A ten-digit number whose check digit fails is not an NHS number.
    assert leakgate.find_patterns("Batch 9990000019 seized.") == []


@pytest.mark.parametrize("written", ["03/04/1985", "3 April 1985", "1985-04-03", "April 3rd, 1985"])
def test_a_date_of_birth_is_blocked_in_the_usual_written_forms(
    stored: Person, written: str
) -> None:
    text = f"Born {written}, male."
    findings = leakgate.check_fields({"signs_of_harm": text})
    assert spans(text, findings) == [(written, "date_of_birth")]


def test_a_stored_surname_next_to_their_date_of_birth_is_named_as_such(stored: Person) -> None:
    text = "Siân O'Brien-Smith (3 April 1985) attended."
    findings = leakgate.check_fields({"advice": text})
    assert {(text[f.start : f.end], f.kind, f.stored) for f in findings} == {
        ("Siân O'Brien-Smith", "name", True),  # the stored name
        ("O'Brien-Smith", "name", True),  # a stored surname beside a date
        ("3 April 1985", "date_of_birth", False),  # a date of birth by its shape
        ("3 April 1985", "date_of_birth", True),  # and this person's, by the index
    }


def test_a_recent_person_dob_near_their_surname_is_found_by_the_index(app: Flask) -> None:
    """A child's date of birth is too recent for the pattern; the blind index finds it."""
    born = utcnow().date() - timedelta(days=5 * 365)
    person = Person(uuid=uuid.uuid4())
    ident.seal(person, ident.Identity(full_name="Alex Zabrowski", dob=born))
    db.session.add(person)
    db.session.commit()
    text = f"The Zabrowski family, {born:%d %B %Y}."
    findings = leakgate.check_fields({"advice": text})
    assert spans(text, findings) == [("Zabrowski", "name"), (f"{born:%d %B %Y}", "date_of_birth")]
    assert all(f.stored for f in findings)  # a recent date has no date-of-birth shape


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("07700 900123", "phone"),
        ("+44 7700 900123", "phone"),
        ("(01253) 477000", "phone"),
        ("01253477000", "phone"),
        ("someone@example.org", "email"),
        ("FY1 1AA", "postcode"),
        ("fy11aa", "postcode"),
    ],
)
def test_contact_details_and_postcodes_are_blocked(app: Flask, written: str, kind: str) -> None:
    text = f"Contact: {written} today."
    assert spans(text, leakgate.find_patterns(text)) == [(written, kind)]


def test_services_numbers_pass_and_an_administrator_can_allow_a_local_one(
    app_factory: Any,
) -> None:
    app = app_factory(LEAK_GATE_ALLOWED_CONTACTS=("01253 477000", "LDIS@Blackpool.example"))
    text = (
        "Talk to FRANK on 0300 123 6600 or +44 (0)300 123 6600, freephone 0800 123 4567, "
        "the drug service on (01253) 477000 or ldis@blackpool.example; "
        "not 01253 477001, 07700 900123 or jo@blackpool.example."
    )
    with app.app_context():
        assert spans(text, leakgate.check_fields({"advice": text})) == [
            ("01253 477001", "phone"), ("07700 900123", "phone"),
            ("jo@blackpool.example", "email"),
        ]
    # Without the setting, the local landline and inbox are blocked like any other.
    assert [k for _, k in spans(text, leakgate.find_patterns(text))] == [
        "phone", "email", "phone", "phone", "email"
    ]


def test_doses_counts_districts_and_todays_date_pass(app: Flask) -> None:
    text = (
        f"On {utcnow().date():%Y-%m-%d}: 10mg, 2.5 mg, 3 tablets, fewer than 8, around 15; "
        "FY1 district; 999; 111; tablets marked M 30."
    )
    assert leakgate.find_patterns(text) == []


def test_a_finding_never_carries_the_matched_text(stored: Person) -> None:
    text = f"{NAME} 9990000018 FY1 1AA someone@example.org 03/04/1985"
    findings = leakgate.check_fields({"advice": text})
    assert len(findings) >= 5
    for f in findings:
        shown = repr(f) + f.message
        for secret in ("Siân", "Brien", NHS, "FY1 1AA", "someone@", "1985"):
            assert secret not in shown


def test_the_span_is_reported_per_field(stored: Person) -> None:
    fields = {"title": "Blue tablets", "advice": "Tell sian o'brien-smith."}
    findings = leakgate.check_fields(fields)
    assert [(f.field, f.start, f.end) for f in findings] == [("advice", 5, 23)]


def test_reindex_names_fills_existing_people_and_resumes(app: Flask, stored: Person) -> None:
    stored_id = stored.id
    db.session.execute(db.update(Person).values(bi_name=None))
    db.session.execute(db.delete(PersonToken))  # as on a database from before the tokens
    db.session.commit()
    assert leakgate.names_to_index() == 2
    assert leakgate.check_fields({"advice": NAME}) == []  # the index is empty: not found
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["alerts", "reindex-names", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\b2\b", result.output)  # says how many it indexed
    assert leakgate.names_to_index() == 0
    assert leakgate.check_fields({"advice": NAME})
    again = runner.invoke(main, ["alerts", "reindex-names"])
    assert again.exit_code == 0 and re.search(r"\b0\b", again.output)
    person = db.session.scalar(select(Person).where(Person.id == stored_id))
    assert person is not None and person.bi_name == ident.name_index(NAME)
    assert {(t.kind, t.bi) for t in person.tokens} == set(
        person_tokens(ident.Identity(full_name=NAME), ident.keys())
    )


def test_intake_and_bulk_import_fill_the_name_index(app: Flask) -> None:
    from dr_panel.cases import bulk

    who = ident.Identity(full_name="Ifeoma  Adébáyọ̀-Okafor", dob=DOB)
    values = bulk.seal_values(uuid.uuid4(), who, ident.keys())
    assert values["bi_name"] == ident.name_index("ifeoma adebayo-okafor")
    assert "bi_name" in bulk.PERSON_PREPARED  # the bulk writer stores it
