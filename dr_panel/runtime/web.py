"""What a web process needs in production: the client's address from a trusted proxy, one log
line per request, logs a collector can read, and readiness checks for the load balancer.

Proxy. ``PROXY_TRUSTED_HOPS`` is how many proxies in front of the app set ``X-Forwarded-For``
(and ``-Proto``, ``-Host``, ``-Port``); Werkzeug's ``ProxyFix`` takes the client address that
many entries from the right, so a browser cannot choose its own address by sending the header.
0 (the default) trusts none: the development server faces the browser. The rate limits and the
audit log read the address this gives.

Request log. One line per request: a request id (the proxy's ``X-Request-ID`` when it is 32
hexadecimal characters and the proxy is trusted, else a fresh one; sent back in the response),
method, path, status and duration. Never a query string; and a path segment is written only if
it is a UUID (the only thing URLs carry): any other value (a password link's token, a probe with
an NHS number) is written as its route's placeholder, like ``/password/<token>``.

Exceptions are logged with their type and stack (file, line, function), never their message:
a database error can quote the value that failed (an identifier) in its text.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from config import PROJECT_ROOT
from dr_panel.extensions import db, limiter

log = logging.getLogger("dr_panel.requests")

_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_ARG = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def init_app(app: Flask) -> None:
    """Trust the configured proxies and log every request. Call before other request hooks."""
    hops = int(app.config["PROXY_TRUSTED_HOPS"])
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    app.before_request(_started)
    app.after_request(_log_request)


def _started() -> None:
    g.request_started = time.perf_counter()
    offered = request.headers.get("X-Request-ID", "")
    trusted = bool(request.environ.get("werkzeug.proxy_fix.orig"))
    g.request_id = offered if trusted and _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def safe_path() -> str:
    """The request's path with every route argument that is not a UUID replaced by its name;
    an unrouted path (a 404, a probe) is not written at all."""
    rule = request.url_rule
    if rule is None:
        return "(no route)"
    args = request.view_args or {}

    def keep(match: re.Match[str]) -> str:
        value = args.get(match.group(1))
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value))
            except ValueError:
                pass
        return f"<{match.group(1)}>"

    return _ARG.sub(keep, rule.rule)


def _log_request(response: Response) -> Response:
    started = g.get("request_started")
    request_id = g.get("request_id") or uuid.uuid4().hex
    ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    path = safe_path()
    response.headers["X-Request-ID"] = request_id
    log.info(
        "%s %s %s %sms id=%s", request.method, path, response.status_code, ms, request_id,
        extra={"request": {"request_id": request_id, "method": request.method, "path": path,
                           "status": response.status_code, "duration_ms": ms}},
    )
    return response


# -- formatters -----------------------------------------------------------------------------


def _stack(exc_info: Any) -> list[str]:
    """An exception's type and frames, never its message (see the module's note)."""
    _, err, tb = exc_info
    frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]
    return [*frames, type(err).__name__]


class TextFormatter(logging.Formatter):
    """Lines for a terminal; a traceback without the exception's message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatException(self, ei: Any) -> str:  # noqa: N802  (logging's name)
        return "Traceback (message withheld):\n  " + "\n  ".join(_stack(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the request's
    fields on request lines, and an exception's type and stack without its message."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "request", None)
        if isinstance(extra, dict):
            out.update(extra)
        elif (request_id := _current_request_id()) is not None:
            out["request_id"] = request_id
        if record.exc_info and record.exc_info[0] is not None:
            stack = _stack(record.exc_info)
            out["exception"] = stack[-1]
            out["stack"] = stack[:-1]
        return json.dumps(out, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def formatter(kind: str) -> logging.Formatter:
    """``DR_PANEL_LOG_FORMAT``: json or text."""
    return JsonFormatter() if kind == "json" else TextFormatter()


# -- readiness --------------------------------------------------------------------------------


def failing_checks(app: Flask) -> list[str]:
    """The names of the checks that fail: database, migrations, keys, redis. Names only: a
    public endpoint says nothing about versions, hosts or errors (they go to the log, by type)."""
    failing: list[str] = []
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as err:
        log.warning("readiness: database check failed (%s)", type(err).__name__)
        db.session.rollback()
        return ["database", "migrations", *_other_checks(app)]
    try:
        if not at_head(app):
            failing.append("migrations")
    except Exception as err:
        log.warning("readiness: migration check failed (%s)", type(err).__name__)
        failing.append("migrations")
    return failing + _other_checks(app)


def _other_checks(app: Flask) -> list[str]:
    failing = []
    if app.extensions.get("dr_panel.keys") is None:
        failing.append("keys")
    uri = str(app.config.get("RATELIMIT_STORAGE_URI", ""))
    if uri.startswith("redis"):  # redis://, rediss://, redis+sentinel://...
        try:
            reachable = bool(limiter.storage.check())
        except Exception as err:
            log.warning("readiness: redis check failed (%s)", type(err).__name__)
            reachable = False
        if not reachable:
            failing.append("redis")
    return failing


def at_head(app: Flask) -> bool:
    """Whether the database is at the newest migration this code ships."""
    head = app.extensions.get("dr_panel.migration_head")
    if head is None:
        head = ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_current_head()
        app.extensions["dr_panel.migration_head"] = head
    current = MigrationContext.configure(db.session.connection()).get_current_revision()
    return bool(current == head)
