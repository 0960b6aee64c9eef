"""The production shape on this machine (issue 12, "Done when"): two ``dr-panel serve``
instances (gunicorn, 4 workers each, the production profile) and two ``dr-panel worker``
processes on one fresh PostgreSQL database and Redis, driven over real HTTP as browsers and API
clients behind a TLS proxy would drive them.

What a user, an operator or an attacker would notice is checked: a session that does not follow
the user to the other node, guesses that each node counts apart, a scheduled job run twice, an
alert e-mail lost or sent twice to a receiver that honours its Message-ID when a worker is
killed, a submission answered 500 or given another's reference, an audit chain that no longer
verifies.

Choices: the app sends ``Secure`` cookies in production, so the test plays the proxy
(``PROXY_TRUSTED_HOPS=1``, ``X-Forwarded-Proto: https`` and one ``X-Forwarded-For`` address per
client) and keeps its own cookie jar. Production refuses loopback webhooks
(``WEBHOOK_ALLOW_LOOPBACK``), so the killed broadcast goes to e-mail subscribers on a local
aiosmtpd server (the webhook case is ``tests/alerts/test_crash_resume.py``). The public form's
per-client limit is raised through ``DRUG_REPORT_LIMIT`` for the load, as a site would for a
known partner; sign-in limits keep their production values.

Runs only on PostgreSQL (``TEST_DATABASE_URL``) with Redis on 127.0.0.1:6379; it makes its own
database and uses Redis database 11, and removes both, and every process, even on failure."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pyotp
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

import config
from config import normalise_database_url
from tests.alerts.test_crash_resume import SlowInbox
from tests.api.conftest import notification as api_notification

PG_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_DB = 11
REDIS_URI = f"redis://127.0.0.1:6379/{REDIS_DB}"
DR_PANEL = str(Path(sys.executable).with_name("dr-panel"))
PASSWORD = "plum orchard lantern 47 drift"
CLIENTS = 6
EACH = 50
EMAILS = 60
JOBS = ("spike-scan", "requests-chase", "actions-remind", "alert-expiry", "retention",
        "audit-anchor")


def _redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URI, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001  no server, no client: skip
        return False


pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="the production shape needs PostgreSQL"),
    pytest.mark.skipif(not _redis_answers(), reason="the production shape needs Redis"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a browser behind the proxy ----------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def location(self) -> str:
        return urlsplit(self.headers.get("location", "")).path


@dataclass
class Browser:
    """One client as the proxy forwards it: its own address, its own cookie jar (the app's
    cookies are ``Secure``; the proxy speaks https to the browser), any node."""

    address: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, port: int, method: str, path: str, *, form: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        host = f"127.0.0.1:{port}"
        sent = {"Host": host, "X-Forwarded-For": self.address, "X-Forwarded-Proto": "https",
                "Referer": f"https://{host}{path}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        payload: bytes | None = None
        if form is not None:
            payload = urlencode({k: v for k, v in form.items() if v is not None}).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                            response.read().decode("utf-8", "replace"))
            for raw in response.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(raw)
                for name, morsel in jar.items():
                    gone = morsel["expires"] and "1970" in morsel["expires"] or (
                        morsel["max-age"] == "0")
                    if gone or not morsel.value:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return answer
        finally:
            connection.close()

    def get(self, port: int, path: str) -> Answer:
        return self.request(port, "GET", path)

    def post_form(self, port: int, path: str, data: dict[str, Any],
                  token_from: str | None = None) -> Answer:
        """GET the page (for its CSRF token), then POST the form, as a browser would."""
        page = self.get(port, token_from or path)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.body) or (
            re.search(r'name="csrf_token" value="([^"]+)"', page.body))
        assert match, f"no CSRF token on {token_from or path} ({page.status})"
        return self.request(port, "POST", path, form={**data, "csrf_token": match.group(1)})

    def sign_in(self, port: int, email: str, secret: str, *, code_port: int | None = None) -> None:
        first = self.post_form(port, "/login", {"email": email, "password": PASSWORD})
        assert first.status == 302 and first.location == "/login/code", (first.status,
                                                                           first.location)
        done = self.post_form(code_port or port, "/login/code",
                              {"code": pyotp.TOTP(secret).now()})
        assert done.status == 302 and not done.location.startswith("/login"), (
            done.status, done.location)


class PeerInbox(SlowInbox):
    """The slow inbox, also noting the client port of each sender (to find which worker), and
    able to hold one message, taken but not yet answered, while the test kills its sender."""

    def __init__(self) -> None:
        super().__init__()
        self.peer_ports: set[int] = set()
        self.hold_after = 0  # hold the message after this many (0: never)
        self.holding = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.peer_ports.add(int(session.peer[1]))
        answer = await super().handle_DATA(server, session, envelope)
        with self.lock:
            hold = 0 < self.hold_after <= sum(self.raw_ids.values()) and not self.holding.is_set()
            if hold:
                self.holding.set()
        if hold:
            await asyncio.sleep(3)  # the sender waits for its 250 and is killed meanwhile
        return answer


def holds_connection_from(pid: int, ports: set[int]) -> bool:
    """Whether process ``pid`` owns a TCP socket whose local port is one of ``ports`` (Linux
    /proc): the worker that is talking to the SMTP server now."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) in ports:
                    inodes.add(cols[9])
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
    return False


# -- the shape ---------------------------------------------------------------------------------


@dataclass
class Shape:
    url: str
    env: dict[str, str]
    ports: list[int]
    servers: list[subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]]
    logs: Path
    smtp: Any
    app: Any
    people: dict[str, Any]

    def log_text(self, name: str) -> str:
        return (self.logs / name).read_text(errors="replace")


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(  # noqa: S603  our own console script
            [DR_PANEL, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _end(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """End the process group we started (gunicorn's master and its workers)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _ready(port: int, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "dr-panel serve exited"
    try:
        return Browser("192.0.2.1").get(port, "/readyz").status == 200
    except OSError:
        return False


def _seed(app: Any) -> dict[str, Any]:
    """Reference data and the people the test acts as, made through the services (each with a
    second factor, as production requires), plus API tokens."""
    from dr_panel.auth import services as accounts
    from dr_panel.auth.models import Role
    from dr_panel.auth.tokens import create_token
    from dr_panel.dbtypes import utcnow
    from dr_panel.extensions import db
    from tests.conftest import _seed_reference

    _seed_reference()
    keys = app.extensions["dr_panel.keys"]

    def person(label: str) -> dict[str, str]:
        user, _ = accounts.create_user(
            accounts.AccountDetails(email=f"{label}@example.org", display_name=f"Test {label}",
                                    role=Role.COORDINATOR, area_codes=("E06000009",),
                                    agency_code=None),
            password=PASSWORD, by=None, must_change=False,
        )
        secret = pyotp.random_base32()
        user.totp_secret_enc = keys.encrypt(secret, table="users", column="totp_secret",
                                            record=str(user.uuid))
        user.totp_enabled_at = utcnow()
        db.session.flush()
        return {"email": user.email, "secret": secret, "id": user.id,
                "name": user.display_name, "user": user}

    people = {label: person(label) for label in ("roaming", "guessed", "form0", "form1",
                                                 "api0", "api1")}
    for label in ("api0", "api1"):
        _, plaintext = create_token(people[label]["user"], "load", by=people[label]["user"])
        people[label]["token"] = plaintext
    db.session.commit()
    for details in people.values():
        del details["user"]  # plain values only: the test's session ends here
    return people


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    import redis

    from dr_panel import create_app
    from dr_panel.crypto import KeyRing
    from dr_panel.extensions import db
    from tests.alerts.support import SmtpServer

    base = tmp_path_factory.mktemp("shape")
    admin_url = normalise_database_url(str(PG_URL))
    name = f"drp_shape_{uuid.uuid4().hex[:8]}"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    store = redis.Redis.from_url(REDIS_URI)
    processes: list[subprocess.Popen[bytes]] = []
    smtp = SmtpServer()
    smtp.inbox = PeerInbox()
    app = None
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        store.flushdb()
        smtp.start()
        keys = base / "keys.json"
        KeyRing.load(keys, generate=True, strict_permissions=False)
        keys.chmod(0o600)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DR_PANEL_", "DATABASE_URL", "WEB_CONCURRENCY", "RATELIMIT",
                                    "MAIL_", "WEBHOOK_", "REQUIRE_2FA"))}
        env.update(
            DR_PANEL_ENV="production", DR_PANEL_INSTANCE=str(base / "instance"),
            DR_PANEL_KEYS_FILE=str(keys), DATABASE_URL=url, RATELIMIT_STORAGE_URI=REDIS_URI,
            WEB_CONCURRENCY="4", PROXY_TRUSTED_HOPS="1", DR_PANEL_LOG_FORMAT="json",
            MAIL_SERVER="127.0.0.1", MAIL_PORT=str(smtp.port), MAIL_USE_STARTTLS="0",
            BASE_URL="https://panel.example.org", DRUG_REPORT_LIMIT="1000 per minute",
            BROADCAST_CLAIM_SECONDS="3", WORKER_INTERVAL="1",
        )
        migrated = subprocess.run([DR_PANEL, "db", "upgrade"], env=env, capture_output=True,
                                  text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr[-2000:]

        app = create_app(config.TestingConfig(
            INSTANCE_PATH=str(base / "instance"), SQLALCHEMY_DATABASE_URI=url,
            KEYS_FILE=str(keys), GENERATE_KEYS=False,
        ))
        with app.app_context():
            people = _seed(app)
        logs = base / "logs"
        logs.mkdir()
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            processes.append(_start(["serve", "--bind", f"127.0.0.1:{port}", "--workers", "4"],
                                    env, logs / f"serve{n}.log"))
        servers = list(processes)
        for port, server in zip(ports, servers, strict=True):
            wait_for(lambda port=port, server=server: _ready(port, server), 90, "serve /readyz")
        workers = [_start(["worker"], env, logs / f"worker{n}.log") for n in range(2)]
        processes.extend(workers)
        yield Shape(url=url, env=env, ports=ports, servers=servers, workers=workers, logs=logs,
                    smtp=smtp, app=app, people=people)
    finally:
        for process in processes:
            _end(process)
        smtp.stop()
        if app is not None:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        store.flushdb()
        store.close()


# -- what the "Done when" lists ----------------------------------------------------------


def test_a_session_started_on_one_node_continues_on_the_other(shape: Shape) -> None:
    a, b = shape.ports
    roaming = shape.people["roaming"]
    stranger = Browser("203.0.113.90")
    assert stranger.get(b, "/account").status == 302  # signed out: no page without a session

    browser = Browser("203.0.113.91")
    # Password on A, second factor on B: the half-finished sign-in follows too.
    browser.sign_in(a, roaming["email"], roaming["secret"], code_port=b)
    for port in (b, a, b):
        page = browser.get(port, "/account")
        assert page.status == 200 and roaming["name"] in page.body
    kept = dict(browser.cookies)
    assert browser.post_form(b, "/logout", {}, token_from="/account").status == 302
    replayed = Browser("203.0.113.91", cookies=kept)  # the old cookie, after signing out on B
    assert replayed.get(a, "/account").status == 302


def test_sign_in_guesses_count_across_both_nodes(shape: Shape) -> None:
    """Five wrong passwords, alternating between A and B, use up the pair's free failures and
    make it wait on either node: counted per process, no process would have seen five."""
    a, b = shape.ports
    guessed = shape.people["guessed"]
    attacker = Browser("198.51.100.7")
    for port in (a, b, a, b, a):
        answer = attacker.post_form(port, "/login", {"email": guessed["email"],
                                                     "password": "wrong guess"})
        assert answer.status == 200 and "not right" in answer.body
    for port in (b, a):  # even the right password waits: the pair is slowed on both nodes
        answer = attacker.post_form(port, "/login", {"email": guessed["email"],
                                                     "password": PASSWORD})
        assert answer.status == 429 and "Too many attempts" in answer.body, port
    # The owner, from their own client, is not locked out.
    owner = Browser("198.51.100.8")
    owner.sign_in(b, guessed["email"], guessed["secret"])
    assert owner.get(a, "/account").status == 200


def test_6_clients_x_50_submissions_over_both_nodes_are_all_stored(shape: Shape) -> None:
    from dr_panel.alerts.models import DrugReport
    from dr_panel.audit import services as audit
    from dr_panel.cases.models import Case
    from dr_panel.dbtypes import utcnow
    from dr_panel.extensions import db

    year = utcnow().year
    browsers = [Browser(f"203.0.113.{10 + i}") for i in range(CLIENTS)]
    for i, label in ((2, "form0"), (3, "form1")):
        browsers[i].sign_in(shape.ports[i % 2], shape.people[label]["email"],
                            shape.people[label]["secret"])
    tokens = {4: shape.people["api0"]["token"], 5: shape.people["api1"]["token"]}
    statuses: list[tuple[str, int]] = []
    lock = threading.Lock()
    failures: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def report(i: int, j: int, port: int) -> tuple[str, int]:
        data = {"area": "E06000009", "place": "town centre",
                "seen_on": (utcnow().date() - timedelta(days=1)).isoformat(),
                "substance": "Brown powder, suspected heroin", "form": "powder",
                "sold_as": "heroin", "appearance": f"Darker than usual, batch {i}-{j}",
                "effects": "Two people collapsed within minutes; needed naloxone."}
        return "report", browsers[i].post_form(port, "/report-a-drug-concern", data).status

    def by_form(i: int, j: int, port: int) -> tuple[str, int]:
        data = api_notification(full_name=f"Person F{i}-{j}", nhs_number=None,
                                date_of_birth="1980-01-01", notified_on=f"{year}-01-02",
                                event_date=f"{year}-01-01", substances="heroin",
                                date_is_found=None)
        form = {k: str(v) for k, v in data.items() if v is not None}
        return "form", browsers[i].post_form(port, "/cases/new", form).status

    def by_api(i: int, j: int, port: int) -> tuple[str, int]:
        body = api_notification(full_name=f"Person A{i}-{j}", nhs_number=None)
        answer = browsers[i].request(port, "POST", "/api/v1/cases", body=body,
                                     headers={"Authorization": f"Bearer {tokens[i]}"})
        return "api", answer.status

    kinds = [report, report, by_form, by_form, by_api, by_api]

    def client(i: int) -> None:
        try:
            start.wait(timeout=30)
            for j in range(EACH):
                got = kinds[i](i, j, shape.ports[(i + j) % 2])  # every client on both nodes
                with lock:
                    statuses.append(got)
        except BaseException as err:  # noqa: BLE001  reported below
            failures.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=170)
    assert failures == []
    expected = {"report": 200, "form": 302, "api": 201}
    wrong = Counter(s for s in statuses if s[1] != expected[s[0]])
    assert not wrong, wrong  # no 500, no "send it again", nothing throttled
    assert len(statuses) == CLIENTS * EACH

    with shape.app.app_context():
        reports = list(db.session.scalars(select(DrugReport.reference)))
        cases = list(db.session.scalars(select(Case.reference)))
        assert len(reports) == 2 * EACH and len(set(reports)) == len(reports)
        assert len(cases) == 4 * EACH and len(set(cases)) == len(cases)
        assert audit.verify().ok
    for n in range(2):
        assert "Traceback" not in shape.log_text(f"serve{n}.log")


def _job_runs(shape: Shape) -> Counter[tuple[str, str]]:
    runs: Counter[tuple[str, str]] = Counter()
    for n in range(2):
        for line in shape.log_text(f"worker{n}.log").splitlines():
            if not line.startswith("{"):
                continue
            found = re.match(r"job (\S+) \((.+)\) done", json.loads(line).get("message", ""))
            if found:
                runs[(found.group(1), found.group(2))] += 1
    return runs


def test_killing_a_worker_mid_broadcast_loses_and_duplicates_nothing(shape: Shape) -> None:
    from dr_panel.alerts import broadcast
    from dr_panel.alerts.models import Delivery, DeliveryStatus
    from dr_panel.auth.models import User
    from dr_panel.extensions import db
    from tests.alerts.support import make_alert, make_subscriber

    inbox = shape.smtp.inbox
    with shape.app.app_context():
        user = db.session.get(User, shape.people["roaming"]["id"])
        for n in range(EMAILS):
            make_subscriber(email=f"team{n}@example.org", name=f"Team {n}")
        assert broadcast.queue_deliveries(make_alert(user)) == EMAILS
        db.session.commit()
        ids = {str(d.uuid) for d in db.session.scalars(select(Delivery))}

    def alert_ids() -> Counter[str]:
        with inbox.lock:
            return Counter({k: v for k, v in inbox.raw_ids.items()
                            if any(i in k for i in ids)})

    inbox.hold_after = sum(inbox.raw_ids.values()) + EMAILS // 4
    wait_for(inbox.holding.is_set, 60, "a quarter of the alert e-mail")
    # One worker claims the whole batch: kill the one talking to the SMTP server now, with no
    # chance to record what it sent (a claim lapses after BROADCAST_CLAIM_SECONDS, 3 here).
    sender = next(w for w in shape.workers if holds_connection_from(w.pid, inbox.peer_ports))
    survivor = next(w for w in shape.workers if w is not sender)
    _end(sender, signal.SIGKILL)
    assert len(alert_ids()) < EMAILS, "the broadcast finished before the kill"
    assert survivor.poll() is None

    def all_sent() -> bool:
        with shape.app.app_context():
            rows = db.session.scalars(select(Delivery)).all()
            return len(alert_ids()) == EMAILS and all(
                d.status == DeliveryStatus.SENT for d in rows)

    wait_for(all_sent, 90, "the other worker to finish the broadcast")
    received = alert_ids()
    assert sum(received.values()) > EMAILS, "the kill did not land between sending and recording"
    # Every subscriber got its message, under the delivery's own Message-ID; a receiver that
    # honours the id processes each once, whatever the kill made the survivor send again.
    assert {next(i for i in ids if i in k) for k in received} == ids
    recipients = Counter(
        rcpt for e in inbox.envelopes for rcpt in e.rcpt_tos if rcpt.startswith("team"))
    assert set(recipients) == {f"team{n}@example.org" for n in range(EMAILS)}


def test_each_scheduled_job_runs_once_across_both_workers(shape: Shape) -> None:
    from dr_panel.extensions import db
    from dr_panel.runtime.models import JobLease

    def all_ran() -> bool:
        with shape.app.app_context():
            done = {lease.name for lease in db.session.scalars(select(JobLease))
                    if lease.last_finished_at is not None}
            db.session.rollback()
        return set(JOBS) <= done

    wait_for(all_ran, 60, "every job to have run")
    runs = _job_runs(shape)
    assert {name for name, _ in runs} == set(JOBS)
    assert [key for key, n in runs.items() if n > 1] == []  # no job ran twice in one period
    status = subprocess.run([DR_PANEL, "worker", "--status"], env=shape.env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr[-2000:]
    for job in JOBS:
        line = next(x for x in status.stdout.splitlines() if x.startswith(job))
        assert "last finished never" not in line and "failed" not in line, line


def test_the_audit_chain_verifies_afterwards(shape: Shape) -> None:
    result = subprocess.run([DR_PANEL, "audit", "verify"], env=shape.env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
