"""Signing in: messages, redirects, regenerated sessions, second factors, throttling, rehash."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import PendingSignIn, Role, User, UserSession
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.conftest import PASSWORD, totp_code


def last_audit(action: str | None = None) -> AuditEntry:
    stmt = db.select(AuditEntry).order_by(AuditEntry.seq.desc())
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return db.session.scalars(stmt).first()


def test_right_password_signs_in_and_lands_home(client: Any, create_user: Any) -> None:
    user = create_user(Role.COORDINATOR)
    response = client.post("/login", data={"email": user.email.upper(), "password": PASSWORD})
    assert response.status_code == 302 and response.location == "/"
    page = client.get("/")
    assert f"Hello, {user.display_name}".encode() in page.data
    assert last_audit("auth.login").actor_uuid == user.uuid


@pytest.mark.parametrize("email", ["nobody@example.org", "known"])
def test_wrong_password_or_unknown_account_gives_the_same_message(
    client: Any, create_user: Any, email: str
) -> None:
    user = create_user()
    response = client.post(
        "/login",
        data={"email": user.email if email == "known" else email, "password": "not the password"},
    )
    assert response.status_code == 200
    assert b"The e-mail address or password is not right" in response.data
    entry = last_audit()
    assert entry.action == "auth.login_failed" and entry.outcome is Outcome.FAILURE
    # A typed address that is not an account is never written down (it may be a password).
    if email != "known":
        assert entry.actor_label is None and "nobody" not in (entry.details or "")


def test_empty_form_says_what_to_fill_in(client: Any) -> None:
    response = client.post("/login", data={})
    assert b"There is a problem" in response.data
    assert b"Enter your e-mail address" in response.data and b"Enter your password" in response.data


def test_disabled_account_cannot_sign_in(client: Any, create_user: Any) -> None:
    user = create_user()
    user.disabled_at = utcnow()
    db.session.commit()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200 and b"not right" in response.data
    assert last_audit().outcome is Outcome.DENIED


def test_session_is_regenerated_at_sign_in(client: Any, create_user: Any) -> None:
    user = create_user()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker before sign-in"
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert "sid" in sess
    stored = db.session.scalars(db.select(UserSession)).one()
    assert stored.token_hash != sess["sid"]  # only a hash of the token is stored


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/admin/users", "/admin/users"),
        ("/account?tab=x", "/account?tab=x"),
        ("https://evil.example/phish", "/"),
        ("//evil.example/phish", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_redirect_is_only_ever_local(
    client: Any, create_user: Any, target: str, expected: str
) -> None:
    user = create_user(Role.ADMIN)
    response = client.post(
        "/login", query_string={"next": target}, data={"email": user.email, "password": PASSWORD}
    )
    assert response.location == expected


def test_anonymous_visit_remembers_where_it_was_going(client: Any, create_user: Any) -> None:
    user = create_user(Role.ADMIN)
    response = client.get("/admin/areas")
    assert response.location == "/login?next=/admin/areas"
    response = client.post(response.location, data={"email": user.email, "password": PASSWORD})
    assert response.location == "/admin/areas"


def test_password_hash_is_argon2id_and_upgraded_on_sign_in(app_factory: Any) -> None:
    weak = app_factory(ARGON2_TIME_COST=1, ARGON2_MEMORY_COST=8192)
    with weak.app_context():
        from dr_panel.auth import services

        user, _ = services.create_user(
            services.AccountDetails(
                email="rehash@example.org",
                display_name="Re Hash",
                role=Role.LEAD,
                area_codes=["E06000009"],
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        old = user.password_hash
    assert old.startswith("$argon2id$") and "m=8192,t=1" in old
    strong = app_factory(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=19456)
    with strong.app_context():
        client = strong.test_client()
        assert (
            client.post(
                "/login", data={"email": "rehash@example.org", "password": PASSWORD}
            ).status_code
            == 302
        )
        new = db.session.scalar(
            db.select(User.password_hash).where(User.email == "rehash@example.org")
        )
    assert "m=19456,t=2" in new and new != old


# -- second factor ---------------------------------------------------------------------------------


def test_code_is_asked_for_and_each_code_works_once(client: Any, create_user: Any) -> None:
    user = create_user(Role.PANEL_MEMBER, totp=True)
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.location == "/login/code"
    assert client.get("/").status_code == 302  # not signed in until the code is given
    code = totp_code(user)
    assert client.post("/login/code", data={"code": code}).location == "/"
    client.post("/logout")

    # The same code again, within its 30 seconds: refused.
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    response = client.post("/login/code", data={"code": code})
    assert response.status_code == 200 and b"already used" in response.data
    assert last_audit().details == '{"step":"code"}'
    # An older code (the step before) is refused too once a later one was used.
    assert b"already used" in client.post("/login/code", data={"code": totp_code(user, -1)}).data
    # The next step's code (allowed clock drift) works.
    assert client.post("/login/code", data={"code": totp_code(user, 1)}).location == "/"


def test_required_second_factor_must_be_enrolled_before_anything(app_factory: Any) -> None:
    app = app_factory(REQUIRE_2FA=True)
    with app.app_context():
        from dr_panel.auth import services

        user, _ = services.create_user(
            services.AccountDetails(
                email="pm@example.org",
                display_name="Pat Member",
                role=Role.PANEL_MEMBER,
                area_codes=["E06000009"],
                agency_code="POLICE",
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        client = app.test_client()
        response = client.post("/login", data={"email": "pm@example.org", "password": PASSWORD})
        assert response.location == "/login/enrol"
        assert client.get("/").location.startswith("/login")
        page = client.get("/login/enrol")
        assert b"<svg" in page.data  # the QR code, inline
        with client.session_transaction() as sess:
            sealed = sess["totp_pending"]
        assert "v1:" in sealed  # sealed, not the secret in clear
        import re

        secret = re.search(rb'data-testid="totp-secret">([A-Z2-7]+)<', page.data).group(1).decode()
        import pyotp

        response = client.post("/login/enrol", data={"code": pyotp.TOTP(secret).now()})
        assert response.location == "/"
        assert client.get("/").status_code == 200
        user = db.session.scalar(db.select(User).where(User.email == "pm@example.org"))
        assert user.has_second_factor and secret not in (user.totp_secret_enc or "")


def test_lead_is_not_forced_to_enrol(app_factory: Any) -> None:
    app = app_factory(REQUIRE_2FA=True)
    with app.app_context():
        from dr_panel.auth import services

        services.create_user(
            services.AccountDetails(
                email="lead@example.org",
                display_name="Lee Lead",
                role=Role.LEAD,
                area_codes=["E06000009"],
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        client = app.test_client()
        response = client.post("/login", data={"email": "lead@example.org", "password": PASSWORD})
        assert response.location == "/"


def test_pending_sign_in_expires_after_ten_minutes(client: Any, create_user: Any) -> None:
    user = create_user(totp=True)
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    row = db.session.scalar(db.select(PendingSignIn).where(PendingSignIn.user_id == user.id))
    row.expires_at = utcnow() - timedelta(seconds=1)  # as ten minutes later
    db.session.commit()
    response = client.post("/login/code", data={"code": totp_code(user)})
    assert response.location == "/login"
    assert b"longer than 10 minutes" in client.get("/login").data
    assert db.session.scalar(db.select(db.func.count()).select_from(PendingSignIn)) == 0


def test_temporary_password_must_be_replaced_before_anything(client: Any, create_user: Any) -> None:
    user = create_user(must_change=True)
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.location == "/login/new-password"
    assert client.get("/").location.startswith("/login")
    weak = client.post(
        "/login/new-password", data={"password": "password1234", "confirm": "password1234"}
    )
    assert b"common or leaked" in weak.data
    mismatch = client.post(
        "/login/new-password",
        data={"password": "quiet harbour kestrel 93", "confirm": "quiet harbour kestrel 39"},
    )
    assert b"The two passwords are different" in mismatch.data
    ok = client.post(
        "/login/new-password",
        data={"password": "quiet harbour kestrel 93", "confirm": "quiet harbour kestrel 93"},
    )
    assert ok.location == "/"
    assert client.get("/").status_code == 200


# -- throttling ---------------------------------------------------------------------------------


def test_five_failures_make_this_client_wait_even_with_the_right_password(
    client: Any, create_user: Any
) -> None:
    user = create_user()
    for _ in range(5):
        assert (
            client.post("/login", data={"email": user.email, "password": "wrong"}).status_code
            == 200
        )
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many attempts" in response.data and b"Wait 2 seconds" in response.data
    assert response.headers["Retry-After"] == "2"
    assert last_audit().action == "access.throttled"
    assert client.get("/").status_code == 302  # not signed in


def test_others_failures_never_lock_the_owner_out(app: Any, create_user: Any) -> None:
    """Many clients failing on one account: the owner, from their own client, gets in."""
    user = create_user()
    for i in range(12):
        attacker = app.test_client()
        for _ in range(6):
            attacker.post(
                "/login",
                data={"email": user.email, "password": "guess"},
                environ_base={"REMOTE_ADDR": f"10.0.0.{i}"},
            )
    owner = app.test_client()
    response = owner.post(
        "/login",
        data={"email": user.email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 302 and response.location == "/"


def test_successful_sign_ins_do_not_count_towards_the_limit(app: Any, create_user: Any) -> None:
    user = create_user()
    for _ in range(8):
        c = app.test_client()
        assert c.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302


def test_one_client_spraying_many_accounts_is_throttled(app: Any, create_user: Any) -> None:
    client = app.test_client()
    statuses = [
        client.post("/login", data={"email": f"guess{i}@example.org", "password": "x"}).status_code
        for i in range(21)
    ]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429


def test_wrong_codes_count_towards_the_account_limit(client: Any, create_user: Any) -> None:
    user = create_user(totp=True)
    client.post("/login", data={"email": user.email, "password": PASSWORD})
    for _ in range(5):
        assert client.post("/login/code", data={"code": "000000"}).status_code == 200
    assert client.post("/login/code", data={"code": totp_code(user)}).status_code == 429
