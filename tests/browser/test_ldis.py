"""The drug information system in the browser: a member of the public reports a bad batch; the
coordinator grades it and drafts an alert, which the leak gate stops until an NHS number is taken
out; a lead approves it; it is in the public Atom feed and its delivery dashboard."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import feedparser
import pytest
from playwright.sync_api import expect

from dr_panel.auth.models import Role
from tests.browser.conftest import LiveApp, Pages, screenshot, sign_in
from tests.browser.test_cases import h1

TODAY = datetime.now(UTC).date()


@pytest.mark.browser
def test_a_public_report_becomes_an_approved_public_alert(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = live.add_user(Role.COORDINATOR, name="Dana Fielding")
    lee = live.add_user(Role.LEAD, name="Lee Analyst")

    # -- the public report: an identifier is refused with the reason, then it goes in ---------
    public = pages.new()
    public.goto(f"{live.url}/report-a-drug-concern")
    expect(h1(public)).to_contain_text("drug concern")
    public.get_by_label("Area where it was seen").select_option(label="Blackpool")
    public.get_by_label("When it was seen").fill((TODAY - timedelta(days=1)).isoformat())
    public.get_by_label("What was seen").fill("Brown powder sold as heroin")
    public.get_by_label("Effects seen").fill("My friend, NHS number 999 000 0018, collapsed.")
    public.get_by_label("Someone died or needed hospital care").check()
    public.get_by_role("button", name="Send the report").click()
    expect(public.get_by_role("alert", name="There is a problem")).to_contain_text("NHS number")
    screenshot(public, "ldis-public-report-refused")
    public.get_by_label("Effects seen").fill("Three people very sedated within minutes.")
    public.get_by_role("button", name="Send the report").click()
    expect(public.get_by_role("main")).to_contain_text(f"DC-{TODAY.year}-0001")
    screenshot(public, "ldis-public-report-sent")

    # -- the coordinator grades it and drafts an alert ----------------------------------------
    coord = pages.new()
    sign_in(coord, live, dana)
    coord.get_by_role("link", name=re.compile("to grade")).click()
    expect(h1(coord)).to_have_text("LDIS queue")
    coord.get_by_role("link", name=re.compile(r"^Report DC-")).click()
    coord.get_by_role("link", name="Assess this report").click()
    coord.get_by_label("Source reliability").select_option(index=2)
    coord.get_by_label("Plausibility").select_option("high")
    coord.get_by_label("Local relevance").select_option("high")
    coord.get_by_label("Severity of harm").select_option("severe")
    coord.get_by_label("Decision").select_option("drug_alert")
    coord.get_by_label("Rationale").fill("Matches ambulance reports this week.")
    coord.get_by_role("button", name="Record the assessment").click()
    screenshot(coord, "ldis-assessed")
    coord.get_by_role("button", name="Start the draft").click()
    expect(h1(coord)).to_have_text(f"Edit LDIS-{TODAY.year}-0001, version 1")
    coord.get_by_label("Title").fill("Strong sedation after heroin in Blackpool")
    coord.get_by_label("What it is (suspected)").fill("Heroin, possibly with a nitazene")
    coord.get_by_label("Signs of harm").fill("Deep sedation; slow breathing. Ask 999 000 0018.")
    coord.get_by_label("Harm-reduction advice").fill("Do not use alone; carry naloxone.")
    coord.get_by_label("Who may read it").select_option("public")
    coord.get_by_role("button", name="Save the draft").click()
    # The leak gate marks the NHS number and there is nothing to send for approval.
    expect(coord.locator("mark").first).to_be_visible()
    expect(coord.get_by_role("button", name="Send for approval")).to_have_count(0)
    screenshot(coord, "ldis-draft-blocked")
    coord.get_by_role("link", name="Edit", exact=True).click()
    coord.get_by_label("Signs of harm").fill("Deep sedation; slow breathing.")
    coord.get_by_role("button", name="Save the draft").click()
    coord.get_by_role("button", name="Send for approval").click()
    alert_url = coord.url
    reference = f"LDIS-{TODAY.year}-0001"
    expect(coord.get_by_role("main")).to_contain_text(reference)

    # -- a lead approves; the alert is in the public feed -------------------------------------
    lead = pages.new()
    sign_in(lead, live, lee)
    lead.get_by_role("link", name=re.compile("waiting for a second person")).click()
    lead.get_by_role("link", name=re.compile(reference)).first.click()
    screenshot(lead, "ldis-alert-for-lead")
    lead.get_by_role("link", name="Review and approve").click()
    screenshot(lead, "ldis-approve")
    lead.get_by_role("button", name="Approve and issue").click()
    expect(lead.get_by_role("main")).to_contain_text("Issued")

    feed = feedparser.parse(public.request.get(f"{live.url}/feeds/alerts.atom").body())
    titles = [e.title for e in feed.entries]
    assert any("Strong sedation after heroin in Blackpool" in t for t in titles), titles
    cap_links = [link.href for e in feed.entries for link in e.links
                 if link.type == "application/cap+xml"]
    # Links are absolute from the configured BASE_URL; this server listens on another port.
    cap = public.request.get(live.url + urlsplit(cap_links[0]).path)
    assert cap.status == 200 and cap.headers["content-type"].startswith("application/cap+xml")
    assert b"<msgType>Alert</msgType>" in cap.body() and b"<scope>Public</scope>" in cap.body()

    coord.goto(alert_url)
    coord.get_by_role("link", name=re.compile("[Dd]eliver")).first.click()
    expect(h1(coord)).to_contain_text(f"Deliveries of {reference}")
    assert pages.csp_errors() == []


@pytest.mark.browser
def test_a_coordinator_changes_an_areas_signal_settings_by_keyboard(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = live.add_user(Role.COORDINATOR, name="Dana Fielding")
    coord = pages.new()
    sign_in(coord, live, dana)
    coord.goto(f"{live.url}/ldis/queue")
    coord.get_by_role("link", name="Signal settings").click()
    expect(h1(coord)).to_have_text("Signal settings")
    coord.get_by_role("link", name="Change the settings of Blackpool").click()
    expect(h1(coord)).to_have_text("Signal settings: Blackpool")
    # Keyboard only: the first method's checkbox is reached with Tab like every other field.
    coord.get_by_label("C2: today against 7 days, leaving a 2-day gap").focus()
    coord.keyboard.press("Space")
    coord.get_by_label("Fewest events on the day to flag").fill("two")
    coord.keyboard.press("Enter")
    expect(coord.get_by_role("alert", name="There is a problem")).to_contain_text(
        "Enter a whole number from 1 to 1000.")
    expect(coord.get_by_label("C2: today against 7 days, leaving a 2-day gap")).not_to_be_checked()
    coord.get_by_label("Fewest events on the day to flag").fill("5")
    coord.get_by_role("button", name="Save the settings").click()
    expect(coord.get_by_role("status")).to_contain_text("2 settings changed for Blackpool")
    row = coord.get_by_role("row", name=re.compile("^Blackpool"))
    expect(row).to_contain_text("C1, C3, Poisson")
    expect(row).to_contain_text("2 settings")
    screenshot(coord, "ldis-signal-settings")
