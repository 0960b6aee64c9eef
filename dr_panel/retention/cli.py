"""``dr-panel retention run [--dry-run]``: apply the retention schedule from cron (daily), with
a progress bar and a summary. Safe to run while another run or the background worker runs."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask.cli import with_appcontext

from dr_panel.retention import services
from dr_panel.retention.schedule import RecordKind, Schedule


@click.group("retention")
def retention_cli() -> None:
    """The retention schedule: dispose of identifiers and free text that are due."""


@retention_cli.command("run")
@click.option("--dry-run", is_flag=True, help="Say what would be disposed of; change nothing.")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=None,
              help="Records per transaction (default RETENTION_BATCH_SIZE).")
@click.option("--list/--no-list", "listing", default=None,
              help="List each record's references (default: with --dry-run).")
@with_appcontext
def run_command(dry_run: bool, batch_size: int | None, listing: bool | None) -> None:
    """Erase what the schedule says is due, each page of records in its own transaction."""
    from flask import current_app

    schedule = Schedule.from_config(current_app.config)
    click.echo("Retention schedule:")
    for kind in RecordKind:
        click.echo(f"  {kind.label}: {schedule.rule(kind)}")
    total = services.count_candidates(schedule=schedule)
    bar: Any = click.progressbar(length=max(total, 1), label="Checking records", file=sys.stderr)
    with bar:
        report = services.run(
            dry_run=dry_run, batch_size=batch_size, schedule=schedule, progress=bar.update
        )
    if listing if listing is not None else dry_run:
        for item in report.planned:
            click.echo(
                f"  {item.kind.value:<15} due {item.due_on.isoformat()}  "
                f"{', '.join(item.references)}"
            )
    for line in report.summary():
        click.echo(line)
    if dry_run:
        click.echo("Dry run: nothing was changed.")
