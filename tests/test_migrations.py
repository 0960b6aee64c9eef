"""Every Alembic revision runs up and down, and the migrated schema matches the models."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from config import normalise_database_url
from dr_panel import create_app
from dr_panel.extensions import db
from tests.conftest import make_config


@pytest.fixture
def empty_database(tmp_path: Any) -> Any:
    """A database with nothing in it: a new SQLite file, or a throw-away PostgreSQL schema."""
    pg = os.environ.get("TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    url = normalise_database_url(pg)
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def test_upgrade_matches_models_and_downgrade_empties(tmp_path: Any, empty_database: str) -> None:
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=empty_database))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata
            )
        assert diff == [], f"models and migrations differ: {diff}"
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "areas", "agencies", "audit_entries", "user_sessions"} <= tables

        # The migrated audit table refuses changes, as the models' own DDL does.
        db.session.execute(
            text(
                "INSERT INTO audit_entries"
                " (seq, uuid, occurred_at, action, outcome, prev_hash, entry_hash)"
                " VALUES (1, :u, CURRENT_TIMESTAMP, 'x', 'success', 'a', 'b')"
            ),
            {"u": uuid.uuid4().hex if db.engine.dialect.name == "sqlite" else str(uuid.uuid4())},
        )
        db.session.commit()
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(text("DELETE FROM audit_entries"))
        db.session.rollback()

        downgrade(revision="base")
        left = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert left == set()
        upgrade()  # and back up again, cleanly
        assert "users" in inspect(db.engine).get_table_names()
        db.session.remove()
        db.engine.dispose()
