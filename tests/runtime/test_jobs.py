"""Scheduled jobs run once per period, however many workers try; a dead worker's claim runs
out; a failing job is retried later and logged without its message."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from dr_panel.extensions import db
from dr_panel.runtime import jobs
from dr_panel.runtime import worker as runtime
from dr_panel.runtime.models import JobLease

MORNING = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # 07:00 in London: both daily jobs are due
DAILY = {"spike-scan", "requests-chase", "actions-remind"}


def test_each_job_runs_once_a_period(app: Flask) -> None:
    first = runtime.run_due(app, MORNING, holder="a")
    assert DAILY | {"alert-expiry", "retention"} <= set(first)
    assert runtime.run_due(app, MORNING + timedelta(seconds=20), holder="b") == []
    # A minute on, only the every-minute job; the next morning, the daily ones again.
    assert runtime.run_due(app, MORNING + timedelta(minutes=1), holder="b") == ["alert-expiry"]
    assert DAILY <= set(runtime.run_due(app, MORNING + timedelta(days=1), holder="b"))


def test_before_the_set_time_the_daily_scan_waits(app: Flask) -> None:
    runtime.run_due(app, MORNING, holder="a")
    next_day_early = MORNING + timedelta(days=1) - timedelta(hours=2)  # 05:00 London
    assert "spike-scan" not in runtime.run_due(app, next_day_early, holder="a")


def test_concurrent_claims_give_the_period_to_one(app: Flask) -> None:
    barrier = threading.Barrier(6)
    won: list[bool] = []

    def attempt(n: int) -> None:
        with app.app_context():
            barrier.wait()
            won.append(jobs.claim("spike-scan", "2026-06-01", now=MORNING,
                                  hold=timedelta(minutes=30), holder=f"w{n}"))
            db.session.remove()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 5 + [True]


def test_a_dead_workers_claim_runs_out(app: Flask) -> None:
    assert jobs.claim("spike-scan", "2026-06-01", now=MORNING, hold=timedelta(hours=2),
                      holder="dead")  # and it never finishes
    assert "spike-scan" not in runtime.run_due(app, MORNING + timedelta(minutes=5), holder="b")
    later = MORNING + timedelta(hours=2, seconds=1)
    assert "spike-scan" in runtime.run_due(app, later, holder="b")


def test_a_failing_job_is_retried_later_and_logged_without_its_message(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(now: datetime) -> Any:
        raise ValueError("person 943 476 5919 not found")  # a message quoting an identifier

    real = runtime.schedule
    monkeypatch.setattr(runtime, "schedule", lambda app: [
        runtime.Job(j.name, j.when, boom if j.name == "spike-scan" else j.run, j.hold)
        for j in real(app)
    ])
    with caplog.at_level(logging.INFO, logger="dr_panel"):
        assert "spike-scan" not in runtime.run_due(app, MORNING, holder="a")
    assert "ValueError" in caplog.text
    assert "943" not in caplog.text and "5919" not in caplog.text
    lease = db.session.get(JobLease, "spike-scan")
    assert lease.last_error == "ValueError" and lease.done_period is None
    assert "spike-scan" not in runtime.run_due(app, MORNING + timedelta(minutes=4), holder="a")
    monkeypatch.setattr(runtime, "schedule", real)
    assert "spike-scan" in runtime.run_due(app, MORNING + jobs.retry_after() + timedelta(seconds=1),
                                           holder="a")


def test_the_scheduled_scan_finds_a_spike_by_itself(app: Flask) -> None:
    """What the newcomer's demo needed: the worker's round scans with no one running
    ``dr-panel signals scan``, for the London date."""
    calls: list[Any] = []
    from dr_panel.alerts import signals

    real_scan = signals.scan

    def spy(today: Any = None, **kwargs: Any) -> Any:
        calls.append(today)
        return real_scan(today, **kwargs)

    signals_scan = pytest.MonkeyPatch()
    signals_scan.setattr(signals, "scan", spy)
    try:
        runtime.run_due(app, MORNING, holder="a")
    finally:
        signals_scan.undo()
    assert [str(day) for day in calls] == ["2026-06-01"]  # the London date, once
    assert db.session.get(JobLease, "spike-scan").done_period == "2026-06-01"


def test_the_anchor_seam_runs_when_the_audit_package_has_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchored: list[int] = []
    monkeypatch.setattr(runtime, "anchor_hook", lambda: lambda: anchored.append(1))
    assert "audit-anchor" in runtime.run_due(app, MORNING, holder="a")
    assert "audit-anchor" not in runtime.run_due(app, MORNING + timedelta(minutes=1))
    assert anchored == [1]
    monkeypatch.setattr(runtime, "anchor_hook", lambda: None)
    assert "audit-anchor" not in {j.name for j in runtime.schedule(app)}


def test_the_worker_follows_a_changed_key_file(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    followed: list[Flask] = []
    import dr_panel.crypto

    monkeypatch.setattr(dr_panel.crypto, "current", lambda a: followed.append(a))
    runtime.run_due(app, MORNING)
    assert followed == [app]


def test_dr_panel_start_runs_the_schedule_in_process(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newcomer's ``dr-panel start``: with no worker process and no cron, the development
    server's background thread runs the daily scan by itself."""
    import time as time_mod

    from sqlalchemy import create_engine, select

    import dr_panel.cli as cli
    from dr_panel import create_app
    from tests.conftest import make_config

    url = f"sqlite:///{tmp_path / 'start.sqlite3'}"
    fresh = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=url, ALLOW_DEMO_DATA=False))
    seen: list[str | None] = []

    def serve_briefly(*args: Any, **kwargs: Any) -> None:
        engine = create_engine(url)
        try:
            deadline = time_mod.monotonic() + 60
            while time_mod.monotonic() < deadline:
                with engine.connect() as conn:
                    done = conn.scalar(select(JobLease.done_period).where(
                        JobLease.name == "spike-scan"))
                if done:
                    seen.append(done)
                    return
                time_mod.sleep(0.2)
        finally:
            engine.dispose()

    monkeypatch.setattr(cli, "run_simple", serve_briefly)
    result = fresh.test_cli_runner().invoke(cli.main, ["start", "--port", "0"])
    with fresh.app_context():
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert len(seen) == 1  # the scan ran, for some London date, without anyone asking
