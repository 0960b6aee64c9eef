"""Behind a proxy, in the logs, and to the load balancer: what an operator and an attacker see."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from dr_panel import StartupError
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.runtime.web import JsonFormatter, TextFormatter

NHS = "9434765919"  # synthetic, 999 range by its check digit's construction in the suite


def _denied_ip(app: Flask, client: Any, **headers: str) -> str | None:
    client.get("/admin/users", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.5"})
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None and entry.action == "access.denied"
    return entry.ip_address


@pytest.mark.parametrize("hops, forwarded, recorded", [
    (0, "203.0.113.9", "10.0.0.5"),  # no proxy trusted: the header is the browser's word
    (1, "203.0.113.9", "203.0.113.9"),  # nginx's header: the client
    (1, "198.51.100.66, 203.0.113.9", "203.0.113.9"),  # a spoofed entry before nginx's
])
def test_the_audit_records_the_client_behind_a_trusted_proxy_only(
    app_factory: Any, create_user: Any, login: Any, hops: int, forwarded: str, recorded: str
) -> None:
    app = app_factory(PROXY_TRUSTED_HOPS=hops)
    with app.app_context():
        client = app.test_client()
        user = create_user(Role.LEAD)
        login(client, user)
        assert _denied_ip(app, client, **{"X-Forwarded-For": forwarded}) == recorded


def test_request_lines_carry_no_query_string_nor_token(
    app: Flask, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dr_panel.requests"):
        client.get(f"/login?next=/cases&nhs={NHS}&q=Smith")
        client.get("/password/a-secret-single-use-token")
        client.get(f"/cases/{NHS}")  # a probe with an identifier where a UUID goes
        client.get(f"/probe/{NHS}")  # an unrouted probe
    lines = [r for r in caplog.records if r.name == "dr_panel.requests"]
    assert len(lines) == 4
    written = "\n".join(r.getMessage() for r in lines) + json.dumps([r.request for r in lines])
    for secret in ("?", NHS, "Smith", "a-secret-single-use-token"):
        assert secret not in written
    assert [r.request["path"] for r in lines] == [
        "/login", "/password/<token>", "/cases/<uuid>", "(no route)"
    ]
    assert all(len(r.request["request_id"]) == 32 for r in lines)


def test_a_uuid_in_the_path_is_kept_for_the_operator(app: Flask, client: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    uuid = "22ffbfa8-0d9d-4095-9031-d634db18ae6d"
    with caplog.at_level(logging.INFO, logger="dr_panel.requests"):
        client.get(f"/cases/{uuid}")
    assert caplog.records[-1].request["path"] == f"/cases/{uuid}"


def test_the_request_id_comes_back_and_a_proxy_id_is_taken_only_from_a_trusted_proxy(
    app_factory: Any,
) -> None:
    offered = "0123456789abcdef0123456789abcdef"
    for hops, expected in ((0, False), (1, True)):
        app = app_factory(PROXY_TRUSTED_HOPS=hops)
        response = app.test_client().get("/healthz", headers={"X-Request-ID": offered})
        assert (response.headers["X-Request-ID"] == offered) is expected
    app = app_factory(PROXY_TRUSTED_HOPS=1)
    response = app.test_client().get("/healthz", headers={"X-Request-ID": NHS})
    assert response.headers["X-Request-ID"] != NHS


def _record_with_exception() -> logging.LogRecord:
    try:
        raise ValueError(f"duplicate key (nhs_number)=({NHS})")
    except ValueError:
        exc_info = sys.exc_info()
    return logging.LogRecord("dr_panel", logging.ERROR, __file__, 1, "it failed", (), exc_info)


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_logged_exceptions_keep_their_type_and_stack_but_not_their_message(
    formatter: logging.Formatter,
) -> None:
    line = formatter.format(_record_with_exception())
    assert "ValueError" in line and "test_web.py" in line
    assert NHS not in line and "duplicate key" not in line


def test_json_lines_parse(app: Flask, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dr_panel.requests"):
        client.get("/healthz")
    out = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert out["method"] == "GET" and out["path"] == "/healthz" and out["status"] == 200
    assert out["level"] == "INFO" and out["time"].endswith("+00:00")


def test_healthz_says_alive_and_nothing_else(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_names_the_failing_checks_only(app: Flask, client: Any) -> None:
    response = client.get("/readyz")  # the suite's schema is made by create_all, not migrated
    assert response.status_code == 503
    assert response.get_json() == {"status": "not ok", "failing": ["migrations"]}


def test_readyz_is_ok_at_the_newest_migration(app: Flask, client: Any) -> None:
    from alembic.script import ScriptDirectory

    from config import PROJECT_ROOT

    head = ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_current_head()
    db.session.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
    db.session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})
    db.session.commit()
    try:
        response = client.get("/readyz")
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    finally:
        db.session.execute(text("DROP TABLE alembic_version"))
        db.session.commit()


def test_readyz_names_redis_when_it_cannot_be_reached(tmp_path: Any) -> None:
    from dr_panel import create_app
    from tests.conftest import make_config

    # Nothing listens on port 1 (built directly: the suite's factory resets the limiter).
    app = create_app(make_config(tmp_path, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/readyz")
    with app.app_context():
        db.engine.dispose()
    assert response.status_code == 503
    assert "redis" in response.get_json()["failing"]
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_readyz_passes_redis_when_it_answers(app_factory: Any) -> None:
    app = app_factory(RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/6")
    assert "redis" not in app.test_client().get("/readyz").get_json()["failing"]


def test_production_refuses_several_workers_on_sqlite() -> None:
    from dataclasses import replace

    from config import ProductionConfig, serving_problem

    sqlite = replace(ProductionConfig(), SQLALCHEMY_DATABASE_URI="sqlite:///x.db")
    assert serving_problem(replace(sqlite, WEB_WORKERS=1)) is None
    assert "WEB_CONCURRENCY=1" in (serving_problem(replace(sqlite, WEB_WORKERS=4)) or "")
    pg = replace(sqlite, SQLALCHEMY_DATABASE_URI="postgresql+psycopg://h/db", WEB_WORKERS=4)
    assert serving_problem(pg) is None


@pytest.mark.parametrize("override, message", [
    ({"LOG_FORMAT": "xml"}, "DR_PANEL_LOG_FORMAT"),
    ({"SPIKE_SCAN_AT": "6am"}, "SPIKE_SCAN_AT"),
])
def test_bad_serving_settings_stop_start_up_saying_which(
    app_factory: Any, override: dict[str, str], message: str
) -> None:
    with pytest.raises(StartupError, match=message):
        app_factory(**override)
