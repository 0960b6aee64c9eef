"""``dr-panel backup FILE`` and ``dr-panel restore FILE``.

PostgreSQL goes through ``pg_dump --format=custom`` and ``pg_restore`` (the client tools of the
same or a newer major version must be on the PATH); SQLite through its online backup API, which
copies a consistent snapshot while the app keeps running. The backup holds the database only:
identifiers in it are encrypted and the key file (``DR_PANEL_KEYS_FILE``) is never inside it, so
a backup alone discloses no identifier, and a backup without its keys restores nothing readable.
Keep the key file apart (key escrow: README).

Choices: a backup is an export of everything, so it is audited (``backup.created``) before the
copy, and so the backup holds its own entry. ``restore`` refuses a database that already holds
tables unless ``--replace`` is given, then audits ``backup.restored`` in the restored log. The
password of a PostgreSQL URL goes to the tools through ``PGPASSWORD``, never their arguments.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess  # noqa: S404  pg_dump and pg_restore, with argument lists, never a shell
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url

from dr_panel.audit.services import record
from dr_panel.extensions import db


class BackupError(RuntimeError):
    """A backup or restore refused or failed. Messages name files and tools, never data."""


def _pg_target(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and an environment that carries it."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not on this machine: install the PostgreSQL client tools "
            f"(apt-get install postgresql-client) of the server's major version or newer."
        )
    return path


def _run(args: list[str], env: dict[str, str], doing: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        # Only the tool's own "error:" line: its DETAIL and CONTEXT lines can quote row data.
        tool = Path(args[0]).name
        said = [line for line in done.stderr.splitlines() if line.startswith(f"{tool}: error:")]
        reason = said[-1][len(tool) + 2 :].split(" DETAIL:")[0][:200] if said else "no message"
        raise BackupError(f"{doing} failed ({tool}: {reason.strip()})")


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("This SQLite database is in memory: there is no file to back up.")
    return Path(url.database)


def backup(target: Path) -> str:
    """Write a consistent copy of the database to ``target`` (which must not exist). Returns
    the engine's name."""
    if target.exists():
        raise BackupError(f"{target} already exists: choose a new file name.")
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    engine = url.get_backend_name()
    record("backup.created", actor_label="cli", details={"engine": engine})
    db.session.commit()
    target.parent.mkdir(parents=True, exist_ok=True)
    if engine == "postgresql":
        dsn, env = _pg_target(url)
        _run(
            [
                _tool("pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-acl",
                f"--file={target}",
                f"--dbname={dsn}",
            ],
            env,
            "The backup",
        )
    elif engine == "sqlite":
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        with sqlite3.connect(_sqlite_path(url)) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        copy.close()
        source.close()
    else:
        raise BackupError(f"No backup method for the {engine} engine.")
    os.chmod(target, 0o600)
    return engine


def is_empty() -> bool:
    return not inspect(db.engine).get_table_names()


def restore(source: Path, *, replace: bool = False) -> str:
    """Load ``source`` into the configured database; refuse one that holds tables unless
    ``replace``. Returns the engine's name."""
    if not source.is_file():
        raise BackupError(f"There is no backup file at {source}.")
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    engine = url.get_backend_name()
    if not is_empty() and not replace:
        raise BackupError(
            "This database already holds tables: restore into a new, empty database, or give "
            "--replace to overwrite it (everything in it now is lost)."
        )
    db.session.remove()
    db.engine.dispose()
    if engine == "postgresql":
        dsn, env = _pg_target(url)
        args = [
            _tool("pg_restore"),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={dsn}",
        ]
        if replace:
            args[1:1] = ["--clean", "--if-exists"]
        _run([*args, str(source)], env, "The restore")
    elif engine == "sqlite":
        try:
            with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as backup_db:
                backup_db.execute("PRAGMA schema_version").fetchone()
                with sqlite3.connect(_sqlite_path(url)) as live:
                    backup_db.backup(live)
                live.close()
            backup_db.close()
        except sqlite3.DatabaseError as err:
            raise BackupError(
                f"{source} is not a SQLite backup ({err.__class__.__name__})."
            ) from None
    else:
        raise BackupError(f"No restore method for the {engine} engine.")
    record("backup.restored", actor_label="cli", details={"engine": engine, "replaced": replace})
    db.session.commit()
    return engine


KEYS_NOTE = (
    "The key file ({keys}) is not in the backup, by design: keep a copy of it apart from the "
    "backups (key escrow, README). Without it the identifiers in a backup cannot be read."
)


@click.command("backup")
@click.argument("target", type=click.Path(path_type=Path, dir_okay=False))
@with_appcontext
def backup_cli(target: Path) -> None:
    """Back up the database to TARGET (a new file). The key file is never included."""
    try:
        engine = backup(target)
    except BackupError as err:
        db.session.rollback()
        raise click.ClickException(str(err)) from None
    click.echo(f"Backed up the {engine} database to {target}.")
    click.echo(KEYS_NOTE.format(keys=current_app.config["KEYS_FILE"]))


@click.command("restore")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--replace", is_flag=True, help="Overwrite a database that already holds tables.")
@with_appcontext
def restore_cli(source: Path, replace: bool) -> None:
    """Restore SOURCE into the configured (empty) database. Run with the keys it was made with,
    then `dr-panel audit verify`."""
    try:
        engine = restore(source, replace=replace)
    except BackupError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Restored {source} into the {engine} database.")
    click.echo(
        "Identifiers decrypt only with the key file the backup was made with. Run "
        "`dr-panel audit verify`: anchors newer than the backup will be reported missing, which "
        "is what a restore loses; once acknowledged, move the old anchor file aside."
    )
