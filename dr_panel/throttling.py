"""Where throttling counts live, checked at start-up.

Flask-Limiter keeps its counts in ``RATELIMIT_STORAGE_URI``: ``memory://`` (one process only) or
``redis://host:port/db`` (shared by every worker process and every machine). The sign-in
back-off (``dr_panel.auth.throttle``) keeps its counts in the same storage.

Production never falls back silently: it refuses to start when Redis is configured but cannot
be reached (a limiter that quietly counted per process would let an attacker multiply their
guesses by the number of processes), and refuses in-memory storage when more than one worker
process serves. The worker count is read from ``WEB_CONCURRENCY`` (the variable gunicorn and
``dr-panel serve`` read); unset means one process.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits.storage import Storage

from dr_panel.errors import StartupError


def client_key() -> str:
    """Flask-Limiter's key for "this client": the pseudonym of its address (the proxy's
    forwarded address where ``dr-panel serve`` trusts one)."""
    return pseudonym(request.remote_addr or "")


# Created once (``dr_panel.extensions`` hands it on), counted per client by ``client_key``.
limiter = Limiter(key_func=client_key, default_limits=[])


def init_app(app: Flask) -> None:
    """Attach the limiter and refuse unsafe storage where production would be hurt by it."""
    try:
        limiter.init_app(app)
    except Exception as err:  # an unknown scheme, a client not installed: never the URL
        raise StartupError(
            "dr-panel cannot start: RATELIMIT_STORAGE_URI is not a storage it can use "
            f"({type(err).__name__}); use memory:// or redis://host:6379/0."
        ) from None
    problem = storage_problem(app)
    if problem is None:
        return
    if app.config["ENV_NAME"] == "production":
        raise StartupError(f"dr-panel cannot start: {problem}")
    app.logger.warning("throttling: %s", problem)


def pseudonym(value: str) -> str:
    """What a count is keyed by: a keyed hash (HMAC with a key derived from the blind-index root,
    the same in every process) of an address or an e-mail address typed, so the storage holds
    neither, and a hash cannot be reversed by trying every IPv4 address."""
    key = current_app.extensions["dr_panel.keys"].index_key("throttling")
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def storage() -> Storage:
    """The shared storage (Redis when configured) for counts outside Flask-Limiter's decorators."""
    return limiter.storage


def web_concurrency() -> int:
    """How many worker processes serve requests, as gunicorn and ``dr-panel serve`` see it."""
    raw = (os.environ.get("WEB_CONCURRENCY") or "").strip()
    try:
        return max(1, int(raw)) if raw else 1
    except ValueError:
        return 1


def storage_problem(app: Flask) -> str | None:
    """What is wrong with where the counts live, or None. The message names the setting, never
    the URL (it may carry a Redis password)."""
    if not app.config.get("RATELIMIT_ENABLED", True):
        return None
    uri = str(app.config.get("RATELIMIT_STORAGE_URI") or "memory://")
    if uri.startswith("memory://"):
        workers = max(int(app.config.get("WEB_WORKERS") or 1), web_concurrency())
        if workers > 1:
            return (
                f"throttling counts are kept in memory, but WEB_CONCURRENCY={workers} worker "
                "processes serve requests, so each would count on its own. Set "
                "RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379/0 (a Redis every worker reaches)."
            )
        return None
    try:
        reachable = bool(limiter.storage.check())
    except Exception:  # a bad URL or a missing client: the same answer, without the URL
        reachable = False
    if not reachable:
        return (
            "the throttling storage in RATELIMIT_STORAGE_URI cannot be reached. Start Redis (or "
            "correct the URL) and start dr-panel again; it does not fall back to counting in "
            "memory."
        )
    return None
