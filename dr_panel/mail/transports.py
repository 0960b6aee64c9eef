"""How a message leaves: written to a folder (the embedded default, for development and tests)
or relayed over SMTP. A transport is opened once per delivery run and closed at its end.

The folder transport is a development stand-in for a mail server, not a mail store: it writes
what would have been sent, but a message to a private recipient (a public reporter, whose address
the outbox keeps only encrypted) is written with the recipient withheld, so the address never
lands in a file in clear."""

from __future__ import annotations

import ipaddress
import os
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol

from dr_panel.dbtypes import utcnow


class MailConfigError(RuntimeError):
    """The mail settings cannot work; the message says which setting to fix."""


# The To header the folder transport writes for a private recipient: an RFC 5322 empty group.
WITHHELD_TO = "A public reporter:;"


class Transport(Protocol):
    def send(self, message: EmailMessage, *, private_to: bool = False) -> None: ...

    def send_raw(self, sender: str, to: str, data: bytes, message_id: str) -> None: ...

    def close(self) -> None: ...


def address_of(header: str) -> str:
    """The bare address in a From header: "dr-panel <no-reply@x>" -> "no-reply@x"."""
    return parseaddr(header)[1]


def build_message(
    *,
    uuid: str,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    date: datetime | None = None,
) -> EmailMessage:
    """An RFC 5322 message. The Message-ID derives from the outbox row's UUID, so a message that
    is sent twice (see ``deliver``) carries the same ID and mail clients can fold the copies."""
    domain = address_of(sender).rpartition("@")[2] or "dr-panel.invalid"
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or utcnow())
    msg["Message-ID"] = f"<{uuid}@{domain}>"
    # RFC 3834: tells autoresponders not to answer a machine.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


class FolderTransport:
    """Writes each message to ``<dir>/<UTC timestamp>-<uuid>.eml``, readable by the owner only,
    so a developer can open what would have been sent. Written to a temporary name and renamed,
    so a reader never sees half a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage, *, private_to: bool = False) -> None:
        """Write the message; with ``private_to`` its To is replaced by ``WITHHELD_TO``."""
        if private_to:
            del message["To"]
            message["To"] = WITHHELD_TO
        self._write(str(message["Message-ID"]), message.as_bytes())

    def _write(self, message_id: str, data: bytes) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        uuid = message_id.strip("<>").partition("@")[0]
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        final = self.directory / f"{stamp}-{uuid}.eml"
        partial = final.with_suffix(".eml.part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, final)

    def close(self) -> None:
        pass

    def send_raw(self, sender: str, to: str, data: bytes, message_id: str) -> None:
        """An already rendered RFC 5322 message (the alert broadcast renders one per version
        and fills in each recipient)."""
        self._write(message_id, data)


def is_loopback(host: str) -> bool:
    """localhost or a loopback address: traffic that never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpTransport:
    """One SMTP connection for a delivery run, opened at the first message. After any failure the
    connection is dropped, and the next message opens a fresh one."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        starttls: bool,
        username: str,
        password: str,
        timeout: float,
    ) -> None:
        if not host:
            raise MailConfigError("MAIL_SERVER is not set: name the SMTP relay to send through.")
        if username and not starttls and not is_loopback(host):
            raise MailConfigError(
                "MAIL_USERNAME is set but MAIL_USE_STARTTLS is off: the password would cross the "
                "network in clear. Turn STARTTLS on, or relay through a server on this machine."
            )
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def __repr__(self) -> str:  # never the password
        return f"<SmtpTransport {self.host}:{self.port} starttls={self.starttls}>"

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                # Raises SMTPNotSupportedError where the server offers no STARTTLS: never a
                # silent fall-back to clear text.
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: EmailMessage, *, private_to: bool = False) -> None:
        """Relay the message; a private recipient goes to the server as any other (the relay
        needs the address), ``private_to`` only matters to the folder transport."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.send_message(message)
        except BaseException:
            self._drop()
            raise

    def send_raw(self, sender: str, to: str, data: bytes, message_id: str) -> None:
        """An already rendered message to one recipient, on the run's connection."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.sendmail(sender, [to], data)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self._drop()


def transport_from_config(config: Mapping[str, Any], instance_path: str) -> Transport:
    kind = config.get("MAIL_TRANSPORT", "folder")
    if kind == "folder":
        directory = config.get("MAIL_OUTBOX_DIR") or os.path.join(instance_path, "outbox")
        return FolderTransport(Path(directory))
    if kind == "smtp":
        return SmtpTransport(
            host=config.get("MAIL_SERVER", ""),
            port=int(config.get("MAIL_PORT", 587)),
            starttls=bool(config.get("MAIL_USE_STARTTLS", True)),
            username=config.get("MAIL_USERNAME", ""),
            password=config.get("MAIL_PASSWORD", ""),
            timeout=float(config.get("MAIL_TIMEOUT", 10.0)),
        )
    raise MailConfigError(f"MAIL_TRANSPORT must be 'folder' or 'smtp'; got {kind!r}.")
