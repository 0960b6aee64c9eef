"""Subscribers of the broadcast: people and organisations by e-mail, partner systems by webhook.

Coordinators manage the subscribers of their areas (a subscriber covering several areas needs a
coordinator of one of them; only areas the coordinator holds can be added or removed). Every
change is audited; a webhook's secret is shown once, when it is made or rotated, and stored
encrypted with the field keys. Rotation keeps the previous secret signing too until
``previous_secret_until``, so partners can switch over without losing a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import Select, func, or_, select

from dr_panel.alerts import webhooks
from dr_panel.alerts.broadcast import give_up_waiting, resend_what_still_matters
from dr_panel.alerts.models import AUDIENCES, Channel, Subscriber, subscriber_areas
from dr_panel.audit.services import record
from dr_panel.crypto import KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from dr_panel.search import contains

if TYPE_CHECKING:
    from dr_panel.auth.models import User

TABLE = "subscribers"
NAME_MAX = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SubscriberError(ValueError):
    """A change was refused; the message says what is wrong and how to fix it. ``field`` names
    the form field at fault, where there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Details:
    """What a person enters for a subscriber."""

    channel: Channel
    name: str
    organisation: str | None
    address: str | None  # e-mail address or webhook URL, by channel
    area_codes: Sequence[str]
    audiences: Sequence[str]
    receives_restricted: bool = True


def _keys() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def encrypt_secret(sub: Subscriber, column: str, secret: str) -> str:
    return _keys().encrypt(secret, table=TABLE, column=column, record=str(sub.uuid))


def decrypt_secret(sub: Subscriber, column: str, stored: str) -> str:
    return _keys().decrypt(stored, table=TABLE, column=column, record=str(sub.uuid))


def secrets_for(sub: Subscriber, now: datetime | None = None) -> list[str]:
    """The secrets signing for ``sub`` now: the current one, then the previous one while the
    rotation overlap lasts."""
    found: list[str] = []
    if sub.secret_enc:
        found.append(decrypt_secret(sub, "secret", sub.secret_enc))
    until = sub.previous_secret_until
    if sub.previous_secret_enc and until is not None and until > (now or utcnow()):
        found.append(decrypt_secret(sub, "previous_secret", sub.previous_secret_enc))
    return found


# -- checking what was entered --------------------------------------------------------------------


def _text(value: str | None, what: str, field: str, *, required: bool) -> str | None:
    text = " ".join((value or "").split())
    if not text:
        if required:
            raise SubscriberError(f"Enter the {what}.", field)
        return None
    if len(text) > NAME_MAX:
        raise SubscriberError(f"The {what} is at most {NAME_MAX} characters: shorten it.", field)
    if _CONTROL.search(text):
        raise SubscriberError(f"The {what} cannot hold control characters.", field)
    return text


def _email(value: str | None) -> str:
    raw = (value or "").strip()
    if not raw:
        raise SubscriberError("Enter the e-mail address alerts go to.", "address")
    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        raise SubscriberError(
            "That is not an e-mail address: write it like name@example.org.", "address"
        ) from None
    return str(checked.normalized)


def _url(value: str | None) -> str:
    url = (value or "").strip()
    problem = webhooks.url_problem(
        url, allow_loopback=bool(current_app.config["WEBHOOK_ALLOW_LOOPBACK"])
    )
    if problem:
        raise SubscriberError(problem, "address")
    return url


def _areas(codes: Iterable[str], user: User | None, current: Iterable[Area] = ()) -> list[Area]:
    """The chosen areas. A coordinator adds or removes only areas they hold; areas they do not
    hold that the subscriber already covers stay as they are."""
    wanted = {str(c).strip().upper() for c in codes if str(c).strip()}
    areas = (
        list(db.session.scalars(select(Area).where(Area.ons_code.in_(wanted)))) if wanted else []
    )
    if len(areas) != len(wanted):
        raise SubscriberError("Choose areas from the list (ONS codes like E06000009).", "areas")
    mine = set(user.area_ids) if user is not None else None
    kept = [a for a in current if mine is not None and a.id not in mine]
    if mine is not None:
        if any(a.id not in mine for a in areas if a not in kept):
            raise SubscriberError(
                "You can only add areas you coordinate: ask a coordinator of that area.", "areas"
            )
        areas = [a for a in areas if a.id in mine]
    chosen = {a.id: a for a in [*kept, *areas]}
    if not any(mine is None or a.id in mine for a in chosen.values()):
        raise SubscriberError("Choose at least one area you coordinate.", "areas")
    return sorted(chosen.values(), key=lambda a: a.name)


def _audiences(codes: Iterable[str]) -> list[str]:
    chosen = sorted({str(c) for c in codes})
    unknown = [c for c in chosen if c not in AUDIENCES]
    if unknown:
        raise SubscriberError("Choose audiences from the list.", "audiences")
    return chosen


def audiences_of(sub: Subscriber) -> list[str]:
    try:
        value = json.loads(sub.audiences or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def audience_labels(sub: Subscriber) -> list[str]:
    return [AUDIENCES.get(c, c) for c in audiences_of(sub)]


def _snapshot(sub: Subscriber) -> dict[str, Any]:
    """What the audit entry keeps: no address (an e-mail address identifies a person)."""
    return {
        "channel": sub.channel.value,
        "areas": [a.ons_code for a in sub.areas],
        "audiences": audiences_of(sub),
        "receives_restricted": sub.receives_restricted,
    }


# -- changes ------------------------------------------------------------------------------------


def create(details: Details, *, by: User) -> tuple[Subscriber, str | None]:
    """Add a subscriber. Returns it with a webhook's new secret (None for e-mail): show it
    once; it is stored only encrypted."""
    name = _text(details.name, "name", "name", required=True)
    organisation = _text(details.organisation, "organisation", "organisation", required=False)
    sub = Subscriber(
        channel=details.channel,
        name=name,
        organisation=organisation,
        audiences=json.dumps(_audiences(details.audiences)),
        receives_restricted=bool(details.receives_restricted),
        is_active=True,
        consecutive_failures=0,
        created_at=utcnow(),
    )
    if details.channel == Channel.EMAIL:
        sub.email = _email(details.address)
    else:
        sub.url = _url(details.address)
    sub.areas = _areas(details.area_codes, by)
    db.session.add(sub)
    db.session.flush()  # the UUID binds the encrypted secret to this row
    secret = None
    if details.channel == Channel.WEBHOOK:
        secret = webhooks.new_secret()
        sub.secret_enc = encrypt_secret(sub, "secret", secret)
    record("alerts.subscriber.created", actor=by, object_type=TABLE, object_uuid=sub.uuid,
           details=_snapshot(sub))
    return sub, secret


def update(sub: Subscriber, details: Details, *, by: User) -> None:
    """Change a subscriber's details (not its channel, nor its secret: see ``rotate_secret``)."""
    if details.channel != sub.channel:
        raise SubscriberError(
            "A subscriber's channel cannot change: add a new subscriber instead.", "channel"
        )
    sub.name = _text(details.name, "name", "name", required=True)  # type: ignore[assignment]
    sub.organisation = _text(details.organisation, "organisation", "organisation",
                             required=False)
    if sub.channel == Channel.EMAIL:
        sub.email = _email(details.address)
    else:
        sub.url = _url(details.address)
    sub.areas = _areas(details.area_codes, by, sub.areas)
    sub.audiences = json.dumps(_audiences(details.audiences))
    sub.receives_restricted = bool(details.receives_restricted)
    record("alerts.subscriber.updated", actor=by, object_type=TABLE, object_uuid=sub.uuid,
           details=_snapshot(sub))


def disable(sub: Subscriber, reason: str | None, *, by: User) -> int:
    """Stop sending to a subscriber; its waiting deliveries are given up. Returns how many."""
    if not sub.is_active:
        raise SubscriberError("This subscriber is already disabled.")
    text = _text(reason, "reason", "reason", required=False) or "disabled by a coordinator"
    sub.is_active = False
    sub.disabled_reason = text[:200]
    sub.disabled_at = utcnow()
    given_up = give_up_waiting(sub.id, "subscriber disabled")
    record("alerts.subscriber.disabled", actor=by, object_type=TABLE, object_uuid=sub.uuid,
           reason=sub.disabled_reason, details={"gave_up": given_up})
    return given_up


def enable(sub: Subscriber, *, by: User) -> int:
    """Send to a subscriber again: the reason and the failure count are cleared, and what it
    missed that still matters is queued again (``broadcast.resend_what_still_matters``: alerts
    still in force, and the end of alerts it knew of; superseded versions are not re-sent).
    Returns how many deliveries were queued again."""
    if sub.is_active:
        raise SubscriberError("This subscriber is already active.")
    previous = sub.disabled_reason
    sub.is_active = True
    sub.disabled_reason = None
    sub.disabled_at = None
    sub.consecutive_failures = 0
    resent = resend_what_still_matters(sub.id)
    record("alerts.subscriber.enabled", actor=by, object_type=TABLE, object_uuid=sub.uuid,
           details={"previous_reason": previous, "resent": resent})
    return resent


def rotate_secret(
    sub: Subscriber, *, by: User, overlap: timedelta | None = None
) -> tuple[str, datetime]:
    """A new secret for a webhook. The current one becomes the previous one and keeps signing
    (a second signature) until the returned time. Returns the new secret: show it once."""
    if sub.channel != Channel.WEBHOOK or not sub.secret_enc:
        raise SubscriberError("Only webhook endpoints have a signing secret.")
    overlap = overlap if overlap is not None else current_app.config["WEBHOOK_SECRET_OVERLAP"]
    current = decrypt_secret(sub, "secret", sub.secret_enc)
    secret = webhooks.new_secret()
    until = utcnow() + overlap
    sub.previous_secret_enc = encrypt_secret(sub, "previous_secret", current)
    sub.previous_secret_until = until
    sub.secret_enc = encrypt_secret(sub, "secret", secret)
    record("alerts.subscriber.secret_rotated", actor=by, object_type=TABLE,
           object_uuid=sub.uuid, details={"previous_valid_until": until.isoformat()})
    return secret, until


# -- reading ------------------------------------------------------------------------------------


def query_for(user: User, *, channel: str | None = None, status: str | None = None,
              q: str | None = None) -> Select[tuple[Subscriber]]:
    """Subscribers in the user's areas, newest first, filtered."""
    stmt = (
        select(Subscriber)
        .where(
            Subscriber.id.in_(
                select(subscriber_areas.c.subscriber_id).where(
                    subscriber_areas.c.area_id.in_(user.area_ids or {-1})
                )
            )
        )
        .order_by(Subscriber.created_at.desc(), Subscriber.id.desc())
    )
    if channel in {c.value for c in Channel}:
        stmt = stmt.where(Subscriber.channel == Channel(channel))
    if status == "active":
        stmt = stmt.where(Subscriber.is_active.is_(True))
    elif status == "disabled":
        stmt = stmt.where(Subscriber.is_active.is_(False))
    if q:
        typed = q.strip().lower()
        stmt = stmt.where(
            or_(
                contains(func.lower(Subscriber.name), typed),
                contains(func.lower(Subscriber.organisation), typed),
            )
        )
    return stmt
