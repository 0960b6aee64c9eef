"""``dr-panel worker``: one process that drains both outboxes (e-mail, alert deliveries) and
runs the schedule, each scheduled job once per period however many workers run (``jobs``).

The same round runs inside ``dr-panel start`` on the development server's background thread,
so the demo scans for spikes by itself. Each round first follows the key file (a field key
added by ``dr-panel keys`` reaches a running worker without a restart, as it reaches requests).

The schedule (times in Europe/London; settings in ``config``):

- ``spike-scan``: daily at ``SPIKE_SCAN_AT`` (06:00), the EARS/Poisson and cluster scan.
- ``requests-chase`` and ``actions-remind``: daily at ``REMINDERS_AT`` (07:00).
- ``alert-expiry``: every minute (the broadcast round also expires, this is the floor).
- ``retention``: every ``RETENTION_RUN_HOURS`` (24).
- ``audit-anchor``: every ``AUDIT_ANCHOR_MINUTES`` (60), when the audit package provides
  ``dr_panel.audit.anchors.anchor_now`` (the seam: ``anchor_hook``).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask

from dr_panel import crypto
from dr_panel.alerts import signals
from dr_panel.alerts.broadcast import deliver_in_worker
from dr_panel.alerts.drafting import expire_due
from dr_panel.audit import anchors
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.worker import deliver_soon
from dr_panel.retention.services import run as run_retention
from dr_panel.reviews.actions import remind
from dr_panel.reviews.services import chase_overdue
from dr_panel.runtime import jobs
from dr_panel.runtime.schedule import LONDON, Daily, Every, When, parse_local_time

log = logging.getLogger("dr_panel.worker")


@dataclass(frozen=True)
class Job:
    """A scheduled job: ``run(now)`` works in the app context's session; the caller commits."""

    name: str
    when: When
    run: Callable[[datetime], Any]
    hold: timedelta = timedelta(minutes=30)  # a claim longer than any sane run


def _scan(now: datetime) -> str:
    report = signals.scan(now.astimezone(LONDON).date())
    return f"{report.new} new signal(s)"


def _chase(now: datetime) -> str:
    return f"{chase_overdue(now.astimezone(LONDON).date())} request(s) chased"


def _remind(now: datetime) -> str:
    return f"{remind(now.astimezone(LONDON).date())} reminder(s) queued"


def _expire(now: datetime) -> str:
    return f"{expire_due(now)} alert(s) expired"


def _retention(now: datetime) -> str:
    return f"{run_retention(now=now).total} record(s) disposed of"


def anchor_hook() -> Callable[[], Any] | None:
    """The audit package's anchoring function (the seam tests replace); the schedule runs it
    and knows nothing else about anchors."""
    hook = getattr(anchors, "anchor_now", None)
    return hook if callable(hook) else None


def _anchor(now: datetime) -> str:
    hook = anchor_hook()
    if hook is not None:
        hook()
    return "anchored"


def schedule(app: Flask) -> list[Job]:
    """Every scheduled job with its timing from the app's settings."""
    config = app.config
    daily_scan = Daily(parse_local_time(config["SPIKE_SCAN_AT"], "SPIKE_SCAN_AT"))
    daily_reminders = Daily(parse_local_time(config["REMINDERS_AT"], "REMINDERS_AT"))
    out = [
        Job("spike-scan", daily_scan, _scan, hold=timedelta(hours=2)),
        Job("requests-chase", daily_reminders, _chase),
        Job("actions-remind", daily_reminders, _remind),
        Job("alert-expiry", Every(60), _expire, hold=timedelta(minutes=5)),
        Job("retention", Every(int(config["RETENTION_RUN_HOURS"]) * 3600), _retention,
            hold=timedelta(hours=2)),
    ]
    if anchor_hook() is not None:
        out.append(Job("audit-anchor", Every(int(config["AUDIT_ANCHOR_MINUTES"]) * 60), _anchor,
                       hold=timedelta(minutes=10)))
    return out


def _follow_keys(app: Flask) -> None:
    """The key file check that every request makes (``dr_panel.crypto.current``)."""
    crypto.current(app)


def run_due(app: Flask, now: datetime | None = None, *, holder: str | None = None) -> list[str]:
    """Run every job due at ``now`` that no other worker has taken; the names of those run
    here. Never raises: a failed job is logged by type and retried after
    ``jobs.retry_after()``."""
    done: list[str] = []
    try:
        with app.app_context():
            _follow_keys(app)
            now = now or utcnow()
            for job in schedule(app):
                period = job.when.period(now)
                if not jobs.claim(job.name, period, now=now, hold=job.hold, holder=holder):
                    continue
                error: BaseException | None = None
                try:
                    summary = job.run(now)
                    db.session.commit()
                    log.info("job %s (%s) done: %s", job.name, period, summary)
                    done.append(job.name)
                except Exception as err:
                    db.session.rollback()
                    error = err
                    log.error("job %s (%s) failed (%s); retried in %d minutes", job.name,
                              period, type(err).__name__,
                              jobs.retry_after().total_seconds() // 60)
                jobs.finish(job.name, period, now=now, error=error, holder=holder)
    except Exception as err:  # the database gone, say: the next round tries again
        log.error("the schedule could not run (%s); the next round tries again",
                  type(err).__name__)
    return done


def scheduled_round(app: Flask) -> None:
    """``run_due`` as a job of the development server's background thread (``mail.add_job``)."""
    run_due(app)


def one_round(app: Flask) -> None:
    """Drain the e-mail outbox, then the alert deliveries, then run the schedule."""
    deliver_soon(app)
    deliver_in_worker(app)
    run_due(app)


def run_forever(app: Flask, interval: float, stop: threading.Event | None = None) -> None:
    """Rounds every ``interval`` seconds until SIGTERM or SIGINT (systemd's stop, Ctrl+C): the
    round under way finishes first, so a stop never cuts a delivery in half."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with app.app_context():
        names = ", ".join(f"{j.name} ({j.when.describe()})" for j in schedule(app))
    log.info("worker started: outboxes every %s s; schedule: %s", interval, names)
    while not stop.is_set():
        one_round(app)
        stop.wait(interval)
    log.info("worker stopped")
