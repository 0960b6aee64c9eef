"""Typed, frozen configuration for dr-panel.

Three profiles: ``development`` (the embedded default: SQLite, keys generated into
``instance/``), ``testing`` and ``production``. Secrets never live here: keys come from the
environment or a key file (see ``dr_panel.crypto``). ``DATABASE_URL`` selects PostgreSQL in any
profile.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _env_json(name: str, default: dict[str, Any]) -> dict[str, Any]:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a JSON object, like {{\"min_sigma\": 1.0}}.") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{name} must be a JSON object, like {{\"min_sigma\": 1.0}}.")
    return value


def _merged(
    defaults: dict[str, dict[str, Any]], changes: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``defaults`` with each channel's entry updated by ``changes`` (checked by the app)."""
    out = {name: dict(entry) for name, entry in defaults.items()}
    for name, entry in changes.items():
        out[name] = {**out.get(name, {}), **entry} if isinstance(entry, dict) else entry
    return out


def _env_whole(name: str, default: int, low: int, high: int, unit: str) -> int:
    """A whole number from the environment within [low, high], or start-up stops saying why."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SystemExit(
            f"{name} must be a whole number of {unit} from {low} to {high}; got {raw!r}."
        ) from None
    if not low <= value <= high:
        raise SystemExit(f"{name} must be from {low} to {high} {unit}; got {value}.")
    return value


# Retention (dr_panel.retention.schedule): (setting and env name, low, high, unit). The bounds
# refuse what cannot be meant: under a year would erase a person before their review could
# finish; the NHS Records Management Code of Practice does not ordinarily keep records past 30
# years.
RETENTION_SETTINGS: tuple[tuple[str, int, int, str], ...] = (
    ("RETENTION_LIVING_YEARS", 1, 30, "years"),
    ("RETENTION_DEATH_YEARS", 1, 30, "years"),
    ("RETENTION_REPORT_TEXT_DAYS", 30, 3650, "days"),
    ("RETENTION_REPORT_CONTACT_DAYS", 1, 365, "days"),
    ("RETENTION_BATCH_SIZE", 1, 10000, "records"),
    ("RETENTION_RUN_HOURS", 1, 168, "hours"),
)


def retention_problem(config: Config) -> str | None:
    """What is wrong with the retention settings however they were given (environment or
    overrides), or None: the app factory refuses to start on it."""
    for key, low, high, unit in RETENTION_SETTINGS:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{key} must be a whole number of {unit} from {low} to {high}; got {value!r}."
    return None


LOG_FORMATS = ("text", "json")


def serving_problem(config: Config) -> str | None:
    """What makes these settings unsafe to serve in production with, or None (the app factory
    refuses to start on it). Missing keys, DEBUG, loopback webhooks and in-memory rate limits
    with several workers (``dr_panel.throttling``) are refused beside it.

    SQLite serves one machine with one web process: several gunicorn processes on one file
    would queue behind its single writer lock and each deliver mail without ``SKIP LOCKED``."""
    if config.LOG_FORMAT not in LOG_FORMATS:
        return (
            f"DR_PANEL_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}; "
            f"got {config.LOG_FORMAT!r}."
        )
    for key in ("SPIKE_SCAN_AT", "REMINDERS_AT"):
        value = getattr(config, key)
        if not re.fullmatch(r"([01]?[0-9]|2[0-3]):[0-5][0-9]", value.strip()):
            return f"{key} must be a time of day on the 24-hour clock, like 06:00; got {value!r}."
    if config.ENV_NAME != "production" or config.WEB_WORKERS <= 1:
        return None
    if config.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
        return (
            f"WEB_CONCURRENCY is {config.WEB_WORKERS} on SQLite. SQLite serves one machine with "
            "one web process (it uses threads); set WEB_CONCURRENCY=1, or DATABASE_URL to "
            "PostgreSQL for more."
        )
    return None


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out and pick psycopg 3 as the driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@dataclass(frozen=True)
class Config:
    """Settings shared by every profile. Field names are the Flask config keys."""

    ENV_NAME: str = "base"
    INSTANCE_PATH: str = str(DEFAULT_INSTANCE)
    SQLALCHEMY_DATABASE_URI: str = ""
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = field(default_factory=dict)
    # Keys: a JSON key file, or DR_PANEL_* environment variables (dr_panel.crypto.KeyRing).
    KEYS_FILE: str = ""
    GENERATE_KEYS: bool = False
    TESTING: bool = False
    DEBUG: bool = False

    # Sessions (OWASP ASVS V3): idle timeout and absolute lifetime, enforced server-side.
    SESSION_IDLE_TIMEOUT: timedelta = timedelta(minutes=30)
    SESSION_ABSOLUTE_LIFETIME: timedelta = timedelta(hours=12)
    PERMANENT_SESSION_LIFETIME: timedelta = timedelta(hours=12)
    SESSION_COOKIE_NAME: str = "drpanel_session"
    SESSION_COOKIE_HTTPONLY: bool = True
    SESSION_COOKIE_SAMESITE: str = "Strict"
    SESSION_COOKIE_SECURE: bool = False

    # Second factor: required, for the roles that can reach identifiers (and admins), when on.
    REQUIRE_2FA: bool = False
    TOTP_ISSUER: str = "dr-panel"
    # API tokens expire this many days after creation or their last renewal (1 to 366).
    API_TOKEN_DAYS: int = 90

    # Passwords: NIST SP 800-63B lengths; argon2id at RFC 9106 / OWASP strength.
    PASSWORD_MIN_LENGTH: int = 12
    PASSWORD_MAX_LENGTH: int = 128
    ARGON2_TIME_COST: int = 3
    ARGON2_MEMORY_COST: int = 65536  # KiB
    ARGON2_PARALLELISM: int = 4

    # Throttling (Flask-Limiter). Redis in production: RATELIMIT_STORAGE_URI=redis://...
    RATELIMIT_ENABLED: bool = True
    RATELIMIT_STORAGE_URI: str = "memory://"
    RATELIMIT_HEADERS_ENABLED: bool = False
    LOGIN_LIMIT_PER_CLIENT: str = "20 per 15 minutes"
    LOGIN_LIMIT_PER_ACCOUNT: str = "5 per 15 minutes"  # "forgot my password" per address
    # Sign-in back-off (dr_panel.auth.throttle, NIST SP 800-63B 5.2.2): per account and client,
    # LOGIN_BACKOFF_FREE failures, then a wait doubling from LOGIN_BACKOFF_BASE_SECONDS up to
    # LOGIN_BACKOFF_CAP_SECONDS; a pair's count is forgotten LOGIN_BACKOFF_RESET_HOURS after its
    # first failure, or at a sign-in. LOGIN_ACCOUNT_CEILING failures on one account from all
    # clients within LOGIN_ACCOUNT_CEILING_DAYS e-mail the owner and end the free failures.
    LOGIN_BACKOFF_FREE: int = 5
    LOGIN_BACKOFF_BASE_SECONDS: int = 2
    LOGIN_BACKOFF_CAP_SECONDS: int = 900
    LOGIN_BACKOFF_RESET_HOURS: int = 24
    LOGIN_ACCOUNT_CEILING: int = 100
    LOGIN_ACCOUNT_CEILING_DAYS: int = 30

    WTF_CSRF_ENABLED: bool = True
    WTF_CSRF_TIME_LIMIT: int | None = None  # the token lives as long as the session
    PREFERRED_URL_SCHEME: str = "http"
    PAGE_SIZE: int = 50
    # No request body larger than this is read at all (the import page has its own, lower limit).
    MAX_CONTENT_LENGTH: int = 25 * 1024 * 1024
    # Demo logins are printed by `dr-panel start` only where demo data is allowed.
    ALLOW_DEMO_DATA: bool = False

    # E-mail (dr_panel.mail): queued in the outbox with the change that causes it, sent after
    # commit. "folder" writes .eml files to MAIL_OUTBOX_DIR (empty: <instance>/outbox); "smtp"
    # relays through MAIL_SERVER. MAIL_PASSWORD comes from the environment only, never repr'd.
    MAIL_TRANSPORT: str = "folder"
    MAIL_OUTBOX_DIR: str = ""
    MAIL_SERVER: str = ""
    MAIL_PORT: int = 587
    MAIL_USE_STARTTLS: bool = True
    MAIL_USERNAME: str = ""
    MAIL_PASSWORD: str = field(default="", repr=False)
    MAIL_FROM: str = "dr-panel <no-reply@localhost>"
    MAIL_TIMEOUT: float = 10.0
    # Deliver right after a request that queued mail, once its transaction has committed.
    MAIL_SEND_AFTER_REQUEST: bool = True
    # Absolute links in e-mails: BASE_URL + the route's path (URLs carry UUIDs only).
    BASE_URL: str = "http://127.0.0.1:5000"

    # Alert broadcast (dr_panel.alerts.broadcast): webhooks go to https:// and a public DNS
    # name whose every address is checked at send time (dr_panel.alerts.webhooks). This admits
    # receivers on this machine too (http or https to 127.0.0.1, [::1] or localhost): on in
    # development and testing, off by default, and production refuses to start with it.
    WEBHOOK_ALLOW_LOOPBACK: bool = False
    WEBHOOK_TIMEOUT: float = 10.0
    WEBHOOK_MAX_FAILURES: int = 8  # consecutive failures before an endpoint is disabled
    WEBHOOK_THREADS: int = 32
    WEBHOOK_SECRET_OVERLAP: timedelta = timedelta(hours=24)  # the old secret signs this long
    BROADCAST_CLAIM: timedelta = timedelta(minutes=5)  # a worker's claim on a batch
    BROADCAST_BATCH: int = 500

    # Trends: statistical disclosure control (dr_panel.privacy.disclosure), NHS Digital's rule.
    DISCLOSURE_SUPPRESS_BELOW: int = 8  # counts 1..7 are shown as "*"
    DISCLOSURE_ROUND_TO: int = 5  # other counts rounded to the nearest 5
    DISCLOSURE_MIN_EVENTS_FOR_RATE: int = 10  # no rate on fewer events
    EXTRACT_K: int = 5  # record-level extracts are k-anonymous with this k

    # LDIS signals (dr_panel.alerts.signals). SIGNAL_SETTINGS overrides the defaults of
    # dr_panel.alerts.ears.Settings for every area; SIGNAL_AREA_SETTINGS per area by ONS code,
    # e.g. {"E06000009": {"min_sigma": 1.0, "poisson": false}} (env: JSON in the same names).
    SIGNAL_SETTINGS: dict[str, Any] = field(default_factory=dict)
    SIGNAL_AREA_SETTINGS: dict[str, dict[str, Any]] = field(default_factory=dict)
    CLUSTER_MIN_CASES: int = 3  # reviewed cases sharing a theme or substance in one area...
    CLUSTER_WINDOW_DAYS: int = 90  # ...within this many days
    # The LDIS queue's 48 working hours skip weekends and the bank holidays of this UK nation
    # (python-holidays subdivision of GB: ENG, WLS, SCT or NIR), in Europe/London days.
    BANK_HOLIDAY_REGION: str = "ENG"
    # Services' published phone numbers and e-mail addresses that alerts may carry past the
    # identifier-leak gate (03 and 08 numbers always pass). Env: comma-separated.
    LEAK_GATE_ALLOWED_CONTACTS: tuple[str, ...] = ()
    # The public "report a drug concern" form, per client (Flask-Limiter syntax).
    DRUG_REPORT_LIMIT: str = "5 per hour;20 per day"

    # Retention schedule (dr_panel.retention.schedule explains each default and its source).
    # A living person's identifiers and case free text: years after their last event (the NHS
    # Records Management Code of Practice keeps most adult care records 8 years after the last
    # episode of care).
    RETENTION_LIVING_YEARS: int = 8
    # A death's identifiers and case free text: years after its review closed or it was closed
    # without review (the Code: adult records 8 years after death; a panel's review is the
    # later event, so the clock starts there).
    RETENTION_DEATH_YEARS: int = 8
    # A drug-concern report's free text: days after it was received, once decided.
    RETENTION_REPORT_TEXT_DAYS: int = 730
    # A public reporter's contact address: erased once the confirmation has gone, and at the
    # latest this many days after the report (a confirmation that never went is given up).
    RETENTION_REPORT_CONTACT_DAYS: int = 30
    RETENTION_BATCH_SIZE: int = 200  # records per transaction
    RETENTION_RUN_HOURS: int = 24  # how often the background worker runs the schedule

    # Audit anchors (dr_panel.audit.anchors): signed lines naming the chain's head, appended to
    # a file outside the database (empty: <instance>/audit-anchors.log) and, when set, e-mailed
    # to an address the admin chose, so deleting the log's newest entries is detected.
    AUDIT_ANCHOR_FILE: str = ""
    AUDIT_ANCHOR_EMAIL: str = ""

    # Running for real (dr_panel.runtime). Behind a TLS-terminating proxy, how many proxies'
    # X-Forwarded-* headers to trust (0: none, the development server faces the browser).
    PROXY_TRUSTED_HOPS: int = 0
    # gunicorn worker processes per `dr-panel serve` (env WEB_CONCURRENCY, gunicorn's own name,
    # also read by dr_panel.throttling); production refuses more than one on SQLite.
    WEB_WORKERS: int = 1
    # One log line per request and per event: "text" for a terminal, "json" for a collector.
    LOG_FORMAT: str = "text"
    # The worker's schedule, Europe/London wall-clock times (dr_panel.runtime.worker).
    SPIKE_SCAN_AT: str = "06:00"
    REMINDERS_AT: str = "07:00"
    AUDIT_ANCHOR_MINUTES: int = 60
    WORKER_INTERVAL: int = 15  # seconds between the worker's rounds over the outboxes

    # Trying again after a failure (dr_panel.retry, which says why the channels differ): per
    # channel, the wait after the first failure ("first", seconds), multiplied by "factor"
    # after each further one, at most "cap"; "jitter": "full" (a random wait up to that),
    # "tenth" (up to a tenth more) or "none"; "give_up_after" failed tries (null: never).
    # Env RETRY: JSON, merged per channel, e.g. {"webhook": {"cap": 3600}}.
    RETRY: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "mail": {"first": 60, "factor": 5, "cap": 2 * 3600, "jitter": "tenth"},
        "alert_email": {"first": 30, "factor": 2, "cap": 6 * 3600, "jitter": "full",
                        "give_up_after": 8},
        "webhook": {"first": 30, "factor": 2, "cap": 6 * 3600, "jitter": "full"},
        "job": {"first": 5 * 60},
    })

    def as_flask_mapping(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DevelopmentConfig(Config):
    ENV_NAME: str = "development"
    GENERATE_KEYS: bool = True
    ALLOW_DEMO_DATA: bool = True
    WEBHOOK_ALLOW_LOOPBACK: bool = True  # the demo's partner endpoint, local receivers


@dataclass(frozen=True)
class TestingConfig(Config):
    ENV_NAME: str = "testing"
    TESTING: bool = True
    GENERATE_KEYS: bool = True
    ALLOW_DEMO_DATA: bool = True
    WTF_CSRF_ENABLED: bool = False
    # Cheap but real argon2id so the suite stays quick; production keeps the strong profile.
    ARGON2_TIME_COST: int = 1
    ARGON2_MEMORY_COST: int = 8192
    ARGON2_PARALLELISM: int = 1
    # The suite's webhook receivers listen on 127.0.0.1; tests of the rules turn this off.
    WEBHOOK_ALLOW_LOOPBACK: bool = True


@dataclass(frozen=True)
class ProductionConfig(Config):
    ENV_NAME: str = "production"
    LOG_FORMAT: str = "json"
    REQUIRE_2FA: bool = True
    SESSION_COOKIE_SECURE: bool = True
    PREFERRED_URL_SCHEME: str = "https"
    MAIL_TRANSPORT: str = "smtp"


PROFILES: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None, **overrides: Any) -> Config:
    """Build the profile named by ``name`` or ``DR_PANEL_ENV`` and apply environment overrides."""
    name = name or os.environ.get("DR_PANEL_ENV", "development")
    if name not in PROFILES:
        raise SystemExit(f"DR_PANEL_ENV must be one of {', '.join(PROFILES)}; got {name!r}.")
    base = PROFILES[name]()
    instance = Path(os.environ.get("DR_PANEL_INSTANCE", base.INSTANCE_PATH))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'dr-panel.sqlite3'}"
    env: dict[str, Any] = {
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(url),
        "KEYS_FILE": os.environ.get("DR_PANEL_KEYS_FILE", str(instance / "keys.json")),
        "REQUIRE_2FA": _env_bool("REQUIRE_2FA", base.REQUIRE_2FA),
        "API_TOKEN_DAYS": _env_whole("API_TOKEN_DAYS", base.API_TOKEN_DAYS, 1, 366, "days"),
        "RATELIMIT_STORAGE_URI": os.environ.get(
            "RATELIMIT_STORAGE_URI", base.RATELIMIT_STORAGE_URI
        ),
        "SESSION_IDLE_TIMEOUT": timedelta(
            minutes=_env_int(
                "SESSION_IDLE_MINUTES", int(base.SESSION_IDLE_TIMEOUT.total_seconds() // 60)
            )
        ),
        "MAIL_TRANSPORT": os.environ.get("MAIL_TRANSPORT", base.MAIL_TRANSPORT),
        "MAIL_OUTBOX_DIR": os.environ.get("MAIL_OUTBOX_DIR", base.MAIL_OUTBOX_DIR),
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", base.MAIL_SERVER),
        "MAIL_PORT": _env_int("MAIL_PORT", base.MAIL_PORT),
        "MAIL_USE_STARTTLS": _env_bool("MAIL_USE_STARTTLS", base.MAIL_USE_STARTTLS),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", base.MAIL_USERNAME),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD", base.MAIL_PASSWORD),
        "MAIL_FROM": os.environ.get("MAIL_FROM", base.MAIL_FROM),
        "BASE_URL": os.environ.get("BASE_URL", base.BASE_URL),
        "WEBHOOK_ALLOW_LOOPBACK": _env_bool("WEBHOOK_ALLOW_LOOPBACK", base.WEBHOOK_ALLOW_LOOPBACK),
        "BROADCAST_CLAIM": timedelta(
            seconds=_env_int(
                "BROADCAST_CLAIM_SECONDS", int(base.BROADCAST_CLAIM.total_seconds())
            )
        ),
        "SIGNAL_SETTINGS": _env_json("SIGNAL_SETTINGS", base.SIGNAL_SETTINGS),
        "SIGNAL_AREA_SETTINGS": _env_json("SIGNAL_AREA_SETTINGS", base.SIGNAL_AREA_SETTINGS),
        "BANK_HOLIDAY_REGION": os.environ.get("BANK_HOLIDAY_REGION", base.BANK_HOLIDAY_REGION),
        "LEAK_GATE_ALLOWED_CONTACTS": tuple(
            item.strip()
            for item in os.environ.get("LEAK_GATE_ALLOWED_CONTACTS", "").split(",")
            if item.strip()
        ) or base.LEAK_GATE_ALLOWED_CONTACTS,
    }
    env["AUDIT_ANCHOR_FILE"] = os.environ.get("AUDIT_ANCHOR_FILE", base.AUDIT_ANCHOR_FILE)
    env["AUDIT_ANCHOR_EMAIL"] = os.environ.get("AUDIT_ANCHOR_EMAIL", base.AUDIT_ANCHOR_EMAIL)
    # The public form's per-client limit: a site behind one shared address may need more.
    env["DRUG_REPORT_LIMIT"] = os.environ.get("DRUG_REPORT_LIMIT", base.DRUG_REPORT_LIMIT)
    env.update(
        PROXY_TRUSTED_HOPS=_env_whole("PROXY_TRUSTED_HOPS", base.PROXY_TRUSTED_HOPS, 0, 5,
                                      "proxies"),
        WEB_WORKERS=_env_whole("WEB_CONCURRENCY", base.WEB_WORKERS, 1, 64, "processes"),
        LOG_FORMAT=os.environ.get("DR_PANEL_LOG_FORMAT", base.LOG_FORMAT).strip().lower(),
        SPIKE_SCAN_AT=os.environ.get("SPIKE_SCAN_AT", base.SPIKE_SCAN_AT),
        REMINDERS_AT=os.environ.get("REMINDERS_AT", base.REMINDERS_AT),
        AUDIT_ANCHOR_MINUTES=_env_whole("AUDIT_ANCHOR_MINUTES", base.AUDIT_ANCHOR_MINUTES, 1,
                                        1440, "minutes"),
        WORKER_INTERVAL=_env_whole("WORKER_INTERVAL", base.WORKER_INTERVAL, 1, 3600, "seconds"),
    )
    for key, low, high, unit in RETENTION_SETTINGS:
        env[key] = _env_whole(key, getattr(base, key), low, high, unit)
    env["RETRY"] = _merged(base.RETRY, _env_json("RETRY", {}))
    env.update(overrides)
    return replace(base, **env)
