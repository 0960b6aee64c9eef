"""Headers, error pages and logs: what leaves the server says nothing it should not."""

from __future__ import annotations

import logging
import re
from typing import Any

import pyotp
import pytest

from dr_panel.auth.models import Role
from tests.conftest import PASSWORD


def test_security_headers_on_every_page(client: Any) -> None:
    for path in ["/login", "/nope", "/static/css/app.css"]:
        with client.get(path) as response:
            headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/login").headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_remote_assets(
    client: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user(Role.ADMIN))
    for path in ["/", "/account", "/account/two-factor", "/admin/users", "/admin/audit"]:
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\bon(click|load|submit)=", html), path
        assert not re.search(r"(src|href)=\"(https?:)?//", html), path


def test_not_found_is_a_friendly_page(client: Any) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404 and b"Page not found" in response.data
    assert b"Traceback" not in response.data


def test_server_error_leaks_nothing_and_logs_no_values(
    app: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from dr_panel.security import public

    @app.route("/boom")
    @public
    def boom() -> str:
        nhs = str(9990000010 + 8)  # a runtime value, as identifiers are, not a source literal
        raise RuntimeError(f"secret value {nhs} in an exception message")

    with caplog.at_level(logging.ERROR):
        response = client.get("/boom")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.data
    assert b"9990000018" not in response.data and b"RuntimeError" not in response.data
    assert "RuntimeError" in caplog.text and "9990000018" not in caplog.text


def test_api_errors_are_problem_details(client: Any) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 404 and body["title"] == "Page not found"


def test_no_password_code_or_secret_reaches_the_logs(
    app: Any, client: Any, create_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = create_user(Role.COORDINATOR)
    with caplog.at_level(logging.DEBUG):
        client.post("/login", data={"email": user.email, "password": "wrong guess 123456"})
        client.post("/login", data={"email": user.email, "password": PASSWORD})
        page = client.get("/account/two-factor").get_data(as_text=True)
        secret = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page).group(1)
        code = pyotp.TOTP(secret).now()
        client.post("/account/two-factor", data={"code": code})
        client.post(
            "/account/password",
            data={
                "current": PASSWORD,
                "password": "amber quarry violin 58",
                "confirm": "amber quarry violin 58",
            },
        )
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret_value in (PASSWORD, "wrong guess 123456", secret, code, "amber quarry violin 58"):
        assert secret_value not in logged


def test_method_not_allowed_says_which_methods_are(client: Any) -> None:
    response = client.put("/login")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    api = client.delete("/api/v1/openapi.json")
    assert api.status_code == 405 and "GET" in api.headers["Allow"]
    assert api.mimetype == "application/problem+json"
