"""``dr-panel serve`` (gunicorn) and ``dr-panel worker`` (the outboxes and the schedule)."""

from __future__ import annotations

import os
import shutil
import sys

import click
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy import select

from config import PROJECT_ROOT
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.runtime import worker as runtime
from dr_panel.runtime.models import JobLease

GUNICORN_CONF = PROJECT_ROOT / "config" / "gunicorn.conf.py"


@click.command("serve")
@click.option("--bind", help="Address to listen on, host:port (default $DR_PANEL_BIND or "
              "127.0.0.1:8000; keep it on loopback behind nginx).")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Worker processes (default $WEB_CONCURRENCY or 1).")
def serve(bind: str | None, workers: int | None) -> None:
    """Serve the app under gunicorn with config/gunicorn.conf.py, for production behind a
    TLS proxy. The settings are checked here first, so a refusal reads as one message."""
    if bind:
        os.environ["DR_PANEL_BIND"] = bind
    if workers:
        os.environ["WEB_CONCURRENCY"] = str(workers)
    # The CLI's app factory, after the settings above: refuses unsafe settings (StartupError)
    # before any process is forked.
    click.get_current_context().ensure_object(ScriptInfo).load_app()
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which(
        "gunicorn"
    )
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed: pip install gunicorn.")
    sys.stdout.flush()
    sys.stderr.flush()
    # exec: gunicorn's master becomes this process, so systemd and containers signal it directly.
    os.execv(gunicorn, [gunicorn, "-c", str(GUNICORN_CONF), "dr_panel.wsgi:app"])  # noqa: S606


@click.command("worker")
@click.option("--once", is_flag=True, help="One round (outboxes, then due jobs) and stop.")
@click.option("--status", is_flag=True, help="List the schedule and each job's last run.")
@click.option("--interval", type=click.IntRange(1, 3600),
              help="Seconds between rounds (default WORKER_INTERVAL, 15).")
@with_appcontext
def worker(once: bool, status: bool, interval: int | None) -> None:
    """Drain the e-mail outbox and the alert deliveries and run the schedule (spike scan,
    chasing, reminders, alert expiry, retention, audit anchors) until stopped. Run one or more
    anywhere the database is reachable: each scheduled job runs once per period."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if status:
        _print_status(app)
        return
    if once:
        runtime.one_round(app)
        return
    runtime.run_forever(app, float(interval or app.config["WORKER_INTERVAL"]))


def _print_status(app: Flask) -> None:
    leases = {lease.name: lease for lease in db.session.scalars(select(JobLease))}
    now = utcnow()
    for job in runtime.schedule(app):
        lease = leases.get(job.name)
        last = lease.last_finished_at.isoformat(timespec="seconds") if (
            lease and lease.last_finished_at) else "never"
        error = f", last run failed ({lease.last_error})" if lease and lease.last_error else ""
        click.echo(
            f"{job.name:16} {job.when.describe():34} last finished {last}; next "
            f"{job.when.next_after(now).isoformat(timespec='minutes')}{error}"
        )
