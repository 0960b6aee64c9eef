"""Accounts: sign-in, sessions, second factors and the admin's account operations.

Each function changes state and writes its audit entry in the caller's transaction; the route
commits once. Nothing here logs a password, a code, a secret or a token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from flask import current_app, has_request_context, request
from sqlalchemy import func, select, update

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.auth import passwords
from dr_panel.auth.models import Role, User, UserSession
from dr_panel.crypto import KeyRing, hash_token, new_token
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency, Area

log = logging.getLogger("dr_panel.auth")


class AccountError(ValueError):
    """A request the rules refuse; the message is for the person and names no secret.
    ``field`` names the form field it belongs to."""

    def __init__(self, message: str, field: str = "password") -> None:
        super().__init__(message)
        self.field = field


def _keys() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


# -- signing in ---------------------------------------------------------------------------------


def authenticate(email: str, password: str) -> User | None:
    """The user if the password is right, else None (taking the same time either way)."""
    user = find_user(email)
    if not passwords.verify_password(user.password_hash if user else None, password):
        record(
            "auth.login_failed",
            outcome=Outcome.FAILURE,
            actor=user,
            details={"step": "password", "account": "known" if user else "unknown"},
        )
        return None
    assert user is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        log.info("password hash upgraded to current argon2 parameters")
    if not user.is_active:
        record(
            "auth.login_failed",
            outcome=Outcome.DENIED,
            actor=user,
            details={"step": "password", "account": "disabled"},
        )
        return None
    return user


def second_factor_required(user: User) -> bool:
    return bool(current_app.config["REQUIRE_2FA"]) and user.role.needs_second_factor


def begin_session(user: User) -> str:
    """A new server-side session; returns the token for the cookie (never stored in clear)."""
    token = new_token()
    ua = request.headers.get("User-Agent", "")[:200] if has_request_context() else None
    db.session.add(
        UserSession(
            user=user,
            token_hash=hash_token(token),
            ip_address=request.remote_addr if has_request_context() else None,
            user_agent=ua,
        )
    )
    user.last_login_at = utcnow()
    record("auth.login", actor=user)
    return token


def load_session(token: str) -> UserSession | None:
    """The live session for a cookie token, ending it if it has idled or aged out."""
    us: UserSession | None = db.session.scalar(
        select(UserSession).where(UserSession.token_hash == hash_token(token))
    )
    if us is None or us.ended_at is not None:
        return None
    now = utcnow()
    cfg = current_app.config
    reason = None
    if not us.user.is_active:
        reason = "account disabled"
    elif now - us.last_seen_at > cfg["SESSION_IDLE_TIMEOUT"]:
        reason = "idle timeout"
    elif now - us.created_at > cfg["SESSION_ABSOLUTE_LIFETIME"]:
        reason = "lifetime reached"
    if reason:
        us.ended_at, us.end_reason = now, reason
        db.session.commit()
        return None
    if (now - us.last_seen_at).total_seconds() > 30:
        us.last_seen_at = now
        db.session.commit()
    return us


def end_session(us: UserSession, reason: str) -> None:
    if us.ended_at is None:
        us.ended_at, us.end_reason = utcnow(), reason
    record("auth.logout", actor=us.user, details={"reason": reason})


def end_all_sessions(
    user: User, reason: str, *, keep: UserSession | None = None, revoke_tokens: bool = True
) -> int:
    """End every session of ``user`` (but ``keep``), and revoke their API tokens: whatever ends
    sessions for a security reason (password, second factor, access, disabling) must not leave a
    token working. Only the owner's own "sign out my other sessions" passes
    ``revoke_tokens=False``; signing out never revokes tokens."""
    if revoke_tokens:
        from dr_panel.auth.tokens import revoke_all_tokens  # it imports this module

        revoke_all_tokens(user, reason)
    stmt = (
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    result = db.session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def live_sessions(user: User) -> list[UserSession]:
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        )
    )


# -- second factor (TOTP, RFC 6238) ---------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def seal_pending_secret(user: User, secret: str) -> str:
    """A secret being enrolled travels in the session cookie, encrypted and bound to the user."""
    return _keys().encrypt(secret, table="users", column="totp_pending", record=str(user.uuid))


def open_pending_secret(user: User, sealed: str) -> str:
    return _keys().decrypt(sealed, table="users", column="totp_pending", record=str(user.uuid))


def _user_secret(user: User) -> str | None:
    if not user.totp_secret_enc:
        return None
    return _keys().decrypt(
        user.totp_secret_enc, table="users", column="totp_secret", record=str(user.uuid)
    )


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["TOTP_ISSUER"]
    )


def qr_svg(uri: str) -> str:
    """An inline SVG (no script, no external request) for authenticator apps to scan."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, dark="#0b0c0c", light="#ffffff", title="QR code for your authenticator app"
    )


def _match_counter(
    secret: str, code: str, after: int | None, at: datetime | None = None
) -> int | None:
    """The time-step the code belongs to (allowing one step of clock drift either way), if it
    is later than the last one used: each code is good once."""
    code = "".join(ch for ch in code if ch in "0123456789")  # ASCII: "²".isdigit() is true
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(at or utcnow())
    for counter in (now - 1, now, now + 1):
        if after is not None and counter <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


def check_code(user: User, code: str) -> bool:
    secret = _user_secret(user)
    counter = _match_counter(secret, code, user.totp_last_counter) if secret else None
    if counter is None:
        record("auth.login_failed", outcome=Outcome.FAILURE, actor=user, details={"step": "code"})
        return False
    user.totp_last_counter = counter
    return True


def enrol_second_factor(
    user: User, secret: str, code: str, *, keep: UserSession | None = None
) -> bool:
    """Turn on (or replace) the second factor. Replacing one ends the account's other sessions
    and revokes its tokens, as a password change does: whoever replaced it may not be the owner."""
    counter = _match_counter(secret, code, None)
    if counter is None:
        return False
    if user.has_second_factor:
        end_all_sessions(user, "second factor replaced", keep=keep)
    user.totp_secret_enc = _keys().encrypt(
        secret, table="users", column="totp_secret", record=str(user.uuid)
    )
    user.totp_enabled_at = utcnow()
    user.totp_last_counter = counter
    record("account.second_factor_enrolled", actor=user, object_type="users", object_uuid=user.uuid)
    return True


def remove_second_factor(user: User, *, by: User) -> None:
    user.totp_secret_enc = None
    user.totp_enabled_at = None
    user.totp_last_counter = None
    end_all_sessions(user, "second factor reset")
    record("account.second_factor_reset", actor=by, object_type="users", object_uuid=user.uuid)


# -- passwords ----------------------------------------------------------------------------------


def password_context(user: User | None, email: str = "", name: str = "") -> tuple[str, ...]:
    email = user.email if user else email
    name = user.display_name if user else name
    return (email, email.split("@")[0], *name.split())


def set_password(user: User, new_password: str, *, keep: UserSession | None = None) -> None:
    issues = passwords.problems(new_password, context=password_context(user))
    if issues:
        raise AccountError(issues[0])
    user.password_hash = passwords.hash_password(new_password)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    end_all_sessions(user, "password changed", keep=keep)
    from dr_panel.auth.links import retire_links

    retire_links(user)  # a link mailed earlier must not undo the password just chosen
    record("account.password_changed", actor=user, object_type="users", object_uuid=user.uuid)


def unusable_password_hash() -> str:
    """The hash of a random password nobody is ever shown: the account cannot be signed in to
    until its owner sets a password through the link e-mailed to them."""
    return passwords.hash_password(secrets.token_urlsafe(32))


# -- the admin's account operations ---------------------------------------------------------------


@dataclass
class AccountDetails:
    email: str
    display_name: str
    role: Role
    area_codes: Iterable[str]
    agency_code: str | None = None


def _resolve(details: AccountDetails) -> tuple[list[Area], Agency | None]:
    codes = [c.strip().upper() for c in details.area_codes if c.strip()]
    if not codes:
        raise AccountError(
            "Grant at least one area: every user works in one or more areas.", "areas"
        )
    areas = list(db.session.scalars(select(Area).where(Area.ons_code.in_(codes))))
    unknown = sorted(set(codes) - {a.ons_code for a in areas})
    if unknown:
        raise AccountError(
            f"Unknown area code {', '.join(unknown)}. Use an ONS code such as "
            "E06000009; `dr-panel areas list` shows them.",
            "areas",
        )
    agency = None
    if details.agency_code:
        agency = db.session.scalar(select(Agency).where(Agency.code == details.agency_code.upper()))
        if agency is None:
            raise AccountError(
                f"Unknown agency code {details.agency_code}. Use a code such as "
                "POLICE; `dr-panel agencies list` shows them.",
                "agency",
            )
    if details.role.needs_agency and agency is None:
        raise AccountError(
            f"A {details.role.label.lower()} must belong to an agency: choose one.", "agency"
        )
    return areas, agency


def create_user(
    details: AccountDetails, *, password: str | None, by: User | None, must_change: bool = True
) -> tuple[User, None]:
    """Create an account. Without a password (the admin's page) nobody is shown one: the person
    is e-mailed a link to set their own (``links``), and an admin's grant of a role that reaches
    identifiers is announced to the area's coordinators. A password is given only by the
    operator's CLI and the demo loader. The second element is always None (no password is ever
    handed back); it stays for the callers' unpacking."""
    from dr_panel.auth import links

    email = normalise_email(details.email)
    if find_user(email) is not None:
        raise AccountError("An account with this e-mail address already exists.", "email")
    areas, agency = _resolve(details)
    if password is not None:
        issues = passwords.problems(
            password, context=password_context(None, email=email, name=details.display_name)
        )
        if issues:
            raise AccountError(issues[0])
    user = User(
        email=email,
        display_name=details.display_name.strip(),
        role=details.role,
        agency=agency,
        areas=areas,
        password_hash=(
            passwords.hash_password(password) if password is not None else unusable_password_hash()
        ),
        must_change_password=must_change and password is not None,
    )
    db.session.add(user)
    db.session.flush()
    record(
        "account.created",
        actor=by,
        actor_label=None if by else "cli",
        object_type="users",
        object_uuid=user.uuid,
        details={"role": user.role.value, "areas": sorted(a.ons_code for a in areas)},
    )
    if password is None:
        links.issue_link(user, links.LinkPurpose.WELCOME, by=by)
    if by is not None and user.role.can_reach_identifiers:
        links.announce_access(user, "a new account", areas, by=by)
    return user, None


def update_user(user: User, details: AccountDetails, *, by: User) -> None:
    """Save the admin's changes. Reaching identifiers by a new role, in added areas or at a new
    address is announced to the coordinators concerned (``links.announce_access``); a new
    address retires the person's unused password links."""
    from dr_panel.auth import links

    areas, agency = _resolve(details)
    if user.id == by.id and details.role is not Role.ADMIN:
        raise AccountError(
            "You cannot remove your own administrator role. Ask another admin.", "role"
        )
    email = normalise_email(details.email)
    if email != user.email and find_user(email) is not None:
        raise AccountError("An account with this e-mail address already exists.", "email")
    changed = {
        "role": user.role != details.role,
        "areas": {a.id for a in user.areas} != {a.id for a in areas},
        "agency": user.agency_id != (agency.id if agency else None),
        "email": user.email != email,
    }
    old_area_ids = {a.id for a in user.areas}
    user.email, user.display_name, user.role = email, details.display_name.strip(), details.role
    user.agency, user.areas = agency, areas
    if changed["email"]:
        links.retire_links(user)
    if user.role.can_reach_identifiers:
        if changed["role"]:
            links.announce_access(user, f"a new role ({user.role.label.lower()})", areas, by=by)
        elif changed["areas"] and (added := [a for a in areas if a.id not in old_area_ids]):
            links.announce_access(user, "new areas", added, by=by)
        elif changed["email"]:
            links.announce_access(user, "a new e-mail address", areas, by=by)
    if changed["role"] or changed["areas"] or changed["agency"]:
        # New permissions take effect at the next sign-in, not in a session opened under the old.
        end_all_sessions(user, "access changed")
    record(
        "account.updated",
        actor=by,
        object_type="users",
        object_uuid=user.uuid,
        details={
            "changed": sorted(k for k, v in changed.items() if v),
            "role": user.role.value,
            "areas": sorted(a.ons_code for a in areas),
        },
    )


def set_disabled(user: User, disabled: bool, *, by: User | None) -> None:
    if by is not None and user.id == by.id and disabled:
        raise AccountError("You cannot disable your own account.")
    if disabled and user.role is Role.ADMIN and _active_admins() <= 1:
        raise AccountError("This is the last active administrator; enable or create another first.")
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        end_all_sessions(user, "account disabled")
    record(
        "account.disabled" if disabled else "account.enabled",
        actor=by,
        actor_label=None if by else "cli",
        object_type="users",
        object_uuid=user.uuid,
    )


def reset_password(user: User, *, by: User) -> None:
    """The old password stops working at once and every session ends; the person is e-mailed
    a link to choose a new one (24 hours if they have never signed in, else 1 hour). The admin
    is shown nothing to sign in with."""
    from dr_panel.auth import links

    user.password_hash = unusable_password_hash()
    user.must_change_password = False
    user.password_changed_at = utcnow()
    end_all_sessions(user, "password reset")
    record("account.password_reset", actor=by, object_type="users", object_uuid=user.uuid)
    purpose = links.LinkPurpose.WELCOME if user.last_login_at is None else links.LinkPurpose.RESET
    links.issue_link(user, purpose, by=by)


def _active_admins() -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN, User.disabled_at.is_(None))
        )
        or 0
    )
