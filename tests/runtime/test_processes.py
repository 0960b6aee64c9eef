"""Real processes: ``dr-panel serve`` under gunicorn answers on a free port; two
``dr-panel worker`` processes on one database run each due job once between them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

DR_PANEL = str(Path(sys.executable).with_name("dr-panel"))
NHS = "9434765919"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DR_PANEL_", "DATABASE_URL", "WEB_CONCURRENCY", "RATELIMIT"))}
    env.update({"DR_PANEL_ENV": "development", "DR_PANEL_INSTANCE": str(tmp_path / "instance"),
                "DR_PANEL_LOG_FORMAT": "json", **extra})
    return env


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (http, localhost)
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def stop(process: subprocess.Popen[Any]) -> tuple[str, str]:
    """End the process group we started (gunicorn's master and its workers), then read it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return out, err


def test_serve_runs_gunicorn_that_answers_and_logs_no_query(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [DR_PANEL, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env=base_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = body = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        assert status == 200, "gunicorn did not answer /healthz"
        assert json.loads(body or b"{}") == {"status": "ok"}
        status, _ = get(f"http://127.0.0.1:{port}/login?nhs={NHS}&q=Smith")
        assert status == 200
        time.sleep(0.5)
    finally:
        out, err = stop(process)
    assert "Booting worker" in err  # gunicorn, not Werkzeug's development server
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    paths = [line.get("path") for line in lines if line.get("logger") == "dr_panel.requests"]
    assert "/healthz" in paths and "/login" in paths
    assert NHS not in out + err and "Smith" not in out + err and "?" not in json.dumps(paths)


def test_serve_refuses_several_workers_on_sqlite_in_production(tmp_path: Path) -> None:
    from dr_panel.crypto import KeyRing

    keys = tmp_path / "keys.json"
    KeyRing.load(keys, generate=True, strict_permissions=False)
    keys.chmod(0o600)
    env = base_env(tmp_path, DR_PANEL_ENV="production", DR_PANEL_KEYS_FILE=str(keys),
                   WEB_CONCURRENCY="3", RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/6",
                   MAIL_SERVER="smtp.example.org")
    result = subprocess.run([DR_PANEL, "serve", "--bind", f"127.0.0.1:{free_port()}"], env=env,
                            capture_output=True, text=True, timeout=60, start_new_session=True)
    assert result.returncode != 0
    assert "WEB_CONCURRENCY is 3 on SQLite" in result.stderr + result.stdout
    assert "Booting worker" not in result.stderr  # refused before gunicorn started


def test_two_workers_on_one_database_run_each_due_job_once(app: Flask, tmp_path: Path) -> None:
    env = base_env(tmp_path, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                   DR_PANEL_KEYS_FILE=app.config["KEYS_FILE"])
    workers = [
        subprocess.Popen([DR_PANEL, "worker", "--once"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(2)
    ]
    outputs = [stop_after(w) for w in workers]
    done: list[str] = []
    for err in outputs:
        for line in err.splitlines():
            if line.startswith("{"):
                message = json.loads(line)["message"]
                if message.startswith("job ") and " done" in message:
                    done.append(message.split()[1])
    for name in ("spike-scan", "requests-chase", "actions-remind", "retention"):
        assert done.count(name) == 1, (name, done)


def stop_after(process: subprocess.Popen[str], timeout: float = 120) -> str:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _, err = stop(process)
        pytest.fail("a worker did not finish its round")
    assert process.returncode == 0, err[-2000:]
    return err
