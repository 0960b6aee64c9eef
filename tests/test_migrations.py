"""Every Alembic revision runs up and down, and the migrated schema matches the models."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, select, text

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


def test_start_fills_what_an_upgrade_cannot_compute(tmp_path: Any, empty_database: str) -> None:
    """A database made before migrations 0014 (name and address tokens) and 0015 (the trend
    counts' cell keys) holds people the identifier detector cannot find and counts whose key
    sums are zero. ``dr-panel start`` fills both after upgrading, as the README says."""
    import click

    from dr_panel.alerts.leakgate import check_fields, names_to_index
    from dr_panel.cases.models import Case
    from dr_panel.cli import _fill_after_upgrade, _schema_revision, main
    from dr_panel.privacy.identity import unseal
    from dr_panel.trends import aggregates

    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=empty_database))
    runner = app.test_cli_runner()
    with app.app_context():
        upgrade()
        assert runner.invoke(main, ["demo", "load"]).exit_code == 0
        downgrade(revision="0013_retired_references")
        db.session.remove()
        assert _schema_revision() == 13

        upgrade()
        name = unseal(db.session.scalars(select(Case)).first().person).full_name
        assert names_to_index() > 0 and not check_fields({"text": f"We think {name} died."})
        counted, cube, _, key_sums = aggregates.count_all()
        _, _, stored_keys = aggregates.stored()
        assert any(key_sums[k] != stored_keys[k] for k in cube)

        with click.Context(main):
            _fill_after_upgrade(13)
        assert names_to_index() == 0 and check_fields({"text": f"We think {name} died."})
        assert runner.invoke(main, ["trends", "verify"]).exit_code == 0
        db.session.remove()
        db.engine.dispose()
