"""The dr-panel command: passwords from a prompt or stdin only, clear errors, audited changes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role, User
from dr_panel.cli import main
from dr_panel.extensions import db
from tests.conftest import PASSWORD


def test_users_create_reads_the_password_from_stdin(app: Any, runner: Any) -> None:
    result = runner.invoke(
        main,
        [
            "users",
            "create",
            "--email",
            "New@Example.org",
            "--role",
            "panel_member",
            "--area",
            "E06000009",
            "--agency",
            "police",
            "--name",
            "Nia Wren",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    user = db.session.scalar(db.select(User).where(User.email == "new@example.org"))
    assert user.role is Role.PANEL_MEMBER and user.agency.code == "POLICE"
    assert not user.must_change_password
    assert (
        app.test_client()
        .post("/login", data={"email": "new@example.org", "password": PASSWORD})
        .status_code
        == 302
    )
    assert (
        db.session.scalars(db.select(AuditEntry).where(AuditEntry.object_uuid == str(user.uuid)))
        .one()
        .actor_label
        == "cli"
    )


def test_users_create_has_no_password_option(runner: Any) -> None:
    result = runner.invoke(
        main,
        [
            "users",
            "create",
            "--email",
            "x@example.org",
            "--role",
            "lead",
            "--area",
            "E06000009",
            "--password",
            PASSWORD,
        ],
    )
    assert result.exit_code == 2 and "No such option" in result.output


def test_users_create_explains_bad_input(runner: Any) -> None:
    result = runner.invoke(
        main,
        ["users", "create", "--email", "x@example.org", "--role", "lead", "--area", "E99999999"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 1 and "Unknown area code E99999999" in result.output
    result = runner.invoke(
        main,
        ["users", "create", "--email", "x@example.org", "--role", "lead", "--area", "E06000009"],
        input="short\n",
    )
    assert result.exit_code == 1 and "at least 12 characters" in result.output
    result = runner.invoke(
        main,
        [
            "users",
            "create",
            "--email",
            "x@example.org",
            "--role",
            "agency_contributor",
            "--area",
            "E06000009",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 1 and "must belong to an agency" in result.output
    assert db.session.scalar(db.select(User).where(User.email == "x@example.org")) is None


def test_users_disable_and_enable(runner: Any, create_user: Any, app: Any, login: Any) -> None:
    user = create_user(Role.LEAD)
    client = app.test_client()
    login(client, user)
    result = runner.invoke(main, ["users", "disable", user.email])
    assert result.exit_code == 0 and "every session of theirs has ended" in result.output
    assert client.get("/").status_code == 302
    assert runner.invoke(main, ["users", "enable", user.email]).exit_code == 0
    result = runner.invoke(main, ["users", "disable", "ghost@example.org"])
    assert result.exit_code == 1 and "No account with the e-mail address" in result.output


def test_demo_load_prints_one_login_per_role_and_is_repeatable(runner: Any, app: Any) -> None:
    result = runner.invoke(main, ["demo", "load"])
    assert result.exit_code == 0, result.output
    for role in Role:
        assert role.label in result.output
    password = next(
        line.split()[-1] for line in result.output.splitlines() if "coordinator@example.org" in line
    )
    assert (
        app.test_client()
        .post("/login", data={"email": "coordinator@example.org", "password": password})
        .status_code
        == 302
    )
    again = runner.invoke(main, ["demo", "load"])
    assert again.exit_code == 0 and "already loaded" in again.output
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == len(Role)


def test_areas_and_agencies_commands(runner: Any) -> None:
    assert (
        runner.invoke(
            main, ["areas", "add", "--code", "E10000017", "--name", "Lancashire"]
        ).exit_code
        == 0
    )
    assert "E10000017" in runner.invoke(main, ["areas", "list"]).output
    bad = runner.invoke(main, ["areas", "add", "--code", "LANCS", "--name", "Lancashire"])
    assert bad.exit_code == 1 and "ONS code" in bad.output
    assert (
        runner.invoke(
            main,
            ["agencies", "add", "--code", "NWAS", "--name", "Ambulance", "--sector", "ambulance"],
        ).exit_code
        == 0
    )
    assert "NWAS" in runner.invoke(main, ["agencies", "list"]).output


def test_a_command_does_not_load_the_benchmark_duckdb_or_pandas() -> None:
    """The runtime stays lean: the benchmark (and its DuckDB comparison) is the optional 'bench'
    extra, loaded by 'dr-panel bench' alone; the exports write their files without pandas."""
    code = (
        "import sys\n"
        "import dr_panel.cli\n"
        "import dr_panel.trends.exports\n"
        "print(sorted({'dr_panel.bench', 'duckdb', 'pandas'} & set(sys.modules)))\n"
    )
    done = subprocess.run(  # noqa: S603  a fresh interpreter: this one has loaded everything
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
