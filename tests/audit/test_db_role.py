"""On PostgreSQL the app connects as a role that cannot rewrite the audit log: `dr-panel db roles`
makes it, and as that role UPDATE, DELETE, TRUNCATE and dropping the triggers are refused while
the app itself (sign-in, a new case, a reveal) still works."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from dr_panel import create_app
from dr_panel.audit import services as audit
from dr_panel.auth.models import User
from dr_panel.cases import services as cases
from dr_panel.cases.models import Case
from dr_panel.cli import main
from dr_panel.dbroles import role_statements
from dr_panel.extensions import db
from tests.cases.test_intake import PEOPLE, create
from tests.conftest import PASSWORD, IsolatedClient, make_config


def is_postgres(app: Any) -> bool:
    return db.engine.dialect.name == "postgresql"


def test_role_names_are_checked_before_they_reach_sql() -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        role_statements('app"; DROP TABLE users; --', "test")


def test_on_sqlite_the_command_says_roles_are_for_postgresql(app: Any, runner: Any) -> None:
    if is_postgres(app):
        pytest.skip("SQLite only")
    result = runner.invoke(main, ["db", "roles"])
    assert result.exit_code == 1 and "for PostgreSQL" in result.output


@pytest.fixture
def app_role(app: Any, runner: Any) -> Iterator[str]:
    """Apply `dr-panel db roles` as the owner; drop the role afterwards."""
    if not is_postgres(app):
        pytest.skip("PostgreSQL only: set TEST_DATABASE_URL")
    role = f"drp_app_{uuid.uuid4().hex[:8]}"
    printed = runner.invoke(main, ["db", "roles", "--role", role])
    assert printed.exit_code == 0 and "REVOKE UPDATE, DELETE, TRUNCATE" in printed.output
    result = runner.invoke(main, ["db", "roles", "--role", role, "--apply"])
    assert result.exit_code == 0, result.output
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    yield url.set(username=role, password=None).render_as_string(hide_password=False)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP OWNED BY "{role}"'))
        conn.execute(text(f'DROP ROLE "{role}"'))
    engine.dispose()


def test_as_the_app_role_the_log_cannot_be_rewritten_but_the_app_works(
    app: Any, create_user: Any, login: Any, app_role: str, tmp_path: Path
) -> None:
    user = create_user()
    case = create(user).uuid
    email = user.email
    db.session.commit()
    before = audit.count()

    as_app = create_app(
        make_config(tmp_path, SQLALCHEMY_DATABASE_URI=app_role, MAIL_SEND_AFTER_REQUEST=False)
    )
    as_app.test_client_class = IsolatedClient
    with as_app.app_context():
        assert db.session.scalar(text("SELECT current_user")) == make_url(app_role).username
        # The attacks a compromised app would try.
        for sql in (
            "UPDATE audit_entries SET reason = 'nothing' WHERE seq = 1",
            "DELETE FROM audit_entries WHERE seq = 1",
            "TRUNCATE audit_entries",
            "DROP TRIGGER audit_entries_no_change ON audit_entries",
            "ALTER TABLE audit_entries DISABLE TRIGGER ALL",
        ):
            with pytest.raises(DatabaseError, match="permission denied|must be owner"):
                db.session.execute(text(sql))
            db.session.rollback()

        me = db.session.scalars(select(User).where(User.email == email)).one()
        name, dob, nhs, _ = PEOPLE[1]
        created = create(me, full_name=name, date_of_birth=dob, nhs_number=nhs).uuid
        db.session.remove()

    # The app's own work, through its pages: sign in, reveal; each writes audit entries.
    client = as_app.test_client()
    assert login(client, SimpleNamespace(email=email), PASSWORD).status_code == 302
    response = client.post(
        f"/cases/{case}/reveal", data={"reason": "Checking our records before panel"}
    )
    assert response.status_code == 200
    assert b"9990000018" in response.data or b"999 000 0018" in response.data
    with as_app.app_context():
        again = db.session.scalars(select(Case).where(Case.uuid == created)).one()
        assert cases.ident.unseal(again.person).nhs_number == nhs
        assert audit.count() > before + 2
        assert audit.verify().ok
        db.session.remove()
        db.engine.dispose()
