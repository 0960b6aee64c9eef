"""API tokens: shown once, stored only hashed, revocable at once, audited without the token,
managed on the web (by a browser session, never by a token) and from the command line."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select, text

from dr_panel.audit.models import AuditEntry
from dr_panel.auth import services as accounts
from dr_panel.auth.models import ApiToken, Role
from dr_panel.auth.tokens import TokenError, create_token, find_token, revoke_token
from dr_panel.cli import main
from dr_panel.crypto import hash_token
from dr_panel.extensions import db

TOKEN_RE = re.compile(r"^drp_[A-Za-z0-9_-]{43}$")


def entries(action: str) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
    )


def all_rows_text() -> str:
    """Every column of every token row and audit entry, as the database holds them."""
    rows = db.session.execute(text("SELECT * FROM api_tokens")).all()
    rows += db.session.execute(text("SELECT * FROM audit_entries")).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


# -- the service --------------------------------------------------------------------------------


def test_token_is_stored_only_as_its_hash_and_audited_without_it(create_user: Any) -> None:
    user = create_user(Role.COORDINATOR)
    token, plaintext = create_token(user, "  ambulance   feed ", by=user)
    db.session.commit()
    assert TOKEN_RE.match(plaintext)
    assert token.name == "ambulance feed" and token.prefix == plaintext[4:12]
    assert token.token_hash == hash_token(plaintext)
    stored = all_rows_text()
    assert plaintext not in stored and plaintext[4:] not in stored
    assert plaintext[4:20] not in stored  # not even a useful part of it
    assert plaintext not in repr(token)
    (entry,) = entries("api_token.created")
    assert entry.actor_uuid == user.uuid and entry.object_uuid == str(token.uuid)
    assert plaintext[4:] not in (entry.details or "")


def test_two_tokens_differ(create_user: Any) -> None:
    user = create_user()
    assert create_token(user, "a", by=user)[1] != create_token(user, "b", by=user)[1]


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "tab\x00null"])
def test_token_names_are_checked(create_user: Any, name: str) -> None:
    with pytest.raises(TokenError):
        create_token(create_user(), name, by=None)


def test_a_disabled_account_gets_no_token(create_user: Any) -> None:
    user = create_user()
    accounts.set_disabled(user, True, by=None)
    with pytest.raises(TokenError, match="disabled"):
        create_token(user, "x", by=None)


def test_find_token_by_its_shown_characters(create_user: Any) -> None:
    user = create_user()
    token, plaintext = create_token(user, "x", by=user)
    assert find_token(user, plaintext[:12]) is token
    assert find_token(user, plaintext[4:12]) is token
    with pytest.raises(TokenError):
        find_token(user, plaintext[4:8])  # too short to be sure
    with pytest.raises(TokenError):
        find_token(create_user(), plaintext[4:12])  # someone else's
    revoke_token(token, by=user)
    with pytest.raises(TokenError):
        find_token(user, plaintext[4:12])
    with pytest.raises(TokenError, match="already"):
        revoke_token(token, by=user)


# -- using a token ------------------------------------------------------------------------------


def test_a_token_authenticates_until_revoked_then_401(
    client: Any, create_user: Any, bearer: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    assert client.get("/api/v1/cases", headers=headers).status_code == 200
    token = db.session.scalars(select(ApiToken)).one()
    assert token.last_used_at is not None
    revoke_token(token, by=user)
    db.session.commit()
    response = client.get("/api/v1/cases", headers=headers)
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert "revoked" in response.get_json()["detail"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer ",
        "Bearer drp_" + "A" * 43,
        "Bearer not a token",
        "Basic dXNlcjpwYXNz",
        "Bearer " + "x" * 5000,
    ],
)
def test_without_a_valid_token_the_api_answers_401_problem(client: Any, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    for method, url in (
        ("GET", "/api/v1/cases"),
        ("POST", "/api/v1/cases"),
        ("GET", "/api/v1/cases/6f0f1a56-0d3e-4f43-9a52-2a3a7c1b9e10"),
    ):
        response = client.open(url, method=method, headers=headers, json={})
        assert response.status_code == 401, (method, url)
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["status"] == 401


def test_a_disabled_accounts_token_stops_working(
    client: Any, create_user: Any, bearer: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    accounts.set_disabled(user, True, by=None)
    db.session.commit()
    assert client.get("/api/v1/cases", headers=headers).status_code == 401


def test_the_document_needs_no_token(client: Any) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json()["openapi"].startswith("3.")


# -- the pages ----------------------------------------------------------------------------------


def test_create_on_the_page_shows_the_token_once(client: Any, create_user: Any, login: Any) -> None:
    user = create_user(Role.PANEL_MEMBER)
    login(client, user)
    assert b"You have no API tokens" in client.get("/account/tokens").data
    response = client.post("/account/tokens", data={"name": "Ambulance feed"})
    assert response.status_code == 200
    plaintext = re.search(rb'data-testid="api-token">([^<]+)<', response.data).group(1).decode()
    assert TOKEN_RE.match(plaintext) and b"shown only this once" in response.data
    assert response.headers["Cache-Control"] == "no-store"
    listing = client.get("/account/tokens")
    assert b"Ambulance feed" in listing.data and plaintext[:12].encode() in listing.data
    assert plaintext.encode() not in listing.data
    # It works.
    api = client.application.test_client()
    ok = api.get("/api/v1/cases", headers={"Authorization": f"Bearer {plaintext}"})
    assert ok.status_code == 200


def test_create_on_the_page_without_a_name_says_how_to_fix(
    client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user())
    response = client.post("/account/tokens", data={"name": "  "})
    assert response.status_code == 200 and b"There is a problem" in response.data
    assert b"Give the token a name" in response.data
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_revoke_on_the_page(client: Any, create_user: Any, login: Any, bearer: Any) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    login(client, user)
    token = db.session.scalars(select(ApiToken)).one()
    response = client.post(f"/account/tokens/{token.uuid}/revoke", follow_redirects=True)
    assert b"Revoked the token" in response.data and b"Revoked" in response.data
    db.session.refresh(token)
    assert token.revoked_at is not None
    (entry,) = entries("api_token.revoked")
    assert entry.actor_uuid == user.uuid and entry.object_uuid == str(token.uuid)
    assert client.application.test_client().get("/api/v1/cases", headers=headers).status_code == 401


def test_nobody_revokes_anothers_token_on_the_page(
    client: Any, create_user: Any, login: Any, bearer: Any
) -> None:
    owner = create_user(Role.COORDINATOR)
    bearer(owner, "Ambulance feed")
    token = db.session.scalars(select(ApiToken)).one()
    for role in (Role.COORDINATOR, Role.ADMIN):
        other = create_user(role)
        visitor = client.application.test_client()
        login(visitor, other)
        assert visitor.post(f"/account/tokens/{token.uuid}/revoke").status_code == 404
        assert entries("access.denied")[-1].actor_uuid == other.uuid
        assert b"Ambulance" not in visitor.get("/account/tokens").data
    db.session.refresh(token)
    assert token.revoked_at is None


def test_a_token_cannot_manage_tokens(client: Any, create_user: Any, bearer: Any) -> None:
    user = create_user(Role.COORDINATOR)
    headers = bearer(user)
    assert client.get("/account/tokens", headers=headers).status_code == 401
    assert client.post("/account/tokens", data={"name": "x"}, headers=headers).status_code == 401
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_revoke_needs_the_csrf_token_when_csrf_is_on(app_factory: Any, login: Any) -> None:
    from tests.conftest import csrf_token_from

    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        user, _ = accounts.create_user(
            accounts.AccountDetails(
                email="c@example.org",
                display_name="Cleo Ord",
                role=Role.COORDINATOR,
                area_codes=["E06000009"],
            ),
            password="plum orchard lantern 47 drift",
            by=None,
            must_change=False,
        )
        token, _ = create_token(user, "feed", by=user)
        db.session.commit()
        client = app.test_client()
        page = client.get("/login")
        client.post(
            "/login",
            data={
                "email": "c@example.org",
                "password": "plum orchard lantern 47 drift",
                "csrf_token": csrf_token_from(page.data),
            },
        )
        assert client.post(f"/account/tokens/{token.uuid}/revoke").status_code == 400
        assert client.post("/account/tokens", data={"name": "x"}).status_code == 400
        listing = client.get("/account/tokens")
        response = client.post(
            f"/account/tokens/{token.uuid}/revoke",
            data={"csrf_token": csrf_token_from(listing.data)},
        )
        assert response.status_code == 302
        db.session.refresh(token)
        assert token.revoked_at is not None


# -- the command line ---------------------------------------------------------------------------


def test_cli_create_prints_the_token_once_on_stdout(runner: Any, create_user: Any) -> None:
    user = create_user(Role.COORDINATOR, email="Cora@example.org")
    result = runner.invoke(main, ["tokens", "create", "cora@example.org", "--name", "feed"])
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip()
    assert TOKEN_RE.match(plaintext)
    assert "shown only this once" in result.stderr and plaintext not in result.stderr
    token = db.session.scalars(select(ApiToken)).one()
    assert token.user_id == user.id and token.name == "feed"
    assert plaintext not in all_rows_text()
    (entry,) = entries("api_token.created")
    assert entry.actor_label == "cli"


def test_cli_list_and_revoke(runner: Any, create_user: Any) -> None:
    user = create_user(Role.COORDINATOR)
    _, plaintext = create_token(user, "feed", by=None)
    db.session.commit()
    listed = runner.invoke(main, ["tokens", "list", user.email])
    assert listed.exit_code == 0 and plaintext not in listed.output
    (line,) = [x for x in listed.output.splitlines() if x.startswith(plaintext[:12])]
    assert line.endswith(" feed") and line.count("UTC") == 2  # created, expires; never used
    assert "expires" in listed.output.splitlines()[0]
    revoked = runner.invoke(main, ["tokens", "revoke", user.email, plaintext[:12]])
    assert revoked.exit_code == 0, revoked.output
    assert entries("api_token.revoked")[0].actor_label == "cli"
    again = runner.invoke(main, ["tokens", "revoke", user.email, plaintext[:12]])
    assert again.exit_code != 0 and "no live token" in again.output
    listed = runner.invoke(main, ["tokens", "list", user.email])
    (line,) = [x for x in listed.output.splitlines() if x.startswith(plaintext[:12])]
    assert line.count("UTC") == 3  # created, expires and revoked


def test_cli_refuses_unknown_accounts(runner: Any) -> None:
    for args in (["create", "nobody@example.org"], ["list", "nobody@example.org"]):
        result = runner.invoke(main, ["tokens", *args])
        assert result.exit_code != 0 and "No account" in result.output
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0
