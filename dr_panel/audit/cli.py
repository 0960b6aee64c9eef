"""``dr-panel audit``: verify the chain and its anchors, and anchor the head by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from dr_panel.audit import anchors as anchoring
from dr_panel.audit.services import count, verify


@click.group("audit")
def audit_cli() -> None:
    """The tamper-evident audit log."""


@audit_cli.command("verify")
@click.option(
    "--anchors",
    "anchor_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An anchor file to check against (default AUDIT_ANCHOR_FILE). Repeat for several.",
)
@with_appcontext
def audit_verify(anchor_files: tuple[Path, ...]) -> None:
    """Check the whole HMAC chain, then the chain against its anchors: name the first entry
    changed, inserted or deleted, and any anchored entry missing (truncation)."""
    total = count()
    with click.progressbar(length=total, label="Checking the audit log", file=sys.stderr) as bar:
        result = verify(progress=bar)
    report = anchoring.check(anchor_files or None)
    failed = False
    if result.ok:
        click.echo(f"The audit log is intact: {result.checked} entries checked.")
    else:
        click.echo(
            f"The audit log has been tampered with: {result.problem}. "
            f"{result.checked} entries before it are intact.",
            err=True,
        )
        failed = True
    for path in report.missing_files:
        click.echo(
            f"Warning: no anchor file at {path}; the newest entries are not protected "
            f"(run dr-panel audit anchor, or a dr-panel worker).",
            err=True,
        )
    for problem in report.problems:
        click.echo(f"The audit log's anchors show tampering: {problem}.", err=True)
    if report.problems:
        failed = True
    elif report.anchors:
        click.echo(
            f"Anchors agree: {report.anchors} checked, the last at #{report.last_seq} "
            f"({report.last_at})."
        )
    if report.unanchored and report.anchors:
        many = "entries" if report.unanchored != 1 else "entry"
        click.echo(
            f"{report.unanchored} {many} after #{report.last_seq} not yet anchored "
            f"(the next anchor covers them)."
        )
    if failed:
        sys.exit(1)


@audit_cli.command("anchor")
@with_appcontext
def audit_anchor() -> None:
    """Append a signed anchor of the log's newest entry to the anchor file (and e-mail it when
    AUDIT_ANCHOR_EMAIL is set). The worker does this on its schedule."""
    try:
        anchor = anchoring.anchor_now()
    except anchoring.AnchorError as err:
        raise click.ClickException(str(err)) from None
    if anchor is None:
        click.echo("Nothing new to anchor: the newest entry is already anchored (or none yet).")
        return
    click.echo(f"Anchored entry #{anchor.seq} at {anchor.at} in {anchoring.anchor_path()}.")
