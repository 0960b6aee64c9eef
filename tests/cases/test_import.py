"""Bulk import: the exact per-row report, all-or-nothing, duplicates, linking, the doors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dr_panel import counters
from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.cases import bulk, imports, services
from dr_panel.cases.bulk import FileRefused, Importer, Mode, Problem, import_csv
from dr_panel.cases.models import Case, MatchStatus, Person, RetiredReference, case_substances
from dr_panel.cases.services import reference_key
from dr_panel.cli import main
from dr_panel.counters import Counter
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from dr_panel.reference.models import Area

# Made-up people; NHS numbers from the 999 test range, valid check digits.
ANNA = ("Anna Quillfeather", "1984-02-29", "9990000018")
BEN = ("Ben Marrowby", "1979-11-05", "9990000026")
CARA = ("Cara Thistlewood", "1991-07-14", "")
DEV = ("Dev Ormsgill", "1970-01-31", "9990000034")


def row(person: tuple[str, str, str] = ANNA, **changes: str) -> dict[str, str]:
    name, dob, nhs = person
    data = {
        "case_type": "nfo",
        "area": "E06000009",
        "notified_on": "2026-05-04",
        "event_date": "2026-05-03",
        "setting": "street",
        "substances": "heroin;crack",
        "naloxone_given": "yes",
        "naloxone_by": "ambulance",
        "nfo_outcome": "conveyed",
        "full_name": name,
        "date_of_birth": dob,
        "nhs_number": nhs,
        "address": "Flat 2, 14 Example Road",
        "postcode": "FY1 3AB",
    }
    data.update(changes)
    return data


def csv_bytes(
    rows: list[dict[str, str]], columns: list[str] | None = None, bom: bool = False
) -> bytes:
    columns = columns or list(services.FIELDS)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8")


def run(data: bytes, user: Any, mode: Mode = Mode.ALL_OR_NOTHING, **kwargs: Any) -> Any:
    if kwargs:
        rows = bulk.CsvRows(io.BytesIO(data))
        result = Importer(by=user, mode=mode, **kwargs).run(rows)
        rows.close()
    else:
        result = import_csv(io.BytesIO(data), by=user, mode=mode)
    db.session.commit()
    return result


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def create(user: Any, data: dict[str, str]) -> Case:
    n, errors = services.parse_notification(
        data, lookups=services.Lookups(), allowed_areas=user.area_ids
    )
    assert n is not None, errors
    case = services.create_notification(n, by=user)
    db.session.commit()
    return case


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009",))


# The file of the test: good rows and bad rows.
MIXED = [
    row(ANNA),  # row 2: good
    row(BEN, nhs_number="999 000 0027", event_date="14/13/2026"),  # row 3: two problems
    row(CARA, setting="park"),  # row 4
    row(DEV, area="E10000017", full_name=""),  # row 5: not my area, no name
    row(BEN),  # row 6: good
    row(ANNA),  # row 7: repeats row 2
]
DATE_FORMAT = "Date of the event: write the date as YYYY-MM-DD (or DD/MM/YYYY), like 2026-03-14."
CHECK_DIGIT = "This NHS number's check digit is wrong: check it for a mistyped digit."
SETTINGS = "Setting: use one of home, hostel, street, custody, hospital, prison, other."
MIXED_REPORT = [
    Problem(3, "event_date", DATE_FORMAT),
    Problem(3, "nhs_number", CHECK_DIGIT),
    Problem(4, "setting", SETTINGS),
    Problem(
        5,
        "area",
        "Area E10000017 is not one of your areas. Use the ONS code of an area you work in.",
    ),
    Problem(5, "full_name", "Enter the person's full name, as far as it is known."),
    Problem(
        7,
        None,
        "Duplicate of row 2 of this file: the same person's non-fatal overdose on 2026-05-03. "
        "Remove one of the two rows.",
    ),
]


def test_a_file_with_good_and_bad_rows_gives_the_exact_report_and_saves_nothing(
    app: Any, coordinator: Any
) -> None:
    result = run(csv_bytes(MIXED), coordinator)

    assert result.problems == MIXED_REPORT
    assert (result.rows, result.rejected, result.duplicates) == (6, 4, 1)
    assert not result.saved and result.imported == 0
    assert count(Case) == 0 and count(Person) == 0 and count(case_substances) == 0
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "cases.imported")
    ).one()
    assert entry.outcome is Outcome.FAILURE
    assert json.loads(entry.details) == {
        "source": "cli", "mode": "all-or-nothing", "rows": 6, "imported": 0, "rejected": 4,
        "duplicates": 1, "linked": 0, "suggested": 0,
    }  # fmt: skip


def test_valid_rows_mode_saves_the_good_rows_and_reports_the_same_problems(
    app: Any, coordinator: Any
) -> None:
    result = run(csv_bytes(MIXED), coordinator, Mode.VALID_ROWS)

    assert result.problems == MIXED_REPORT
    assert result.saved and (result.imported, result.rejected) == (2, 4)
    cases = db.session.scalars(select(Case).order_by(Case.id)).all()
    assert [c.reference for c in cases] == ["NFO-2026-0001", "NFO-2026-0002"]
    assert [ident.unseal(c.person).full_name for c in cases] == [ANNA[0], BEN[0]]
    assert [s.code for s in cases[0].substances] == ["crack", "heroin"]
    assert cases[0].created_by_id == coordinator.id and cases[0].version == 1
    assert cases[0].age_at_event == 42 and cases[0].age_band == "35-44"
    assert cases[0].postcode_district == "FY1"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "cases.imported")
    ).one()
    assert entry.outcome is Outcome.SUCCESS and entry.actor_uuid == coordinator.uuid
    details = json.loads(entry.details)
    assert (details["imported"], details["rejected"], details["mode"]) == (2, 4, "valid-rows")
    # One entry for the import, none per case; no identifier in it.
    actions = db.session.scalars(select(AuditEntry.action)).all()
    assert "case.created" not in actions
    for value in (*ANNA, *BEN, "Example Road", "FY1 3AB"):
        assert value not in (entry.details or "")


def test_rows_in_memory_do_not_show_identifiers() -> None:
    rows = list(bulk.CsvRows(io.BytesIO(csv_bytes([row(ANNA)]))))
    assert repr(rows) == "[<SourceRow 2>]"


def test_imported_people_are_sealed_like_the_form_does_and_found_again(
    app: Any, coordinator: Any
) -> None:
    run(csv_bytes([row(ANNA, nhs_number="999 000 0018")]), coordinator)
    person = db.session.scalars(select(Person)).one()
    who = ident.unseal(person)
    assert (who.full_name, who.dob.isoformat(), who.nhs_number) == (ANNA[0], ANNA[1], ANNA[2])
    assert (who.address, who.postcode) == ("Flat 2, 14 Example Road", "FY1 3AB")
    assert person.bi_nhs == ident.nhs_index(ANNA[2])
    assert person.bi_name_dob == ident.name_dob_index(ANNA[0], who.dob)
    assert ANNA[0] not in person.name_enc and ANNA[2] not in (person.nhs_number_enc or "")
    assert person.created_at.tzinfo is not None
    match = services.find_match(ident.Identity(full_name="", nhs_number=ANNA[2]))
    assert match.status is MatchStatus.LINKED and match.person.id == person.id


# -- duplicates and linking -----------------------------------------------------------------------


def test_a_case_already_held_is_a_duplicate_naming_its_reference(
    app: Any, coordinator: Any
) -> None:
    held = create(coordinator, row(ANNA))
    result = run(
        csv_bytes([row(ANNA), row(ANNA, case_type="death", nfo_outcome="", setting="home")]),
        coordinator,
        Mode.VALID_ROWS,
    )
    assert result.problems == [
        Problem(
            2,
            None,
            f"Duplicate: this person's non-fatal overdose on 2026-05-03 is already case "
            f"{held.reference}. Remove the row, or update that case instead.",
        )
    ]
    death = db.session.scalars(select(Case).where(Case.case_type == "death")).one()
    assert death.person_id == held.person_id and death.match_status is MatchStatus.LINKED


def test_a_duplicate_in_another_area_is_refused_without_naming_it(
    app: Any, create_user: Any, coordinator: Any
) -> None:
    other = create_user(Role.COORDINATOR, areas=("E06000008",))
    held = create(other, row(ANNA, area="E06000008"))
    result = run(csv_bytes([row(ANNA)]), coordinator)
    assert [p.message for p in result.problems] == [
        "Duplicate: this person's non-fatal overdose on 2026-05-03 is already notified in an "
        "area you do not work in. Remove the row, and ask that area's coordinator if it needs "
        "changing."
    ]
    assert held.reference not in result.problems[0].message


def test_without_nhs_numbers_the_same_surname_and_birth_date_on_the_same_day_is_a_duplicate(
    app: Any, coordinator: Any
) -> None:
    result = run(csv_bytes([row(CARA), row(CARA, full_name="C. Thistlewood")]), coordinator)
    assert [(p.row, p.column) for p in result.problems] == [(3, None)]
    assert "Duplicate of row 2" in result.problems[0].message


def test_rows_link_like_the_intake_form_links(app: Any, coordinator: Any) -> None:
    """The same notifications, one by one through create_notification and as one file, give
    the same links and suggestions."""
    sequence = [
        row(ANNA),
        row(ANNA, event_date="2026-05-10", notified_on="2026-05-10"),  # linked to row 2
        row(ANNA, date_of_birth="1984-03-01", event_date="2026-05-11", notified_on="2026-05-11"),
        row(CARA),
        row(CARA, event_date="2026-05-12", notified_on="2026-05-12"),  # same name/dob: suggested
        row(BEN),
        row(BEN, full_name="Ben Marrowby-Hale", event_date="2026-05-13", notified_on="2026-05-13"),
    ]  # fmt: skip

    def shape() -> list[tuple[Any, ...]]:
        cases = db.session.scalars(select(Case).order_by(Case.id)).all()
        first_case_of: dict[int, int] = {}
        out = []
        for i, c in enumerate(cases):
            first_case_of.setdefault(c.person_id, i)
            suggested = first_case_of.get(c.suggested_person_id) if c.suggested_person_id else None
            out.append((first_case_of[c.person_id], c.match_status, suggested, c.reference))
        return out

    for data in sequence:
        create(coordinator, data)
    by_form = shape()
    db.session.execute(case_substances.delete())
    db.session.execute(Case.__table__.delete())
    db.session.execute(Person.__table__.delete())
    db.session.execute(Counter.__table__.delete())  # numbering starts again, as on a new database
    db.session.commit()

    result = run(csv_bytes(sequence), coordinator, batch_rows=3)
    assert result.problems == []
    assert shape() == by_form
    assert [s for _, s, _, _ in by_form] == [
        MatchStatus.NONE, MatchStatus.LINKED, MatchStatus.SUGGESTED, MatchStatus.NONE,
        MatchStatus.SUGGESTED, MatchStatus.NONE, MatchStatus.LINKED,
    ]  # fmt: skip
    assert (result.linked, result.suggested) == (2, 2)


def test_a_row_links_to_a_person_held_before_the_import(app: Any, coordinator: Any) -> None:
    held = create(coordinator, row(DEV))
    run(csv_bytes([row(DEV, event_date="2026-06-01", notified_on="2026-06-02")]), coordinator)
    new = db.session.scalars(select(Case).order_by(Case.id.desc())).first()
    assert new.person_id == held.person_id and new.match_status is MatchStatus.LINKED
    assert count(Person) == 1


@pytest.mark.parametrize("batch_rows", [1, 2, 1000])
def test_batches_do_not_change_the_outcome(app: Any, coordinator: Any, batch_rows: int) -> None:
    rows = [
        row(ANNA),
        row(BEN),
        row(ANNA),
        row(ANNA, event_date="2026-05-09", notified_on="2026-05-09"),
        row(BEN),
    ]
    result = run(csv_bytes(rows), coordinator, Mode.VALID_ROWS, batch_rows=batch_rows)
    assert [(p.row, p.message.split(":")[0]) for p in result.problems] == [
        (4, "Duplicate of row 2 of this file"),
        (6, "Duplicate of row 3 of this file"),
    ]
    assert count(Person) == 2 and count(Case) == 3


def test_worker_processes_give_the_same_result(app: Any, coordinator: Any) -> None:
    people = [(ANNA, "street"), (BEN, "park"), (CARA, "street"), (ANNA, "street"), (DEV, "home")]
    rows = [
        row(who, setting=setting, event_date=f"2026-04-0{day}")
        for day in (1, 2, 3)
        for who, setting in people
    ]
    result = run(csv_bytes(rows), coordinator, Mode.VALID_ROWS, batch_rows=4, workers=2)
    assert [(p.row, p.column) for p in result.problems] == [
        (3, "setting"), (5, None), (8, "setting"), (10, None), (13, "setting"), (15, None),
    ]  # fmt: skip
    assert (result.imported, result.linked, result.suggested) == (9, 4, 2)
    assert count(Person) == 5  # a repeat without an NHS number is a suggestion, not a link
    who = {ident.unseal(p).full_name for p in db.session.scalars(select(Person))}
    assert who == {ANNA[0], CARA[0], DEV[0]}


def test_references_continue_the_area_sequence_numerically(app: Any, coordinator: Any) -> None:
    first = create(coordinator, row(BEN))
    assert first.reference == "NFO-2026-0001"
    first.reference = "NFO-2026-9999"
    counters.set_last(*reference_key(first.area_id, first.case_type, 2026), 9999)
    db.session.commit()
    run(
        csv_bytes([row(ANNA), row(DEV), row(CARA, case_type="death", nfo_outcome="")]),
        coordinator,
    )
    refs = db.session.scalars(select(Case.reference).order_by(Case.id)).all()
    assert refs == ["NFO-2026-9999", "NFO-2026-10000", "NFO-2026-10001", "DRD-2026-0001"]


def test_an_import_skips_references_retired_by_cases_that_moved(
    app: Any, coordinator: Any
) -> None:
    area = db.session.scalar(select(Area).where(Area.ons_code == "E06000009"))
    db.session.add(RetiredReference(area_id=area.id, reference="NFO-2026-0007"))
    db.session.commit()
    run(csv_bytes([row(ANNA), row(DEV)]), coordinator)
    refs = db.session.scalars(select(Case.reference).order_by(Case.id)).all()
    assert refs == ["NFO-2026-0008", "NFO-2026-0009"]


# -- reading the file -----------------------------------------------------------------------------


def test_header_problems_refuse_the_file_naming_the_columns(app: Any, coordinator: Any) -> None:
    data = csv_bytes([row()], columns=["case_type", "area", "event_date", "nickname", "setting"])
    with pytest.raises(FileRefused) as err:
        run(data, coordinator)
    assert str(err.value) == (
        "Unknown column: nickname. Use the column names of the template. "
        "Missing required column: full_name."
    )
    assert "cases.imported" not in db.session.scalars(select(AuditEntry.action)).all()


def test_a_file_without_a_header_is_refused_without_quoting_it(app: Any, coordinator: Any) -> None:
    data = csv_bytes([row()]).split(b"\r\n", 1)[1]
    with pytest.raises(FileRefused) as err:
        run(data, coordinator)
    assert "not the header" in str(err.value)
    assert ANNA[0] not in str(err.value) and ANNA[2] not in str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"case_type;area;event_date;setting;full_name\r\n", "separated by semicolons"),
        (
            ",".join(services.FIELDS).encode() + "\r\nnfo,Bl\u00e4ckpool".encode("latin-1"),
            "not UTF-8",
        ),
        (csv_bytes([]), "no rows to import"),
    ],
)
def test_unreadable_files_are_refused(
    app: Any, coordinator: Any, data: bytes, message: str
) -> None:
    with pytest.raises(FileRefused) as err:
        run(data, coordinator)
    assert message in str(err.value)
    assert count(Case) == 0


def test_bom_quoted_cells_and_column_order_are_accepted(app: Any, coordinator: Any) -> None:
    columns = ["full_name", "event_date", "setting", "area", "case_type", "substances", "address"]
    data = csv_bytes([row(CARA, substances="heroin, cocaine")], columns=columns, bom=True)
    result = run(data, coordinator)
    assert result.saved and result.problems == []
    case = db.session.scalars(select(Case)).one()
    assert sorted(s.code for s in case.substances) == ["cocaine", "heroin"]
    assert ident.unseal(case.person).address == "Flat 2, 14 Example Road"


def test_row_numbers_are_the_spreadsheet_rows(app: Any, coordinator: Any) -> None:
    """Blank rows keep their number; a quoted line break does not start a new row; a row with
    the wrong number of values is refused whole, since its columns have shifted."""
    header = ",".join(services.FIELDS)
    good = csv_bytes([row(ANNA, address="1 Long Lane\nBlackpool")]).split(b"\r\n", 1)[1]
    shifted = (
        csv_bytes([row(BEN, address="")]).split(b"\r\n", 1)[1].replace(b",,FY1", b",3, Lane,FY1")
    )
    data = header.encode() + b"\r\n\r\n" + good + b",,,,\r\n" + shifted + b"nfo,E06000009\r\n"
    result = run(data, coordinator, Mode.VALID_ROWS)
    width = len(services.FIELDS)
    assert result.problems == [
        Problem(5, None, f"This row has {width + 1} values but the header has {width} columns. "
                "A value containing a comma or a line break must be in double quotes."),
        Problem(6, None, f"This row has 2 values but the header has {width} columns. "
                "A value containing a comma or a line break must be in double quotes."),
    ]  # fmt: skip
    assert result.imported == 1 and result.rows == 3


# -- the command line -----------------------------------------------------------------------------


def test_cli_all_or_nothing_prints_every_problem_and_exits_1(
    app: Any, runner: Any, coordinator: Any, tmp_path: Path
) -> None:
    path = tmp_path / "notifications.csv"
    path.write_bytes(csv_bytes(MIXED))
    result = runner.invoke(main, ["import", "cases", str(path), "--as", coordinator.email])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"Row 3, event_date: {DATE_FORMAT}",
        f"Row 3, nhs_number: {CHECK_DIGIT}",
        f"Row 4, setting: {SETTINGS}",
    ]
    assert lines[-2].startswith("Row 7: Duplicate of row 2 of this file")
    assert lines[-1] == (
        "Nothing was imported: 4 of 6 rows have problems (see above). Fix them and import the "
        "whole file again, or use --mode valid-rows to import the 2 good rows."
    )
    for value in (ANNA[0], BEN[0], "9990000018", "Example Road"):
        assert value not in result.output
    assert count(Case) == 0


def test_cli_valid_rows(app: Any, runner: Any, coordinator: Any, tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes(csv_bytes(MIXED))
    result = runner.invoke(
        main, ["import", "cases", str(path), "--as", coordinator.email, "--mode", "valid-rows"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "Imported 2 of 6 rows. 4 rows were rejected: see above."
    )
    assert count(Case) == 2


def test_cli_runs_only_for_an_enabled_coordinator(
    app: Any, runner: Any, create_user: Any, tmp_path: Path
) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes(csv_bytes([row()]))
    member = create_user(Role.PANEL_MEMBER)
    for email in (member.email, "nobody@example.org"):
        result = runner.invoke(main, ["import", "cases", str(path), "--as", email])
        assert result.exit_code == 1
        assert "is not an enabled coordinator's account" in result.output
    assert count(Case) == 0


def test_cli_refuses_a_bad_header_with_its_message(
    app: Any, runner: Any, coordinator: Any, tmp_path: Path
) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes(b"case_type,area,setting\r\nnfo,E06000009,home\r\n")
    result = runner.invoke(main, ["import", "cases", str(path), "--as", coordinator.email])
    assert result.exit_code == 1
    assert "Missing required columns: event_date, full_name." in result.output


# -- the upload page ------------------------------------------------------------------------------


def test_the_page_documents_every_column_and_offers_the_template(
    app: Any, client: Any, login: Any, coordinator: Any
) -> None:
    login(client, coordinator)
    page = client.get("/cases/import/").get_data(as_text=True)
    for name in services.FIELDS:
        assert f"<code>{name}</code>" in page
    assert "<code>treated_at_scene</code>" in page and "<code>nitazenes</code>" in page
    assert 'href="/cases/import/template.csv"' in page
    assert 'enctype="multipart/form-data"' in page


def test_the_template_is_the_format_with_one_valid_synthetic_row(
    app: Any, client: Any, login: Any, coordinator: Any
) -> None:
    login(client, coordinator)
    response = client.get("/cases/import/template.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.data
    assert body.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert list(rows[0]) == list(services.FIELDS) and len(rows) == 1
    nhs = ident.nhs_digits(rows[0]["nhs_number"])
    assert nhs.startswith("999") and ident.nhs_number_problem(nhs) is None
    result = run(body, coordinator)
    assert result.saved and result.imported == 1


def test_uploading_shows_the_report_without_identifiers(
    app: Any, client: Any, login: Any, coordinator: Any
) -> None:
    login(client, coordinator)
    response = client.post(
        "/cases/import/",
        data={"file": (io.BytesIO(csv_bytes(MIXED)), "names.csv"), "mode": "all-or-nothing"},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Nothing was imported" in page and "no row was imported" in page
    assert page.count("<td>3</td>") == 2 and "Whole row" in page
    assert "This NHS number&#39;s check digit is wrong" in page
    for value in (
        ANNA[0],
        BEN[0],
        DEV[0],
        "9990000018",
        "999 000 0027",
        "Example Road",
        "names.csv",
    ):
        assert value not in page
    assert count(Case) == 0

    response = client.post(
        "/cases/import/",
        data={"file": (io.BytesIO(csv_bytes(MIXED)), "n.csv"), "mode": "valid-rows"},
        content_type="multipart/form-data",
    )
    assert "Imported 2 of 6 rows" in response.get_data(as_text=True)
    assert count(Case) == 2
    entry = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "cases.imported")
        .order_by(AuditEntry.seq.desc())
    ).first()
    assert json.loads(entry.details)["source"] == "upload"


def test_upload_refusals_are_on_the_form(
    app: Any, client: Any, login: Any, coordinator: Any
) -> None:
    login(client, coordinator)
    response = client.post("/cases/import/", data={"mode": "valid-rows"})
    assert "Choose the CSV file to import." in response.get_data(as_text=True)
    response = client.post(
        "/cases/import/",
        data={"file": (io.BytesIO(b"name,dob\r\nx,y\r\n"), "n.csv"), "mode": "valid-rows"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "The first row is not the header" in response.get_data(as_text=True)


def test_an_upload_over_the_limit_is_refused_unread(
    app: Any, client: Any, login: Any, coordinator: Any, monkeypatch: Any
) -> None:
    # A small limit for the test (the real one is 20 MB); werkzeug's test client spools
    # bodies over 500 KB to a temporary file it never closes.
    monkeypatch.setattr(imports, "MAX_UPLOAD_BYTES", 256 * 1024)
    monkeypatch.setattr(imports, "MAX_REQUEST_BYTES", 256 * 1024 + 1024)
    login(client, coordinator)
    big = csv_bytes([row()]) + b"\r\n" * (200 * 1024)
    response = client.post(
        "/cases/import/",
        data={"file": (io.BytesIO(big), "n.csv"), "mode": "valid-rows"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "The file is larger than 0.25 MB" in response.get_data(as_text=True)
    assert count(Case) == 0
