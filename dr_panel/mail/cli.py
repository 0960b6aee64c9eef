"""``dr-panel mail``: deliver the outbox (once, for cron, or in a loop) and list it."""

from __future__ import annotations

import time
from datetime import datetime

import click
from flask.cli import with_appcontext

from dr_panel.dbtypes import utcnow
from dr_panel.mail import outbox


@click.group("mail")
def mail() -> None:
    """The e-mail outbox: deliver queued mail, see what is waiting."""


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@mail.command("deliver")
@click.option("--loop", is_flag=True, help="Keep going, every --interval seconds, until Ctrl+C.")
@click.option("--interval", default=30, show_default=True, type=click.IntRange(min=1),
              help="Seconds between runs with --loop.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1),
              help="At most this many messages a run.")
@with_appcontext
def deliver_command(loop: bool, interval: int, limit: int) -> None:
    """Send the messages that are due. Failed ones wait for their retry time."""
    try:
        while True:
            report = outbox.deliver(limit)
            if not loop or report.sent or report.failed:
                prefix = f"{_when(utcnow())} UTC  " if loop else ""
                click.echo(
                    f"{prefix}{report.sent} sent, {report.failed} failed, "
                    f"{report.remaining} still unsent."
                )
            if not loop:
                return
            if report.sent < limit:  # after a full batch, more may be due at once
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("Stopped.")


@mail.command("outbox")
@click.option("--unsent", is_flag=True, help="Only messages not yet sent.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@with_appcontext
def outbox_command(unsent: bool, limit: int) -> None:
    """List messages, newest first (times in UTC). Subjects carry no identifiers."""
    messages = outbox.outbox(unsent_only=unsent, limit=limit)
    if not messages:
        click.echo("No unsent messages." if unsent else "The outbox is empty.")
        return
    click.echo(
        f"{'uuid':36}  {'kind':18} {'to':32} {'created':16}  {'tries':>5}  {'status':44} subject"
    )
    now = utcnow()
    for m in messages:
        if m.sent_at:
            status = f"sent {_when(m.sent_at)}"
        elif m.last_error:
            status = f"{m.last_error}; next {_when(m.not_before)}"
        else:
            status = "due" if outbox.is_due(m, now) else f"from {_when(m.not_before)}"
        click.echo(
            f"{m.uuid!s:36}  {m.kind:18} {m.recipient_label:32} {_when(m.created_at):16}  "
            f"{m.attempts:>5}  {status:44} {m.subject}"
        )
