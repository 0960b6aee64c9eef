"""`dr-panel keys ...`: add a field key, rotate every value to it, verify, retire the old key.

The usual sequence, with the web app kept running throughout::

    dr-panel keys add-field-key   # k2, active at once in the key file
    (restart every dr-panel process, so each can read and writes k2 values)
    dr-panel keys rotate          # resumable; ends with a verification
    dr-panel keys retire k1       # only once no value uses it

Key material is never printed: only key ids, counts, columns and record UUIDs.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from dr_panel import keys as service
from dr_panel.extensions import db


def _fail(message: str) -> NoReturn:
    db.session.rollback()
    raise click.ClickException(message)


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


@click.group()
def keys() -> None:
    """Encryption keys: add a field key, rotate to it, verify, retire the old one."""


@keys.command("add-field-key")
@with_appcontext
def add_field_key() -> None:
    """Generate a new field key (k2, k3...) in the key file and make it active."""
    try:
        kid, previous = service.add_field_key(_app())
    except service.KeyAdminError as err:
        _fail(str(err))
    click.echo(
        f"Added field key {kid} to {service.key_file(_app())} and made it active "
        f"(it was {previous or 'none'}); new values are encrypted with {kid}.\n"
        f"Next: restart every running dr-panel process so it can read {kid} values, then run "
        f"'dr-panel keys rotate' to re-encrypt the older values. Back up the key file now."
    )


@keys.command("rotate")
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Values re-encrypted per transaction.",
)
@with_appcontext
def rotate(batch_size: int) -> None:
    """Re-encrypt every value not under the active key, then verify them all.

    Safe to interrupt and run again: it carries on with the values still to do.
    """
    active = service.ring().active_field_key
    todo = sum(service.pending(active).values())
    done = 0
    if todo == 0:
        click.echo(f"Nothing to re-encrypt: every value is already under the active key {active}.")
    else:
        click.echo(
            f"Re-encrypting {todo} values under {active}, {batch_size} per transaction. "
            f"Every process must already know {active} (restarted since it was added)."
        )
        with click.progressbar(length=todo, label="Re-encrypting", file=sys.stderr) as bar:

            def step(n: int) -> None:
                nonlocal done
                done += n
                bar.update(n)

            try:
                result = service.rotate(batch_size=batch_size, progress=step)
            except service.KeyAdminError as err:
                _fail(str(err))
            except Exception as err:  # the type only: a database error can quote values
                _fail(
                    f"Rotation stopped ({type(err).__name__}) after {done} values. Every batch "
                    f"finished before it is saved; run 'dr-panel keys rotate' again to resume."
                )
        sources = ", ".join(f"{n} from {kid}" for kid, n in sorted(result.rotated.items()))
        click.echo(
            f"Re-encrypted {result.total_rotated} values under {active}"
            f"{f' ({sources})' if sources else ''} in {result.batches} batches."
        )
        if result.changed_meanwhile:
            click.echo(
                f"{result.changed_meanwhile} values were changed by someone else while rotating "
                f"and were left as they were: run 'dr-panel keys rotate' again."
            )
        if result.failed:
            click.echo(f"{result.failed} values did not decrypt and were left as they were.")
    ok = _verify_and_report()
    remaining = sum(service.pending(active).values())
    if remaining:
        click.echo(
            f"{remaining} values are still not under {active}: run 'dr-panel keys rotate' again "
            f"(if the number does not fall, a process still encrypts with an older key: restart "
            f"it).",
            err=True,
        )
    if not ok or remaining:
        sys.exit(1)


@keys.command("verify")
@with_appcontext
def verify() -> None:
    """Decrypt every encrypted value and count them per key id; exit 1 if any fails."""
    if not _verify_and_report():
        sys.exit(1)


def _verify_and_report() -> bool:
    total = service.total_values()
    with click.progressbar(length=total, label="Verifying", file=sys.stderr) as bar:
        result = service.verify(progress=bar.update)
    per_key = ", ".join(
        f"{kid}{' (active)' if kid == result.active else ''}: {n}"
        for kid, n in sorted(result.by_key.items())
    )
    click.echo(f"Checked {result.checked} encrypted values. They decrypt under {per_key or '-'}.")
    for label, counts in result.by_column.items():
        if counts:
            click.echo(f"  {label:24} " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
    if result.not_active:
        click.echo(
            f"{result.not_active} values are under an older key than {result.active}: "
            f"run 'dr-panel keys rotate'."
        )
    if result.ok:
        click.echo("Every value decrypts.")
        return True
    click.echo(f"{result.failed} values do not decrypt:", err=True)
    for p in result.problems:
        click.echo(f"  {p.column} record {p.record}: {p.reason}", err=True)
    if result.failed > len(result.problems):
        click.echo(f"  ... and {result.failed - len(result.problems)} more.", err=True)
    return False


@keys.command("retire")
@click.argument("kid")
@with_appcontext
def retire(kid: str) -> None:
    """Remove field key KID from the key file, once it is not active and no value uses it."""
    try:
        service.retire_field_key(_app(), kid)
    except service.KeyAdminError as err:
        _fail(str(err))
    click.echo(
        f"Retired field key {kid}: it is no longer in {service.key_file(_app())}. Restart every "
        f"running dr-panel process to drop it from memory too. Backups of the database taken "
        f"while values used {kid} still need the backed-up key file to be read."
    )
