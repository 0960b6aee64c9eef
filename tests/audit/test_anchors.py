"""The end of the audit log: without anchors, deleting the newest entries (or all of them) left a
valid chain. These tests play the database owner going around the triggers, and someone editing
the anchor file, and expect `dr-panel audit verify` to say what is missing and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from dr_panel.audit import anchors
from dr_panel.audit import services as audit
from dr_panel.cli import main
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from tests.audit.test_chain import drop_guard, run_verify, write_entries


def anchor_file(app: Any) -> Path:
    return Path(app.config["INSTANCE_PATH"]) / "audit-anchors.log"


def anchor(app: Any) -> Any:
    return app.test_cli_runner().invoke(main, ["audit", "anchor"])


def delete_from(seq: int) -> None:
    drop_guard()
    db.session.execute(text("DELETE FROM audit_entries WHERE seq >= :s"), {"s": seq})
    db.session.commit()


def test_without_anchors_the_tail_is_unprotected_and_verify_says_so(app: Any) -> None:
    write_entries(5)
    result = run_verify(app)
    assert result.exit_code == 0
    assert "no anchor file" in result.output and "not protected" in result.output


def test_deleting_the_newest_entries_is_caught(app: Any) -> None:
    write_entries(10)
    head = audit.count()
    assert anchor(app).exit_code == 0
    delete_from(head - 2)
    assert audit.verify().ok  # the chain alone still looks whole: the bug this fixes
    result = run_verify(app)
    assert result.exit_code == 1, result.output
    assert f"entry #{head}, anchored at" in result.output
    assert "truncated or its newest entries deleted" in result.output


def test_deleting_every_entry_is_caught(app: Any) -> None:
    write_entries(4)
    first = audit.count()
    anchor(app)
    write_entries(3)
    anchor(app)
    delete_from(1)
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"entries #{first} to #{first + 3}" in result.output and "missing" in result.output


def test_replacing_the_tail_with_a_fresh_chain_is_caught(app: Any) -> None:
    """The owner deletes the newest entries and writes new ones with the same numbers (through
    the app, so they chain and are signed): the anchored hash no longer matches."""
    write_entries(6)
    head = audit.count()
    anchor(app)
    delete_from(head - 1)
    write_entries(2)
    assert audit.verify().ok
    result = run_verify(app)
    assert result.exit_code == 1 and f"entry #{head} differs from its anchor" in result.output


@pytest.mark.parametrize("drop_truncate_guard", [False, True])
def test_truncate_is_refused_then_caught(app: Any, drop_truncate_guard: bool) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE without WHERE meets the row trigger")
    write_entries(5)
    head = audit.count()
    anchor(app)
    if not drop_truncate_guard:
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.execute(text("TRUNCATE audit_entries"))
        db.session.rollback()
        assert audit.count() == head
        return
    db.session.execute(text("DROP TRIGGER audit_entries_no_truncate ON audit_entries"))
    db.session.execute(text("TRUNCATE audit_entries"))
    db.session.commit()
    result = run_verify(app)
    assert result.exit_code == 1 and f"entry #{head}, anchored at" in result.output


def test_an_anchor_edited_by_hand_fails_its_signature(app: Any) -> None:
    write_entries(5)
    anchor(app)
    path = anchor_file(app)
    line = json.loads(path.read_text())
    line["seq"] = 3  # "the log only ever had three entries"
    path.write_text(json.dumps(line) + "\n")
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"line 1 of {path} fails its signature" in result.output


def test_a_line_removed_from_the_middle_of_the_file_is_caught(app: Any) -> None:
    for _ in range(3):
        write_entries(2)
        anchor(app)
    path = anchor_file(app)
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    path.write_text(lines[0] + lines[2])
    result = run_verify(app)
    assert result.exit_code == 1 and "was removed or replaced" in result.output


def test_entries_after_the_last_anchor_are_reported_not_yet_anchored(app: Any) -> None:
    write_entries(5)
    head = audit.count()
    anchor(app)
    write_entries(3)
    result = run_verify(app)
    assert result.exit_code == 0, result.output
    assert f"Anchors agree: 1 checked, the last at #{head}" in result.output
    assert f"3 entries after #{head} not yet anchored" in result.output


def test_anchoring_an_unchanged_head_writes_nothing(app: Any) -> None:
    write_entries(2)
    assert anchors.anchor_now() is not None
    assert anchors.anchor_now() is None
    assert len(anchor_file(app).read_text().splitlines()) == 1
    assert "Nothing new to anchor" in anchor(app).output


def test_anchoring_refuses_a_log_that_lost_its_anchored_entry(app: Any) -> None:
    write_entries(4)
    head = audit.count()
    anchors.anchor_now()
    delete_from(head - 1)
    write_entries(1)
    result = anchor(app)
    assert result.exit_code == 1
    assert f"no longer holds entry #{head}" in result.output
    assert len(anchor_file(app).read_text().splitlines()) == 1


def test_the_anchor_file_is_private_and_appended(app: Any) -> None:
    write_entries(1)
    anchors.anchor_now()
    write_entries(1)
    anchors.anchor_now()
    path = anchor_file(app)
    assert path.stat().st_mode & 0o777 == 0o600
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == [audit.count() - 1, audit.count()]


def test_anchors_from_another_install_fail_their_signature(
    app_factory: Any, tmp_path: Path
) -> None:
    first = app_factory()
    with first.app_context():
        write_entries(3)
        anchors.anchor_now()
    stranger = tmp_path / "stranger.log"
    line = json.loads(anchor_file(first).read_text())
    line["mac"] = "0" * 64
    stranger.write_text(json.dumps(line) + "\n")
    with first.app_context():
        result = first.test_cli_runner().invoke(
            main, ["audit", "verify", "--anchors", str(stranger)]
        )
    assert result.exit_code == 1 and "fails its signature" in result.output


def test_the_anchor_email_carries_seq_and_time_only(app_factory: Any) -> None:
    app = app_factory(AUDIT_ANCHOR_EMAIL="audit-keeper@example.org")
    with app.app_context():
        audit.record("case.reveal", actor_label="coordinator1@example.org", reason="Checking")
        db.session.commit()
        written = anchors.anchor_now()
        assert written is not None
        message = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "audit_anchor")
        ).one()
        assert message.to_address == "audit-keeper@example.org"
        assert f"#{written.seq}" in message.subject
        assert written.hash[:16] in message.body_text
        assert "coordinator1" not in message.body_text and "Checking" not in message.body_text
