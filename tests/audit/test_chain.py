"""The audit log is append-only in the database, and `dr-panel audit verify` names the first entry
that was changed, inserted or deleted by someone who went around the database's refusal."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from dr_panel.audit import services as audit
from dr_panel.audit.models import AuditEntry
from dr_panel.cli import main
from dr_panel.extensions import db


def write_entries(n: int) -> None:
    for i in range(n):
        audit.record("test.event", details={"i": i}, actor_label="tester")
    db.session.commit()


def drop_guard() -> None:
    """What a database owner could do: remove the append-only triggers."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("DROP TRIGGER audit_entries_no_change ON audit_entries"))
    else:
        db.session.execute(text("DROP TRIGGER audit_entries_no_update"))
        db.session.execute(text("DROP TRIGGER audit_entries_no_delete"))
    db.session.commit()


def run_verify(app: Any) -> Any:
    return app.test_cli_runner().invoke(main, ["audit", "verify"])


def test_intact_log_verifies(app: Any) -> None:
    write_entries(30)
    total = audit.count()
    result = run_verify(app)
    assert result.exit_code == 0, result.output
    assert f"intact: {total} entries checked" in result.output


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_entries SET action = 'x' WHERE seq = 3",
        "DELETE FROM audit_entries WHERE seq = 3",
    ],
)
def test_the_database_refuses_changes(app: Any, sql: str) -> None:
    write_entries(5)
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text(sql))
        db.session.flush()
    db.session.rollback()


def test_a_changed_entry_is_named(app: Any) -> None:
    write_entries(10)
    drop_guard()
    db.session.execute(text("UPDATE audit_entries SET reason = 'nothing to see' WHERE seq = 7"))
    db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1
    assert "entry #7 (test.event) was changed or inserted" in result.output
    assert "6 entries before it are intact" in result.output


def test_a_deleted_entry_is_named(app: Any) -> None:
    write_entries(10)
    drop_guard()
    db.session.execute(text("DELETE FROM audit_entries WHERE seq = 4"))
    db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1 and "entry #4 is missing (deleted)" in result.output


def test_deleting_and_renumbering_is_still_caught(app: Any) -> None:
    write_entries(6)
    drop_guard()
    db.session.execute(text("DELETE FROM audit_entries WHERE seq = 4"))
    db.session.execute(text("UPDATE audit_entries SET seq = seq - 1 WHERE seq > 4"))
    db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1 and "entry #4" in result.output


def test_an_inserted_entry_is_named(app: Any) -> None:
    write_entries(5)
    drop_guard()
    forged = db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    db.session.execute(
        text(
            "INSERT INTO audit_entries"
            " (seq, uuid, occurred_at, action, outcome, prev_hash, entry_hash)"
            " VALUES (:s, :u, :t, 'account.created', 'success', :p, :h)"
        ),
        {
            "s": forged.seq + 1,
            "u": "0" * 32
            if db.engine.dialect.name == "sqlite"
            else "00000000-0000-0000-0000-000000000000",
            "t": forged.occurred_at.replace(tzinfo=None)
            if db.engine.dialect.name == "sqlite"
            else forged.occurred_at,
            "p": forged.entry_hash,
            "h": "f" * 64,
        },
    )
    db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"entry #{forged.seq + 1} (account.created) was changed or inserted" in result.output


def test_a_different_audit_key_fails_verification(app_factory: Any, tmp_path: Any) -> None:
    """The chain is keyed: someone without the audit key cannot recompute it."""
    first = app_factory()
    with first.app_context():
        write_entries(3)
    import json

    keys = json.loads((tmp_path / "instance" / "keys.json").read_text())
    import base64
    import os

    keys["audit"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    other = tmp_path / "other-keys.json"
    other.write_text(json.dumps(keys))
    second = app_factory(KEYS_FILE=str(other))
    with second.app_context():
        assert not audit.verify().ok
