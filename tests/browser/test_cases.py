"""Case intake in the browser: recording a notification, seeing who it is about only with a reason,
linking a person's events, partners notifying, area limits, and the bulk import page."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from dr_panel.auth.models import Role
from tests.browser.conftest import LiveApp, Pages, Person, screenshot, sign_in

BLACKPOOL = "Blackpool (E06000009)"
BLACKBURN = "Blackburn with Darwen (E06000008)"
NAME = "Siân O'Brien-Smith"
DOB = "1988-06-01"  # 35-44 on any event date from mid-2023 to mid-2033
AGE_BAND = "35-44"
NHS = "999 000 0018"  # the 999 range is never issued to a patient
REASON = "Checking our records before the panel meeting."
TODAY = datetime.now(UTC).date()  # the app dates notifications in UTC
YEAR = TODAY.year


def days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def days_ago_label(n: int) -> str:
    return (TODAY - timedelta(days=n)).strftime("%d %b %Y")


def h1(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def status(page: Page) -> Locator:
    return page.get_by_role("status")


def after_heading(page: Page, heading: str) -> Locator:
    """The element right under a heading (the list or table it introduces)."""
    return page.get_by_role("heading", name=heading).locator("xpath=following-sibling::*[1]")


def summary_value(page: Page, term: str) -> Locator:
    """The value shown next to a term in a summary list ("Age band" -> "35-44")."""
    return (
        page.get_by_role("main")
        .locator("dt", has_text=re.compile(f"^{re.escape(term)}$"))
        .locator("xpath=following-sibling::dd[1]")
    )


def nav_link(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def expect_anonymous(page: Page) -> None:
    """Nothing on the page says who the person is."""
    body = page.locator("body")
    for text in (
        "Siân",
        "Sian",
        "O'Brien",
        "O'BRIEN",
        NHS,
        NHS.replace(" ", ""),
        "FY1 3AB",
        "1988",
    ):
        expect(body).not_to_contain_text(text)
    expect(page.get_by_role("heading", name="Who this is", exact=True)).to_have_count(0)


def fill_notification(
    page: Page,
    *,
    case_type: str = "Non-fatal overdose",
    area: str = BLACKPOOL,
    event_date: str | None = None,
    setting: str = "Street / public place",
    substances: tuple[str, ...] = ("Heroin",),
    naloxone: bool = False,
    outcome: str | None = "Conveyed to hospital",
    name: str = NAME,
    dob: str | None = DOB,
    nhs: str | None = NHS,
    postcode: str | None = None,
) -> None:
    """Fill in the notification form (full or short) as a person would."""
    page.get_by_label("Type", exact=True).select_option(label=case_type)
    page.get_by_label("Area", exact=True).select_option(label=area)
    page.get_by_label("Date of the event").fill(event_date or days_ago(3))
    page.get_by_label("Setting", exact=True).select_option(label=setting)
    taken = page.get_by_role("group", name="Suspected substances")
    for substance in substances:
        taken.get_by_label(substance, exact=True).check()
    if naloxone:
        page.get_by_label("Naloxone given", exact=True).select_option(label="Yes")
        page.get_by_label("Naloxone given by").select_option(label="Ambulance")
        page.get_by_label("Naloxone doses").fill("2")
    if outcome:
        page.get_by_label("Outcome", exact=True).select_option(label=outcome)
    page.get_by_label("Full name").fill(name)
    if dob:
        page.get_by_label("Date of birth").fill(dob)
    if nhs:
        page.get_by_label("NHS number").fill(nhs)
    if postcode:
        page.get_by_label("Postcode").fill(postcode)


def record_notification(page: Page, live: LiveApp, **values: object) -> str:
    """Record one notification from the full form; returns the saved case's address."""
    page.goto(f"{live.url}/cases/new")
    expect(h1(page)).to_have_text("Record a notification")
    fill_notification(page, **values)  # type: ignore[arg-type]
    page.get_by_role("button", name="Save notification").click()
    expect(status(page)).to_contain_text("saved.")
    return page.url


def coordinator(live: LiveApp) -> Person:
    return live.add_user(Role.COORDINATOR, name="Dana Fielding", areas=("E06000009", "E06000008"))


# -- 1. recording a notification; the case pseudonymised, then revealed --------------------------


@pytest.mark.browser
def test_coordinator_records_an_overdose_and_sees_who_it_is_only_with_a_reason(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = coordinator(live)
    page = pages.new()
    sign_in(page, live, dana)
    expect(h1(page)).to_have_text("Hello, Dana Fielding")
    page.get_by_role("main").get_by_role("link", name="Record a notification").click()
    expect(h1(page)).to_have_text("Record a notification")

    # Sent empty: each required answer is listed, and each link leads to its field.
    page.get_by_role("button", name="Save notification").click()
    summary = page.get_by_role("alert", name="There is a problem")
    expect(summary).to_be_focused()
    required = {
        "Type": (
            "Choose the type of event: a death or a non-fatal overdose (in a file: death or nfo)."
        ),
        "Area": "Choose the area (in a file: its ONS code, like E06000009).",
        "Date of the event": "Enter the date of the event (or the date found), like 2026-03-14.",
        "Setting": "Choose where it happened.",
        "Full name": "Enter the person's full name, as far as it is known.",
    }
    expect(summary.get_by_role("listitem")).to_have_count(len(required))
    expect(summary.get_by_role("link")).to_have_text(list(required.values()))
    screenshot(page, "case-form-errors")
    for label, message in required.items():
        field = page.get_by_label(label, exact=True)
        expect(field).to_have_attribute("aria-invalid", "true")
        summary.get_by_role("link", name=message).click()
        expect(field).to_be_focused()
    expect(page.locator("body")).not_to_contain_text("saved.")

    fill_notification(
        page, substances=("Heroin", "Crack cocaine"), naloxone=True, postcode="fy1 3ab"
    )
    screenshot(page, "case-form-filled")
    page.get_by_role("button", name="Save notification").click()

    reference = f"NFO-{YEAR}-0001"
    expect(status(page)).to_have_text(f"Notification {reference} saved.")
    expect(h1(page)).to_contain_text(reference)
    expect(h1(page)).to_contain_text("Non-fatal overdose")
    case_url = page.url
    expect(summary_value(page, "Area")).to_have_text(BLACKPOOL)
    expect(summary_value(page, "Setting")).to_have_text("Street / public place")
    expect(summary_value(page, "Suspected substances")).to_have_text("Crack cocaine, Heroin")
    expect(summary_value(page, "Naloxone")).to_have_text("Yes, by ambulance, 2 doses")
    expect(summary_value(page, "Outcome")).to_have_text("Conveyed to hospital")
    expect(summary_value(page, "Age band")).to_have_text(AGE_BAND)
    expect(summary_value(page, "Postcode district")).to_have_text("FY1")
    expect_anonymous(page)
    screenshot(page, "case-pseudonymised")

    # Asking without a reason is refused, and still shows no one.
    page.get_by_text("See who this is", exact=True).click()
    reason = page.get_by_role("textbox", name=re.compile(r"^Why do you need to see who this"))
    expect(reason).to_be_visible()
    page.get_by_role("button", name="Show who this is").click()
    summary = page.get_by_role("alert", name="There is a problem")
    expect(summary).to_contain_text("Say why you need to see who this is")
    expect(reason).to_be_visible()
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect_anonymous(page)

    reason.fill(REASON)
    page.get_by_role("button", name="Show who this is").click()
    expect(page.get_by_role("heading", name="Who this is")).to_be_visible()
    expect(page.get_by_test_id("full-name")).to_have_text(NAME)
    expect(summary_value(page, "NHS number")).to_have_text(NHS)
    expect(summary_value(page, "Date of birth")).to_have_text("1 June 1988")
    expect(summary_value(page, "Postcode")).to_have_text("FY1 3AB")
    expect(page.get_by_role("alert", name="There is a problem")).to_have_count(0)
    screenshot(page, "case-revealed")

    # Coming back to the case: pseudonymised again.
    page.goto(case_url)
    expect(h1(page)).to_contain_text(reference)
    expect(page.get_by_text("See who this is", exact=True)).to_be_visible()
    expect_anonymous(page)

    nav_link(page, "Cases").click()
    expect(h1(page)).to_have_text("Cases")
    table = page.get_by_role("table", name="Cases")
    row = table.get_by_role("row").filter(has=page.get_by_role("link", name=reference))
    expect(row).to_have_count(1)
    expect(row.get_by_role("cell")).to_have_text(
        [
            reference,
            "NFO",
            (TODAY - timedelta(days=3)).strftime("%d %b %Y"),
            "Blackpool",
            AGE_BAND,
            "FY1",
            "Crack cocaine, Heroin",
            re.compile(r"^Notified"),
        ]
    )
    expect_anonymous(page)
    screenshot(page, "case-list")

    page.get_by_label("Type", exact=True).select_option(label="Suspected drug-related death")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_label("Type", exact=True)).to_have_value("death")
    expect(table.get_by_role("link", name=reference)).to_have_count(0)
    expect(table).to_contain_text("No cases match these filters.")
    assert pages.csp_errors() == []


# -- 2. linking a person's events --------------------------------------------------------------


@pytest.mark.browser
def test_events_for_one_person_are_linked_or_offered_as_a_possible_match(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = coordinator(live)
    page = pages.new()
    sign_in(page, live, dana)
    expect(h1(page)).to_have_text("Hello, Dana Fielding")
    first, second, third = (f"NFO-{YEAR}-000{n}" for n in (1, 2, 3))
    record_notification(page, live, event_date=days_ago(3), postcode="FY1 3AB")

    # The same NHS number and date of birth, the name typed differently: the same person.
    record_notification(
        page, live, event_date=days_ago(40), name="SIAN O'BRIEN-SMITH", substances=("Methadone",)
    )
    expect(status(page)).to_have_text(
        f"Notification {second} saved. It is linked to a person already known "
        "(same NHS number and details)."
    )
    events = after_heading(page, "Every event known for this person").get_by_role("listitem")
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_contain_text(days_ago_label(40))
    expect(events.nth(0)).to_contain_text(second)
    expect(events.nth(0)).to_contain_text("(this case)")
    expect(events.nth(1)).to_contain_text(days_ago_label(3))
    expect(events.nth(1)).to_contain_text(first)
    expect(
        page.get_by_role("heading", name="Possible match with a person already known")
    ).to_have_count(0)
    expect_anonymous(page)

    # The same name and date of birth but no NHS number: the coordinator decides.
    record_notification(page, live, event_date=days_ago(1), nhs=None, substances=())
    expect(status(page)).to_have_text(
        f"Notification {third} saved. It may be about someone already known: confirm or reject "
        "the match below."
    )
    match = page.get_by_role("region", name="Possible match with a person already known")
    expect(match).to_be_visible()
    expect(match).to_contain_text("with 2 earlier events")
    events = after_heading(page, "Every event known for this person").get_by_role("listitem")
    expect(events).to_have_count(1)
    expect_anonymous(page)
    screenshot(page, "case-possible-match")

    match.get_by_role("button", name="Same person: link them").click()
    expect(status(page)).to_have_text("Match confirmed: the events are now under one person.")
    expect(
        page.get_by_role("heading", name="Possible match with a person already known")
    ).to_have_count(0)
    events = after_heading(page, "Every event known for this person").get_by_role("listitem")
    expect(events).to_have_count(3)
    for item, (ref, ago) in zip(
        [events.nth(i) for i in range(3)], [(second, 40), (first, 3), (third, 1)], strict=True
    ):
        expect(item).to_contain_text(ref)
        expect(item).to_contain_text(days_ago_label(ago))
    expect(events.nth(2)).to_contain_text("(this case)")
    assert pages.console_errors == []


# -- 3. a partner agency notifies ----------------------------------------------------------------


@pytest.mark.browser
def test_partner_notifies_the_panel_and_cannot_open_the_cases(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    robin = live.add_user(
        Role.AGENCY_CONTRIBUTOR, name="Robin Hale", agency="TREATMENT", areas=("E06000009",)
    )
    page = pages.new()
    sign_in(page, live, robin)
    expect(h1(page)).to_have_text("Hello, Robin Hale")
    expect(nav_link(page, "Cases")).to_have_count(0)

    nav_link(page, "Notify the panel").click()
    expect(h1(page)).to_have_text("Notify the panel of an overdose or death")
    # The short form: nothing about treatment, housing or the coroner.
    for absent in ("Treatment status", "Housing", "Coroner stage", "Notifying agency"):
        expect(page.get_by_label(absent, exact=True)).to_have_count(0)
    fill_notification(
        page,
        name="Jordan Example",
        dob="1979-02-11",
        nhs="999 000 0026",
        postcode="FY4 2DE",
        outcome="Treated at scene",
    )
    page.get_by_role("button", name="Save notification").click()

    expect(h1(page)).to_have_text("Notification received")
    expect(page.get_by_test_id("case-reference")).to_have_text(f"NFO-{YEAR}-0001")
    expect(page.get_by_role("main")).to_contain_text("The panel coordinator for Blackpool")
    expect(page.get_by_role("main")).not_to_contain_text("Jordan")
    screenshot(page, "partner-confirmation")

    page.goto(f"{live.url}/cases")
    expect(h1(page)).to_have_text("You do not have access to this")
    expect(page.get_by_role("table")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(f"NFO-{YEAR}-0001")
    assert pages.csp_errors() == []


# -- 4. a panel member sees only their areas ------------------------------------------------------


@pytest.mark.browser
def test_panel_member_sees_only_cases_in_their_own_area(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = coordinator(live)
    sam = live.add_user(Role.PANEL_MEMBER, name="Sam Okafor", agency="POLICE", areas=("E06000008",))
    desk = pages.new()
    sign_in(desk, live, dana)
    expect(h1(desk)).to_have_text("Hello, Dana Fielding")
    blackpool_case = record_notification(
        desk, live, case_type="Suspected drug-related death", setting="Home", outcome=None
    )
    record_notification(
        desk, live, area=BLACKBURN, name="Alex Testperson", dob="1990-03-03", nhs="999 000 0034"
    )

    page = pages.new()
    sign_in(page, live, sam)
    expect(h1(page)).to_have_text("Hello, Sam Okafor")
    page.goto(blackpool_case)
    expect(h1(page)).to_have_text("Page not found")
    expect(page.locator("body")).not_to_contain_text(f"DRD-{YEAR}-0001")

    nav_link(page, "Cases").click()
    expect(h1(page)).to_have_text("Cases")
    table = page.get_by_role("table", name="Cases")
    rows = table.locator("tbody").get_by_role("row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"NFO-{YEAR}-0001")
    expect(rows.first).to_contain_text("Blackburn with Darwen")
    expect(table).not_to_contain_text("Blackpool")
    expect(table).not_to_contain_text(f"DRD-{YEAR}-0001")
    expect(page.get_by_label("Area", exact=True).get_by_role("option")).to_have_text(
        ["All your areas", "Blackburn with Darwen"]
    )
    assert pages.csp_errors() == []


# -- 5. bulk import ------------------------------------------------------------------------------


def _import_page_works(page: Page, live: LiveApp) -> bool:
    response = page.goto(f"{live.url}/cases/import/")
    return bool(
        response
        and response.ok
        and h1(page).text_content() == "Import notifications from a spreadsheet"
    )


def _upload(page: Page, path: Path, mode: str) -> None:
    page.get_by_label("CSV file").set_input_files(path)
    page.get_by_label(mode).check()
    page.get_by_role("button", name="Import").click()


@pytest.mark.browser
def test_coordinator_imports_a_spreadsheet_all_or_nothing_then_valid_rows(
    serve: Callable[..., LiveApp], pages: Pages, tmp_path: Path
) -> None:
    live = serve()
    dana = coordinator(live)
    page = pages.new()
    sign_in(page, live, dana)
    expect(h1(page)).to_have_text("Hello, Dana Fielding")
    if not _import_page_works(page, live):
        pytest.skip("the bulk import upload page (/cases/import/) is not working yet")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the template").click()
    download = download_info.value
    assert download.suggested_filename == "dr-panel-import-template.csv"
    header = Path(download.path()).read_text(encoding="utf-8-sig").splitlines()[0]
    columns = header.split(",")
    assert columns[0] == "case_type"
    # The template's columns are the ones the page documents, in the same order.
    guide = after_heading(page, "The file format").locator(
        "xpath=following-sibling::div[1]//tbody/tr/td[1]"
    )
    expect(guide).to_have_text(columns)

    rows = [
        {
            "case_type": "nfo",
            "area": "E06000009",
            "event_date": days_ago(5),
            "setting": "street",
            "substances": "heroin;crack",
            "full_name": "Jamie Example",
            "date_of_birth": "1985-04-02",
            "nhs_number": "999 000 0042",
            "postcode": "FY1 1AA",
        },
        {
            "case_type": "nfo",
            "area": "E06000009",
            "event_date": days_ago(4),
            "setting": "home",
            "full_name": "Casey Sample",
            "date_of_birth": "1979-09-30",
            "nhs_number": "999 000 0012",
        },  # a mistyped check digit
        {
            "case_type": "death",
            "area": "E06000008",
            "event_date": days_ago(6),
            "setting": "hostel",
            "full_name": "Morgan Placeholder",
            "date_of_birth": "1970-12-12",
            "nhs_number": "999 000 0050",
        },
    ]
    upload = tmp_path / "notifications.csv"
    with upload.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    _upload(page, upload, "All or nothing: import no row unless every row is good")
    expect(page.get_by_role("heading", name="Nothing was imported")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(
        "1 of 3 rows has problems, so no row was imported."
    )
    report = page.get_by_role("table", name=re.compile("^Rows with problems"))
    problems = report.locator("tbody").get_by_role("row")
    expect(problems).to_have_count(1)
    expect(problems.get_by_role("cell").nth(0)).to_have_text("3")
    expect(problems.get_by_role("cell").nth(1)).to_contain_text("nhs_number")
    expect(problems.get_by_role("cell").nth(1)).to_contain_text("NHS number")
    expect(problems.get_by_role("cell").nth(2)).to_contain_text("check digit is wrong")
    expect(report).not_to_contain_text("Casey")
    screenshot(page, "import-report")

    nav_link(page, "Cases").click()
    expect(page.get_by_role("table", name="Cases")).to_contain_text("No cases match these filters.")

    page.goto(f"{live.url}/cases/import/")
    _upload(page, upload, "Valid rows: import the good rows, report the others")
    expect(page.get_by_role("heading", name="Import finished")).to_be_visible()
    expect(status(page)).to_contain_text("Imported 2 of 3 rows.")
    expect(status(page)).to_contain_text("1 row was rejected")
    expect(
        page.get_by_role("table", name=re.compile("^Rows with problems"))
        .locator("tbody")
        .get_by_role("row")
    ).to_have_count(1)
    screenshot(page, "import-report-valid-rows")

    nav_link(page, "Cases").click()
    table = page.get_by_role("table", name="Cases")
    expect(table.locator("tbody").get_by_role("row")).to_have_count(2)
    expect(table.get_by_role("link", name=f"NFO-{YEAR}-0001")).to_be_visible()
    expect(table.get_by_role("link", name=f"DRD-{YEAR}-0001")).to_be_visible()
    expect(table).not_to_contain_text(f"NFO-{YEAR}-0002")
    assert pages.csp_errors() == []
