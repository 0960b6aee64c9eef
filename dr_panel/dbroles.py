"""``dr-panel db roles``: the PostgreSQL role the app connects as, which cannot rewrite the log.

Two roles. The *owner* (the role that ran ``CREATE DATABASE``) owns every table and runs
migrations: ``DATABASE_URL=<owner's URL> dr-panel db upgrade`` then ``dr-panel db roles``, both
by hand on upgrade, with the owner's URL in the environment of those two commands only. The
*app role* (default ``dr_panel_app``) is what every ``serve`` and ``worker`` process puts in
``DATABASE_URL``: it reads and writes the tables but owns none, so it cannot drop the log's
triggers, and it has no UPDATE, DELETE or TRUNCATE on ``audit_entries`` (INSERT and SELECT
only) and only SELECT on ``alembic_version``. The triggers still refuse those statements for the
owner; the owner going around them is what the HMAC chain and its anchors then show.

We chose a documented manual step over a ``MIGRATION_DATABASE_URL`` the app would hold: a
running app that knew the owner's password could use it, which is what this role exists to
prevent. The statements are idempotent: run ``dr-panel db roles`` again after every upgrade
(the default privileges cover new tables, the re-run covers anything else). The role is created
without a password; give it one in psql (``\\password dr_panel_app``), never on a command line.
"""

from __future__ import annotations

import re

import click
from flask.cli import with_appcontext
from flask_migrate.cli import db as db_group
from sqlalchemy import text

from dr_panel.extensions import db

ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def role_statements(role: str, database: str) -> list[str]:
    """The SQL that creates (or brings up to date) the app role. Names are checked, then
    quoted, because DDL cannot take bound parameters."""
    if not ROLE_RE.fullmatch(role):
        raise ValueError(
            "A role name is lower-case letters, digits and underscores, starting with a letter "
            "or underscore (at most 63), like dr_panel_app."
        )
    r, d = f'"{role}"', '"' + database.replace('"', '""') + '"'
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
        f"THEN CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; "
        f"END IF; END $$",
        f"GRANT CONNECT ON DATABASE {d} TO {r}",
        f"GRANT USAGE ON SCHEMA public TO {r}",
        f"REVOKE CREATE ON SCHEMA public FROM {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_entries FROM {r}",
        # Migrations run as the owner; the app only reads the revision (absent before any).
        f"DO $$ BEGIN IF to_regclass('public.alembic_version') IS NOT NULL THEN "
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {r}; END IF; END $$",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {r}",
    ]


def owned_tables(role: str) -> list[str]:
    """Tables the role owns: an owner could drop the triggers, so the app role must own none."""
    rows = db.session.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = :r"),
        {"r": role},
    )
    return [str(row[0]) for row in rows]


def apply_roles(role: str) -> None:
    """Run the statements as the connected owner, in one transaction."""
    database = str(db.session.scalar(text("SELECT current_database()")))
    current = str(db.session.scalar(text("SELECT current_user")))
    if current == role:
        raise click.ClickException(
            "Connected as the app role itself: run this with the owner's DATABASE_URL."
        )
    owned = owned_tables(role)
    if owned:
        raise click.ClickException(
            f"The role {role} owns {len(owned)} tables (e.g. {owned[0]}), so it could drop the "
            f"audit log's triggers. Give them to the owner first (ALTER TABLE ... OWNER TO "
            f"{current}), or choose another role name."
        )
    for sql in role_statements(role, database):
        db.session.execute(text(sql))
    db.session.commit()


@db_group.command("roles")
@click.option("--role", default="dr_panel_app", show_default=True, help="The app's role.")
@click.option(
    "--apply", "do_apply", is_flag=True, help="Run the statements (as the owner) rather than print."
)
@with_appcontext
def roles(role: str, do_apply: bool) -> None:
    """Create the PostgreSQL role the app connects as: no UPDATE, DELETE or TRUNCATE on the
    audit log, owner of no table. Prints the SQL; --apply runs it. Re-run after each upgrade."""
    if db.engine.dialect.name != "postgresql":
        raise click.ClickException(
            "Database roles are for PostgreSQL. On SQLite the file's owner is the only role: "
            "keep the file readable by the dr-panel user alone."
        )
    database = str(db.session.scalar(text("SELECT current_database()")))
    try:
        statements = role_statements(role, database)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    if not do_apply:
        click.echo("-- Run as the database owner (the role that runs migrations):")
        for sql in statements:
            click.echo(sql + ";")
        click.echo(f"-- Then in psql: \\password {role}   and put that role in DATABASE_URL.")
        return
    apply_roles(role)
    click.echo(
        f"The role {role} can read and write dr-panel's tables, owns none, and cannot change "
        f"or empty the audit log. Give it a password in psql (\\password {role}) and use it in "
        f"DATABASE_URL for serve and worker; keep the owner's URL for upgrades and this command."
    )
