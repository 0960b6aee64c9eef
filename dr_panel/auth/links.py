"""No one sees another's password: links to set one's own, and announcements of new access.

A new account, an admin's reset and "forgot my password" each e-mail the person a single-use,
short-lived link (through the outbox, in the caller's transaction). Only the SHA-256 of the
link's token is stored; the admin is never shown a password or a link, so an admin cannot sign
in as anyone else. Issuing a new link, setting a password or changing the address retires every
earlier unused link.

Granting a role that reaches identifiers, adding areas to such an account, or changing its
e-mail address is announced at once to the coordinators of the areas concerned (or, where an
area has none, to the other admins): chosen over a second admin's approval because many
deployments have one admin, and an approval queue would leave real newcomers waiting while a
colluding pair of admins could still pass it. The announcement makes the change visible to the
people who answer for the area's data, who can challenge it the same day.

Nothing here logs, audits or returns a token; only the e-mail carries it.
"""

from __future__ import annotations

import enum
import logging
import secrets
import string
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select, update

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.auth.models import LinkPurpose, PasswordLink, Role, User, user_areas
from dr_panel.crypto import hash_token
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area

log = logging.getLogger("dr_panel.auth")

LINK_LIFETIME = {
    LinkPurpose.WELCOME: timedelta(hours=24),
    LinkPurpose.RESET: timedelta(hours=1),
    LinkPurpose.FORGOT: timedelta(hours=1),
}
_LIFETIME_WORDS = {timedelta(hours=24): "24 hours", timedelta(hours=1): "1 hour"}

# Lower-case letters only (52 of them, about 244 bits): no digit, so no link can ever look like
# an NHS number, a postcode or a date to the mail identifier guard.
_ALPHABET = string.ascii_lowercase
TOKEN_LENGTH = 52


class LinkState(enum.StrEnum):
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class LinkError(ValueError):
    """A link that cannot be used; ``state`` says why, the message says what to do."""

    MESSAGES = {
        LinkState.USED: "This link has already been used (or a newer one replaced it).",
        LinkState.EXPIRED: "This link has expired.",
        LinkState.UNKNOWN: "This link is not valid. Check it was copied whole.",
    }

    def __init__(self, state: LinkState) -> None:
        super().__init__(self.MESSAGES[state])
        self.state = state


def _new_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))


def retire_links(user: User) -> None:
    """Every unused link of this person stops working (a newer link, a new password, a new
    address)."""
    db.session.execute(
        update(PasswordLink)
        .where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None))
        .values(used_at=utcnow())
    )


_SUBJECTS = {
    LinkPurpose.WELCOME: "Your dr-panel account: choose your password",
    LinkPurpose.RESET: "Your dr-panel password was reset: choose a new one",
    LinkPurpose.FORGOT: "Choose a new dr-panel password",
}
_OPENINGS = {
    LinkPurpose.WELCOME: "An account has been made for you on dr-panel.",
    LinkPurpose.RESET: (
        "Your system administrator has reset your dr-panel password: your old password no "
        "longer works."
    ),
    LinkPurpose.FORGOT: "Someone, we hope you, asked to choose a new dr-panel password.",
}
_CLOSINGS = {
    LinkPurpose.WELCOME: "If you did not expect an account, tell your system administrator.",
    LinkPurpose.RESET: "If you did not expect this, tell your system administrator.",
    LinkPurpose.FORGOT: ("If it was not you, ignore this e-mail: your password stays as it is."),
}


def _message(purpose: LinkPurpose, url: str) -> tuple[str, str]:
    lifetime = _LIFETIME_WORDS.get(LINK_LIFETIME[purpose], str(LINK_LIFETIME[purpose]))
    text = (
        f"{_OPENINGS[purpose]}\n\n"
        f"Choose your own password with this link. It works once, within {lifetime}:\n\n"
        f"{url}\n\n"
        "Nobody else, not even your system administrator, will ever know your password; "
        "nobody from dr-panel will ask you for it.\n\n"
        f"{_CLOSINGS[purpose]}\n"
    )
    return _SUBJECTS[purpose], text


def issue_link(user: User, purpose: LinkPurpose, *, by: User | None) -> None:
    """E-mail the person a link to set their own password. Returns nothing: the token exists
    only in the e-mail, so whoever asked (an admin) never holds it."""
    from dr_panel.mail import services as mail

    retire_links(user)
    token = _new_token()
    now = utcnow()
    db.session.add(
        PasswordLink(
            user=user,
            token_hash=hash_token(token),
            purpose=purpose.value,
            created_at=now,
            expires_at=now + LINK_LIFETIME[purpose],
        )
    )
    subject, text = _message(purpose, mail.link("auth.set_password", token=token))
    mail.queue(user.email, subject, text, kind="account.password_link")
    record(
        "account.password_link_sent",
        actor=by,
        actor_label=None if by else "self-service",
        object_type="users",
        object_uuid=user.uuid,
        details={"purpose": purpose.value},
    )


def find_link(token: str) -> tuple[LinkState, PasswordLink | None]:
    link = db.session.scalar(
        select(PasswordLink).where(PasswordLink.token_hash == hash_token(token or ""))
    )
    if link is None or not link.user.is_active:
        return LinkState.UNKNOWN, None
    if link.used_at is not None:
        return LinkState.USED, link
    if utcnow() >= link.expires_at:
        return LinkState.EXPIRED, link
    return LinkState.VALID, link


def check_link(token: str) -> PasswordLink:
    """The usable link for ``token``, or ``LinkError``; a refusal is audited (committed by
    the caller)."""
    state, link = find_link(token)
    if state is LinkState.VALID:
        assert link is not None
        return link
    record(
        "account.password_link_refused",
        outcome=Outcome.DENIED,
        actor=link.user if link else None,
        actor_label=None if link else "anonymous",
        object_type="users" if link else None,
        object_uuid=link.user.uuid if link else None,
        details={"reason": state.value},
    )
    raise LinkError(state)


def set_password_with_link(token: str, new_password: str) -> User:
    """Use the link: the policy checks the password (``AccountError`` if it fails, and the link
    stays usable), then the link and every other unused one are spent and sessions end."""
    from dr_panel.auth import services

    link = check_link(token)
    user = link.user
    # Raises AccountError (nothing changed); else ends sessions and spends every unused link.
    services.set_password(user, new_password)
    record(
        "account.password_set_by_link",
        actor=user,
        object_type="users",
        object_uuid=user.uuid,
        details={"purpose": link.purpose},
    )
    return user


def request_reset(email: str) -> None:
    """Forgot my password: the same work, the same answer and no error whether or not the
    account exists (or is disabled), so nobody learns who has an account."""
    from dr_panel.auth import services
    from dr_panel.mail import services as mail

    user = services.find_user(email)
    known = user is not None and user.is_active
    if known:
        assert user is not None
        issue_link(user, LinkPurpose.FORGOT, by=None)
    else:
        # What issuing costs, without the rows: a token, its hash, the message and its check.
        token = _new_token()
        hash_token(token)
        subject, text = _message(LinkPurpose.FORGOT, mail.link("auth.set_password", token=token))
        mail.check_no_identifiers(subject, text, recipient=None)
    record(
        "account.password_link_requested",
        actor=user,
        actor_label=None if user else "anonymous",
        object_type="users" if user else None,
        object_uuid=user.uuid if user else None,
        details={"account": "known" if known else "disabled" if user else "unknown"},
    )


# -- announcing access to identifiers ------------------------------------------------------------


def _coordinators_of(areas: Iterable[Area], *, besides: User) -> list[User]:
    ids = [a.id for a in areas]
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(User)
            .join(user_areas, user_areas.c.user_id == User.id)
            .where(
                user_areas.c.area_id.in_(ids),
                User.role == Role.COORDINATOR,
                User.disabled_at.is_(None),
                User.id != besides.id,
            )
            .distinct()
            .order_by(User.id)
        )
    )


def _other_admins(*, besides: Iterable[User]) -> list[User]:
    skip = [u.id for u in besides]
    return list(
        db.session.scalars(
            select(User)
            .where(User.role == Role.ADMIN, User.disabled_at.is_(None), User.id.not_in(skip))
            .order_by(User.id)
        )
    )


def announce_access(user: User, change: str, areas: Iterable[Area], *, by: User | None) -> int:
    """Tell the coordinators of ``areas`` at once that ``user`` can now reach identifiers there
    (``change`` says how, in words). Where no coordinator would hear, the other admins are told
    instead. Audited with the number told; returns it."""
    from dr_panel.mail import services as mail

    areas = list(areas)
    recipients = _coordinators_of(areas, besides=user)
    fallback = not recipients
    if fallback:
        recipients = _other_admins(besides=[user, *([by] if by else [])])
    area_names = ", ".join(a.name for a in areas) or "no areas"
    who = f"{user.display_name}, {user.role.label.lower()}"
    if user.agency is not None:
        who += f" ({user.agency.name})"
    actor = by.display_name if by else "an operator on the server"
    subject = "dr-panel: new access to identifiable data in your area"
    told = 0
    for recipient in recipients:
        for named in (True, False):
            text = (
                f"{change.capitalize()}: {who if named else 'an account'} can now see "
                f"identifiable case data in {area_names}. The change was made by "
                f"{actor if named else 'a system administrator'}.\n\n"
                "If you do not recognise this person or do not expect this access, tell your "
                "information governance lead and the system administrators today; the change "
                "is recorded in the audit log.\n"
            )
            try:
                mail.queue(recipient.email, subject, text, kind="account.access_announced")
            except mail.IdentifierInMail:
                continue  # a name the guard reads as personal: say it without names
            told += 1
            break
    record(
        "account.access_announced",
        actor=by,
        actor_label=None if by else "cli",
        object_type="users",
        object_uuid=user.uuid,
        details={
            "change": change,
            "areas": sorted(a.ons_code for a in areas),
            "told": told,
            "told_instead": "admins" if fallback else "coordinators",
        },
    )
    if not told:
        log.warning("access change announced to nobody: no coordinator or other admin")
    return told
