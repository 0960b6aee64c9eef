"""A newcomer's first days: signing in, turning on two-step verification, signing in with a code."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from dr_panel.auth.models import Role
from tests.browser.conftest import (
    LiveApp,
    Pages,
    next_step_code,
    read_totp_secret,
    screenshot,
    sign_in,
    sign_out,
    wrong_code,
)

CODE_LABEL = "Six-digit code from your authenticator app"


def attention_list(page: Page):  # type: ignore[no-untyped-def]
    """The list right under the "Needs your attention" heading."""
    return page.get_by_role("heading", name="Needs your attention").locator(
        "xpath=following-sibling::*[1]")


@pytest.mark.browser
def test_coordinator_turns_on_two_step_verification_then_signs_in_with_a_code(
        serve: Callable[..., LiveApp], pages: Pages) -> None:
    live = serve()
    dana = live.add_user(Role.COORDINATOR, name="Dana Fielding")
    page = pages.new()

    page.goto(f"{live.url}/")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to dr-panel")
    screenshot(page, "login")

    sign_in(page, live, dana)
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Dana Fielding")
    expect(page.get_by_role("banner")).to_contain_text("Dana Fielding")
    screenshot(page, "home")
    attention_list(page).get_by_role("link", name="Set up two-step verification").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    totp = read_totp_secret(page)
    screenshot(page, "enrolment")

    # A mistyped first code is refused, and the error summary takes the keyboard focus.
    page.get_by_label(CODE_LABEL).fill(wrong_code(totp))
    page.get_by_role("button", name="Turn on two-step verification").click()
    summary = page.get_by_role("alert", name="There is a problem")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("That code does not match")
    expect(summary).to_be_focused()
    # The key on the page is the same one, so the app already set up keeps working.
    page.get_by_text("Cannot scan it? Type this key instead").click()
    expect(page.get_by_test_id("totp-secret")).to_have_text(totp.secret)
    screenshot(page, "enrolment-error")

    page.get_by_label(CODE_LABEL).fill(totp.now())
    page.get_by_role("button", name="Turn on two-step verification").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.get_by_role("status")).to_contain_text("Two-step verification is on.")
    expect(page.get_by_role("main")).to_contain_text("Two-step verification On since")
    screenshot(page, "account")

    sign_out(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to dr-panel")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto(f"{live.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to dr-panel")

    sign_in(page, live, dana)
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter the code from your app")
    page.get_by_label(CODE_LABEL).fill(wrong_code(totp))
    page.get_by_role("button", name="Continue").click()
    summary = page.get_by_role("alert", name="There is a problem")
    expect(summary).to_contain_text("That code is not right, or was already used.")
    expect(summary).to_be_focused()
    expect(page.get_by_label(CODE_LABEL)).to_have_attribute("aria-invalid", "true")
    screenshot(page, "login-code-error")

    # The code used to turn it on is spent; the next step's code is accepted.
    page.get_by_label(CODE_LABEL).fill(next_step_code(totp))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Dana Fielding")
    expect(page.get_by_role("main")).to_contain_text(
        "There was 1 failed sign-in attempt on your account since you last signed in.")
    expect(page.get_by_role("main")).to_contain_text("Nothing needs your attention right now.")
    assert pages.csp_errors() == []


@pytest.mark.browser
def test_panel_member_must_enrol_before_reaching_home_when_two_step_is_required(
        serve: Callable[..., LiveApp], pages: Pages) -> None:
    live = serve(REQUIRE_2FA=True)
    sam = live.add_user(Role.PANEL_MEMBER, name="Sam Okafor")
    page = pages.new()

    sign_in(page, live, sam)
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
    expect(page.get_by_role("main")).to_contain_text(
        "you need a code from your phone as well as your password")
    expect(page).to_have_url(re.compile(r"/login/enrol$"))
    # Not signed in yet: no header menu, no way out but finishing.
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(page.get_by_role("link", name="Cancel")).to_have_count(0)

    page.goto(f"{live.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to dr-panel")

    sign_in(page, live, sam)
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
    totp = read_totp_secret(page)
    page.get_by_label(CODE_LABEL).fill(totp.now())
    page.get_by_role("button", name="Turn on two-step verification").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Sam Okafor")
    expect(page).to_have_url(f"{live.url}/")
    expect(page.get_by_role("main")).to_contain_text("Panel member, Lancashire Constabulary.")
    expect(page.get_by_role("main")).to_contain_text("Nothing needs your attention right now.")
    assert pages.csp_errors() == []

