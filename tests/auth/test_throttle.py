"""Sign-in back-off: what a guesser and the owner notice (dr_panel.auth.throttle), counted in
shared storage (Redis) across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from dr_panel.audit.models import AuditEntry
from dr_panel.auth import throttle
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from tests.conftest import PASSWORD

REDIS_DB = 7  # this suite's own Redis database; flushed before and after
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at = throttle.now()
        monkeypatch.setattr(throttle, "now", lambda: self.at)

    def advance(self, seconds: int) -> None:
        self.at += seconds


def fail(client: Any, email: str, addr: str = "203.0.113.5") -> Any:
    return client.post(
        "/login", data={"email": email, "password": "not it"}, environ_base={"REMOTE_ADDR": addr}
    )


def test_the_wait_doubles_with_each_further_failure(
    app: Any, create_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    user = create_user()
    client = app.test_client()
    for _ in range(5):
        assert fail(client, user.email).status_code == 200
    waits = []
    for _ in range(4):
        refused = fail(client, user.email)
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        clock.advance(waits[-1])  # waited exactly as long as told: the next try is heard
        assert fail(client, user.email).status_code == 200
    assert waits == [2, 4, 8, 16]


def test_the_wait_is_served_in_full_and_then_the_owner_gets_in(
    app: Any, create_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    user = create_user()
    client = app.test_client()
    for _ in range(5):
        fail(client, user.email)
    clock.advance(2)
    assert fail(client, user.email).status_code == 200  # the sixth failure: a 4-second wait
    right = {"email": user.email, "password": PASSWORD}
    addr = {"REMOTE_ADDR": "203.0.113.5"}
    clock.advance(3)
    refused = client.post("/login", data=right, environ_base=addr)
    assert refused.status_code == 429 and b"Wait 1 second " in refused.data
    clock.advance(1)
    assert client.post("/login", data=right, environ_base=addr).location == "/"
    client.post("/logout")
    fresh = app.test_client()
    for _ in range(5):  # signing in started this client afresh: five free failures again
        assert fail(fresh, user.email).status_code == 200


def test_unknown_accounts_are_throttled_exactly_like_real_ones(
    app: Any, create_user: Any
) -> None:
    user = create_user()
    seen = {}
    for email in (user.email, "nobody-here@example.org"):
        client = app.test_client()
        answers = [fail(client, email) for _ in range(7)]
        seen[email] = [(r.status_code, r.headers.get("Retry-After")) for r in answers]
    real, unknown = seen[user.email], seen["nobody-here@example.org"]
    assert [status for status, _ in real] == [status for status, _ in unknown]
    # The wait is counted down in whole seconds from the failure before, so on a loaded machine
    # (a slow password check) the same wait can read one second less: never more apart.
    for (_, a), (_, b) in zip(real, unknown, strict=True):
        assert (a is None) == (b is None) and (a is None or abs(int(a) - int(b)) <= 1)
    assert [status for status, _ in real[-2:]] == [429, 429]
    assert all(int(wait) in (1, 2) for _, wait in real[-2:])


def test_the_ceiling_emails_the_owner_once_and_ends_free_failures(
    app_factory: Any, create_user: Any
) -> None:
    app = app_factory(LOGIN_ACCOUNT_CEILING=10, MAIL_SEND_AFTER_REQUEST=False)
    with app.app_context():
        user = create_user()
        for i in range(5):  # five clients, two failures each: none of them is slowed yet
            client = app.test_client()
            assert [fail(client, user.email, f"198.51.100.{i}").status_code for _ in "ab"] == [
                200,
                200,
            ]
        told = db.session.scalars(
            db.select(OutboxMessage).where(OutboxMessage.kind == "auth.signin_ceiling")
        ).all()
        assert len(told) == 1 and told[0].to_address == user.email
        body = told[0].body_text
        assert "198.51.100" not in body and user.email not in body
        assert "not locked" in body
        entry = db.session.scalars(
            db.select(AuditEntry).where(AuditEntry.action == "auth.signin_ceiling")
        ).one()
        assert entry.actor_uuid == user.uuid
        # Past the ceiling a new client has no free failures: one try, then a wait.
        newcomer = app.test_client()
        assert fail(newcomer, user.email, "198.51.100.77").status_code == 200
        assert fail(newcomer, user.email, "198.51.100.77").status_code == 429
        for i in range(3):  # more failures: still one e-mail
            fail(app.test_client(), user.email, f"198.51.100.{100 + i}")
        assert (
            db.session.scalar(
                db.select(db.func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.kind == "auth.signin_ceiling")
            )
            == 1
        )
        # The owner, from their own client, still signs in at the first try.
        owner = app.test_client()
        response = owner.post(
            "/login",
            data={"email": user.email, "password": PASSWORD},
            environ_base={"REMOTE_ADDR": "192.0.2.44"},
        )
        assert response.location == "/"


def test_the_ceiling_for_an_unknown_account_emails_nobody(app_factory: Any) -> None:
    app = app_factory(LOGIN_ACCOUNT_CEILING=3, MAIL_SEND_AFTER_REQUEST=False)
    with app.app_context():
        for i in range(4):
            fail(app.test_client(), "ghost@example.org", f"198.51.100.{i}")
        assert db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)) == 0


# -- shared across processes (Redis) ---------------------------------------------------------------


@pytest.fixture
def redis_db() -> Iterator[str]:
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        conn.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    conn.flushdb()
    yield REDIS_URL
    conn.flushdb()
    conn.close()


FAIL_ELSEWHERE = textwrap.dedent(
    """
    import sys
    from dataclasses import replace
    from config import TestingConfig
    from dr_panel import create_app
    from dr_panel.auth.throttle import SignInAttempt

    instance, keys, url, email, times = sys.argv[1:6]
    app = create_app(replace(
        TestingConfig(), INSTANCE_PATH=instance, KEYS_FILE=keys,
        SQLALCHEMY_DATABASE_URI="sqlite:///" + instance + "/other.sqlite3",
        RATELIMIT_STORAGE_URI=url,
    ))
    with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "203.0.113.5"}):
        for _ in range(int(times)):
            SignInAttempt.of(email).failed(None)
    """
)


def fail_in_another_process(app: Any, tmp_path: Path, url: str, email: str, times: int) -> None:
    """Another app, in another process, on the same key file (as every node is)."""
    instance = tmp_path / "elsewhere"
    instance.mkdir()
    keys = app.config["KEYS_FILE"]
    subprocess.run(
        [sys.executable, "-c", FAIL_ELSEWHERE, str(instance), keys, url, email, str(times)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DR_PANEL_ENV": "testing"},
        timeout=120,
    )


def test_two_processes_on_redis_count_sign_in_failures_together(
    app_factory: Any, create_user: Any, redis_db: str, tmp_path: Path
) -> None:
    app = app_factory(RATELIMIT_STORAGE_URI=redis_db)
    with app.app_context():
        user = create_user()
        client = app.test_client()
        for _ in range(3):
            assert fail(client, user.email).status_code == 200
        fail_in_another_process(app, tmp_path, redis_db, user.email, 3)  # another app, 3 more
        refused = client.post(
            "/login",
            data={"email": user.email, "password": PASSWORD},
            environ_base={"REMOTE_ADDR": "203.0.113.5"},
        )
        # Refused at all: alone, this process's 3 failures are free (the control below). The
        # wait set by the 6th failure (4 s) counts down while the other process exits, so on a
        # loaded machine it reads less by the time this request asks.
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 4
        keys = redis.Redis.from_url(redis_db).keys("*")
        assert keys and not any(user.email.encode() in k or b"203.0.113" in k for k in keys)


def test_in_memory_counts_are_not_shared_between_processes(
    app: Any, create_user: Any, tmp_path: Path
) -> None:
    """The control for the test above: it is the shared storage that makes the difference."""
    user = create_user()
    client = app.test_client()
    for _ in range(3):
        fail(client, user.email)
    fail_in_another_process(app, tmp_path, "memory://", user.email, 3)
    assert fail(client, user.email).status_code == 200
