"""Webhooks per the Standard Webhooks specification: secrets, signing, the payload and one POST.

``webhook-id`` is ``msg_<delivery uuid hex>``: the same on every retry and after a crash, so a
receiver that honours it processes each message once. During a secret rotation both the new and
the previous secret sign (two ``v1,...`` signatures, space-separated), so a receiver holding
either verifies.
"""

from __future__ import annotations

import base64
import functools
import http.client
import ipaddress
import json
import re
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
#
# Outbound requests stay outside. A webhook URL names a public DNS name over https (checked when
# it is entered, without DNS: partners may publish the name later, and a check then proves
# nothing about the moment of sending). At send time the name is resolved once, every address
# it resolves to is checked (``address_problem``), and the connection is made to a checked
# address while TLS verifies the certificate for the name (SNI and Host carry the name), so a
# DNS answer that changes between the check and the connection (rebinding) reaches nothing
# inside. Redirects are never followed. ``WEBHOOK_ALLOW_LOOPBACK`` (development and the tests
# only; production refuses to start with it) also admits http or https receivers on this
# machine: 127.0.0.1, [::1] or localhost.

LOCAL_NAMES = frozenset({
    # Special-use and private-use names that never reach a partner on the internet: RFC 6761
    # (localhost, invalid, test), RFC 6762 (local), RFC 8375 (home.arpa), RFC 7686 (onion),
    # ICANN's .internal, and names private networks use by habit.
    "localhost", "local", "internal", "intranet", "lan", "home", "corp", "localdomain",
    "private", "invalid", "test", "onion", "alt", "arpa",
})
METADATA_NAMES = frozenset({
    # Cloud instance metadata services by name (their addresses are refused at send time too).
    "metadata.google.internal", "metadata.goog", "instance-data.ec2.internal", "metadata",
    "instance-data",
})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
# A label a URL parser may read as part of an IPv4 address: decimal, octal (leading 0) or hex.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")

HTTPS_ONLY = (
    "The URL must use https:// (plain http:// is accepted only for a receiver on this machine "
    "outside production)."
)
NOT_AN_IP = (
    "Use the endpoint's public DNS name, like https://partner.example.org/hooks, not an IP "
    "address."
)
NOT_PUBLIC = (
    "That is a local or internal name that is not reachable from the internet: use the "
    "endpoint's public DNS name, like partner.example.org."
)


def _allowed_loopback(host: str, allow_loopback: bool) -> bool:
    return allow_loopback and is_loopback(host)


def _looks_like_ip(host: str) -> bool:
    """An IP literal in any form a parser accepts: IPv6 (and IPv4-mapped) in brackets, dotted,
    or a host whose last label is a number (decimal, octal, hex), which URL parsers read as an
    IPv4 address (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``)."""
    if ":" in host or host.startswith("["):
        return True
    labels = host.split(".")
    return bool(_NUMERIC_LABEL.match(labels[-1])) or all(
        _NUMERIC_LABEL.match(label) for label in labels
    )


def host_problem(host: str, *, allow_loopback: bool) -> str | None:
    """What is wrong with a webhook host, or None when it is a public DNS name (or, where
    allowed, this machine)."""
    if _allowed_loopback(host, allow_loopback):
        return None
    if not host.isascii():
        return (
            "Write the host name in plain letters, digits and hyphens (an international name "
            "in its xn-- form)."
        )
    if host.endswith("."):
        return "Remove the dot at the end of the host name."
    if _looks_like_ip(host):
        return NOT_AN_IP
    labels = host.split(".")
    if not all(_LABEL.match(label) for label in labels) or len(host) > 253:
        return (
            "That host name is not valid: use letters, digits, hyphens and dots, like "
            "partner.example.org."
        )
    if host in METADATA_NAMES or labels[-1] in LOCAL_NAMES:
        return NOT_PUBLIC
    if len(labels) < 2 or not _TLD.match(labels[-1]):
        return "Use the endpoint's full public DNS name, like partner.example.org."
    return None


def url_problem(url: str, *, allow_loopback: bool) -> str | None:
    """What is wrong with a webhook URL, said so the person can fix it; None when it is fine.
    No DNS is asked: see the note above."""
    url = (url or "").strip()
    if not url:
        return "Enter the endpoint's URL, like https://partner.example.org/hooks/alerts."
    if len(url) > 500:
        return "The URL is too long: use at most 500 characters."
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "The URL must not contain spaces."
    if "\\" in url:
        return "The URL must not contain a backslash (\\): use / between its parts."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "That is not a valid URL: check the host and port."
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "The URL must start with https:// and name a host."
    if "@" in parts.netloc or parts.username or parts.password:
        return "Do not put a user name or password in the URL; the signature authenticates us."
    if parts.fragment:
        return "Remove the #fragment from the URL."
    if parts.scheme == "http" and not _allowed_loopback(host, allow_loopback):
        return HTTPS_ONLY
    if port == 0:
        return "That is not a valid port."
    return host_problem(host, allow_loopback=allow_loopback)


# -- where a request may go ---------------------------------------------------------------------

# Ranges refused beyond what ``ipaddress`` calls not global (it counts some of these global,
# depending on the Python version): IETF protocol assignments, the 6to4 relay, Azure's
# platform address (its metadata and DNS), "this network", reserved, broadcast, multicast,
# NAT64 for local use, and AWS's IPv6 metadata address.
BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "168.63.129.16/32", "100.100.100.200/32",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "fd00:ec2::254/128",
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE_ADDRESS = (
    "the name resolves to a private, local or reserved address; webhooks go only to "
    "the internet"
)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to (IPv4-mapped, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(address: str, *, allow_loopback: bool) -> str | None:
    """None when a request may go to ``address``: a global unicast address outside every range
    above (or, where allowed, loopback); else the plain reason the send is refused."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "the name did not resolve to an IP address"
    for candidate in (ip, _embedded_ipv4(ip)):
        if candidate is None:
            continue
        if allow_loopback and candidate.is_loopback:
            return None
        if (
            not candidate.is_global
            or candidate.is_multicast
            or any(candidate in net for net in BLOCKED_NETWORKS
                   if net.version == candidate.version)
        ):
            return PRIVATE_ADDRESS
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, once per send. A seam: the tests replace it, since no
    real DNS answers on the test machine."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


REFUSED = "refused: "  # how a delivery's reason starts when the outbound rules stopped it


class Refused(Exception):
    """A send refused before any connection; the message is the delivery's plain reason."""


def vetted_addresses(url: str, *, allow_loopback: bool) -> list[str]:
    """The addresses a send to ``url`` may connect to: the URL is checked again (a row saved
    before these rules, or under other settings) and every resolved address must pass."""
    problem = url_problem(url, allow_loopback=allow_loopback)
    if problem:
        raise Refused(REFUSED + problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError):
            raise Refused("the endpoint's name did not resolve (DNS)") from None
    else:
        addresses = [host]  # a loopback literal, allowed by the setting
    if not addresses:
        raise Refused("the endpoint's name did not resolve (DNS)")
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback)
        if problem:
            raise Refused(REFUSED + problem)
    return addresses


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The system's trust store, with certificate and host-name checks (made once)."""
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the endpoint."""

    def __init__(self, host: str, port: int | None, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the checked address; SNI, certificate check and Host use the endpoint's
    name, so the name must still prove itself over TLS."""

    def __init__(self, host: str, port: int | None, *, address: str, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.pinned = address
        self.tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned, self.port), self.timeout)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


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


def post(url: str, body: str, headers: dict[str, str], timeout: float, *,
         allow_loopback: bool = False) -> Outcome:
    """POST once, to a checked address only (``vetted_addresses``); redirects are not followed
    (a 3xx is a failure). A refused send is an outcome with its plain reason, never an
    exception. The response body is read (up to a small limit, to reuse nothing) and
    discarded: it is never stored or logged."""
    try:
        addresses = vetted_addresses(url, allow_loopback=allow_loopback)
    except Refused as refused:
        return Outcome(status=None, error=str(refused))
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    error: BaseException | None = None
    for address in addresses:  # each one checked; the first that answers takes the request
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = _PinnedHTTPSConnection(host, parts.port, address=address, timeout=timeout,
                                          context=tls_context())
        else:
            conn = _PinnedHTTPConnection(host, parts.port, address=address, timeout=timeout)
        try:
            conn.connect()
        except (OSError, ssl.SSLError) as err:
            conn.close()
            error = err
            continue
        try:
            conn.request("POST", path, body=body.encode("utf-8"), headers=headers)
            response = conn.getresponse()
            response.read(65536)
            status = response.status
        except (OSError, http.client.HTTPException, ssl.SSLError) as err:
            return Outcome(status=None, error=_error_name(err))
        finally:
            conn.close()
        if 200 <= status < 300:
            return Outcome(status=status, error=None)
        if 300 <= status < 400:
            return Outcome(status=status, error=f"HTTP {status} (redirects are not followed)")
        return Outcome(status=status, error=f"HTTP {status}")
    return Outcome(status=None, error=_error_name(error) if error else "failed")


def _error_name(err: BaseException) -> str:
    return "timeout" if isinstance(err, socket.timeout | TimeoutError) else type(err).__name__
