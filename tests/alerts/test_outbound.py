"""Outbound requests stay outside (issue 13, finding 3): a webhook goes only to an https URL with
a public DNS name; at send time every address the name resolves to is checked and the request
goes to a checked address; no redirect is followed; loopback receivers only where the
development setting allows them, which production refuses.

No real DNS answers on the test machine: the tests replace ``webhooks.resolve``."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import broadcast, webhooks
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import Channel, Delivery, DeliveryStatus, Subscriber
from dr_panel.audit.models import AuditEntry
from dr_panel.extensions import db
from tests.alerts.support import free_port, make_alert

PARTNER = "hooks.partner.example.org"

# (URL, words of the message that says how to fix it)
HOSTILE = [
    ("https://127.0.0.1/hook", "not an IP address"),
    ("https://169.254.169.254/latest/meta-data/", "not an IP address"),
    ("https://10.0.0.5/hook", "not an IP address"),
    ("https://192.168.1.10:8443/hook", "not an IP address"),
    ("https://1.1.1.1/hook", "not an IP address"),
    ("https://[::1]/hook", "not an IP address"),
    ("https://[::ffff:127.0.0.1]/hook", "not an IP address"),
    ("https://[::ffff:7f00:1]/hook", "not an IP address"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "not an IP address"),
    ("https://2130706433/hook", "not an IP address"),  # decimal 127.0.0.1
    ("https://0x7f000001/hook", "not an IP address"),  # hex
    ("https://0x7f.0.0.1/hook", "not an IP address"),
    ("https://0177.0.0.1/hook", "not an IP address"),  # octal
    ("https://127.1/hook", "not an IP address"),
    ("https://017700000001/hook", "not an IP address"),
    ("https://evil.example.org.169.254.169.254/", "not an IP address"),
    ("https://localhost/hook", "not reachable from the internet"),
    ("https://LOCALHOST:8080/hook", "not reachable from the internet"),
    ("https://hooks.localhost/hook", "not reachable from the internet"),
    ("https://metadata.google.internal/computeMetadata/v1/", "not reachable from the internet"),
    ("https://metadata/computeMetadata/v1/", "not reachable from the internet"),
    ("https://instance-data.ec2.internal/latest/", "not reachable from the internet"),
    ("https://db.internal/hook", "not reachable from the internet"),
    ("https://printer.local/hook", "not reachable from the internet"),
    ("https://router.home.arpa/hook", "not reachable from the internet"),
    ("https://1.0.0.127.in-addr.arpa/hook", "not reachable from the internet"),
    ("https://hookserver/hook", "full public DNS name"),
    ("https://intranet/hook", "not reachable from the internet"),
    ("https://partner.example.org./hook", "dot at the end"),
    ("https://ｌｏｃａｌｈｏｓｔ/hook", "plain letters"),
    ("https://127。0。0。1/hook", "plain letters"),
    ("https://user@partner.example.org/hook", "user name or password"),
    ("https://partner.example.org@127.0.0.1/hook", "user name or password"),
    ("https://partner.example.org\\@127.0.0.1/hook", "backslash"),
    ("https://%31%32%37.0.0.1/hook", "not an IP address"),
    ("https://%6c%6fcalhost/hook", "not valid"),
    ("https://under_score.example.org/hook", "not valid"),
    ("http://partner.example.org/hook", "must use https://"),
    ("http://127.0.0.1:9000/hook", "must use https://"),
    ("gopher://partner.example.org/", "must start with https://"),
]
FINE = [
    "https://partner.example.org/hooks/alerts",
    f"https://{PARTNER}:8443/in?source=dr-panel",
    "https://xn--bcher-kva.example.org/hook",
]


def _form(address: str) -> dict[str, Any]:
    return {"channel": "webhook", "name": "Partner system", "organisation": "NHS Trust",
            "address": address, "areas": ["E06000009"], "audiences": []}


@pytest.fixture
def strict(app: Flask, app_factory: Any) -> Iterator[Flask]:
    """The production rule: no loopback receivers. Made after ``app`` (which ``create_user``
    needs), so its context is the current one."""
    made = app_factory(WEBHOOK_ALLOW_LOOPBACK=False)
    with made.app_context():
        yield made


@pytest.fixture
def bearer(app: Flask) -> Any:
    from dr_panel.auth.tokens import create_token

    def make(user: Any) -> dict[str, str]:
        _, plaintext = create_token(user, "test", by=user)
        db.session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    return make


@pytest.mark.parametrize(("url", "words"), HOSTILE)
def test_hostile_urls_are_refused_with_a_clear_message(url: str, words: str) -> None:
    problem = webhooks.url_problem(url, allow_loopback=False)
    assert problem is not None and words in problem, (url, problem)


@pytest.mark.parametrize("url", FINE)
def test_public_https_names_are_accepted(url: str) -> None:
    assert webhooks.url_problem(url, allow_loopback=False) is None


def test_the_form_and_the_api_refuse_every_hostile_url(
    strict: Flask, create_user: Any, login: Any, bearer: Any
) -> None:
    user = create_user()
    client = strict.test_client()
    login(client, user)
    headers = bearer(user)
    api = strict.test_client()
    for url, words in HOSTILE:
        page = client.post("/ldis/subscribers/new", data=_form(url))
        assert page.status_code == 200, url
        assert words in page.get_data(as_text=True), url
        answer = api.post("/api/v1/subscriptions", json=_form(url), headers=headers)
        assert answer.status_code == 400, url
        assert answer.mimetype == "application/problem+json"
        assert words in answer.get_json()["errors"]["address"], (url, answer.get_json())
    assert db.session.scalars(select(Subscriber)).all() == []
    # Changing a good endpoint's address to a hostile one is refused too, and keeps the old one.
    made = api.post("/api/v1/subscriptions", json=_form(FINE[0]), headers=headers)
    assert made.status_code == 201
    url = f"/api/v1/subscriptions/{made.get_json()['uuid']}"
    patch = api.patch(url, json={"address": "https://169.254.169.254/"}, headers=headers)
    assert patch.status_code == 400
    assert api.get(url, headers=headers).get_json()["address"] == FINE[0]


def test_loopback_receivers_only_with_the_development_setting(app_factory: Any) -> None:
    assert webhooks.url_problem("http://127.0.0.1:9000/hook", allow_loopback=True) is None
    assert webhooks.url_problem("https://localhost:9000/hook", allow_loopback=True) is None
    assert webhooks.url_problem("http://[::1]:9000/hook", allow_loopback=True) is None
    # The setting admits this machine, nothing else inside the network.
    for url in ("https://169.254.169.254/", "https://10.0.0.5/", "http://2130706433/",
                "https://[::ffff:127.0.0.1]/", "https://db.internal/"):
        assert webhooks.url_problem(url, allow_loopback=True) is not None, url


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254",
     "100.64.0.1", "100.100.100.200", "168.63.129.16", "224.0.0.1", "224.0.1.1", "0.0.0.0",  # noqa: S104
     "255.255.255.255", "198.18.0.1", "192.0.0.192", "192.0.2.1", "240.0.0.1", "::1", "::",
     "fe80::1", "fe80::1%eth0", "fc00::1", "fd00:ec2::254", "ff02::1", "ff0e::1",
     "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:c0a8:101::1", "64:ff9b::a00:1",
     "64:ff9b:1::1", "2001:db8::1", "2001::1"],
)
def test_private_local_and_metadata_addresses_are_refused(address: str) -> None:
    assert webhooks.address_problem(address, allow_loopback=False) == webhooks.PRIVATE_ADDRESS


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "64:ff9b::5db8:d822",
                                     "2002:5db8:d822::1"])
def test_public_addresses_pass(address: str) -> None:
    assert webhooks.address_problem(address, allow_loopback=False) is None


def test_loopback_setting_admits_loopback_addresses_only() -> None:
    assert webhooks.address_problem("127.0.0.1", allow_loopback=True) is None
    assert webhooks.address_problem("::1", allow_loopback=True) is None
    assert webhooks.address_problem("10.0.0.1", allow_loopback=True) is not None
    assert webhooks.address_problem("169.254.169.254", allow_loopback=True) is not None


# -- at send time ---------------------------------------------------------------------------------


class Resolver:
    """Answers in turn, then repeats the last answer; counts the questions."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _queue_to(user: Any, url: str) -> Subscriber:
    sub, _secret = subs.create(
        subs.Details(channel=Channel.WEBHOOK, name="Partner system", organisation="NHS Trust",
                     address=url, area_codes=["E06000009"], audiences=[]),
        by=user,
    )
    assert broadcast.queue_deliveries(make_alert(user)) == 1
    db.session.commit()
    return sub


def _delivery() -> Delivery:
    db.session.expire_all()
    return db.session.scalars(select(Delivery)).one()


@pytest.mark.parametrize("answer", [["10.0.0.7"], ["169.254.169.254"], ["::1"],
                                    ["93.184.216.34", "127.0.0.1"]])
def test_a_name_resolving_inside_is_refused_at_send_time(
    strict: Flask, create_user: Any, login: Any, monkeypatch: pytest.MonkeyPatch,
    answer: list[str]
) -> None:
    user = create_user()
    sub = _queue_to(user, f"https://{PARTNER}/in")  # a public name: the form accepts it
    resolver = Resolver(answer)
    monkeypatch.setattr(webhooks, "resolve", resolver)
    connected: list[Any] = []
    monkeypatch.setattr(webhooks.socket, "create_connection",
                        lambda *a, **k: connected.append(a) or (_ for _ in ()).throw(OSError()))

    report = broadcast.deliver()
    assert report.failed == 1 and report.sent == 0
    assert resolver.asked == [PARTNER] and connected == []  # refused before any connection
    delivery = _delivery()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == webhooks.REFUSED + webhooks.PRIVATE_ADDRESS
    refused = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "alerts.webhook.refused")
    ).one()
    assert refused.outcome == "denied" and str(refused.object_uuid) == str(sub.uuid)
    assert PARTNER not in str(refused.details) + str(refused.reason)
    assert all(a not in str(refused.details) + str(refused.reason) for a in answer)
    # The coordinator sees the plain reason on the dashboard; nothing answers 500.
    client = strict.test_client()
    login(client, user)
    page = client.get(f"/ldis/alerts/{delivery.version.alert.uuid}/deliveries")
    assert page.status_code == 200 and "private, local or reserved address" in page.get_data(
        as_text=True)


def test_an_address_saved_before_the_rules_is_refused_at_send_time(
    strict: Flask, create_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row written before this check (or by hand) is checked again when sending."""
    user = create_user()
    sub = _queue_to(user, f"https://{PARTNER}/in")
    sub.url = "https://169.254.169.254/latest/meta-data/"
    db.session.commit()
    monkeypatch.setattr(webhooks, "resolve", Resolver(["93.184.216.34"]))
    assert broadcast.deliver().failed == 1
    assert _delivery().last_error.startswith("refused: Use the endpoint's public DNS name")


def test_an_unresolvable_name_is_a_plain_failure(strict: Flask, create_user: Any) -> None:
    _queue_to(create_user(), f"https://{PARTNER}/in")  # no DNS on this machine
    assert broadcast.deliver().failed == 1
    assert _delivery().last_error == "the endpoint's name did not resolve (DNS)"


# -- the connection goes to the checked address ---------------------------------------------------


class TLSReceiver:
    """An https server on 127.0.0.1 with a certificate for PARTNER only, recording Host."""

    def __init__(self, tmp: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PARTNER)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(PARTNER)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert = tmp / "cert.pem"
        keyfile = tmp / "key.pem"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        self.hosts: list[str] = []
        self.port = free_port()
        seen = self.hosts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                seen.append(self.headers.get("Host", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, keyfile)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def trusting(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cert))
        return context

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TLSReceiver]:
    server = TLSReceiver(tmp_path)
    monkeypatch.setattr(webhooks, "tls_context", server.trusting)
    yield server
    server.stop()


def test_the_request_goes_to_the_checked_address_and_tls_checks_the_name(
    tls_receiver: TLSReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers a loopback address (allowed here) when checked and an
    inside address after. One question is asked; the connection goes to the address checked,
    and TLS still proves the name (SNI and the certificate), as Host names it."""
    resolver = Resolver(["127.0.0.1"], ["10.0.0.7"])
    monkeypatch.setattr(webhooks, "resolve", resolver)
    url = f"https://{PARTNER}:{tls_receiver.port}/in"
    outcome = webhooks.post(url, "{}", {"content-type": "application/json"}, 5.0,
                            allow_loopback=True)
    assert outcome.ok, outcome
    assert resolver.asked == [PARTNER]
    assert tls_receiver.hosts == [f"{PARTNER}:{tls_receiver.port}"]

    # Without the setting the same answer is refused, and nothing arrives.
    refused = webhooks.post(url, "{}", {}, 5.0, allow_loopback=False)
    assert refused.status is None and refused.error == webhooks.REFUSED + webhooks.PRIVATE_ADDRESS
    assert len(tls_receiver.hosts) == 1


def test_a_certificate_for_another_name_fails(
    tls_receiver: TLSReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting to the checked address does not skip the certificate check."""
    monkeypatch.setattr(webhooks, "resolve", Resolver(["127.0.0.1"]))
    outcome = webhooks.post(f"https://other.partner.example.org:{tls_receiver.port}/in", "{}",
                            {}, 5.0, allow_loopback=True)
    assert not outcome.ok and outcome.error == "SSLCertVerificationError"
    assert tls_receiver.hosts == []


# -- redirects ------------------------------------------------------------------------------------


@pytest.fixture
def redirecting() -> Iterator[dict[str, Any]]:
    """A local receiver answering 302 to /inside on itself; records every path asked."""
    state: dict[str, Any] = {"paths": [], "port": free_port()}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state["paths"].append((self.command, self.path))
            if self.path == "/hook":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{state['port']}/inside")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state["port"]), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_no_redirect_is_followed(app: Flask, create_user: Any,
                                 redirecting: dict[str, Any]) -> None:
    _queue_to(create_user(), f"http://127.0.0.1:{redirecting['port']}/hook")
    report = broadcast.deliver()
    assert report.failed == 1 and report.sent == 0
    assert redirecting["paths"] == [("POST", "/hook")]  # /inside was never asked
    delivery = _delivery()
    assert delivery.status == DeliveryStatus.FAILED and delivery.response_status == 302
    assert delivery.last_error == "HTTP 302 (redirects are not followed)"


# -- the setting ----------------------------------------------------------------------------------


def test_production_refuses_to_start_with_loopback_webhooks(tmp_path: Path) -> None:
    from config import load_config
    from dr_panel import StartupError, create_app
    from dr_panel.crypto import KeyRing

    keys = tmp_path / "keys.json"
    KeyRing.load(keys, generate=True, strict_permissions=False)
    keys.chmod(0o600)
    common = {"INSTANCE_PATH": str(tmp_path), "KEYS_FILE": str(keys),
              "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.sqlite3'}"}
    with pytest.raises(StartupError, match="WEBHOOK_ALLOW_LOOPBACK must be off in production"):
        create_app(load_config("production", WEBHOOK_ALLOW_LOOPBACK=True, **common))
    assert create_app(load_config("production", **common)).config[
        "WEBHOOK_ALLOW_LOOPBACK"] is False


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from config import load_config

    assert load_config("development").WEBHOOK_ALLOW_LOOPBACK is True
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "0")
    assert load_config("development").WEBHOOK_ALLOW_LOOPBACK is False
    monkeypatch.setenv("WEBHOOK_ALLOW_LOOPBACK", "1")
    assert load_config("production").WEBHOOK_ALLOW_LOOPBACK is True  # and so it will not start


def test_the_demo_endpoint_passes_the_rules_under_any_setting() -> None:
    """The demo loads with loopback webhooks off too; its endpoint never resolves."""
    from dr_panel.demo.alerts import DEMO_WEBHOOK

    assert webhooks.url_problem(DEMO_WEBHOOK, allow_loopback=False) is None
