"""The one identifier detector, attacked: look-alike spellings, split names, surnames beside an
age, addresses known only to the index; and what must keep passing. Also: the intake, bulk and
reindex doors fill its tokens; a stored match never changes what a pattern says."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dr_panel.alerts import leakgate
from dr_panel.auth.models import Role
from dr_panel.cases import bulk, services
from dr_panel.cases.models import Person
from dr_panel.extensions import db
from dr_panel.mail import services as mail
from dr_panel.privacy import detector
from dr_panel.privacy import identity as ident
from dr_panel.privacy.models import PersonToken
from dr_panel.privacy.normalise import normalise
from dr_panel.privacy.tokens import person_tokens
from tests.privacy.probes import PEOPLE, store_people

TODAY = date(2026, 12, 1)


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR)


@pytest.fixture
def stored(app: Flask, coordinator: Any) -> list[Any]:
    return store_people(coordinator)


def marked(fields: dict[str, str], findings: list[detector.Finding]) -> list[tuple[str, str]]:
    return [(fields[f.field][f.start : f.end], f.kind) for f in findings]


# -- normalising ----------------------------------------------------------------------------------


def test_normalising_keeps_a_map_back_to_what_was_typed() -> None:
    typed = "Zeb\u200bedee Qu\u0430rring\u00adton ＦＹ１"
    norm = normalise(typed)
    assert norm.text == "Zebedee Quarrington FY1"
    start = norm.text.index("Quarrington")
    s, e = norm.span(start, start + len("Quarrington"))
    assert typed[s:e] == "Qu\u0430rring\u00adton"
    assert normalise("Іvan").text == "Ivan"  # a capital stays a capital (the skeleton says "l")


def test_findings_point_at_the_original_spans(stored: list[Any]) -> None:
    fields = {"advice": "Ask Zеbеdее Quarring\u00adton-Vale (Cyrillic e, soft hyphen) or call "
              "07700\u200b900123."}  # fmt: skip
    assert marked(fields, leakgate.check_fields(fields)) == [
        ("Zеbеdее Quarring\u00adton-Vale", "name"), ("07700\u200b900123", "phone"),
    ]


# -- names ----------------------------------------------------------------------------------------


def test_a_name_split_over_two_fields_is_found_only_through_the_stored_layer(
    stored: list[Any],
) -> None:
    fields = {"title": "Tablets sold to Marigold", "advice": "Featherstonehaugh was unwell."}
    assert leakgate.check_fields(fields, stored=False) == []
    found = leakgate.check_fields(fields)
    assert marked(fields, found) == [("Marigold", "name"), ("Featherstonehaugh", "name")]
    assert all(f.stored and f.person_ids == {stored[1].person_id} for f in found)


def test_a_given_name_or_a_surname_alone_passes(stored: list[Any]) -> None:
    for text in ("Ottoline tablets were seen.", "Featherstonehaugh is a village name.",
                 "Brown powder, White tablets and Hill street, aged heroin.",
                 "Daniel, Sarah and James took them (the names here are made up)."):
        assert leakgate.check_fields({"advice": text}) == [], text


@pytest.mark.parametrize(
    "text",
    ["Mr Brown took them.", "Brown, aged 36, took them.", "Brown (36) took them.",
     "A 36-year-old, Brown, took them.", "mr brown took them.", "Brown on 3 November 2026."],
)
def test_a_stored_surname_beside_a_title_age_or_date_is_blocked(
    stored: list[Any], text: str
) -> None:
    found = [f for f in leakgate.check_fields({"advice": text}) if f.stored]
    assert [(text[f.start : f.end], f.kind) for f in found] == [
        (re.search("brown", text, re.I).group(0), "name")  # type: ignore[union-attr]
    ]
    assert found[0].person_ids == {stored[2].person_id}


def test_a_made_up_surname_beside_an_age_passes_unless_titled(stored: list[Any]) -> None:
    assert leakgate.check_fields({"advice": "Pemberton, aged 36, took them."}) == []
    assert [f.kind for f in leakgate.check_fields({"advice": "Mr Pemberton took them."})] == [
        "name"
    ]


def test_a_stored_match_never_changes_what_the_patterns_say(stored: list[Any]) -> None:
    """Drop the stored findings (as the public form does) and a stored person reads exactly like
    a made-up one; the stored findings themselves use the pattern's kind and words."""

    def shown(text: str) -> list[tuple[int, str, str]]:
        return [(f.start, f.kind, f.message) for f in leakgate.check_fields({"t": text})
                if not f.stored]  # fmt: skip

    real = "Mr Featherstonehaugh, aged 51, 9990000026, FY5 2BX, 7 Larkspur Road."
    fake = "Mr Fotherington-Thom, aged 51, 9990000034, FY5 2BY, 7 Larkspur Road."
    assert len(real) == len(fake)
    assert shown(real) == shown(fake)
    stored_findings = [f for f in leakgate.check_fields({"t": real}) if f.stored]
    assert {f.kind for f in stored_findings} == {"name", "nhs_number", "address"}
    for f in stored_findings:
        assert f.message == detector.KIND_MESSAGES[f.kind]


def test_messages_never_say_who_is_held_nor_name_settings_or_offsets() -> None:
    for message in detector.KIND_MESSAGES.values():
        for word in ("held", "stored", "dr-panel", "LEAK_GATE", "_", "character"):
            assert word not in message, (word, message)


def test_every_problem_of_a_field_is_reported(app: Flask) -> None:
    text = "Call 07700 900123 or write to a@example.org at 14 Acacia Avenue, FY1 1AA; 1/2/1980."
    kinds = [k for _, k in marked({"t": text}, leakgate.check_fields({"t": text}))]
    assert kinds == ["phone", "email", "address", "postcode", "date_of_birth"]


def test_a_finding_shows_no_person_id_nor_text(stored: list[Any]) -> None:
    [f] = leakgate.check_fields({"t": "Zebedee Quarrington-Vale"})
    assert f.person_ids and str(stored[0].person_id) not in repr(f).replace("end=", "")
    assert "person_ids" not in repr(f) and "Zebedee" not in repr(f)


def test_patterns_alone_need_no_application() -> None:
    """``stored=False`` is the pattern layer only: no app context, no database."""
    text = "Zebedee Quarrington-Vale, 999 000 0018"
    assert [(text[f.start : f.end], f.kind) for f in detector.detect({"t": text}, today=TODAY,
            stored=False)] == [("999 000 0018", "nhs_number")]  # fmt: skip


# -- addresses ------------------------------------------------------------------------------------


def test_an_address_without_a_street_word_is_found_through_the_index(stored: list[Any]) -> None:
    text = "Found at 7 Larkspur, near the shops."
    assert leakgate.check_fields({"t": text}, stored=False) == []
    [f] = leakgate.check_fields({"t": text})
    assert (text[f.start : f.end], f.kind, f.stored) == ("7 Larkspur", "address", True)
    assert f.person_ids == {stored[1].person_id}
    assert leakgate.check_fields({"t": "Found 8 Larkspur plants, 7 larks."}) == []


# -- the doors that fill the tokens ---------------------------------------------------------------


def tokens_of(person_id: int) -> set[tuple[str, int]]:
    return {(t.kind, t.bi) for t in db.session.scalars(
        select(PersonToken).where(PersonToken.person_id == person_id))}  # fmt: skip


def test_intake_fills_the_tokens_and_they_go_with_the_person(stored: list[Any]) -> None:
    person = stored[1].person
    who = ident.Identity(full_name=PEOPLE[1]["full_name"], address=PEOPLE[1]["address"])
    expected = set(person_tokens(who, ident.keys()))
    assert tokens_of(person.id) == expected
    assert {k for k, _ in expected} == {"pair", "surname", "address"}
    assert len([k for k, _ in expected if k == "pair"]) == 2  # Ottoline and Marigold
    pid = person.id
    for case in list(person.cases):
        db.session.delete(case)
    db.session.delete(person)
    db.session.commit()
    assert tokens_of(pid) == set()


def test_the_bulk_import_fills_the_tokens(app: Flask, coordinator: Any) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(services.FIELDS), extrasaction="ignore")
    writer.writeheader()
    base = {"case_type": "nfo", "area": "E06000009", "notified_on": "2026-05-04",
            "event_date": "2026-05-03", "setting": "street", "substances": "heroin"}  # fmt: skip
    writer.writerow({**base, "full_name": "Ismay Rutherglen", "address": "9 Quernmore, Lancaster"})
    writer.writerow({**base, "full_name": "Ismay Rutherglen", "event_date": "2026-05-09",
                     "notified_on": "2026-05-10"})  # the same person's second case  # fmt: skip
    writer.writerow({**base, "full_name": "Tobias Wenlock-Hart"})
    result = bulk.import_csv(io.BytesIO(out.getvalue().encode()), by=coordinator)
    db.session.commit()
    assert result.imported == 3
    count = db.session.scalar(select(func.count()).select_from(PersonToken))
    persons = db.session.scalars(select(Person).order_by(Person.id)).all()
    assert sum(len(tokens_of(p.id)) for p in persons) == count
    fields = {"title": "Ismay", "advice": "Rutherglen", "place": "9 Quernmore",
              "note": "Tobias Hart"}  # fmt: skip
    assert [(f.field, f.kind) for f in leakgate.check_fields(fields)] == [
        ("title", "name"), ("advice", "name"), ("place", "address"), ("note", "name"),
    ]


def test_reindex_resumes_after_an_interruption(stored: list[Any]) -> None:
    db.session.execute(db.delete(PersonToken))
    db.session.commit()
    assert leakgate.names_to_index() == len(PEOPLE)

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        leakgate.reindex_names(batch_size=2, progress=stop)
    db.session.rollback()
    assert leakgate.names_to_index() == len(PEOPLE) - 2  # the first batch was kept
    assert leakgate.reindex_names(batch_size=2) == len(PEOPLE) - 2
    assert leakgate.names_to_index() == 0
    assert leakgate.check_fields({"a": "Marigold", "b": "Featherstonehaugh"})


# -- the e-mail guard shares the pattern layer -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [("NHS 999.000.0018", "an NHS number"), ("at FY1 1\u0410\u0410", "a postcode"),
     ("born 01 02 1980", "full date"), ("call 07700 900123", "phone number"),
     ("14 Acacia Avenue", "home address"), ("Dear Mr Quarrington", "name")],
)
def test_the_mail_guard_refuses_the_new_forms(app: Flask, value: str, kind: str) -> None:
    with pytest.raises(mail.IdentifierInMail, match=kind):
        mail.check_no_identifiers("A request", value, recipient="x@example.org")


def test_the_mail_guard_names_every_kind_in_a_part(app: Flask) -> None:
    with pytest.raises(mail.IdentifierInMail) as refused:
        mail.check_no_identifiers("Hi", "FY1 1AA and 9990000018", recipient="x@example.org")
    assert refused.value.kinds == ["an NHS number", "a postcode"]
    mail.check_no_identifiers("Due 3 March 2026", "Talk to FRANK on 0300 123 6600.",
                              recipient="x@example.org")  # fmt: skip
