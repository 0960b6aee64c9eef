"""Browser tests: the real app served over HTTP, driven by Debian's chromium through Playwright.

``serve(**config)`` builds an app with ``app_factory`` (CSRF on, as in production) and serves it
with werkzeug in a daemon thread; ``pages.new()`` opens a page in a fresh browser context, so two
people can be signed in at once. Playwright never downloads a browser here: it drives
``/usr/bin/chromium``. Without it the tests skip, or fail where ``DR_PANEL_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MISSING_BROWSER = "Debian chromium is not installed at /usr/bin/chromium; apt-get install chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One chromium for the run; every test gets its own contexts (cookies, storage) from it."""
    if not CHROMIUM.exists():
        if os.environ.get("DR_PANEL_REQUIRE_BROWSER") == "1":
            pytest.fail(MISSING_BROWSER, pytrace=False)
        pytest.skip(MISSING_BROWSER)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# -- the app, served for real -----------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """What a person knows about their own account: enough to sign in."""

    name: str
    email: str
    password: str = PASSWORD


@dataclass
class LiveApp:
    app: Flask
    url: str
    _count: int = 0

    def add_user(self, role: Role = Role.COORDINATOR, *, name: str | None = None,
                 areas: tuple[str, ...] = ("E06000009",), agency: str | None = None,
                 password: str = PASSWORD) -> Person:
        """An account made as the CLI would make it: no second factor, own password."""
        self._count += 1
        name = name or f"{role.label} {self._count}"
        email = f"{role.value}{self._count}@example.org"
        if agency is None and role.needs_agency:
            agency = "TREATMENT" if role is Role.AGENCY_CONTRIBUTOR else "POLICE"
        with self.app.app_context():
            accounts.create_user(
                accounts.AccountDetails(email=email, display_name=name, role=role,
                                        area_codes=areas, agency_code=agency),
                password=password, by=None, must_change=False)
            db.session.commit()
            db.session.remove()  # hold no connection or lock while the server works
        return Person(name=name, email=email, password=password)


class _ServerThread(threading.Thread):
    def __init__(self, server: BaseWSGIServer) -> None:
        super().__init__(name="dr-panel-live-server", daemon=True)
        self.server = server

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.05)


@pytest.fixture
def serve(app_factory: Callable[..., Flask]) -> Iterator[Callable[..., LiveApp]]:
    """``serve(**config_overrides)`` -> a LiveApp answering on 127.0.0.1 at a free port."""
    running: list[tuple[BaseWSGIServer, _ServerThread]] = []
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    def start(**overrides: Any) -> LiveApp:
        overrides.setdefault("WTF_CSRF_ENABLED", True)
        app = app_factory(**overrides)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = _ServerThread(server)
        thread.start()
        running.append((server, thread))
        return LiveApp(app=app, url=f"http://127.0.0.1:{server.server_port}")

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- pages ------------------------------------------------------------------------------------


@dataclass
class Pages:
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def new(self) -> Page:
        """A page in a fresh context: a separate person at a separate computer."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 800},
                                           locale="en-GB")
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"pageerror: {exc}"))
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.console_errors.append(f"{message.text} ({where})" if where else message.text)

    def csp_errors(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]


@pytest.fixture
def pages(browser: Browser, serve: Callable[..., LiveApp]) -> Iterator[Pages]:
    """Depends on ``serve`` so every context closes (and drops its keep-alive connections)
    before the server stops."""
    opened = Pages(browser)
    yield opened
    for context in opened.contexts:
        context.close()


# -- helpers a test calls ---------------------------------------------------------------------


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, live: LiveApp, person: Person, password: str | None = None) -> None:
    """Fill in the sign-in form as a person would, from wherever the browser is."""
    if "/login" not in page.url:
        page.goto(f"{live.url}/login")
    page.get_by_label("E-mail address").fill(person.email)
    page.get_by_label("Password", exact=True).fill(password or person.password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page) -> None:
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()


def read_totp_secret(page: Page) -> pyotp.TOTP:
    """Open "Cannot scan it?" on the enrolment page and read the key, as a person would."""
    page.get_by_text("Cannot scan it? Type this key instead").click()
    secret = page.get_by_test_id("totp-secret")
    secret.wait_for(state="visible")
    return pyotp.TOTP(secret.inner_text().strip())


def next_step_code(totp: pyotp.TOTP) -> str:
    """The code for the next 30-second step: accepted (one step of drift is allowed) even where
    the current step's code was already used, as each code is good only once."""
    return totp.at(time.time() + 30)


def wrong_code(totp: pyotp.TOTP) -> str:
    """Six digits that no step the server would accept produces."""
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "123456", "999999") if c not in valid)
