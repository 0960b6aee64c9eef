"""Accounts, sign-in, sessions and second factors."""

from __future__ import annotations

from flask import Flask, Request, flash, g, session

from dr_panel.auth.models import User
from dr_panel.extensions import login_manager


def _load_from_request(request: Request) -> User | None:
    """Every request finds its user through the server-side session named by the cookie's
    token, so ending that session (here or on another device) takes effect at once."""
    from dr_panel.auth.services import load_session

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


def init_app(app: Flask) -> None:
    from dr_panel.auth.routes import bp

    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session does this job
    login_manager.request_loader(_load_from_request)
    app.register_blueprint(bp)
