"""An administrator makes an account, the newcomer takes it up, the administrator disables it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, Page, expect

from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.auth.support import link_token_for
from tests.browser.conftest import LiveApp, Pages, Person, screenshot, sign_in

NEW_PASSWORD = "copper kettle meadow 82 breeze"


def h1(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("heading", level=1)


@pytest.mark.browser
def test_admin_creates_an_account_the_newcomer_takes_it_up_then_the_admin_disables_it(
        serve: Callable[..., LiveApp], pages: Pages) -> None:
    live = serve()
    alex = live.add_user(Role.ADMIN, name="Alex Morgan")
    admin = pages.new()

    sign_in(admin, live, alex)
    expect(h1(admin)).to_have_text("Hello, Alex Morgan")
    admin.get_by_role("main").get_by_role("link", name="Create an account").click()
    expect(h1(admin)).to_have_text("Create an account")

    # Sent empty: every missing answer is listed, each saying what to do.
    admin.get_by_role("button", name="Save account").click()
    summary = admin.get_by_role("alert", name="There is a problem")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("listitem")).to_have_count(4)
    for message in ("Enter the person's name as colleagues know it.",
                    "Enter the person's work e-mail address.",
                    "Choose the person's role.",
                    "Grant at least one area."):
        expect(summary.get_by_role("link", name=message)).to_be_visible()
    expect(admin.get_by_label("Full name")).to_have_attribute("aria-invalid", "true")
    screenshot(admin, "user-form-errors")
    # Each message in the summary leads to its field.
    summary.get_by_role("link", name="Enter the person's name as colleagues know it.").click()
    expect(admin.get_by_label("Full name")).to_be_focused()

    admin.get_by_label("Full name").fill("Priya Shah")
    admin.get_by_label("E-mail address").fill("Priya.Shah@Example.org")
    admin.get_by_label("Role").select_option(label="Panel member")
    admin.get_by_label("Agency").select_option(label="Lancashire Constabulary (POLICE)")
    admin.get_by_role("group", name="Areas").get_by_label("Blackpool (E06000009)").check()
    admin.get_by_role("button", name="Save account").click()

    # The admin is told a link went to Priya, and is shown no password.
    expect(h1(admin)).to_have_text("Priya Shah")
    expect(admin.get_by_role("status")).to_contain_text(
        "e-mailed them a link to choose their own password")
    expect(admin.get_by_test_id("temporary-password")).to_have_count(0)
    screenshot(admin, "account-created")

    # Priya, at her own computer, opens the link from her e-mail.
    with live.app.app_context():
        token = link_token_for("priya.shah@example.org")
        db.session.remove()
    assert token not in admin.content()
    newcomer = pages.new()
    newcomer.goto(f"{live.url}/password/{token}")
    expect(h1(newcomer)).to_have_text("Choose your password")
    newcomer.get_by_label("New password", exact=True).fill("password1234")
    newcomer.get_by_label("Type the new password again").fill("password1234")
    newcomer.get_by_role("button", name="Save password").click()
    summary = newcomer.get_by_role("alert", name="There is a problem")
    expect(summary).to_contain_text("This password is on a list of common or leaked passwords.")
    expect(summary).to_be_focused()
    expect(h1(newcomer)).to_have_text("Choose your password")
    screenshot(newcomer, "new-password-error")

    newcomer.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    newcomer.get_by_label("Type the new password again").fill(NEW_PASSWORD)
    newcomer.get_by_role("button", name="Save password").click()
    expect(h1(newcomer)).to_have_text("Hello, Priya Shah")
    expect(newcomer.get_by_role("main")).to_contain_text("Panel member, Lancashire Constabulary.")

    # The link worked once: opening it again says so and offers what to do.
    other = pages.new()
    other.goto(f"{live.url}/password/{token}")
    expect(h1(other)).to_have_text("This link has already been used (or a newer one replaced it).")
    expect(other.get_by_role("link", name="ask for a new link")).to_be_visible()

    # The admin finds her in the list of users...
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(h1(admin)).to_have_text("Users")
    row = admin.get_by_role("row").filter(has_text="priya.shah@example.org")
    expect(row).to_contain_text("Panel member")
    expect(row).to_contain_text("Active")  # she chose her own password
    screenshot(admin, "users")

    # ...and disables her account, confirming in the browser's dialog.
    row.get_by_role("link", name="Priya Shah").click()
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    admin.once("dialog", accept)
    admin.get_by_role("button", name="Disable account").click()
    expect(admin.get_by_role("status")).to_have_text(
        "Priya Shah's account is disabled and every session of theirs has ended.")
    assert asked == ["Disable this account? They are signed out everywhere at once."]
    expect(admin.get_by_role("button", name="Enable account")).to_be_visible()
    screenshot(admin, "user-disabled")

    # Priya's next page load ends her session.
    newcomer.reload()
    expect(h1(newcomer)).to_have_text("Sign in to dr-panel")
    expect(newcomer.get_by_role("status")).to_contain_text("Your session has ended")
    # Nor can she sign in again.
    priya = Person(name="Priya Shah", email="priya.shah@example.org", password=NEW_PASSWORD)
    sign_in(newcomer, live, priya)
    expect(newcomer.get_by_role("alert", name="There is a problem")).to_contain_text(
        "The e-mail address or password is not right.")

    # The audit log shows what happened.
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(h1(admin)).to_have_text("Audit log")
    by_alex = admin.get_by_role("row").filter(has_text=alex.email)
    expect(by_alex.filter(has_text="account.created")).to_have_count(1)
    expect(by_alex.filter(has_text="account.disabled")).to_have_count(1)
    screenshot(admin, "audit-log")
    assert pages.csp_errors() == []
