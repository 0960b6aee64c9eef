"""Security headers reach the browser, and every page keeps to its Content Security Policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Response, expect

from dr_panel.auth.models import Role
from tests.browser.conftest import LiveApp, Pages, sign_in


def visit(page: Page, url: str) -> Response:
    response = page.goto(url)
    assert response is not None and response.ok, url
    return response


@pytest.mark.browser
def test_every_page_keeps_to_the_content_security_policy(
        serve: Callable[..., LiveApp], pages: Pages) -> None:
    live = serve()
    admin = live.add_user(Role.ADMIN, name="Alex Morgan")
    page = pages.new()

    response = visit(page, f"{live.url}/login")
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"

    sign_in(page, live, admin)
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Alex Morgan")
    session_cookie = next(c for c in page.context.cookies() if c["name"] == "drpanel_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"

    # Every main page, including the enrolment page's inline QR code and the error summary,
    # renders and runs its script without the browser refusing anything.
    for path in ("/", "/account", "/account/two-factor", "/admin/users", "/admin/users/new",
                 "/admin/areas", "/admin/agencies", "/admin/audit"):
        visit(page, f"{live.url}{path}")
        expect(page.get_by_role("heading", level=1)).not_to_be_empty()
    visit(page, f"{live.url}/admin/users/new")
    page.get_by_role("button", name="Save account").click()
    expect(page.get_by_role("alert", name="There is a problem")).to_be_focused()  # app.js ran
    assert pages.csp_errors() == []

    # The policy is enforced, not just sent: a script written into the page does not run.
    with pytest.raises(PlaywrightError, match="violates the following Content Security Policy"):
        page.add_script_tag(content="window.injected = true;")
    assert page.evaluate("window.injected === undefined")
