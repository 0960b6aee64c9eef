"""`dr-panel signals ...` and `dr-panel alerts ...`: the LDIS from the command line.

`signals scan` is cron-able: it exits 0 when the scan ran (whether or not it found anything) and
prints how many new signals it stored; a progress bar shows on a terminal only. The `alerts`
group is shared: drafting and broadcast add their commands to it.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from dr_panel.extensions import db


@click.group()
def signals() -> None:
    """Signals for the local drug information system (spikes and clusters)."""


@signals.command("scan")
@click.option(
    "--days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Look back this many days for alarms (default: each area's setting, 14).",
)
@click.option(
    "--date",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Scan as if today were this day, YYYY-MM-DD (default: today), e.g. to catch up a "
    "day the scheduled scan missed.",
)
@with_appcontext
def scan_command(days: int | None, as_of: datetime | None) -> None:
    """Scan daily counts (EARS C1/C2/C3, Poisson) and reviewed cases (theme and substance
    clusters) for new signals. Safe to run as often as you like: a signal is stored once."""
    from dr_panel.alerts import signals as sig

    today = as_of.date() if as_of is not None else None  # None: the scan's own today (UTC)
    try:
        if sys.stdout.isatty():
            with click.progressbar(length=sig.series_count(), label="Scanning series") as bar:
                report = sig.scan(today, days=days, progress=bar.update)
        else:
            report = sig.scan(today, days=days)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(
            "Another scan stored the same signals at the same moment; nothing was saved. "
            "Run the scan again."
        ) from None
    click.echo(
        f"Scanned {report.series} series: {report.new} new signal"
        f"{'' if report.new == 1 else 's'} ({report.new_spikes} spikes, "
        f"{report.new_clusters} clusters)."
    )


@click.group("alerts")
def alerts_cli() -> None:
    """Drug alerts: drafting, issue, broadcast."""


alerts = alerts_cli  # the same group under its short name


@alerts_cli.command("reindex-names")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
@with_appcontext
def reindex_names_command(batch_size: int) -> None:
    """Fill the blind indexes the identifier detector looks people up by (persons.bi_name and
    the name and address tokens), for people stored before they existed. In batches, each
    committed; resumable: run again after an interruption."""
    from dr_panel.alerts.leakgate import names_to_index, reindex_names

    total = names_to_index()
    if sys.stdout.isatty() and total:
        with click.progressbar(length=total, label="Indexing names and addresses") as bar:
            done = reindex_names(batch_size, progress=bar.update)
    else:
        done = reindex_names(batch_size)
    click.echo(f"Indexed the names and addresses of {done} "
               f"{'person' if done == 1 else 'people'}.")


# -- broadcast (A3) -----------------------------------------------------------------------------


@alerts_cli.command("deliver")
@click.option("--once/--loop", "once", default=True,
              help="One round (for cron; the default), or keep going until Ctrl+C.")
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between rounds with --loop, when nothing was due.")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="At most this many deliveries a round (default: BROADCAST_BATCH).")
@with_appcontext
def deliver_command(once: bool, interval: float, limit: int | None) -> None:
    """Send due alert deliveries (e-mail and webhooks), retry failed ones when their time comes,
    and expire alerts that have run out. Safe to run in several processes at once."""
    import time

    from dr_panel.alerts.broadcast import deliver

    try:
        while True:
            report = deliver(limit)
            if once or report.sent or report.failed or report.gave_up or report.expired:
                click.echo(str(report))
            if once:
                return
            if not (report.sent or report.failed or report.gave_up):
                time.sleep(interval)  # after a busy round, more may be due at once
    except KeyboardInterrupt:
        click.echo("Stopped.")
