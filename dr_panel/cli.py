"""The ``dr-panel`` command: Flask's CLI (``run``, ``shell``, ``db`` from Flask-Migrate) plus
dr-panel's own groups. Passwords are read from a prompt or standard input, never an argument."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import func, select
from werkzeug.serving import run_simple

from dr_panel import create_app
from dr_panel.alerts.cli import alerts_cli, signals
from dr_panel.audit.cli import audit_cli
from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.auth.tokens_cli import tokens
from dr_panel.backup import backup_cli, restore_cli
from dr_panel.cases.imports import import_group
from dr_panel.dbroles import roles as _db_roles  # noqa: F401  adds `dr-panel db roles`
from dr_panel.dbtypes import refresh_planner_statistics
from dr_panel.extensions import db
from dr_panel.keys_cli import keys
from dr_panel.mail.cli import mail
from dr_panel.reference import services as reference
from dr_panel.reference.models import Sector
from dr_panel.retention.cli import retention_cli
from dr_panel.reviews.cli import actions_cli, requests
from dr_panel.runtime.cli import serve, worker
from dr_panel.trends.cli import trends
from dr_panel.trends.populations import populations_cli


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=True)
def main() -> None:
    """dr-panel: drug-related death and non-fatal overdose panels, and drug alerts."""


def fail(message: str) -> None:
    db.session.rollback()
    raise click.ClickException(message)


def read_password(prompt: str = "Password") -> str:
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        fail("No password on standard input. Pipe one line, or run in a terminal to be prompted.")
    return line


# -- users --------------------------------------------------------------------------------------


@main.group()
def users() -> None:
    """Create, list, disable and enable accounts."""


@users.command("create")
@click.option("--email", required=True, help="Work e-mail address; the sign-in name.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--area",
    "areas",
    required=True,
    multiple=True,
    help="ONS code of an area to grant, e.g. E06000009. Repeat for several.",
)
@click.option("--agency", help="Agency code, e.g. POLICE (panel members and contributors).")
@click.option("--name", "display_name", help="Full name (defaults to the e-mail's local part).")
@click.option(
    "--send-link",
    is_flag=True,
    help="Read no password: e-mail the person a link to choose their own (24 hours).",
)
@with_appcontext
def users_create(
    email: str,
    role: str,
    areas: tuple[str, ...],
    agency: str | None,
    display_name: str | None,
    send_link: bool,
) -> None:
    """Create an account. The password is prompted for (or read from standard input), or with
    --send-link the person is e-mailed a link to choose their own.

    Typing a password here is kept for the operator on the server making the first admin
    (there may be no mail yet, and whoever runs this already holds the database and the keys).
    Admins in the app never see a password: their accounts get a link."""
    password = None if send_link else read_password()
    details = accounts.AccountDetails(
        email=email,
        display_name=display_name or email.split("@")[0],
        role=Role(role),
        area_codes=areas,
        agency_code=agency,
    )
    try:
        user, _ = accounts.create_user(details, password=password, by=None, must_change=False)
    except accounts.AccountError as err:
        fail(str(err))
    db.session.commit()
    click.echo(f"Created {user.role.label.lower()} {user.email} ({user.uuid}).")
    if send_link:
        click.echo("A link to choose a password is in the e-mail outbox; it works once, 24 hours.")


def _user_or_fail(email: str) -> User:
    user = accounts.find_user(email)
    if user is None:
        fail(f"No account with the e-mail address {email}.")
    assert user is not None
    return user


@users.command("disable")
@click.argument("email")
@with_appcontext
def users_disable(email: str) -> None:
    """Disable an account and end all its sessions at once."""
    user = _user_or_fail(email)
    try:
        accounts.set_disabled(user, True, by=None)
    except accounts.AccountError as err:
        fail(str(err))
    db.session.commit()
    click.echo(f"Disabled {user.email}; every session of theirs has ended.")


@users.command("enable")
@click.argument("email")
@with_appcontext
def users_enable(email: str) -> None:
    """Enable a disabled account."""
    user = _user_or_fail(email)
    accounts.set_disabled(user, False, by=None)
    db.session.commit()
    click.echo(f"Enabled {user.email}.")


@users.command("list")
@with_appcontext
def users_list() -> None:
    """List accounts with role, areas and status."""
    for u in db.session.scalars(select(User).order_by(User.email)):
        status = "disabled" if u.disabled_at else ("2FA" if u.has_second_factor else "no 2FA")
        areas = ",".join(a.ons_code for a in u.areas)
        click.echo(f"{u.email:40} {u.role.value:20} {areas:30} {status}")


# -- reference data -----------------------------------------------------------------------------


@main.group()
def areas() -> None:
    """Areas (local authorities), by ONS code."""


@areas.command("add")
@click.option("--code", required=True, help="ONS code, e.g. E06000009.")
@click.option("--name", required=True)
@click.option("--network", help="Drug information network shared with other areas.")
@with_appcontext
def areas_add(code: str, name: str, network: str | None) -> None:
    try:
        area = reference.save_area(None, ons_code=code, name=name, network=network)
    except reference.ReferenceDataError as err:
        fail(str(err))
    db.session.commit()
    click.echo(f"Added {area.label}.")


@areas.command("list")
@with_appcontext
def areas_list() -> None:
    for a in reference.all_areas():
        click.echo(
            f"{a.ons_code}  {a.name:40} {a.network or ''}{'' if a.is_active else ' (not in use)'}"
        )


@main.group()
def agencies() -> None:
    """Partner agencies, by short code."""


@agencies.command("add")
@click.option("--code", required=True, help="Short code, e.g. POLICE.")
@click.option("--name", required=True)
@click.option("--sector", required=True, type=click.Choice([s.value for s in Sector]))
@with_appcontext
def agencies_add(code: str, name: str, sector: str) -> None:
    try:
        agency = reference.save_agency(None, code=code, name=name, sector=Sector(sector))
    except reference.ReferenceDataError as err:
        fail(str(err))
    db.session.commit()
    click.echo(f"Added {agency.label}.")


@agencies.command("list")
@with_appcontext
def agencies_list() -> None:
    for a in reference.all_agencies():
        click.echo(f"{a.code:12} {a.name:50} {a.sector.label}")


# -- demo and start -----------------------------------------------------------------------------


@main.group()
def demo() -> None:
    """Synthetic demonstration data."""


@demo.command("load")
@with_appcontext
def demo_load() -> None:
    """Load demo areas, agencies and one login per role (synthetic, never real people)."""
    from dr_panel.demo import load, logins_file

    if not current_app.config["ALLOW_DEMO_DATA"]:
        fail("Demo data is not allowed in this environment (DR_PANEL_ENV=production).")
    created = _load_demo_with_progress(load)
    click.echo("Loaded demo data." if created else "Demo data was already loaded.")
    _print_logins(logins_file())


def _load_demo_with_progress(load: Any) -> bool:
    """The demo loader with a progress bar over its notifications (stderr, so logins stay clean)."""
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="Demo notifications", file=sys.stderr)
            bar.__enter__()
        bar.update(1)

    try:
        return bool(load(progress=progress))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def _print_logins(path: Path) -> None:
    if not path.exists():
        return
    click.echo(f"\nDemo logins (also in {path}, readable by you only):\n")
    click.echo(path.read_text(encoding="utf-8"))


# Migrations that add keyed indexes or sums the database cannot compute itself (they need the
# keys, which never reach the database): what to run after them on an existing database.
# ``dr-panel start`` runs them itself; a production upgrade runs the commands by hand (README).
FILL_AFTER = (
    (14, "alerts reindex-names", "the name and address tokens the identifier detector uses"),
    (15, "trends rebuild", "the cell keys of the trend counts (disclosure control)"),
)


def _schema_revision() -> int | None:
    """The number of the database's current migration (13 for 0013_...), None when empty."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return int(current.split("_", 1)[0]) if current else None


def _fill_after_upgrade(was: int | None) -> None:
    """After upgrading an existing database past a migration in ``FILL_AFTER``, fill what it
    added. A new database has nothing to fill: intake fills it as cases arrive."""
    if was is None:
        return
    context = click.get_current_context()
    for number, command, what in FILL_AFTER:
        if was < number:
            click.echo(f"Filling {what} (dr-panel {command})...")
            group, name = command.split()
            sub = main.get_command(context, group)
            assert isinstance(sub, click.Group)
            context.invoke(sub.commands[name])


@main.command("start")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def start(host: str, port: int) -> None:
    """Migrate the database, load demo data on first run, print the demo logins and serve."""
    from flask_migrate import upgrade

    from dr_panel.demo import load, logins_file

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo("Applying database migrations...")
    was = _schema_revision()
    upgrade()
    _fill_after_upgrade(was)
    has_users = db.session.scalar(select(func.count()).select_from(User))
    if app.config["ALLOW_DEMO_DATA"]:
        if not has_users:
            click.echo("First run: loading demo data...")
            _load_demo_with_progress(load)
        _print_logins(logins_file())
    elif not has_users:
        click.echo(
            "No accounts yet: create an admin with\n"
            "  dr-panel users create --email you@example.org --role admin --area E06000009"
        )
    refresh_planner_statistics(db.session)  # after any demo data, before the first page
    click.echo(f"dr-panel is running at http://{host}:{port}/  (Ctrl+C to stop)")
    # Werkzeug's server directly: Flask ignores app.run() inside a CLI command. Threads, so one
    # slow page does not hold up another; for production, serve with a WSGI server instead.
    from dr_panel.alerts.broadcast import deliver_in_worker
    from dr_panel.mail.services import add_job, start_worker
    from dr_panel.runtime.worker import scheduled_round

    add_job(app, deliver_in_worker)  # the alert broadcast goes out from the same worker
    add_job(app, scheduled_round)  # and dr-panel worker's schedule: the spike scan, chasing...
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # its request lines carry queries
    worker = start_worker(app)  # delivers every 30 s, and at once when a request queues mail
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        worker.stop()


# -- the benchmark ------------------------------------------------------------------------------

BENCH_NEEDS = ("duckdb", "pandas")  # the optional 'bench' extra: its DuckDB comparison


@click.command(
    "bench",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: tuple[str, ...]) -> Any:
    """Benchmark intake, lookups, the case list and trends on synthetic data (--help for the
    options). Needs the bench extra: pip install 'dr-panel[bench]'."""
    missing = [name for name in BENCH_NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        are = "is" if len(missing) == 1 else "are"
        raise click.ClickException(
            f"The benchmark needs {' and '.join(missing)}, which {are} not installed here. "
            "Install the bench extra: pip install 'dr-panel[bench]'"
        )
    # The one import inside a function: the benchmark (1,500 lines, and DuckDB when it runs)
    # is loaded for this command only, not on every dr-panel command.
    from dr_panel.bench import bench as command

    with command.make_context(ctx.info_name, list(args), parent=ctx) as sub:
        return command.invoke(sub)


# Commands kept in their own areas' modules.
main.add_command(tokens)
main.add_command(import_group)
main.add_command(keys)
main.add_command(bench)
main.add_command(mail)
main.add_command(requests)
main.add_command(actions_cli)
main.add_command(trends)
main.add_command(populations_cli)
main.add_command(alerts_cli)
main.add_command(signals)
main.add_command(retention_cli)
main.add_command(serve)
main.add_command(worker)
main.add_command(audit_cli)
main.add_command(backup_cli)
main.add_command(restore_cli)


if __name__ == "__main__":  # pragma: no cover
    main()
