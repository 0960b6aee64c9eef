"""A token is for the API only: it never replaces a signed-in person (second factor, password,
sessions), dies with the account's password, second factor or access, expires, and cannot be
made or used before a required second factor; the API never acts on a session cookie."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import func, select

from dr_panel.audit.models import AuditEntry
from dr_panel.auth import services as accounts
from dr_panel.auth.models import ApiToken, Role, User
from dr_panel.auth.tokens import TokenError, create_token, renew_token
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.conftest import PASSWORD, csrf_token_from
from tests.test_migrations import empty_database  # noqa: F401  (the fixture)


def entries(action: str) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
    )


def live(user: User) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ) or 0


def api_status(client: Any, headers: dict[str, str]) -> int:
    return int(client.get("/api/v1/alerts", headers=headers).status_code)


# -- the attack of the finding ---------------------------------------------------------------------


def test_a_token_cannot_replace_the_second_factor(
    client: Any, create_user: Any, bearer: Any
) -> None:
    """The finding: with only a token, GET then POST /account/two-factor replaced the secret."""
    user = create_user(Role.COORDINATOR, totp=True)
    before = user.totp_secret_enc
    headers = bearer(user)
    page = client.get("/account/two-factor", headers=headers)
    assert page.status_code == 401 and b"otpauth" not in page.data
    attacker = pyotp.random_base32()
    sent = client.post(
        "/account/two-factor", headers=headers, data={"code": pyotp.TOTP(attacker).now()}
    )
    assert sent.status_code == 401
    db.session.refresh(user)
    assert user.totp_secret_enc == before
    for url in ("/logout", "/account/sessions/end-others", "/account/password"):
        assert client.post(url, headers=headers).status_code == 401, url


# -- revoked with the password, second factor and access -------------------------------------------


def test_changing_ones_password_revokes_ones_tokens_and_says_so(
    client: Any, create_user: Any, bearer: Any, login: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user, "feed one")
    bearer(user, "feed two")
    program = client.application.test_client()
    assert api_status(program, headers) == 200
    login(client, user)
    response = client.post(
        "/account/password",
        data={"current": PASSWORD, "password": "quince harbour 93 meadow", "confirm":
              "quince harbour 93 meadow"},
        follow_redirects=True,
    )
    assert b"Your password is changed" in response.data
    assert b"Your 2 API tokens were revoked" in response.data
    assert api_status(program, headers) == 401
    (entry,) = entries("api_token.revoked_all")
    assert entry.object_uuid == str(user.uuid) and entry.actor_uuid == user.uuid
    assert '"count":2' in entry.details and '"reason":"password changed"' in entry.details
    assert headers["Authorization"][11:] not in entry.details
    tokens_page = client.get("/account/tokens")
    assert b"password changed" in tokens_page.data


@pytest.mark.parametrize(
    "event",
    ["password reset", "second factor reset", "role", "areas", "agency", "disabled"],
)
def test_an_admins_change_revokes_the_tokens(
    client: Any, create_user: Any, bearer: Any, event: str
) -> None:
    admin = create_user(Role.ADMIN)
    user = create_user(Role.PANEL_MEMBER, totp=True)
    headers = bearer(user)
    assert api_status(client, headers) == 200
    details = accounts.AccountDetails(
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        area_codes=[a.ons_code for a in user.areas],
        agency_code=user.agency.code if user.agency else None,
    )
    if event == "password reset":
        accounts.reset_password(user, by=admin)
    elif event == "second factor reset":
        accounts.remove_second_factor(user, by=admin)
    elif event == "role":
        details.role, details.agency_code = Role.COORDINATOR, None
        accounts.update_user(user, details, by=admin)
    elif event == "areas":
        details.area_codes = ["E06000009", "E06000008"]
        accounts.update_user(user, details, by=admin)
    elif event == "agency":
        details.agency_code = "TREATMENT"
        accounts.update_user(user, details, by=admin)
    else:
        accounts.set_disabled(user, True, by=admin)
    db.session.commit()
    assert live(user) == 0
    assert api_status(client, headers) == 401
    (entry,) = entries("api_token.revoked_all")
    assert '"count":1' in entry.details


def test_the_admin_page_says_the_tokens_were_revoked(
    client: Any, create_user: Any, bearer: Any, login: Any
) -> None:
    admin = create_user(Role.ADMIN)
    user = create_user(Role.COORDINATOR, totp=True)
    bearer(user)
    login(client, admin)
    response = client.post(
        f"/admin/users/{user.uuid}/reset-second-factor", follow_redirects=True
    )
    assert f"{user.display_name}&#39;s 1 API token was revoked".encode() in response.data
    assert live(user) == 0


def test_a_refused_change_revokes_nothing_and_says_nothing(
    client: Any, create_user: Any, bearer: Any, login: Any
) -> None:
    admin = create_user(Role.ADMIN)
    login(client, admin)
    bearer(admin)
    response = client.post(f"/admin/users/{admin.uuid}/disable", follow_redirects=True)
    assert b"cannot disable your own account" in response.data
    assert b"API token" not in response.data
    assert live(admin) == 1


def test_replacing_ones_second_factor_revokes_ones_tokens(
    client: Any, create_user: Any, bearer: Any, login: Any
) -> None:
    user = create_user(Role.COORDINATOR, totp=True)
    headers = bearer(user)
    login(client, user)
    page = client.get("/account/two-factor")
    secret = page.data.split(b'data-testid="totp-secret">')[1].split(b"<")[0].decode().strip()
    secret = "".join(secret.split())
    done = client.post(
        "/account/two-factor", data={"code": pyotp.TOTP(secret).now()}, follow_redirects=True
    )
    assert b"Two-step verification is on" in done.data
    assert b"Your 1 API token was revoked" in done.data
    assert api_status(client.application.test_client(), headers) == 401
    assert client.get("/account").status_code == 200  # this session is kept


def test_signing_out_keeps_the_tokens(
    client: Any, create_user: Any, bearer: Any, login: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    other = client.application.test_client()
    login(other, user)
    login(client, user)
    client.post("/account/sessions/end-others")
    client.post("/logout")
    assert live(user) == 1
    assert api_status(client.application.test_client(), headers) == 200
    assert entries("api_token.revoked_all") == []


# -- expiry ----------------------------------------------------------------------------------------


def test_a_token_expires_and_is_refused(client: Any, create_user: Any, bearer: Any) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    token = db.session.scalars(select(ApiToken)).one()
    lifetime = token.expires_at - token.created_at
    assert timedelta(days=89, hours=23) < lifetime <= timedelta(days=90)
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.get("/api/v1/alerts", headers=headers)
    assert response.status_code == 401 and "expired" in response.get_json()["detail"]
    feed = client.get("/feeds/alerts.atom", headers=headers)  # the feed says why, as the API does
    assert feed.status_code == 401 and "expired" in feed.get_json()["detail"]
    assert entries("access.denied")[-1].actor_uuid == user.uuid
    with pytest.raises(TokenError, match="expired"):
        renew_token(token, by=user)


def test_the_lifetime_is_configurable(app_factory: Any) -> None:
    app = app_factory(API_TOKEN_DAYS=7)
    with app.app_context():
        user, _ = accounts.create_user(
            accounts.AccountDetails("l@example.org", "Lee Ad", Role.LEAD, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        token, _ = create_token(user, "x", by=None)
        assert token.expires_at - token.created_at <= timedelta(days=7)


def test_the_owner_renews_a_live_token_on_the_page(
    client: Any, create_user: Any, bearer: Any, login: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    bearer(user)
    token = db.session.scalars(select(ApiToken)).one()
    token.expires_at = utcnow() + timedelta(days=2)
    db.session.commit()
    login(client, user)
    listing = client.get("/account/tokens")
    assert b"Expires" in listing.data and b"Renew" in listing.data
    response = client.post(f"/account/tokens/{token.uuid}/renew", follow_redirects=True)
    assert b"Renewed the token" in response.data
    db.session.refresh(token)
    assert token.expires_at > utcnow() + timedelta(days=89)
    (entry,) = entries("api_token.renewed")
    assert entry.actor_uuid == user.uuid and entry.object_uuid == str(token.uuid)
    # Someone else cannot renew it, nor can a token renew itself.
    other = client.application.test_client()
    login(other, create_user(Role.COORDINATOR))
    assert other.post(f"/account/tokens/{token.uuid}/renew").status_code == 404


def test_a_revoked_token_cannot_be_renewed(create_user: Any) -> None:
    user = create_user()
    token, _ = create_token(user, "x", by=user)
    accounts.set_disabled(user, True, by=None)
    with pytest.raises(TokenError, match="revoked"):
        renew_token(token, by=user)


# -- a required second factor comes first ----------------------------------------------------------


def test_in_production_no_token_before_the_second_factor(app_factory: Any) -> None:
    lax = app_factory()
    strict = app_factory(REQUIRE_2FA=True)
    with lax.app_context():
        coordinator, _ = accounts.create_user(
            accounts.AccountDetails("c@example.org", "Cleo Ord", Role.COORDINATOR, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        lead, _ = accounts.create_user(
            accounts.AccountDetails("l@example.org", "Lee Ad", Role.LEAD, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        _, early = create_token(coordinator, "made before 2FA was required", by=None)
        _, lead_token = create_token(lead, "trends", by=None)
        db.session.commit()
    with strict.app_context():
        client = strict.test_client()
        response = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {early}"})
        assert response.status_code == 403
        assert "two-step verification" in response.get_json()["detail"]
        assert response.mimetype == "application/problem+json"
        feed = client.get("/feeds/alerts.atom", headers={"Authorization": f"Bearer {early}"})
        assert feed.status_code == 401
        user = db.session.scalar(select(User).where(User.email == "c@example.org"))
        with pytest.raises(TokenError, match="two-step verification"):
            create_token(user, "x", by=None)
        result = strict.test_cli_runner().invoke(main, ["tokens", "create", "c@example.org"])
        assert result.exit_code != 0 and "two-step verification" in result.output
        # A lead does not need a second factor, so their token works.
        ok = client.get("/api/v1/trends", headers={"Authorization": f"Bearer {lead_token}"})
        assert ok.status_code != 401 and ok.status_code != 403
        # Once enrolled, the coordinator's token works.
        user.totp_secret_enc, user.totp_enabled_at = "x", utcnow()
        db.session.commit()
        assert client.get(
            "/api/v1/cases", headers={"Authorization": f"Bearer {early}"}
        ).status_code == 200


def test_in_production_a_coordinator_without_a_second_factor_has_no_session(
    app_factory: Any, login: Any
) -> None:
    app = app_factory(REQUIRE_2FA=True)
    with app.app_context():
        user, _ = accounts.create_user(
            accounts.AccountDetails("c@example.org", "Cleo Ord", Role.COORDINATOR, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        client = app.test_client()
        # Signing in makes them enrol first; a coordinator with no second factor has no session.
        assert client.post(
            "/login", data={"email": user.email, "password": PASSWORD}
        ).location.endswith("/login/enrol")
        assert client.get("/account/tokens").status_code == 302


# -- the API never acts on the session cookie ------------------------------------------------------


def test_a_cross_site_post_through_the_cookie_changes_nothing(
    app_factory: Any, bearer: Any
) -> None:
    """The finding: a page on another origin rotated a webhook secret through the coordinator's
    signed-in browser. The browser sends the cookie (same site, other port) with no CSRF token."""
    from dr_panel.alerts import subscribers as subs
    from dr_panel.alerts.models import Subscriber
    from tests.api.test_ldis_subscriptions import HOOK

    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        user, _ = accounts.create_user(
            accounts.AccountDetails("c@example.org", "Cleo Ord", Role.COORDINATOR, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        program = app.test_client()
        headers = bearer(user)
        made = program.post("/api/v1/subscriptions", json=HOOK, headers=headers)
        assert made.status_code == 201
        url = made.headers["Location"]
        sub = db.session.scalars(select(Subscriber)).one()
        before = subs.secrets_for(sub)

        browser = app.test_client()
        page = browser.get("/login")
        browser.post(
            "/login",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token_from(
                page.data)},
        )
        assert browser.get("/account").status_code == 200
        for extra in ({}, {"Content-Type": "text/plain"}):
            response = browser.post(
                f"{url}/rotate-secret",
                headers={"Origin": "http://127.0.0.1:8081", **extra},
                data="{}",
            )
            assert response.status_code == 401
        response = browser.post("/api/v1/cases", json={}, headers={"Origin": "http://evil"})
        assert response.status_code == 401
        db.session.expire_all()
        assert subs.secrets_for(db.session.get(Subscriber, sub.id)) == before
        assert entries("alerts.subscriber.secret_rotated") == []


# -- the migration --------------------------------------------------------------------------------


def test_migration_gives_existing_tokens_90_days(
    tmp_path: Any, empty_database: str  # noqa: F811  (the fixture imported above)
) -> None:
    """Tokens made before 0018 expire 90 days after they were made; one older is expired."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from dr_panel import create_app
    from tests.conftest import _seed_reference, make_config

    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=empty_database))
    with app.app_context():
        upgrade()
        _seed_reference()
        user, _ = accounts.create_user(
            accounts.AccountDetails("l@example.org", "Lee Ad", Role.LEAD, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        create_token(user, "old", by=None)
        create_token(user, "older", by=None)
        db.session.commit()
        db.session.remove()
        downgrade(revision="0017_held_reports")
        made = {"old": utcnow() - timedelta(days=10), "older": utcnow() - timedelta(days=200)}
        for name, at in made.items():
            db.session.execute(
                text("UPDATE api_tokens SET created_at = :at WHERE name = :name"),
                {"at": at if db.engine.dialect.name != "sqlite" else at.replace(tzinfo=None),
                 "name": name},
            )
        db.session.commit()
        db.session.remove()
        upgrade(revision="0018_token_expiry")
        tokens = {t.name: t for t in db.session.scalars(select(ApiToken))}
        for name, at in made.items():
            assert abs(tokens[name].expires_at - (at + timedelta(days=90))) < timedelta(seconds=1)
        assert tokens["old"].is_live() and not tokens["older"].is_live()
        assert tokens["old"].revoked_reason is None
        db.session.remove()
        downgrade(revision="base")
        db.engine.dispose()
