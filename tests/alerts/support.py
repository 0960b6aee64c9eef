"""Helpers for the broadcast tests: alerts, versions and subscribers made directly, and real
receivers (an aiosmtpd SMTP server and an HTTP server that verifies Standard Webhooks)."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy import select
from standardwebhooks import Webhook

from dr_panel.alerts.models import (
    Alert,
    AlertLevel,
    AlertVersion,
    Channel,
    MsgType,
    Scope,
    Subscriber,
)
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area

CONTENT = {
    "title": "Strong blue tablets sold as diazepam",
    "substance": "Suspected nitazene",
    "sold_as": "Diazepam",
    "appearance": "Blue round tablets marked DB",
    "adulterant": "Nitazene suspected",
    "signs_of_harm": "Pinpoint pupils, slow breathing",
    "advice": "Do not use alone; carry naloxone",
    "professional_actions": "Share with clients; keep naloxone at hand",
    "counts": "Fewer than 8 people needed hospital care",
}


def area(code: str) -> Area:
    found = db.session.scalar(select(Area).where(Area.ons_code == code))
    assert found is not None
    return found


def make_area(code: str, name: str, network: str | None = None) -> Area:
    made = Area(ons_code=code, name=name, network=network)
    db.session.add(made)
    db.session.flush()
    return made


def make_subscriber(
    channel: Channel = Channel.EMAIL,
    *,
    areas: tuple[str, ...] = ("E06000009",),
    audiences: tuple[str, ...] = (),
    email: str | None = None,
    url: str | None = None,
    receives_restricted: bool = True,
    name: str = "Outreach team",
) -> Subscriber:
    sub = Subscriber(
        channel=channel,
        name=name,
        organisation="Test organisation",
        email=email if channel == Channel.EMAIL else None,
        url=url if channel == Channel.WEBHOOK else None,
        audiences=json.dumps(list(audiences)),
        receives_restricted=receives_restricted,
    )
    sub.areas = [area(c) for c in areas]
    db.session.add(sub)
    db.session.flush()
    return sub


def make_alert(
    user: Any,
    *,
    areas: tuple[str, ...] = ("E06000009",),
    audiences: tuple[str, ...] = (),
    scope: Scope = Scope.PUBLIC,
    content: dict[str, str] | None = None,
    issued: bool = True,
) -> AlertVersion:
    """An alert with one version, issued (frozen) unless told otherwise; not committed."""
    owner = area(areas[0])
    alert = Alert(reference=f"LDIS-T{utcnow().strftime('%H%M%S%f')}", created_by_id=user.id,
                  area_id=owner.id)
    version = AlertVersion(
        number=1,
        msg_type=MsgType.ALERT,
        level=AlertLevel.DRUG_ALERT,
        scope=scope,
        content=json.dumps(content or CONTENT),
        audiences=json.dumps(list(audiences)),
        drafted_by_id=user.id,
        issued_at=utcnow() if issued else None,
    )
    version.areas = [area(c) for c in areas]
    alert.versions.append(version)
    db.session.add(alert)
    db.session.flush()
    return version


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a real SMTP server ---------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler keeping every message and counting Message-IDs (honouring them or not)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.raw_ids: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content,  # type: ignore[arg-type]
                                     policy=policy.default)
        with self.lock:
            self.envelopes.append(envelope)
            self.raw_ids[str(message["Message-ID"])] += 1
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            envelopes = list(self.envelopes)
        return [
            message_from_bytes(e.original_content or e.content,  # type: ignore[arg-type]
                               policy=policy.default)
            for e in envelopes
        ]


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


# -- a real webhook receiver ----------------------------------------------------------------------


class Receiver:
    """A local HTTP server: verifies every request with ``standardwebhooks``, answers what the
    test sets per path (200 by default), and records webhook-ids: ``raw`` counts every request,
    ``processed`` only the first of each id (a receiver that honours the id)."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = {}  # path -> secrets any of which must verify
        self.answers: dict[str, int] = {}
        self.raw: Counter[str] = Counter()
        self.processed: list[tuple[str, dict[str, Any]]] = []
        self.seen: set[str] = set()
        self.unverified = 0
        self.truncated = 0  # requests cut off before their body ended: never delivered
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request (a killed worker)
                    with receiver.lock:
                        receiver.truncated += 1
                    self.close_connection = True
                    return
                receiver.handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # A real partner's server queues more than http.server's 5 waiting connections;
            # with 32 senders at once, 5 made the kernel reset some (ConnectionResetError).
            request_queue_size = 128

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        status = self.answers.get(path, 200)
        verified = False
        for secret in self.secrets.get(path, []):
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except Exception:  # noqa: S112  try the next secret
                continue
        with self.lock:
            self.headers.append(headers)
            if not verified:
                self.unverified += 1
                status = 401
            msg_id = headers.get("webhook-id", "")
            self.raw[msg_id] += 1
            if verified and status == 200 and msg_id not in self.seen:
                self.seen.add(msg_id)
                self.processed.append((msg_id, json.loads(body)))
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
