"""A panel month in the browser: a coordinator triages an overdose and asks an agency; the agency
answers; the case goes on a meeting's agenda; a panel member accepts the confidentiality statement
and reads the pseudonymised pack; the coordinator records minutes, attendance, findings and an
action, which the action tracker shows."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from dr_panel.auth.models import Role
from tests.browser.conftest import LiveApp, Pages, screenshot, sign_in
from tests.browser.test_cases import h1, nav_link, record_notification, status

NAME = "Siân O'Brien-Smith"
TODAY = datetime.now(UTC).date()
DUE = TODAY + timedelta(days=14)
MEETING_ON = TODAY + timedelta(days=5)
ACTION_DUE = TODAY + timedelta(days=30)
RISKS = "Left treatment in March; using alone since a recent bereavement."
CHRONOLOGY = "Jan: assessment, started on methadone.\nMarch: missed three appointments."
MINUTES = "The panel discussed the missed appointments and the gap after discharge."
ACTION_TEXT = "Offer naloxone and a follow-up call to everyone who misses two appointments."


def move_case(page: Page, step: str) -> None:
    page.get_by_label("Next step").select_option(label=step)
    page.get_by_role("button", name="Move the case").click()


@pytest.mark.browser
def test_a_case_goes_from_notification_through_the_panel_to_an_action(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = live.add_user(Role.COORDINATOR, name="Dana Fielding", areas=("E06000009",))
    casey = live.add_user(Role.AGENCY_CONTRIBUTOR, name="Casey Treatment", agency="TREATMENT")
    pat = live.add_user(Role.PANEL_MEMBER, name="Pat Constable", agency="POLICE")

    # -- the coordinator records, triages and asks the treatment service ---------------------
    coord = pages.new()
    sign_in(coord, live, dana)
    expect(h1(coord)).to_have_text("Hello, Dana Fielding")
    case_url = record_notification(coord, live)
    reference = f"NFO-{TODAY.year}-0001"
    expect(h1(coord)).to_contain_text(reference)
    move_case(coord, "Review at panel")
    expect(coord.get_by_role("heading", name="Status: Information gathering")).to_be_visible()

    # With nothing asked yet, "Ask agencies for information" is already open.
    expect(coord.locator("details", has_text="Ask agencies for information")).to_have_attribute(
        "open", ""
    )
    coord.get_by_label("Treatment service (TREATMENT)").check()
    coord.get_by_label("Answer by").fill(DUE.isoformat())
    coord.get_by_role("button", name="Send the requests").click()
    expect(status(coord).first).to_contain_text("Asked 1 agency")
    requests = coord.get_by_role("table", name="Requests to agencies")
    expect(requests).to_contain_text("Treatment service")
    expect(coord.get_by_text("0 of 1 agencies have answered.")).to_be_visible()
    screenshot(coord, "panel-case-workflow")

    # -- the contributor answers ----------------------------------------------------------------
    contrib = pages.new()
    sign_in(contrib, live, casey)
    nav_link(contrib, "Requests").click()
    expect(h1(contrib)).to_have_text("Information requests for Treatment service")
    contrib.get_by_role("link", name=reference).click()
    expect(h1(contrib)).to_have_text(f"Information request {reference}")
    expect(contrib.locator("body")).not_to_contain_text(NAME)
    contrib.get_by_role("button", name="Show the person's details").click()
    expect(contrib.get_by_role("heading", name="Who to look for in your records")).to_be_visible()
    expect(contrib.locator("section.identity")).to_contain_text(NAME)
    contrib.get_by_label("Was the person known to your agency?").select_option(label="Yes")
    contrib.get_by_label("How did they engage with your agency?").select_option("partly")
    contrib.get_by_label("Risks known to your agency").fill(RISKS)
    contrib.get_by_label("Chronology of contact").fill(CHRONOLOGY)
    screenshot(contrib, "panel-contributor-answer")
    contrib.get_by_role("button", name="Submit the return").click()
    expect(status(contrib).first).to_contain_text("Return submitted")
    expect(h1(contrib)).to_have_text("Information requests for Treatment service")
    expect(contrib.get_by_role("table")).to_contain_text("Returned")

    # -- the coordinator sees the answer and schedules the meeting ------------------------------
    coord.goto(case_url)
    expect(coord.get_by_text("1 of 1 agencies have answered.")).to_be_visible()
    move_case(coord, "Ready for panel")
    expect(coord.get_by_role("heading", name="Status: Ready for panel")).to_be_visible()

    nav_link(coord, "Meetings").click()
    coord.get_by_role("link", name="Schedule a meeting").click()
    coord.get_by_label("Area", exact=True).select_option(label="Blackpool")
    coord.get_by_label("Date", exact=True).fill(MEETING_ON.isoformat())
    coord.get_by_label("Where", exact=True).fill("Teams")
    coord.get_by_role("button", name="Schedule the meeting").click()
    expect(status(coord).first).to_contain_text("Meeting scheduled")
    meeting_url = coord.url
    coord.get_by_label(re.compile(f"^{reference}")).check()
    coord.get_by_role("button", name="Add to the agenda").click()
    expect(status(coord).first).to_contain_text("Agenda updated.")
    expect(coord.locator("ol.agenda")).to_contain_text(reference)
    coord.get_by_role("group", name="Invite members").get_by_label(
        re.compile("^Pat Constable")
    ).check()
    coord.get_by_role("button", name="Invite", exact=True).click()
    members = coord.get_by_role("table", name="Members")
    expect(members).to_contain_text("Pat Constable")
    expect(members).to_contain_text("Not yet")

    # -- the panel member accepts the statement and reads the pack ------------------------------
    member = pages.new()
    sign_in(member, live, pat)
    nav_link(member, "Meetings").click()
    member.get_by_role("link", name=MEETING_ON.strftime("%-d %B %Y")).click()
    expect(h1(member)).to_have_text("Before you see this meeting's cases")
    expect(member.locator("body")).not_to_contain_text(reference)
    screenshot(member, "panel-statement")
    member.get_by_label("I accept this statement for this meeting").check()
    member.get_by_role("button", name="Continue to the meeting").click()
    expect(h1(member)).to_contain_text("Panel meeting, Blackpool")
    expect(member.locator("ol.agenda")).to_contain_text(reference)
    member.get_by_role("link", name="Meeting pack", exact=True).click()
    expect(h1(member)).to_contain_text("Meeting pack")
    pack = member.get_by_role("main")
    expect(pack).to_contain_text(reference)
    expect(pack).to_contain_text(RISKS)
    for text in (NAME, "Siân", "O'Brien", "999 000 0018", "9990000018"):
        expect(member.locator("body")).not_to_contain_text(text)
    screenshot(member, "panel-meeting-pack")

    # -- the coordinator minutes the meeting and marks attendance --------------------------------
    coord.goto(meeting_url)
    expect(members).to_contain_text(re.compile(r"\d{4} \d\d:\d\d"))  # accepted, with a time
    coord.get_by_label(f"Minutes for {reference}").fill(MINUTES)
    coord.get_by_role("button", name="Save minutes").click()
    expect(status(coord).first).to_contain_text("Minutes saved.")
    expect(coord.get_by_label(f"Minutes for {reference}")).to_have_value(MINUTES)
    coord.get_by_label("Pat Constable present").check()
    coord.get_by_role("button", name="Save attendance").click()
    expect(status(coord).first).to_contain_text("Attendance recorded.")
    expect(coord.get_by_label("Pat Constable present")).to_be_checked()
    screenshot(coord, "panel-meeting")

    # -- findings, then the case is reviewed and gets an action ---------------------------------
    coord.goto(case_url)
    coord.get_by_role("link", name="Findings and learning").click()
    expect(h1(coord)).to_have_text(f"Findings and learning, {reference}")
    person = coord.get_by_role("group", name="A new factor: the person")
    person.get_by_label("Describe a new factor").fill("Disengaged from treatment after a loss.")
    person.get_by_label("Score").select_option(label="May have contributed")
    person.get_by_label("Modifiable").check()
    coord.get_by_label("Could this have been prevented?").select_option(
        label="Potentially preventable"
    )
    coord.get_by_label("A new learning point (optional)").fill(
        "Follow up quickly when someone misses appointments after a bereavement."
    )
    coord.get_by_label("Using alone").check()
    coord.get_by_role("button", name="Save the findings").click()
    expect(status(coord).first).to_contain_text("Findings saved.")
    expect(coord.locator("ul.factors")).to_contain_text("Disengaged from treatment after a loss.")
    expect(coord.locator("ul.learning-points")).to_contain_text("Using alone")
    expect(coord.get_by_role("main")).to_contain_text("Potentially preventable")
    screenshot(coord, "panel-findings")

    coord.get_by_role("link", name=f"Case {reference}").click()
    move_case(coord, "Reviewed at panel")
    expect(coord.get_by_role("heading", name="Status: Reviewed")).to_be_visible()
    coord.get_by_label("Owner agency").select_option(label="Treatment service (TREATMENT)")
    coord.get_by_label("The action", exact=True).fill(ACTION_TEXT)
    coord.get_by_label("Due by").fill(ACTION_DUE.isoformat())
    coord.get_by_role("button", name="Add the action").click()
    expect(status(coord).first).to_contain_text("Action added for Treatment service")
    expect(coord.get_by_role("table", name="Actions for this case")).to_contain_text(
        "Offer naloxone"
    )

    nav_link(coord, "Actions").click()
    expect(h1(coord)).to_have_text("Action tracker")
    tracker = coord.get_by_role("table", name="Actions for Treatment service")
    expect(tracker).to_contain_text(reference)
    expect(tracker).to_contain_text(ACTION_DUE.strftime("%-d %b %Y"))
    screenshot(coord, "panel-action-tracker")

    assert pages.csp_errors() == []
    assert pages.console_errors == []
