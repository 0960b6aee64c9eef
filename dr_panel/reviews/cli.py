"""The reviews' commands, run daily from cron (and by ``dr-panel worker``'s schedule); each is
safe to run more often:

- ``dr-panel requests chase``: e-mail a reminder for every overdue request, at most once a day;
- ``dr-panel actions remind``: e-mail the owners of actions due in a week, due today or overdue.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from dr_panel.extensions import db
from dr_panel.reviews.actions import remind
from dr_panel.reviews.services import chase_overdue


@click.group()
def requests() -> None:
    """Information requests to agencies."""


@requests.command("chase")
@with_appcontext
def chase() -> None:
    """Queue a reminder for each overdue request (run daily from cron; safe to run more often)."""
    n = chase_overdue()
    db.session.commit()
    click.echo(f"Chased {n} overdue request{'s' if n != 1 else ''}.")


@click.group("actions")
def actions_cli() -> None:
    """Panel actions."""


@actions_cli.command("remind")
@with_appcontext
def remind_command() -> None:
    """Queue reminders for actions due in a week, due today or overdue (run daily from cron;
    safe to run more often)."""
    n = remind()
    db.session.commit()
    click.echo(f"Queued {n} reminder{'s' if n != 1 else ''}.")
