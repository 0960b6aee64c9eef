"""Webhooks per the Standard Webhooks specification: secrets, signing, the payload and one POST.

``webhook-id`` is ``msg_<delivery uuid hex>``: the same on every retry and after a crash, so a
receiver that honours it processes each message once. During a secret rotation both the new and
the previous secret sign (two ``v1,...`` signatures, space-separated), so a receiver holding
either verifies.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from dr_panel.mail.transports import is_loopback

SECRET_PREFIX = "whsec_"  # noqa: S105  a prefix, not a secret
SECRET_BYTES = 32
EVENT_TYPES = {
    "Alert": "alert.issued",
    "Update": "alert.updated",
    "Cancel": "alert.cancelled",
}
USER_AGENT = "dr-panel-webhooks/1"


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def message_id(delivery_uuid: Any) -> str:
    return f"msg_{delivery_uuid.hex}"


def sign(secrets_: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,<b64>`` per secret, space-separated."""
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets_)


def headers_for(secrets_: list[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": sign(secrets_, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def body_of(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


# -- endpoint URLs ------------------------------------------------------------------------------


def url_problem(url: str, *, allow_local_http: bool) -> str | None:
    """What is wrong with a webhook URL, said so the person can fix it; None when it is fine."""
    url = (url or "").strip()
    if not url:
        return "Enter the endpoint's URL, like https://partner.example.org/hooks/alerts."
    if len(url) > 500:
        return "The URL is too long: use at most 500 characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "That is not a valid URL: check the host and port."
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "The URL must start with https:// and name a host."
    if parts.username or parts.password:
        return "Do not put a user name or password in the URL; the signature authenticates us."
    if parts.fragment:
        return "Remove the #fragment from the URL."
    if any(c.isspace() for c in url):
        return "The URL must not contain spaces."
    if parts.scheme == "http":
        if not (allow_local_http and is_loopback(host)):
            return (
                "The URL must use https:// (plain http:// is accepted only for localhost "
                "outside production)."
            )
    if port == 0:
        return "That is not a valid port."
    return None


# -- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one POST came to. ``error`` is a status or an exception class, never a body."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


def post(url: str, body: str, headers: dict[str, str], timeout: float) -> Outcome:
    """POST once; redirects are not followed (a 3xx is a failure). The response body is read
    (up to a small limit, to reuse nothing) and discarded: it is never stored or logged."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body.encode("utf-8"), headers=headers)
        response = conn.getresponse()
        response.read(65536)
        status = response.status
    except (OSError, http.client.HTTPException, ssl.SSLError) as err:
        name = "timeout" if isinstance(err, socket.timeout | TimeoutError) else type(err).__name__
        return Outcome(status=None, error=name)
    finally:
        conn.close()
    if 200 <= status < 300:
        return Outcome(status=status, error=None)
    return Outcome(status=status, error=f"HTTP {status}")
