"""Fixtures for the whole suite.

Every test gets a real database: a fresh SQLite file by default, or the PostgreSQL database named
by ``TEST_DATABASE_URL`` (tables created once, truncated between tests). Fixtures that make
things return callables: ``create_user(role=...)``; ``login(client, user)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.globals import _cv_app
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from config import TestingConfig, normalise_database_url
from dr_panel import create_app
from dr_panel.audit.models import POSTGRES_TRIGGER
from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.cases.services import ensure_substances
from dr_panel.extensions import db, limiter
from dr_panel.reference import services as reference
from dr_panel.reference.models import Sector
from dr_panel.reviews.findings import ensure_themes

PASSWORD = "plum orchard lantern 47 drift"
PG_URL = os.environ.get("TEST_DATABASE_URL")


def _pg_url() -> str:
    assert PG_URL
    return normalise_database_url(PG_URL)


@pytest.fixture(scope="session")
def _pg_schema() -> Iterator[None]:
    """On PostgreSQL: build the schema once for the run, drop it at the end."""
    if not PG_URL:
        yield
        return
    from dr_panel import models  # noqa: F401  every table

    engine = create_engine(_pg_url())
    db.metadata.drop_all(engine)
    db.metadata.create_all(engine)
    engine.dispose()
    yield
    engine = create_engine(_pg_url())
    db.metadata.drop_all(engine)
    engine.dispose()


class IsolatedClient(FlaskClient):
    """Each request runs in its own application context, as in production, so ``g`` and the
    database session are never shared with the test body or the previous request. The test
    body's session is committed before and rolled back after, so it holds no locks or stale rows."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        outer = _cv_app.get(None)
        if outer is not None:
            db.session.commit()
        token = _cv_app.set(None)  # type: ignore[arg-type]
        try:
            return super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)
            if outer is not None:
                db.session.rollback()


def make_config(tmp_path: Path, **overrides: Any) -> TestingConfig:
    url = _pg_url() if PG_URL else f"sqlite:///{tmp_path / 'test.sqlite3'}"
    base = TestingConfig(
        INSTANCE_PATH=str(tmp_path / "instance"),
        SQLALCHEMY_DATABASE_URI=url,
        KEYS_FILE=str(tmp_path / "instance" / "keys.json"),
    )
    return replace(base, **overrides)


@pytest.fixture
def app_factory(tmp_path: Path, _pg_schema: None) -> Iterator[Callable[..., Flask]]:
    """Build an app with config overrides; the schema and reference data are ready."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(make_config(tmp_path, **overrides))
        app.test_client_class = IsolatedClient
        with app.app_context():
            if not made:  # a second app in the same test shares the first one's data
                _reset_database()
                _seed_reference()
            limiter.reset()
        made.append(app)
        return app

    yield factory
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _reset_database() -> None:
    if not PG_URL:
        db.create_all()  # a new SQLite file for every test
        return
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    # The log refuses TRUNCATE (as the owner the suite may lift that, then puts it back).
    db.session.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries"))
    db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    # Some tests drop the append-only trigger to play a database owner: restore it.
    db.session.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_change ON audit_entries"))
    for sql in POSTGRES_TRIGGER:
        db.session.execute(text(sql))
    db.session.commit()


def _seed_reference() -> None:
    ensure_substances()
    reference.save_area(None, ons_code="E06000009", name="Blackpool", network="Pan-Lancashire")
    reference.save_area(
        None, ons_code="E06000008", name="Blackburn with Darwen", network="Pan-Lancashire"
    )
    reference.save_agency(None, code="POLICE", name="Lancashire Constabulary", sector=Sector.POLICE)
    reference.save_agency(None, code="TREATMENT", name="Treatment service", sector=Sector.TREATMENT)
    ensure_themes()
    db.session.commit()


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Iterator[Flask]:
    application = app_factory()
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


DEFAULT_AGENCY = {Role.PANEL_MEMBER: "POLICE", Role.AGENCY_CONTRIBUTOR: "TREATMENT"}


@pytest.fixture
def create_user(app: Flask) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(
        role: Role = Role.COORDINATOR,
        *,
        areas: tuple[str, ...] = ("E06000009",),
        agency: str | None = None,
        email: str | None = None,
        totp: bool = False,
        password: str = PASSWORD,
        must_change: bool = False,
    ) -> User:
        n = next(counter)
        user, _ = accounts.create_user(
            accounts.AccountDetails(
                email=email or f"{role.value}{n}@example.org",
                display_name=f"Test {role.value} {n}",
                role=role,
                area_codes=areas,
                agency_code=agency or DEFAULT_AGENCY.get(role),
            ),
            password=password,
            by=None,
            must_change=must_change,
        )
        if totp:
            secret = pyotp.random_base32()
            user.totp_secret_enc = app.extensions["dr_panel.keys"].encrypt(
                secret, table="users", column="totp_secret", record=str(user.uuid)
            )
            from dr_panel.dbtypes import utcnow

            user.totp_enabled_at = utcnow()
            user.totp_secret_plain = secret  # for the test only, never stored
        db.session.commit()
        return user

    return make


def totp_code(user: User, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(user.totp_secret_plain)  # type: ignore[attr-defined]
    from dr_panel.dbtypes import utcnow

    return totp.generate_otp(totp.timecode(utcnow()) + offset_steps)


@pytest.fixture
def login() -> Callable[..., Any]:
    def do(
        client: FlaskClient, user: User, password: str = PASSWORD, *, follow: bool = False
    ) -> Any:
        response = client.post("/login", data={"email": user.email, "password": password})
        if response.status_code == 302 and response.location.endswith("/login/code"):
            response = client.post("/login/code", data={"code": totp_code(user)})
        if follow and response.status_code == 302:
            response = client.get(response.location)
        return response

    return do


@pytest.fixture(params=[r for r in Role], ids=[r.value for r in Role])
def any_role(request: pytest.FixtureRequest) -> Role:
    return request.param  # type: ignore[no-any-return]


def csrf_token_from(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        rb'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1).decode()
