"""Ending a session on the server really ends it: an old cookie replayed afterwards is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from dr_panel.auth import services
from dr_panel.auth.models import Role, UserSession
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.conftest import PASSWORD


def cookie_of(client: Any, app: Flask) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return cookie.value


def replay(app: Flask, cookie: str, path: str = "/") -> Any:
    """A different browser presenting a copy of the old cookie."""
    other = app.test_client()
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    return other.get(path)


def test_logout_ends_the_session_on_the_server(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user())
    stolen = cookie_of(client, app)
    assert replay(app, stolen).status_code == 200
    assert client.post("/logout").location == "/login"
    response = replay(app, stolen)
    assert response.status_code == 302 and response.location.startswith("/login")


def test_logout_needs_post(client: Any, create_user: Any, login: Any) -> None:
    login(client, create_user())
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_disabling_an_account_ends_its_sessions_at_once(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    user = create_user()
    login(client, user)
    admin = create_user(Role.ADMIN)
    services.set_disabled(user, True, by=admin)
    db.session.commit()
    response = client.get("/")
    assert response.status_code == 302
    assert b"session has ended" in client.get(response.location).data


def test_password_change_ends_other_sessions_but_keeps_this_one(
    app: Flask, create_user: Any, login: Any
) -> None:
    user = create_user()
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, user)
    login(phone, user)
    response = laptop.post(
        "/account/password",
        data={
            "current": PASSWORD,
            "password": "violet canyon tractor 61",
            "confirm": "violet canyon tractor 61",
        },
    )
    assert response.location == "/account"
    assert laptop.get("/").status_code == 200
    assert phone.get("/").status_code == 302
    fresh = app.test_client()
    assert fresh.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 200
    assert (
        fresh.post(
            "/login", data={"email": user.email, "password": "violet canyon tractor 61"}
        ).status_code
        == 302
    )


def test_wrong_current_password_changes_nothing(client: Any, create_user: Any, login: Any) -> None:
    user = create_user()
    login(client, user)
    before = user.password_hash
    response = client.post(
        "/account/password",
        data={
            "current": "not it",
            "password": "violet canyon tractor 61",
            "confirm": "violet canyon tractor 61",
        },
    )
    assert b"Your current password is not right" in response.data
    db.session.refresh(user)
    assert user.password_hash == before


def test_idle_session_times_out(app: Flask, client: Any, create_user: Any, login: Any) -> None:
    login(client, create_user())
    us = db.session.scalars(db.select(UserSession)).one()
    us.last_seen_at = utcnow() - app.config["SESSION_IDLE_TIMEOUT"] - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/").status_code == 302
    db.session.refresh(us)
    assert us.end_reason == "idle timeout"


def test_activity_keeps_the_session_alive(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user())
    us = db.session.scalars(db.select(UserSession)).one()
    us.last_seen_at = utcnow() - app.config["SESSION_IDLE_TIMEOUT"] + timedelta(minutes=1)
    db.session.commit()
    assert client.get("/").status_code == 200
    db.session.refresh(us)
    assert utcnow() - us.last_seen_at < timedelta(minutes=1)


def test_absolute_lifetime_ends_even_an_active_session(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user())
    us = db.session.scalars(db.select(UserSession)).one()
    us.created_at = utcnow() - app.config["SESSION_ABSOLUTE_LIFETIME"] - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_sign_out_other_sessions(app: Flask, create_user: Any, login: Any) -> None:
    user = create_user()
    here, there = app.test_client(), app.test_client()
    login(here, user)
    login(there, user)
    page = here.get("/account")
    assert b"Sign out all other sessions" in page.data
    response = here.post("/account/sessions/end-others", follow_redirects=True)
    assert b"Signed out 1 other session." in response.data
    assert there.get("/").status_code == 302 and here.get("/").status_code == 200


def test_admin_reset_second_factor_ends_sessions(app: Flask, create_user: Any, login: Any) -> None:
    user = create_user(totp=True)
    client = app.test_client()
    login(client, user)
    services.remove_second_factor(user, by=create_user(Role.ADMIN))
    db.session.commit()
    assert client.get("/").status_code == 302


def test_changing_someones_access_makes_them_sign_in_again(
    app: Flask, create_user: Any, login: Any
) -> None:
    user = create_user(areas=("E06000009",))
    client = app.test_client()
    login(client, user)
    services.update_user(
        user,
        services.AccountDetails(
            email=user.email,
            display_name=user.display_name,
            role=user.role,
            area_codes=["E06000009", "E06000008"],
        ),
        by=create_user(Role.ADMIN),
    )
    db.session.commit()
    assert client.get("/").status_code == 302


def test_cookie_flags(app_factory: Any) -> None:
    app = app_factory(SESSION_COOKIE_SECURE=True)
    with app.app_context():
        from dr_panel.auth import services as s

        s.create_user(
            s.AccountDetails(
                email="c@example.org", display_name="C", role=Role.LEAD, area_codes=["E06000009"]
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        client = app.test_client()
        response = client.post(
            "/login",
            base_url="https://localhost",
            data={"email": "c@example.org", "password": PASSWORD},
        )
        header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" in header
