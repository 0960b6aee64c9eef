"""Accounts, sign-in, sessions and second factors."""

from __future__ import annotations

from flask import Flask, Request, flash, g, session

from dr_panel.auth.models import User
from dr_panel.extensions import login_manager


def _load_from_request(request: Request) -> User | None:
    """Every request finds its user through the server-side session named by the cookie's
    token, so ending that session (here or on another device) takes effect at once."""
    from dr_panel.auth.services import load_session

    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return _load_from_api_token(header[len("Bearer ") :].strip())
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
    """API requests: a personal token, revocable, only ever as a header (never in a URL)."""
    from sqlalchemy import select

    from dr_panel.auth.models import ApiToken
    from dr_panel.crypto import hash_token
    from dr_panel.dbtypes import utcnow
    from dr_panel.extensions import db

    found = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if found is None or found.revoked_at is not None or not found.user.is_active:
        return None
    now = utcnow()
    if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
        found.last_used_at = now
        db.session.commit()
    g.api_token = found
    return found.user


def init_app(app: Flask) -> None:
    from dr_panel.auth.routes import bp

    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session does this job
    login_manager.request_loader(_load_from_request)
    app.register_blueprint(bp)
