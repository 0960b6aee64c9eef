"""``dr-panel trends``: recount the pre-aggregated trend counts from the cases, or check them.

The counts are kept right in every transaction that changes cases; ``rebuild`` is for after an
upgrade (the migration creates the tables empty), a restore, or a change made with raw SQL."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from dr_panel.audit.services import record
from dr_panel.extensions import db


@click.group()
def trends() -> None:
    """Trend counts (the pre-aggregated tables behind the trends pages and API)."""


@trends.command("rebuild")
@with_appcontext
def rebuild() -> None:
    """Recount trend_counts and daily_counts from the cases, in one transaction."""
    from dr_panel.trends import aggregates

    try:
        with click.progressbar(
            length=aggregates.case_count(), label="Counting cases", file=sys.stderr
        ) as bar:
            counted = aggregates.rebuild(progress=bar.update)
        record("trends.rebuilt", actor_label="cli", details={"cases_counted": counted})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    click.echo(
        f"Recounted {counted:,} case{'s' if counted != 1 else ''} "
        "(merged duplicates are not counted)."
    )


@trends.command("verify")
@with_appcontext
def verify() -> None:
    """Compare the stored counts with a fresh count from the cases; exit 1 if they differ."""
    from dr_panel.trends import aggregates

    with click.progressbar(
        length=aggregates.case_count(), label="Counting cases", file=sys.stderr
    ) as bar:
        counted, cube, daily, key_sums = aggregates.count_all(progress=bar.update)
    have_cube, have_daily, have_keys = aggregates.stored()
    db.session.rollback()
    # A row is wrong if its count or its key sum (disclosure control's cell keys) differ.
    wrong = sum(
        1 for k in cube.keys() | have_cube.keys()
        if cube[k] != have_cube[k] or key_sums[k] != have_keys[k]
    )
    wrong_daily = sum(1 for k in daily.keys() | have_daily.keys() if daily[k] != have_daily[k])
    if wrong or wrong_daily:
        raise click.ClickException(
            f"The trend counts differ from the cases: {wrong:,} trend rows and {wrong_daily:,} "
            "daily rows. Run 'dr-panel trends rebuild' to recount them."
        )
    click.echo(f"The trend counts match the {counted:,} counted cases.")
