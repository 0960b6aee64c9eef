"""E-mail through the outbox: queued with the transaction, delivered after commit to a real SMTP
server (aiosmtpd on a free local port), retried on failure, and never carrying an identifier."""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import click
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope
from flask import Flask
from sqlalchemy import select, text

from config import load_config
from dr_panel import retry
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail import services as mail
from dr_panel.mail.cli import mail as mail_group
from dr_panel.mail.models import OutboxMessage
from dr_panel.mail.worker import running_worker
from dr_panel.security import public

TO = "coordinator1@example.org"
BASE_URL = "http://dr-panel.test"
REFUSED = "nobody@example.org"


# -- a real SMTP server ---------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every envelope; refuses mail for REFUSED; accepts any login."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[bytes] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(e.original_content or e.content, policy=policy.default)  # type: ignore[arg-type,misc]
            for e in self.envelopes
        ]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    server.event_handler.logins.append(auth.login)
    return AuthResult(success=True)


class SmtpServer:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=_authenticate,
            auth_require_tls=False,  # loopback only; the transport refuses this elsewhere
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def _test_routes(app: Flask) -> None:
    """A tiny view that queues mail and commits (or rolls back), as a real view's service does."""

    @public
    def queue_mail() -> str:
        from flask import request

        mail.queue(TO, "A request is waiting", "Open it: " + mail.link("main.home"),
                   kind="test")
        if request.args.get("fail"):
            db.session.rollback()
            return "rolled back"
        db.session.commit()
        return "queued"

    app.add_url_rule("/_test/queue-mail", "test_queue_mail", queue_mail, methods=["POST"])


@pytest.fixture
def smtp_app(app_factory: Callable[..., Flask], smtp_server: SmtpServer) -> Iterator[Flask]:
    app = app_factory(
        MAIL_TRANSPORT="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_server.port,
        MAIL_USE_STARTTLS=False,
        BASE_URL=BASE_URL,
    )
    mail.init_app(app)  # idempotent: create_app may already have done it
    _test_routes(app)
    with app.app_context():
        yield app
    worker = running_worker(app)
    if worker is not None:
        worker.stop()


def fresh(message: OutboxMessage) -> OutboxMessage:
    """Re-read after deliver(), which works in its own session."""
    db.session.rollback()
    row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.uuid == message.uuid))
    assert row is not None
    return row


def queue_request_mail(to: str = TO, **kwargs: Any) -> OutboxMessage:
    case_uuid = uuid_mod.uuid4()
    url = mail.link("cases.view_case", uuid=case_uuid)
    message = mail.queue(
        to,
        "Information request due 3 March 2026",
        f"Your agency has an information request to answer by 3 March 2026.\n\nOpen it: {url}\n",
        html=f'<p>Your agency has an information request. <a href="{url}">Open it</a></p>',
        kind=kwargs.pop("kind", "request"),
        **kwargs,
    )
    assert message is not None
    return message


# -- 1, 2: after commit, never after rollback -----------------------------------------------------


def test_committed_mail_arrives_with_a_link_and_no_identifier(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    message = queue_request_mail()
    db.session.commit()
    assert smtp_server.inbox.envelopes == []  # queued, not sent inside the transaction

    report = mail.deliver()

    assert (report.sent, report.failed, report.remaining) == (1, 0, 0)
    (envelope,) = smtp_server.inbox.envelopes
    assert envelope.rcpt_tos == [TO]
    assert envelope.mail_from == "no-reply@localhost"
    (received,) = smtp_server.inbox.messages()
    assert received["To"] == TO
    assert received["Subject"] == "Information request due 3 March 2026"
    assert received["Message-ID"] == f"<{message.uuid}@localhost>"
    body = received.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = received.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert re.search(rf"{re.escape(BASE_URL)}/cases/[0-9a-f-]{{36}}\b", body)
    assert f'href="{BASE_URL}/cases/' in html
    mail.check_no_identifiers(received["Subject"], body, html, recipient=TO)
    assert fresh(message).sent_at is not None


def test_rolled_back_mail_is_never_sent(smtp_app: Flask, smtp_server: SmtpServer) -> None:
    queue_request_mail()
    db.session.rollback()

    report = mail.deliver()

    assert (report.sent, report.failed, report.remaining) == (0, 0, 0)
    assert smtp_server.inbox.envelopes == []
    assert db.session.scalar(select(OutboxMessage)) is None


# -- 3: a failed send is retried, not lost --------------------------------------------------------


def test_server_down_then_back_delivers_exactly_once(
    smtp_app: Flask, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    message = queue_request_mail()
    db.session.commit()
    smtp_server.stop()

    before = utcnow()
    report = mail.deliver()

    assert (report.sent, report.failed, report.remaining) == (1 - 1, 1, 1)
    row = fresh(message)
    assert row.sent_at is None
    assert row.attempts == 1
    assert row.last_error == "ConnectionRefusedError"
    assert before + timedelta(seconds=59) < row.not_before < before + timedelta(seconds=67)
    warning = next(r for r in caplog.records if r.name == "dr_panel.mail")
    assert warning.levelname == "WARNING"
    assert str(message.uuid) in warning.getMessage()
    assert "ConnectionRefusedError" in warning.getMessage()
    assert TO not in caplog.text and "Information request" not in caplog.text

    smtp_server.start()
    assert mail.deliver().sent == 0  # not due yet: it waits for its retry time
    row.not_before = utcnow() - timedelta(seconds=1)  # time passes
    db.session.commit()

    assert mail.deliver().sent == 1
    assert mail.deliver().sent == 0
    assert len(smtp_server.inbox.envelopes) == 1
    row = fresh(message)
    assert row.sent_at is not None and row.attempts == 1


def test_backoff_grows_then_caps_at_two_hours(app: Flask) -> None:
    minutes = [retry.schedule("mail").delay(n).total_seconds() / 60 for n in (1, 2, 3, 4, 9)]
    for got, base in zip(minutes, (1, 5, 25, 120, 120), strict=True):
        assert base <= got <= base * 1.1


def test_a_refused_recipient_does_not_hold_up_the_others(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    refused = queue_request_mail(to=REFUSED)
    accepted = queue_request_mail()
    db.session.commit()

    report = mail.deliver()

    assert (report.sent, report.failed, report.remaining) == (1, 1, 1)
    assert fresh(refused).last_error == "SMTPRecipientsRefused 550"
    assert fresh(accepted).sent_at is not None
    assert [e.rcpt_tos for e in smtp_server.inbox.envelopes] == [[TO]]


def test_an_unreachable_server_ends_the_run_leaving_the_rest_untried(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    first, second = queue_request_mail(), queue_request_mail()
    db.session.commit()
    smtp_server.stop()

    report = mail.deliver()

    assert (report.sent, report.failed, report.remaining) == (0, 1, 2)
    assert fresh(first).attempts == 1
    assert fresh(second).attempts == 0 and mail.is_due(fresh(second))


# -- 4: dedupe ------------------------------------------------------------------------------------


def test_a_dedupe_key_already_queued_makes_queue_a_no_op(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    first = queue_request_mail(dedupe_key="request-chase:abc:2026-03-03")
    assert mail.queue(TO, "Again", "Again", kind="request",
                      dedupe_key="request-chase:abc:2026-03-03") is None  # same transaction
    db.session.commit()
    mail.deliver()
    assert mail.queue(TO, "Again", "Again", kind="request",
                      dedupe_key="request-chase:abc:2026-03-03") is None  # after sending too
    db.session.commit()

    assert db.session.scalars(select(OutboxMessage.uuid)).all() == [first.uuid]
    assert mail.deliver().sent == 0
    assert len(smtp_server.inbox.envelopes) == 1


# -- 5: the identifier guard ----------------------------------------------------------------------


def nhs(first_nine: str) -> str:
    """A valid NHS number: the modulus-11 check digit appended."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    assert check != 10, "no valid number with these digits"
    return first_nine + str(check)


NHS_TEST = nhs("999000001")  # the 999 range is never issued: safe for tests
assert NHS_TEST.startswith("999")


def spaced(digits: str) -> str:
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


REFUSALS = [
    ("an NHS number", "subject", f"Re {NHS_TEST}"),
    ("an NHS number", "text", f"NHS number {NHS_TEST}."),
    ("an NHS number", "text", f"NHS number {spaced(NHS_TEST)}."),
    ("an NHS number", "text", f"NHS {NHS_TEST[:3]}-{NHS_TEST[3:6]}-{NHS_TEST[6:]}"),
    ("an NHS number", "text", f"ref 12 345 6789 {spaced(NHS_TEST)}"),  # digits before it
    ("an NHS number", "text", f"{BASE_URL}/people?nhs={NHS_TEST[:3]}%20{NHS_TEST[3:]}"),
    ("an NHS number", "html", f"<td>{NHS_TEST[:3]}</td><td>{NHS_TEST[3:6]}&nbsp;{NHS_TEST[6:]}"),
    ("an NHS number", "html", f'<a href="{BASE_URL}/p?n={NHS_TEST}">open</a>'),
    ("a postcode", "text", "Found at FY1 4AB."),
    ("a postcode", "text", "found at fy14ab"),
    ("a postcode", "subject", "Address SW1A 1AA"),
    ("a postcode", "html", "<b>FY1</b> 4AB"),
    ("full date", "text", "Born 03/03/1985."),
    ("full date", "text", "Born 1985-03-15."),
    ("full date", "text", "Born 15.03.1985."),
    ("full date", "text", "Born 3/3/85."),
    ("full date", "subject", "Seen 2026-03-03"),
    ("years ago", "text", "Born 15 March 1985."),
    ("years ago", "text", "Born March 15th, 1985."),
    ("e-mail address", "text", "Her sister is jane.doe@example.com."),
    ("e-mail address", "html", '<a href="mailto:someone@gmail.com">write</a>'),
]


@pytest.mark.parametrize(("kind", "where", "value"), REFUSALS)
def test_the_guard_refuses_identifiers_without_repeating_them(
    smtp_app: Flask, kind: str, where: str, value: str
) -> None:
    subject, body, html = "A request", "Open it.", None
    if where == "subject":
        subject = value
    elif where == "text":
        body = value
    else:
        html = value

    with pytest.raises(mail.IdentifierInMail) as refused:
        mail.queue(TO, subject, body, html=html, kind="test")

    message = str(refused.value)
    assert kind in message
    assert {"subject": "subject", "text": "text body", "html": "HTML body"}[where] in message
    # Every identifier here has a digit or an @; the message has neither, but for its example.
    rest = message.replace("3 March 2026", "").replace(f"{mail.WRITTEN_DATE_YEARS} years", "")
    assert not re.search(r"[\d@]", rest), message
    db.session.commit()
    assert db.session.scalar(select(OutboxMessage)) is None


def test_the_guard_lets_links_due_dates_and_the_recipient_through(smtp_app: Flask) -> None:
    digits = "0123456789"
    assert nhs(digits[:9]) == digits  # a valid NHS number hides in this UUID's last group...
    tricky = uuid_mod.UUID(f"abcdef{nhs('123456781')[:2]}-{nhs('123456781')[2:6]}-"
                           f"{nhs('123456781')[6:]}-abcd-ef{digits}")
    url = mail.link("cases.view_case", uuid=tricky)
    assert url == f"{BASE_URL}/cases/{tricky}"
    body = (
        f"Hello {TO}: 2 requests for your agency are due by 3 March 2026 (and one by 1 April "
        f"2026). Open them: {url}\nPostcode district FY1; 999 000 0035 is not a valid number; "
        f"dr-panel 0.1.0; 12 of 45 answered."
    )
    html = f'<a style="color:#ab12cd" href="{url}?t=Zq9_ab12cd-x">Open</a>'  # colour, token
    mail.check_no_identifiers("Due 3 March 2026", body, html, recipient=TO)
    with pytest.raises(mail.IdentifierInMail):  # ...so the test can fail: outside a UUID it is
        mail.check_no_identifiers("x", f"{url} {digits}", recipient=TO)
    assert mail.queue(TO, "Due 3 March 2026", body, kind="test") is not None


def test_queue_refuses_header_injection(smtp_app: Flask) -> None:
    with pytest.raises(ValueError, match="one line"):
        mail.queue(TO, "Hi\r\nBcc: everyone@example.org", "x", kind="test")
    with pytest.raises(ValueError, match="bare address"):
        mail.queue(f"{TO}, other@example.org", "Hi", "x", kind="test")


# -- 6: the folder transport ----------------------------------------------------------------------


def test_folder_transport_writes_a_parseable_eml_readable_by_the_owner_only(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    app = app_factory(MAIL_OUTBOX_DIR=str(outbox), BASE_URL=BASE_URL)
    assert app.config["MAIL_TRANSPORT"] == "folder"  # the embedded default
    with app.app_context():
        message_uuid = queue_request_mail().uuid
        db.session.commit()
        assert mail.deliver().sent == 1

    (path,) = outbox.iterdir()
    assert re.fullmatch(rf"\d{{8}}T\d{{12}}Z-{message_uuid}\.eml", path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert parsed["To"] == TO
    assert parsed["From"] == "dr-panel <no-reply@localhost>"
    assert parsed["Subject"] == "Information request due 3 March 2026"
    assert parsed["Date"] and parsed["Message-ID"] == f"<{message_uuid}@localhost>"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert f"{BASE_URL}/cases/" in plain and "<a href=" in html


def test_the_default_outbox_folder_is_in_the_instance(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory()
    with app.app_context():
        queue_request_mail()
        db.session.commit()
        mail.deliver()
    assert len(list((Path(app.instance_path) / "outbox").glob("*.eml"))) == 1


# -- 7: after the request, and in the background --------------------------------------------------


def test_mail_queued_by_a_request_is_delivered_after_its_commit(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    client = smtp_app.test_client()
    # buffered: the test client then closes the response as a WSGI server does after sending it
    response = client.post("/_test/queue-mail", buffered=True)

    assert response.status_code == 200 and response.text == "queued"
    (received,) = smtp_server.inbox.messages()
    assert received["Subject"] == "A request is waiting"
    assert f"{BASE_URL}/" in received.get_content()
    assert db.session.scalar(select(OutboxMessage.sent_at)) is not None


def test_a_request_that_rolled_back_sends_nothing(smtp_app: Flask, smtp_server: SmtpServer) -> None:
    response = smtp_app.test_client().post("/_test/queue-mail?fail=1", buffered=True)
    assert response.text == "rolled back"
    assert smtp_server.inbox.envelopes == []
    assert db.session.scalar(select(OutboxMessage)) is None


def test_with_send_after_request_off_the_mail_waits_for_the_worker(
    app_factory: Callable[..., Flask], smtp_server: SmtpServer
) -> None:
    app = app_factory(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port,
                      MAIL_USE_STARTTLS=False, MAIL_SEND_AFTER_REQUEST=False)
    mail.init_app(app)
    _test_routes(app)
    with app.app_context():
        assert app.test_client().post("/_test/queue-mail", buffered=True).text == "queued"
        assert smtp_server.inbox.envelopes == []
        worker = mail.start_worker(app, interval=0.05)
        try:
            _wait_for(lambda: len(smtp_server.inbox.envelopes) == 1)
        finally:
            worker.stop()
        assert not worker.is_alive()


def test_a_running_worker_is_woken_by_the_request(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    worker = mail.start_worker(smtp_app, interval=3600)
    assert mail.start_worker(smtp_app) is worker  # one worker per app
    time.sleep(0.1)  # its first run finds nothing
    smtp_app.test_client().post("/_test/queue-mail", buffered=True)
    _wait_for(lambda: len(smtp_server.inbox.envelopes) == 1)
    worker.stop()
    assert not worker.is_alive()


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- 8: the command line --------------------------------------------------------------------------


def _cli() -> click.Group:
    if "mail" in main.commands:
        return main
    group = click.Group()
    group.add_command(mail_group)
    return group


def test_cli_deliver_and_outbox(smtp_app: Flask, smtp_server: SmtpServer) -> None:
    runner = smtp_app.test_cli_runner()
    sent = queue_request_mail()
    failing = queue_request_mail(to=REFUSED, kind="reminder")
    db.session.commit()

    result = runner.invoke(_cli(), ["mail", "deliver"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 sent, 1 failed, 1 still unsent."

    result = runner.invoke(_cli(), ["mail", "outbox"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert str(sent.uuid) in result.output and str(failing.uuid) in result.output
    failing_line = next(line for line in lines if str(failing.uuid) in line)
    assert "reminder" in failing_line and "SMTPRecipientsRefused 550; next" in failing_line
    assert "Information request due 3 March 2026" in failing_line
    sent_line = next(line for line in lines if str(sent.uuid) in line)
    assert " sent 20" in sent_line

    result = runner.invoke(_cli(), ["mail", "outbox", "--unsent"])
    assert str(failing.uuid) in result.output and str(sent.uuid) not in result.output
    assert len(smtp_server.inbox.envelopes) == 1


def test_cli_outbox_when_empty(smtp_app: Flask) -> None:
    result = smtp_app.test_cli_runner().invoke(_cli(), ["mail", "outbox", "--unsent"])
    assert result.exit_code == 0 and "No unsent messages." in result.output


# -- transport safety and settings ----------------------------------------------------------------


def test_smtp_logs_in_when_a_username_is_set(
    app_factory: Callable[..., Flask], smtp_server: SmtpServer
) -> None:
    app = app_factory(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port,
                      MAIL_USE_STARTTLS=False, MAIL_USERNAME="relay-user",
                      MAIL_PASSWORD="relay-secret")
    with app.app_context():
        queue_request_mail()
        db.session.commit()
        assert mail.deliver().sent == 1
    assert smtp_server.inbox.logins == [b"relay-user"]


def test_starttls_required_but_not_offered_sends_nothing_in_clear(
    app_factory: Callable[..., Flask], smtp_server: SmtpServer
) -> None:
    app = app_factory(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port,
                      MAIL_USE_STARTTLS=True)
    with app.app_context():
        message = queue_request_mail()
        db.session.commit()
        assert mail.deliver().failed == 1
        assert fresh(message).last_error == "SMTPNotSupportedError"
    assert smtp_server.inbox.envelopes == []


def test_a_password_is_never_sent_in_clear_to_a_remote_server(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(MAIL_TRANSPORT="smtp", MAIL_SERVER="smtp.example.org",
                      MAIL_USE_STARTTLS=False, MAIL_USERNAME="u", MAIL_PASSWORD="relay-secret")
    with app.app_context():
        message = queue_request_mail()
        db.session.commit()
        assert mail.deliver().failed == 1
        row = fresh(message)
        assert row.last_error == "MailConfigError" and row.sent_at is None


def test_an_unknown_transport_refuses_to_start(app_factory: Callable[..., Flask]) -> None:
    from dr_panel import StartupError

    with pytest.raises(StartupError, match="MAIL_TRANSPORT must be one of folder, smtp"):
        app_factory(MAIL_TRANSPORT="pigeon")


def test_mail_settings_come_from_the_environment_and_hide_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "MAIL_TRANSPORT": "smtp", "MAIL_SERVER": "relay.example.org", "MAIL_PORT": "2525",
        "MAIL_USE_STARTTLS": "0", "MAIL_USERNAME": "relay", "MAIL_PASSWORD": "relay-secret",
        "MAIL_FROM": "Panel <panel@example.org>", "BASE_URL": "https://panel.example.org",
    }.items():
        monkeypatch.setenv(name, value)
    cfg = load_config("development")
    assert (cfg.MAIL_TRANSPORT, cfg.MAIL_SERVER, cfg.MAIL_PORT) == ("smtp", "relay.example.org",
                                                                    2525)
    assert cfg.MAIL_USE_STARTTLS is False and cfg.MAIL_USERNAME == "relay"
    assert cfg.MAIL_PASSWORD == "relay-secret" and "relay-secret" not in repr(cfg)
    assert cfg.MAIL_FROM == "Panel <panel@example.org>"
    assert cfg.BASE_URL == "https://panel.example.org"
    for name in ("MAIL_TRANSPORT", "MAIL_SERVER", "MAIL_PORT", "MAIL_USE_STARTTLS",
                 "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_FROM", "BASE_URL"):
        monkeypatch.delenv(name)
    assert load_config("production").MAIL_TRANSPORT == "smtp"
    dev = load_config("development")
    assert (dev.MAIL_TRANSPORT, dev.MAIL_PORT, dev.MAIL_USE_STARTTLS) == ("folder", 587, True)


# -- PostgreSQL: two workers never send the same message ------------------------------------------


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL only")
def test_a_message_claimed_by_another_worker_is_skipped(
    smtp_app: Flask, smtp_server: SmtpServer
) -> None:
    message = queue_request_mail()
    db.session.commit()
    with db.engine.connect() as other:  # another worker, mid-send: it holds the row
        other.execute(
            text("SELECT id FROM outbox_messages WHERE uuid = :u FOR UPDATE"), {"u": message.uuid}
        )
        report = mail.deliver()
        assert (report.sent, report.failed) == (0, 0)
        other.rollback()
    assert mail.deliver().sent == 1
    assert len(smtp_server.inbox.envelopes) == 1


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL only")
def test_two_transactions_queuing_one_dedupe_key_send_it_once(smtp_app: Flask) -> None:
    kept = queue_request_mail(dedupe_key="kept")  # earlier work in the same transaction
    other = db.engine.connect()  # another request queues the same key and has not committed
    other.execute(
        OutboxMessage.__table__.insert().values(
            uuid=uuid_mod.uuid4(), to_address=TO, subject="s", body_text="t", kind="request",
            dedupe_key="chase", created_at=utcnow(), not_before=utcnow(), attempts=0,
        )
    )
    committer = threading.Timer(0.3, other.commit)
    committer.start()
    try:
        # Not visible yet, so the insert waits on the unique index until the other commits.
        assert mail.queue(TO, "Chase", "Chase", kind="request", dedupe_key="chase") is None
    finally:
        committer.join()
        other.close()
    db.session.commit()  # the rest of the transaction survived
    keys = db.session.scalars(select(OutboxMessage.dedupe_key).order_by(OutboxMessage.id)).all()
    assert keys == ["kept", "chase"] and kept.dedupe_key == "kept"
