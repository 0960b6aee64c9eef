"""Where throttling counts live: production refuses storage that would count per process."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from dr_panel import StartupError, create_app
from dr_panel.extensions import limiter
from tests.test_config import key_file, production

REDIS_URL = "redis://127.0.0.1:6379/7"


def test_production_refuses_memory_counts_with_several_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with pytest.raises(StartupError, match="WEB_CONCURRENCY=4.*RATELIMIT_STORAGE_URI=redis"):
        create_app(production(tmp_path, key_file(tmp_path / "keys.json")))


def test_production_with_one_worker_may_count_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert create_app(production(tmp_path, key_file(tmp_path / "keys.json")))


def test_production_refuses_an_unreachable_redis_and_never_names_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    cfg = replace(
        production(tmp_path, key_file(tmp_path / "keys.json")),
        RATELIMIT_STORAGE_URI="redis://:s3cret-pw@127.0.0.1:1/0",
    )
    with pytest.raises(StartupError) as refused:
        create_app(cfg)
    message = str(refused.value)
    assert "cannot be reached" in message and "does not fall back" in message
    assert "s3cret" not in message and "127.0.0.1:1" not in message


def test_production_refuses_a_storage_it_cannot_use(tmp_path: Path) -> None:
    cfg = replace(
        production(tmp_path, key_file(tmp_path / "keys.json")),
        RATELIMIT_STORAGE_URI="carrier-pigeon://loft",
    )
    with pytest.raises(StartupError, match="memory:// or redis://"):
        create_app(cfg)


def test_production_starts_on_a_reachable_redis_with_several_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    cfg = replace(
        production(tmp_path, key_file(tmp_path / "keys.json")), RATELIMIT_STORAGE_URI=REDIS_URL
    )
    create_app(cfg)
    assert type(limiter.storage).__name__ == "RedisStorage"


def test_development_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    from config import load_config

    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    cfg = replace(
        load_config("development"),
        INSTANCE_PATH=str(tmp_path),
        KEYS_FILE=str(tmp_path / "keys.json"),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'd.sqlite3'}",
    )
    logger = logging.getLogger("dr_panel")
    logger.addHandler(caplog.handler)
    try:
        assert create_app(cfg)
    finally:
        logger.removeHandler(caplog.handler)
    assert "each would count on its own" in caplog.text


def test_redis_gone_while_running_answers_503_never_500_and_never_unthrottled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running node whose Redis stops: sign-in and the public form fail closed (nothing is
    tried unthrottled) with a plain 503, not a stack trace or a 500."""
    from config import load_config
    from dr_panel.extensions import db

    cfg = replace(
        load_config("development"),
        INSTANCE_PATH=str(tmp_path),
        KEYS_FILE=str(tmp_path / "keys.json"),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'd.sqlite3'}",
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",  # nothing listens there
        WTF_CSRF_ENABLED=False,
    )
    app = create_app(cfg)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    for url, data in (
        ("/login", {"email": "someone@example.org", "password": "not the password at all"}),
        ("/report-a-drug-concern", {"area": "E06000009", "seen_on": "2026-11-30"}),
    ):
        response = client.post(url, data=data)
        page = response.get_data(as_text=True)
        assert response.status_code == 503, (url, response.status_code)
        assert "Paused for a moment" in page and "Traceback" not in page
