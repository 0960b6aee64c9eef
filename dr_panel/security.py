"""Access control, security headers and error pages, in one place.

Deny by default: every view declares who may reach it with ``@public``, ``@signed_in`` or
``@roles(...)``. A ``before_request`` guard enforces the declaration; a view with none answers 403
for everyone, so a new route without a rule is closed, and ``tests/test_access.py`` fails on it.
Per-record rules (``can_view``, ``can_edit``... on the models) are reached through ``get_or_404``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    flash,
    g,
    has_request_context,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response as BaseResponse

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record_now
from dr_panel.auth.models import Role
from dr_panel.auth.tokens import NOTICES_KEY, TOKEN_REFUSALS, check_token, take_revocation_notices
from dr_panel.dbtypes import parse_uuid
from dr_panel.extensions import db

log = logging.getLogger("dr_panel.security")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    is_public: bool = False
    roles: frozenset[Role] | None = None  # None with is_public False: any signed-in user

    def allows(self, role: Role) -> bool:
        return self.roles is None or role in self.roles


def public(view: F) -> F:
    view._access = Access(is_public=True)  # type: ignore[attr-defined]
    return view


def signed_in(view: F) -> F:
    view._access = Access()  # type: ignore[attr-defined]
    return view


def roles(*allowed: Role) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        view._access = Access(roles=frozenset(allowed))  # type: ignore[attr-defined]
        return view

    return decorate


def access_rule(endpoint: str) -> Access | None:
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "_access", None)


def wants_json() -> bool:
    return request.path.startswith("/api/")


# -- which credential each route accepts --------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """The credentials a blueprint's routes accept. A credential a route does not accept
    authenticates nobody there (``dr_panel.auth._load_from_request`` asks ``accepted_credentials``)
    and a bearer token sent to such a route is refused with 401 before the view runs."""

    token: bool = False
    cookie: bool = True


PAGES = Credentials()
# Choice: the JSON API accepts API tokens only, never the session cookie. No page script calls
# the API, so a cookie there could only be a browser sent by another site's page (cross-site
# request forgery: the API is CSRF-exempt because it takes no cookie).
API_ONLY = Credentials(token=True, cookie=False)
# The feeds (GET only) take either: partner systems send a token, the archive's CAP links ride on
# the signed-in session. A feed changes nothing, so the cookie there cannot be forged into harm.
FEEDS = Credentials(token=True, cookie=True)

CREDENTIALS: dict[str, Credentials] = {"api": API_ONLY, "feeds": FEEDS}


def accepted_credentials() -> Credentials:
    """What the current request's route accepts: by blueprint, pages unless listed above."""
    if not has_request_context():
        return PAGES
    # A nested blueprint ("api.cases") takes its top parent's rule ("api").
    return CREDENTIALS.get((request.blueprint or "").split(".")[0], PAGES)


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header (scheme in any case, RFC 9110), "" for
    a header with the scheme and nothing after it, None when there is no such header."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _bearer_problem(status: int, title: str, detail: str, error: str) -> Response:
    response = problem(status, title, detail)
    response.headers["WWW-Authenticate"] = f'Bearer realm="dr-panel", error="{error}"'
    return response


def _deny_token_owner(token: Any, why: str) -> None:
    """Audit a refused token against its owner (never the token); unknown tokens are not
    written, so nobody can fill the audit log by sending made-up ones."""
    if token is None:
        return
    record_now(
        "access.denied",
        outcome=Outcome.DENIED,
        actor=token.user,
        object_type="api_tokens",
        object_uuid=token.uuid,
        details={"endpoint": request.endpoint, "method": request.method, "why": why},
    )


def token_not_accepted() -> Response:
    """401 for an API token on a page (account, second factor, sessions, tokens, admin...): a
    token is for programs using the API and can never act as a signed-in person."""
    presented = bearer_token()
    _deny_token_owner(check_token(presented).token if presented else None, "api token on a page")
    return _bearer_problem(
        401,
        "API tokens are for the API only",
        "This address is for people signed in with a browser, and an API token is never accepted "
        "here. Programs use the JSON API under /api/v1/ and the alert feeds under /feeds/.",
        "invalid_request",
    )


def token_refused() -> Response:
    """The API's answer to a request it cannot authenticate: no token (a session cookie does
    not count), or a token that is unknown, revoked, expired, or whose account may not use one
    yet (403: a role that must use a second factor, before enrolling)."""
    check = g.get("token_check")
    if check is None or check.refusal is None:
        return _bearer_problem(
            401,
            "Sign-in required",
            "Send an API token as 'Authorization: Bearer <token>'. The API does not accept the "
            "browser's session cookie; make a token on your API tokens page.",
            "invalid_request",
        )
    _deny_token_owner(check.token, f"api token {check.refusal}")
    if check.refusal == "second_factor":
        return _bearer_problem(
            403,
            "Two-step verification needed",
            TOKEN_REFUSALS["second_factor"],
            "insufficient_scope",
        )
    return _bearer_problem(
        401, "The API token is not valid", TOKEN_REFUSALS[check.refusal], "invalid_token"
    )


class Forbidden(HTTPException):
    code = 403
    description = "You do not have permission to do that."


def deny(
    *, status: int = 403, object_type: str | None = None, object_uuid: Any = None, why: str = "role"
) -> None:
    """Refuse, and write the refusal to the audit log first (ASVS V7)."""
    record_now(
        "access.denied",
        outcome=Outcome.DENIED,
        object_type=object_type,
        object_uuid=object_uuid,
        details={"endpoint": request.endpoint, "method": request.method, "why": why},
    )
    raise NotFound() if status == 404 else Forbidden()


def guard() -> BaseResponse | None:
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None  # unknown URL: the 404 handler answers
    if bearer_token() is not None and not accepted_credentials().token:
        return token_not_accepted()
    rule = access_rule(endpoint)
    if rule is None:
        log.error("endpoint %s declares no access rule; refusing", endpoint)
        raise Forbidden()
    if rule.is_public:
        return None
    if not current_user.is_authenticated:
        if wants_json():
            return token_refused()
        return redirect(url_for("auth.login", next=safe_next(request.full_path)))
    if not rule.allows(current_user.role):
        deny(why="role")
    return None


def get_or_404(model: type[Any], raw_uuid: str, need: str = "view") -> Any:
    """The one way views load a record: by UUID, then the model's ``can_<need>(user)`` rule.
    A record the user may not see answers 404 (we do not confirm it exists), and is audited."""
    value = parse_uuid(raw_uuid)
    obj = db.session.scalar(select(model).where(model.uuid == value)) if value else None
    if obj is None:
        raise NotFound()
    rule = getattr(obj, f"can_{need}")
    if not rule(current_user):
        deny(status=404, object_type=model.__tablename__, object_uuid=value, why=f"record:{need}")
    return obj


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths survive as a ``next`` target (no open redirects)."""
    if not target:
        return None
    target = target.strip()
    if target.endswith("?"):
        target = target[:-1]
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    joined = urlsplit(urljoin(request.host_url, target))
    if joined.netloc != urlsplit(request.host_url).netloc or joined.scheme not in {"http", "https"}:
        return None
    return target


# -- headers ------------------------------------------------------------------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if request.endpoint != "static":
        # Pages may hold personal data: never kept by the browser or a proxy.
        response.headers["Cache-Control"] = "no-store"
    if current_app.config["SESSION_COOKIE_SECURE"]:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response


# -- errors -------------------------------------------------------------------------------------

ERROR_TEXT = {
    400: (
        "The request could not be understood",
        "Something in what was sent did not make sense. Go back, check the form and try again.",
    ),
    401: ("Sign-in required", "Sign in to continue."),
    403: (
        "You do not have access to this",
        "Your role does not allow this. If you need it for your work, ask your panel coordinator "
        "or system administrator.",
    ),
    404: (
        "Page not found",
        "There is nothing here, or you do not have access to it. Check the address, or go back "
        "to your home page.",
    ),
    405: ("That cannot be done here", "This page does not accept that kind of request."),
    409: (
        "Someone else saved this first",
        "Someone else changed this at the same moment, so nothing you sent was saved. Go back, "
        "reload the page to see their change, and make yours again.",
    ),
    413: ("The upload is too large", "Send a smaller file."),
    429: (
        "Too many attempts",
        "You have tried this too many times. Wait a while (up to an hour) and try again, or ask "
        "your system administrator to help.",
    ),
    503: (
        "Paused for a moment",
        "dr-panel cannot reach a service it needs just now, so nothing was done. Try again in a "
        "minute; if it keeps happening, tell your system administrator the time it happened.",
    ),
    500: (
        "Something went wrong on our side",
        "Nothing you entered was saved half-way. Try again in a moment; if it keeps happening, "
        "tell your system administrator the time it happened.",
    ),
}


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    """RFC 9457 problem details."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def render_error(status: int, detail: str | None = None) -> tuple[str, int] | Response:
    title, text = ERROR_TEXT.get(status, ERROR_TEXT[500])
    if wants_json():
        return problem(status, title, detail or text)
    return render_template(
        "errors/error.html", status=status, title=title, text=detail or text
    ), status


def is_write_conflict(error: BaseException) -> bool:
    """A conflict between simultaneous writers rather than a fault: stale version, unique
    constraint, PostgreSQL deadlock (40P01) or serialisation failure (40001), SQLite busy."""
    if isinstance(error, StaleDataError | IntegrityError):
        return True
    if isinstance(error, OperationalError):
        code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
        if code in ("40001", "40P01"):
            return True
        return "database is locked" in str(error.orig)
    return False


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        return render_error(
            400,
            "The form had expired or was sent from another site, so nothing was saved. "
            "Go back, reload the page and submit it again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if error.code == 429:
            record_now(
                "access.throttled", outcome=Outcome.DENIED, details={"endpoint": request.endpoint}
            )
        response = render_error(error.code or 500)
        if error.code == 405:  # RFC 9110: say which methods are allowed
            allow = dict(error.get_headers()).get("Allow")
            if allow:
                if isinstance(response, tuple):
                    response = make_response(response)
                response.headers["Allow"] = allow
        return response

    @app.errorhandler(StaleDataError)
    @app.errorhandler(IntegrityError)
    @app.errorhandler(OperationalError)
    def write_conflict(error: Exception) -> Any:
        """Two writers at once: a version check failed at flush (``version_id_col``), a unique
        constraint was hit by a simultaneous save, or PostgreSQL chose this transaction as a
        deadlock or serialisation victim. Nothing was saved (the transaction is rolled back), so
        the answer is 409 "someone else saved this first" on both doors. Pages that must keep
        the person's input catch the conflict themselves before it gets here. Any other
        database error stays a 500."""
        db.session.rollback()
        if isinstance(error, OperationalError) and not is_write_conflict(error):
            return unexpected(error)
        log.info("write conflict (%s) on %s %s", type(error).__name__, request.method,
                 request.endpoint)
        return render_error(409)

    from redis.exceptions import RedisError

    @app.errorhandler(RedisError)
    def throttling_unreachable(error: Exception) -> Any:
        """The shared throttling store (Redis) went away while running: sign-in and the public
        form fail closed (never unthrottled), but with 503 and a plain message, not a 500."""
        db.session.rollback()
        log.error("throttling storage unreachable (%s) on %s %s", type(error).__name__,
                  request.method, request.endpoint)
        return render_error(503)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        db.session.rollback()
        # Type and frames only: a database error's message can quote the values it refused.
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error(
            "unhandled %s on %s %s\n%s",
            type(error).__name__,
            request.method,
            request.endpoint,
            frames,
        )
        return render_error(500)


def say_tokens_revoked(response: Response) -> Response:
    """Tell the person whose action revoked API tokens (a password or second factor changed,
    an account's access changed or it was disabled), once the change has committed."""
    if not db.session.info.get(NOTICES_KEY):
        return response
    viewer = current_user.id if current_user and current_user.is_authenticated else None
    for message in take_revocation_notices(viewer):
        flash(message, "info")
    return response


def init_app(app: Flask) -> None:
    app.before_request(guard)
    app.after_request(security_headers)
    app.after_request(say_tokens_revoked)
    register_error_handlers(app)

    @app.context_processor
    def inject_user() -> dict[str, Any]:
        return {"Role": Role, "user_session": g.get("user_session")}
