"""A public reporter's e-mail address is personal data: it is encrypted on the report, kept only
encrypted (bound to the message) in the outbox, erased once sent, never listed by
``dr-panel mail outbox``, and never written to the folder transport's ``.eml``. Tested by reading
what an intruder would read: the database rows and the files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from dr_panel.cli import main
from dr_panel.crypto import DecryptionError
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail import services as mail
from dr_panel.mail.models import OutboxMessage
from dr_panel.mail.transports import WITHHELD_TO
from tests.mail.test_mail import SmtpServer

ADDRESS = "worried.reporter@example.net"


def report(**changes: str) -> dict[str, str]:
    data = {
        "area": "E06000009",
        "place": "town centre",
        "seen_on": (utcnow().date() - timedelta(days=1)).isoformat(),
        "substance": "White powder sold as ketamine",
        "effects": "Very drowsy for hours.",
        "contact": ADDRESS,
    }
    data.update(changes)
    return data


def raw_rows(table: str) -> str:
    """Every column of every row, as the database holds them."""
    db.session.rollback()
    return repr(db.session.execute(text(f"SELECT * FROM {table}")).all())  # noqa: S608


def the_message() -> OutboxMessage:
    db.session.rollback()
    [message] = db.session.scalars(select(OutboxMessage)).all()
    return message


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def folder_app(app_factory: Callable[..., Flask], outbox_dir: Path) -> Iterator[Flask]:
    app = app_factory(MAIL_SEND_AFTER_REQUEST=False, MAIL_OUTBOX_DIR=str(outbox_dir))
    with app.app_context():
        yield app


def test_the_address_is_only_encrypted_in_the_outbox_and_gone_once_sent(
    folder_app: Flask, outbox_dir: Path
) -> None:
    response = folder_app.test_client().post("/report-a-drug-concern", data=report())
    assert response.status_code == 200
    assert ADDRESS not in raw_rows("outbox_messages")
    assert ADDRESS not in raw_rows("drug_reports")
    message = the_message()
    assert message.to_address is None and message.to_address_enc
    assert mail.recipient_of(message) == ADDRESS  # the worker can still send it

    assert mail.deliver().sent == 1
    [eml] = outbox_dir.glob("*.eml")
    data = eml.read_bytes()
    assert ADDRESS.encode() not in data and b"worried" not in data
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["To"] == WITHHELD_TO
    assert "DC-" in parsed["Subject"]

    sent = the_message()
    assert sent.sent_at is not None and sent.to_address_enc is None  # erased once sent
    assert ADDRESS not in raw_rows("outbox_messages")


def test_the_outbox_listing_says_a_public_reporter(folder_app: Flask) -> None:
    folder_app.test_client().post("/report-a-drug-concern", data=report())
    result = folder_app.test_cli_runner().invoke(main, ["mail", "outbox"])
    assert result.exit_code == 0, result.output
    assert "(a public reporter)" in result.output and ADDRESS not in result.output


def test_a_sealed_address_moved_to_another_message_does_not_decrypt(folder_app: Flask) -> None:
    client = folder_app.test_client()
    client.post("/report-a-drug-concern", data=report())
    client.post("/report-a-drug-concern", data=report(contact="other.reporter@example.net"))
    db.session.rollback()
    first, second = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    second.to_address_enc = first.to_address_enc  # an insider redirects a confirmation
    db.session.commit()
    with pytest.raises(DecryptionError):
        mail.recipient_of(second)
    assert mail.deliver().sent == 1  # the untouched one; the moved one is not sent anywhere
    assert the_failed(second).last_error == "DecryptionError"


def the_failed(message: OutboxMessage) -> OutboxMessage:
    db.session.rollback()
    row = db.session.get(OutboxMessage, message.id)
    assert row is not None and row.sent_at is None
    return row


def test_the_smtp_relay_gets_the_real_address(app_factory: Callable[..., Flask]) -> None:
    server = SmtpServer()
    server.start()
    try:
        app = app_factory(
            MAIL_TRANSPORT="smtp",
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=server.port,
            MAIL_USE_STARTTLS=False,
            MAIL_SEND_AFTER_REQUEST=False,
        )
        with app.app_context():
            app.test_client().post("/report-a-drug-concern", data=report())
            assert mail.deliver().sent == 1
            [envelope] = server.inbox.envelopes
            assert envelope.rcpt_tos == [ADDRESS]
            [received] = server.inbox.messages()
            assert received["To"] == ADDRESS
            assert the_message().to_address_enc is None
    finally:
        server.stop()


def test_a_signed_in_reporters_work_address_stays_listed(
    folder_app: Flask, create_user: Any, login: Any
) -> None:
    """Staff addresses are already in the users table: only the public's are sealed."""
    from dr_panel.auth.models import Role

    member = create_user(Role.PANEL_MEMBER)
    client = folder_app.test_client()
    login(client, member)
    client.post("/ldis/reports/new", data=report(contact=""))
    assert the_message().to_address == member.email
