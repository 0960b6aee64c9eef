"""The sign-in in progress, between the password and the last stage, kept server-side.

The session cookie is signed, not encrypted: anything in it can be read by whoever holds the
browser (or a copy of the cookie). So the cookie carries only a random token; who is signing in,
the stage reached and where they were going live in ``pending_sign_ins``, for ten minutes. Each
stage replaces the row (and the token), and finishing or starting again deletes it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from dr_panel.auth.models import PendingSignIn, User
from dr_panel.crypto import hash_token, new_token
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db

LIFETIME = timedelta(minutes=10)


def start(user: User, stage: str, next_url: str | None, *, replacing: str | None) -> str:
    """A new pending row for ``user`` at ``stage``; returns the token for the cookie. The row
    named by ``replacing`` goes, and so does any row past its time."""
    now = utcnow()
    drop(replacing)
    db.session.execute(delete(PendingSignIn).where(PendingSignIn.expires_at <= now))
    token = new_token()
    db.session.add(
        PendingSignIn(
            token_hash=hash_token(token),
            user_id=user.id,
            stage=stage,
            next_url=next_url if next_url and len(next_url) <= 500 else None,
            created_at=now,
            expires_at=now + LIFETIME,
        )
    )
    return token


def find(token: str | None) -> PendingSignIn | None:
    """The row for a cookie token, expired or not (the caller says which to the person)."""
    if not token or not isinstance(token, str):
        return None
    return db.session.scalar(
        select(PendingSignIn).where(PendingSignIn.token_hash == hash_token(token))
    )


def drop(token: str | None) -> None:
    if token and isinstance(token, str):
        db.session.execute(
            delete(PendingSignIn).where(PendingSignIn.token_hash == hash_token(token))
        )


def is_expired(row: PendingSignIn) -> bool:
    return utcnow() >= row.expires_at
