"""Accounts, sign-in, sessions and second factors."""

from __future__ import annotations

from flask import Flask, Request, flash, g, session

from dr_panel.auth.models import User
from dr_panel.extensions import login_manager


def _load_from_request(request: Request) -> User | None:
    """Every request finds its user through the server-side session named by the cookie's
    token, so ending that session (here or on another device) takes effect at once. Which
    credential a route accepts (an API token, the cookie, or both) is decided in one place,
    ``dr_panel.security.accepted_credentials``; a credential the route does not accept
    authenticates nobody."""
    from dr_panel.auth.services import load_session
    from dr_panel.security import accepted_credentials, bearer_token

    accepted = accepted_credentials()
    presented = bearer_token()
    if presented is not None:
        return _load_from_api_token(presented) if accepted.token else None
    if not accepted.cookie:
        return None
    token = session.get("sid")
    if not token:
        return None
    us = load_session(token)
    if us is None:
        session.clear()
        flash(
            "Your session has ended: it was idle too long, reached its time limit, or was "
            "signed out elsewhere. Sign in again to continue.",
            "info",
        )
        return None
    g.user_session = us
    return us.user


def _load_from_api_token(token: str) -> User | None:
    """API requests: a personal token, revocable and expiring, only ever as a header (never in
    a URL). A refused token leaves its reason in ``g.token_check`` for the guard to answer."""
    from dr_panel.auth.tokens import check_token, mark_used

    check = check_token(token)
    g.token_check = check
    if check.refusal is not None or check.token is None:
        return None
    mark_used(check.token)
    g.api_token = check.token
    return check.token.user


def init_app(app: Flask) -> None:
    from dr_panel.auth.routes import bp

    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session does this job
    login_manager.request_loader(_load_from_request)
    app.register_blueprint(bp)
