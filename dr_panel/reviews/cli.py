"""`dr-panel requests chase`: e-mail a reminder for every overdue request, at most once a day."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from dr_panel.extensions import db


@click.group()
def requests() -> None:
    """Information requests to agencies."""


@requests.command("chase")
@with_appcontext
def chase() -> None:
    """Queue a reminder for each overdue request (run daily from cron; safe to run more often)."""
    from dr_panel.reviews.services import chase_overdue

    n = chase_overdue()
    db.session.commit()
    click.echo(f"Chased {n} overdue request{'s' if n != 1 else ''}.")
