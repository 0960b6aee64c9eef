"""Configuration and keys: production refuses to start on anything weak or missing."""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from config import ProductionConfig, load_config, normalise_database_url
from dr_panel import StartupError, create_app
from dr_panel.crypto import KeyRing


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def key_file(path: Path, **changes: Any) -> Path:
    data = json.loads(KeyRing.generate().to_json())
    data.update(changes)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def production(tmp_path: Path, keys: Path) -> ProductionConfig:
    return replace(
        ProductionConfig(),
        INSTANCE_PATH=str(tmp_path / "instance"),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}",
        KEYS_FILE=str(keys),
    )


def test_development_generates_keys_once_readable_by_owner_only(tmp_path: Path) -> None:
    cfg = replace(
        load_config("development"),
        INSTANCE_PATH=str(tmp_path),
        KEYS_FILE=str(tmp_path / "keys.json"),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'd.sqlite3'}",
    )
    app = create_app(cfg)
    path = tmp_path / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    app2 = create_app(cfg)
    assert path.read_text() == first
    assert app.secret_key == app2.secret_key


def test_production_starts_with_a_good_key_file(tmp_path: Path) -> None:
    app = create_app(production(tmp_path, key_file(tmp_path / "keys.json")))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REQUIRE_2FA"] is True


def test_production_never_generates_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SESSION", "CSRF", "AUDIT", "BLIND_INDEX"):
        monkeypatch.delenv(f"DR_PANEL_{name}_KEY", raising=False)
    with pytest.raises(StartupError, match="no keys"):
        create_app(production(tmp_path, tmp_path / "missing.json"))
    assert not (tmp_path / "missing.json").exists()


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"session": base64.urlsafe_b64encode(b"short").decode()},
            "session key must be at least 32",
        ),
        ({"audit": base64.urlsafe_b64encode(b"a" * 40).decode()}, "audit key is not random enough"),
        ({"csrf": "%%%not base64%%%"}, "csrf key is not valid"),
        ({"blind_index": ""}, "blind_index key is missing"),
        ({"field": {"active": "k9", "keys": {}}}, "field encryption keys are missing"),
    ],
)
def test_production_refuses_weak_or_missing_keys(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(StartupError, match=message):
        create_app(production(tmp_path, key_file(tmp_path / "keys.json", **change)))


def test_one_key_per_purpose(tmp_path: Path) -> None:
    shared = key()
    with pytest.raises(StartupError, match="csrf key is the same as the session key"):
        create_app(
            production(tmp_path, key_file(tmp_path / "keys.json", session=shared, csrf=shared))
        )


def test_production_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = key_file(tmp_path / "keys.json")
    path.chmod(0o644)
    with pytest.raises(StartupError, match="readable by its owner only"):
        create_app(production(tmp_path, path))


def test_keys_from_the_environment_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session_key = key()
    monkeypatch.setenv("DR_PANEL_SESSION_KEY", session_key)
    app = create_app(production(tmp_path, key_file(tmp_path / "keys.json")))
    assert app.secret_key == base64.urlsafe_b64decode(session_key)


def test_database_url_selects_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalise_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/db")
    assert load_config("development").SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u@h:5432/db"


def test_unknown_profile_is_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="development, testing, production"):
        load_config("staging")


def test_config_is_frozen() -> None:
    cfg = load_config("testing")
    with pytest.raises(AttributeError):
        cfg.REQUIRE_2FA = False  # type: ignore[misc]


def test_key_ring_repr_shows_no_key(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    text = repr(ring) + str(ring)
    for purpose in ("session", "csrf", "audit", "blind_index"):
        raw = getattr(ring, purpose)
        assert base64.urlsafe_b64encode(raw).decode() not in text and raw.hex() not in text
