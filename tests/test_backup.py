"""`dr-panel backup` and `dr-panel restore`: a backup of a database with demo data, restored into
a fresh database, holds every case, identifier (decrypted with the same keys) and audit entry,
and the audit chain verifies. The key file is never inside the backup; restore refuses a
database that already holds tables."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from dr_panel import create_app
from dr_panel.audit import services as audit
from dr_panel.audit.models import AuditEntry
from dr_panel.cases import services as cases
from dr_panel.cases.models import Case
from dr_panel.cli import main
from dr_panel.extensions import db
from tests.conftest import make_config


def snapshot() -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """Every case's identifiers in clear (in memory only), and the audit chain."""
    people = {}
    for case in db.session.scalars(select(Case)):
        who = cases.ident.unseal(case.person)
        people[str(case.uuid)] = (who.full_name, who.dob, who.nhs_number, who.postcode)
    chain = [
        (int(s), str(h))
        for s, h in db.session.execute(
            select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq)
        )
    ]
    return people, chain


@pytest.fixture
def fresh_database(app: Any, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same engine: a new SQLite file, or a new PostgreSQL database."""
    if db.engine.dialect.name != "postgresql":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    name = f"drp_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_backup_restores_every_case_identifier_and_audit_entry(
    app: Any, runner: Any, tmp_path: Path, fresh_database: str
) -> None:
    from dr_panel.demo import load

    load()
    people, chain = snapshot()
    assert len(people) > 10 and len(chain) > 10

    target = tmp_path / "backups" / "dr-panel.backup"
    result = runner.invoke(main, ["backup", str(target)])
    assert result.exit_code == 0, result.output
    assert "is not in the backup" in result.output and app.config["KEYS_FILE"] in result.output
    assert target.stat().st_mode & 0o777 == 0o600
    keys = json.loads(Path(app.config["KEYS_FILE"]).read_text())
    raw = target.read_bytes()
    for value in (keys["audit"], keys["session"]):  # no key material, in any case
        assert value.encode() not in raw and base64.urlsafe_b64decode(value) not in raw
    assert b"9990000018" not in raw  # identifiers stay encrypted in the copy
    # The backup is an export of everything: audited, and the backup holds its own entry.
    assert audit.count() == len(chain) + 1

    again = runner.invoke(main, ["backup", str(target)])
    assert again.exit_code == 1 and "already exists" in again.output

    restored = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=fresh_database))
    with restored.app_context():
        cli = restored.test_cli_runner()
        result = cli.invoke(main, ["restore", str(target)])
        assert result.exit_code == 0, result.output
        people_after, chain_after = snapshot()
        assert people_after == people
        assert chain_after[: len(chain)] == chain
        assert [
            e.action
            for e in db.session.scalars(
                select(AuditEntry).where(AuditEntry.seq > len(chain)).order_by(AuditEntry.seq)
            )
        ] == ["backup.created", "backup.restored"]
        verified = cli.invoke(main, ["audit", "verify"])
        assert verified.exit_code == 0, verified.output
        assert f"intact: {len(chain) + 2} entries checked" in verified.output

        # A second restore over it is refused, and changes nothing.
        refused = cli.invoke(main, ["restore", str(target)])
        assert refused.exit_code == 1 and "already holds tables" in refused.output
        assert audit.count() == len(chain) + 2
        db.session.remove()
        db.engine.dispose()


def test_restore_refuses_what_is_not_a_backup(
    app: Any, runner: Any, tmp_path: Path, fresh_database: str
) -> None:
    missing = runner.invoke(main, ["restore", str(tmp_path / "nothing.backup")])
    assert missing.exit_code == 1 and "no backup file" in missing.output
    junk = tmp_path / "junk.backup"
    junk.write_bytes(os.urandom(4096))
    before = audit.count()
    over_data = runner.invoke(main, ["restore", str(junk)])
    assert over_data.exit_code == 1 and "already holds tables" in over_data.output
    assert audit.count() == before

    empty = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=fresh_database))
    with empty.app_context():
        result = empty.test_cli_runner().invoke(main, ["restore", str(junk)])
        assert result.exit_code == 1
        assert "not a SQLite backup" in result.output or "The restore failed" in result.output
        assert "Traceback" not in result.output
        db.session.remove()
        db.engine.dispose()
