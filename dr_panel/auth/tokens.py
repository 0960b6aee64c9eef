"""Personal API tokens: made, checked, renewed and revoked here, by every door (the token pages,
``dr-panel tokens``, the API's and the feeds' sign-in, and ``end_all_sessions``).

Tokens are shown once and stored only as their SHA-256 (``dr_panel.crypto.hash_token``); the
``drp_`` prefix makes a leaked one recognisable to secret scanners and to people. The first eight
characters after it are kept in clear so a person can tell their tokens apart: too few to use.
Every change is audited; no token is ever logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app, has_request_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from dr_panel.audit.services import record
from dr_panel.auth.models import ApiToken, User
from dr_panel.auth.services import second_factor_required
from dr_panel.crypto import hash_token, new_token
from dr_panel.dbtypes import storable, utcnow
from dr_panel.extensions import db

TOKEN_PREFIX = "drp_"  # noqa: S105  (a marker, not a secret)
SHOWN_CHARS = 8
NAME_MAX = 80
NAME_REQUIRED = "Give the token a name that says where it is used, like 'ambulance feed'."


class TokenError(ValueError):
    """A token request that cannot be done; the message says why and what to do."""


SECOND_FACTOR_FIRST = (
    "This account must turn on two-step verification before it can use API tokens: sign in on "
    "the web, set it up on your account page, then make a new token."
)

# Why a token was refused (``check_token``), as the problem detail a program's owner reads.
TOKEN_REFUSALS = {
    "unknown": "The API token was not recognised. Check it was copied whole, or make a new one "
    "on your API tokens page.",
    "revoked": "The API token was revoked (by its owner, or when the account's password, "
    "two-step verification or access changed). Make a new one on your API tokens page.",
    "expired": "The API token has expired. Make a new one on your API tokens page; renew "
    "tokens there before they expire.",
    "disabled": "The API token's account is disabled. Ask your system administrator.",
    "second_factor": SECOND_FACTOR_FIRST,
}

# Revocations made in this transaction, for the page to say so once it has committed
# (``take_revocation_notices``); cleared on rollback, so a refused change tells nothing.
NOTICES_KEY = "dr_panel.tokens_revoked"


@event.listens_for(Session, "after_soft_rollback")
def _forget_notices(session: Session, previous_transaction: Any) -> None:
    session.info.pop(NOTICES_KEY, None)


def lifetime() -> timedelta:
    return timedelta(days=int(current_app.config["API_TOKEN_DAYS"]))


def second_factor_missing(user: User) -> bool:
    """In production a role that must use a second factor has no token power until enrolled:
    a token must never be a way round the second factor."""
    return second_factor_required(user) and not user.has_second_factor


def clean_token_name(name: str | None) -> str:
    text = " ".join((name or "").split())
    if not text:
        raise TokenError(NAME_REQUIRED)
    if len(text) > NAME_MAX:
        raise TokenError(f"Token names are at most {NAME_MAX} characters.")
    if not storable(text):
        raise TokenError("Token names cannot hold control characters: use letters and numbers.")
    return text


def create_token(user: User, name: str | None, *, by: User | None) -> tuple[ApiToken, str]:
    """Make a token for ``user``. Returns it with its plaintext, which is never stored: show it
    once. ``by`` is None for the command line."""
    if not user.is_active:
        raise TokenError("This account is disabled: enable it before giving it an API token.")
    if second_factor_missing(user):
        raise TokenError(SECOND_FACTOR_FIRST)
    label = clean_token_name(name)
    plaintext = TOKEN_PREFIX + new_token()
    token = ApiToken(
        user=user,
        name=label,
        token_hash=hash_token(plaintext),
        prefix=plaintext[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + SHOWN_CHARS],
        expires_at=utcnow() + lifetime(),
    )
    db.session.add(token)
    db.session.flush()
    record(
        "api_token.created",
        actor=by,
        actor_label=None if by else "cli",
        object_type="api_tokens",
        object_uuid=token.uuid,
        details={
            "user": str(user.uuid),
            "name": label,
            "prefix": token.prefix,
            "expires_at": token.expires_at.isoformat(),
        },
    )
    return token, plaintext


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of presenting a token: the token, and ``refusal`` (a key of
    ``TOKEN_REFUSALS``) when it may not be used. A refused token is returned when it exists, so
    the refusal can be audited against its owner."""

    token: ApiToken | None
    refusal: str | None = None


def check_token(plaintext: str) -> TokenCheck:
    """Whether a presented token may be used now. Every rule is here, so the API and the feeds
    refuse the same tokens."""
    found = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if found is None:
        return TokenCheck(None, "unknown")
    if found.revoked_at is not None:
        return TokenCheck(found, "revoked")
    if found.is_expired():
        return TokenCheck(found, "expired")
    if not found.user.is_active:
        return TokenCheck(found, "disabled")
    if second_factor_missing(found.user):
        return TokenCheck(found, "second_factor")
    return TokenCheck(found)


def mark_used(token: ApiToken) -> None:
    """Keep the last-used time to the minute (not a write per request)."""
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        db.session.commit()


def revoke_token(
    token: ApiToken, *, by: User | None, reason: str = "revoked by its owner"
) -> None:
    """Revoke at once: the next request with it answers 401."""
    if token.revoked_at is not None:
        raise TokenError("This token was already revoked.")
    token.revoked_at = utcnow()
    token.revoked_reason = reason[:40]
    record(
        "api_token.revoked",
        actor=by,
        actor_label=None if by else "cli",
        object_type="api_tokens",
        object_uuid=token.uuid,
        details={"user": str(token.user.uuid), "prefix": token.prefix, "reason": reason},
    )


def revoke_all_tokens(user: User, reason: str) -> int:
    """Revoke every live token of ``user`` because ``reason`` (a password, second factor, role,
    area or agency changed, or the account was disabled). Called by
    ``dr_panel.auth.services.end_all_sessions``, so every door that ends sessions for a security
    reason revokes tokens too. Audited once with the count and reason, never a token."""
    now = utcnow()
    live = list(
        db.session.scalars(
            select(ApiToken).where(
                ApiToken.user_id == user.id,
                ApiToken.revoked_at.is_(None),
                ApiToken.expires_at > now,
            )
        )
    )
    for token in live:
        token.revoked_at, token.revoked_reason = now, reason[:40]
    if live:
        record(
            "api_token.revoked_all",
            actor_label=None if has_request_context() else "cli",
            object_type="users",
            object_uuid=user.uuid,
            details={"count": len(live), "reason": reason},
        )
        db.session.info.setdefault(NOTICES_KEY, []).append(
            (user.id, user.display_name, len(live))
        )
    return len(live)


def take_revocation_notices(viewer_id: int | None) -> list[str]:
    """What this request's committed revocations should tell the person who made them."""
    notices = db.session.info.pop(NOTICES_KEY, [])
    out = []
    for user_id, name, count in notices:
        tokens = f"{count} API token{'s' if count != 1 else ''}"
        if user_id == viewer_id:
            out.append(
                f"Your {tokens} {'were' if count != 1 else 'was'} revoked as well: programs "
                "using them are refused from now on. Make new ones on your API tokens page."
            )
        else:
            out.append(
                f"{name}'s {tokens} {'were' if count != 1 else 'was'} revoked: programs using "
                "them are refused from now on."
            )
    return out


def renew_token(token: ApiToken, *, by: User) -> None:
    """Extend a live token by the configured lifetime from now. An expired or revoked token
    stays dead: its owner makes a new one, so an old leaked token cannot be brought back."""
    if token.revoked_at is not None:
        raise TokenError("This token was revoked, so it cannot be renewed: make a new one.")
    if token.is_expired():
        raise TokenError("This token has expired, so it cannot be renewed: make a new one.")
    token.expires_at = utcnow() + lifetime()
    record(
        "api_token.renewed",
        actor=by,
        object_type="api_tokens",
        object_uuid=token.uuid,
        details={
            "user": str(token.user.uuid),
            "prefix": token.prefix,
            "expires_at": token.expires_at.isoformat(),
        },
    )


def tokens_of(user: User) -> list[ApiToken]:
    """A person's tokens: live ones first, newest first."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id)
        )
    )


def find_token(user: User, prefix: str) -> ApiToken:
    """The one live token of ``user`` whose shown characters are ``prefix`` (with or without
    ``drp_``), else a TokenError saying what to do."""
    shown = prefix.strip()
    if shown.startswith(TOKEN_PREFIX):
        shown = shown[len(TOKEN_PREFIX) :]
    shown = shown[:SHOWN_CHARS]
    if len(shown) < SHOWN_CHARS:
        raise TokenError(
            f"Give the first {SHOWN_CHARS} characters after '{TOKEN_PREFIX}', as "
            "'dr-panel tokens list' shows them."
        )
    live = [t for t in tokens_of(user) if t.prefix == shown and t.revoked_at is None]
    if not live:
        raise TokenError("This account has no live token starting with those characters.")
    if len(live) > 1:
        raise TokenError(
            "More than one live token starts with those characters: revoke it on the web page."
        )
    return live[0]
