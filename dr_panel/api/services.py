"""API tokens, and the JSON shapes of the API.

Tokens are shown once and stored only as their SHA-256 (``dr_panel.crypto.hash_token``); the
``drp_`` prefix makes a leaked one recognisable to secret scanners and to people. The first eight
characters after it are kept in clear so a person can tell their tokens apart: too few to use.

The JSON shapes here are the whole of what the API says about a case. The pseudonymised view has
no name, date of birth, NHS number, address, postcode or exact age; identifiers are added only by
``revealed_json`` after ``dr_panel.cases.services.reveal`` has written its audit entry.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import current_app, has_request_context
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from dr_panel.audit.services import record
from dr_panel.auth.models import ApiToken, User
from dr_panel.cases import identity as ident
from dr_panel.cases.models import Case, CaseStatus, CaseType
from dr_panel.cases.services import FIELDS, LABELS, CaseFilter
from dr_panel.crypto import hash_token, new_token
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.forms import plain_number

TOKEN_PREFIX = "drp_"  # noqa: S105  (a marker, not a secret)
SHOWN_CHARS = 8
NAME_MAX = 80
NAME_REQUIRED = "Give the token a name that says where it is used, like 'ambulance feed'."


class TokenError(ValueError):
    """A token request that cannot be done; the message says why and what to do."""


# -- tokens -------------------------------------------------------------------------------------

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
    from dr_panel.auth.services import second_factor_required

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


# -- JSON shapes --------------------------------------------------------------------------------


def _value(member: Any) -> Any:
    return member.value if member is not None else None


@dataclass(frozen=True)
class Linked:
    """How many other cases of each person the user can see (never those they cannot)."""

    counts: Mapping[int, int]

    @classmethod
    def for_cases(cls, cases: Sequence[Case], user: User) -> Linked:
        person_ids = {c.person_id for c in cases}
        if not person_ids:
            return cls({})
        rows = db.session.execute(
            select(Case.person_id, func.count())
            .where(Case.person_id.in_(person_ids), Case.area_id.in_(user.area_ids or {-1}))
            .group_by(Case.person_id)
        )
        return cls({pid: n for pid, n in rows})

    def other_cases(self, case: Case) -> int:
        return max(self.counts.get(case.person_id, 1) - 1, 0)


def case_json(case: Case, linked: Linked) -> dict[str, Any]:
    """The pseudonymised case: nothing that names or locates the person more than a district."""
    return {
        "uuid": str(case.uuid),
        "reference": case.reference,
        "case_type": case.case_type.value,
        "status": case.status.value,
        "area": {"code": case.area.ons_code, "name": case.area.name},
        "notifying_agency": case.notifying_agency.code if case.notifying_agency else None,
        "notified_on": case.notified_on.isoformat(),
        "event_date": case.event_date.isoformat(),
        "event_time": case.event_time.strftime("%H:%M") if case.event_time else None,
        "date_is_found": case.date_is_found,
        "setting": case.setting.value,
        "substances": [s.code for s in case.substances],
        "route": case.route.value,
        "naloxone_given": case.naloxone_given.value,
        "naloxone_by": _value(case.naloxone_by),
        "naloxone_doses": case.naloxone_doses,
        "nfo_outcome": _value(case.nfo_outcome),
        "treatment_status": case.treatment_status.value,
        "recent_prison_release": case.recent_prison_release.value,
        "housing_status": case.housing_status.value,
        "children_in_household": case.children_in_household.value,
        "previous_overdoses": case.previous_overdoses,
        "toxicology": _value(case.toxicology),
        "coroner_stage": _value(case.coroner_stage),
        "age_band": case.age_band,
        "postcode_district": case.postcode_district,
        "match_status": case.match_status.value,
        "person": str(case.person.uuid),
        "linked_cases": linked.other_cases(case),
    }


def identifiers_json(case: Case, identity: ident.Identity) -> dict[str, Any]:
    return {
        "full_name": identity.full_name,
        "date_of_birth": identity.dob.isoformat() if identity.dob else None,
        "nhs_number": identity.nhs_number,
        "address": identity.address,
        "postcode": identity.postcode,
        "sex": case.person.sex.value,
    }


def cases_json(cases: Iterable[Case], user: User) -> list[dict[str, Any]]:
    items = list(cases)
    linked = Linked.for_cases(items, user)
    return [case_json(c, linked) for c in items]


# -- input --------------------------------------------------------------------------------------
#
# The API checks only the JSON *types* of a notification (so an object can never pass as a name);
# every value is then judged by ``dr_panel.cases.services.parse_notification``, the one validator
# for every door. The OpenAPI document is built from the constants below, so it cannot drift.

STRING_MAX = 500  # any string in a notification; the parser then applies each field's own limit
LIST_MAX = 30
BODY_INTEGERS: dict[str, tuple[int, int]] = {
    # The ranges parse_notification enforces (tests/api check both ends).
    "naloxone_doses": (1, 20),
    "previous_overdoses": (0, 500),
}
BODY_BOOLEANS = {"date_is_found"}
BODY_LISTS = {"substances"}
BODY_DATES = {"notified_on", "event_date", "date_of_birth"}
BODY_MAX_BYTES = 64 * 1024

PAGE_MAX = 100_000
PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 200
QUERY_PARAMS = ("type", "area", "status", "since", "until", "substance", "page", "per_page")
REVEAL_PARAMS = ("reveal", "reason")
REASON_HEADER = "X-Reveal-Reason"
REASON_MAX = 500


def storable(text: str, *, newlines: bool = False) -> bool:
    """No NUL or other control characters (PostgreSQL text refuses NUL), no lone surrogates
    (they cannot be encoded to UTF-8, so cannot be encrypted or stored)."""
    allowed = "\t\n\r" if newlines else "\t"
    return not any(
        (unicodedata.category(ch) == "Cc" and ch not in allowed) or "\ud800" <= ch <= "\udfff"
        for ch in text
    )


def _label(key: str) -> str:
    return LABELS.get(key, key)


def notification_input(body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A JSON notification as the strings (and lists) ``parse_notification`` reads, with a message
    for every key that is unknown or of the wrong JSON type. ``null`` means blank."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in body:
        if key not in FIELDS:
            errors[key] = (
                "Unknown field: not accepted. Use only the fields of a notification listed in "
                "/api/v1/openapi.json."
            )
    for key in FIELDS:
        if key not in body or body[key] is None:
            continue
        value = body[key]
        label = _label(key)
        if key in BODY_INTEGERS:
            if isinstance(value, bool) or not isinstance(value, int):
                lo, hi = BODY_INTEGERS[key]
                errors[key] = f"{label}: give a whole number from {lo} to {hi}, or null."
            else:
                data[key] = str(value)
        elif key in BODY_BOOLEANS:
            if not isinstance(value, bool):
                errors[key] = f"{label}: give true or false."
            else:
                data[key] = "yes" if value else "no"
        elif key in BODY_LISTS and isinstance(value, list):
            if len(value) > LIST_MAX or not all(
                isinstance(v, str) and len(v) <= STRING_MAX and storable(v) for v in value
            ):
                errors[key] = (
                    f"{label}: give a list of at most {LIST_MAX} substance codes (strings), "
                    "or one string of codes separated by commas."
                )
            else:
                data[key] = value
        elif not isinstance(value, str):
            errors[key] = f"{label}: give a string (text in double quotes), or null."
        elif len(value) > STRING_MAX:
            errors[key] = f"{label}: at most {STRING_MAX} characters."
        elif not storable(value, newlines=key == "address"):
            errors[key] = f"{label}: remove the control or invalid characters."
        else:
            data[key] = value
    return data, errors


@dataclass(frozen=True)
class CaseQuery:
    filter: CaseFilter
    page: int
    per_page: int


def _one(args: Any, name: str, errors: dict[str, str]) -> str | None:
    values = args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        errors[name] = f"Give {name} once."
        return None
    return str(values[0])


def _whole(
    raw: str | None, name: str, lo: int, hi: int, default: int, errors: dict[str, str]
) -> int:
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 7 and lo <= int(raw) <= hi:
        return int(raw)
    errors[name] = f"{name}: give a whole number from {lo} to {hi}."
    return default


def iso_date(raw: str) -> date | None:
    """A calendar date written YYYY-MM-DD, exactly (RFC 3339 full-date), or None."""
    if len(raw) != 10 or not raw.isascii() or raw[4] != "-" or raw[7] != "-":
        return None
    if not (raw[:4] + raw[5:7] + raw[8:]).isdigit():
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def case_query(
    args: Any, user: User, substance_codes: Iterable[str]
) -> tuple[CaseQuery | None, dict[str, str]]:
    """The list filters, each checked: an unknown name or value is refused, never ignored."""
    errors: dict[str, str] = {}
    for name in args:
        if name not in QUERY_PARAMS:
            errors[name] = (
                f"Unknown parameter: use {', '.join(QUERY_PARAMS[:-1])} or {QUERY_PARAMS[-1]}."
            )
    case_type = status = None
    if (raw := _one(args, "type", errors)) is not None:
        if raw in {m.value for m in CaseType}:
            case_type = CaseType(raw)
        else:
            errors["type"] = "type: use one of " + ", ".join(m.value for m in CaseType) + "."
    if (raw := _one(args, "status", errors)) is not None:
        if raw in {m.value for m in CaseStatus}:
            status = CaseStatus(raw)
        else:
            errors["status"] = "status: use one of " + ", ".join(m.value for m in CaseStatus) + "."
    area = _one(args, "area", errors)
    mine = sorted(a.ons_code for a in user.areas)
    if area is not None and area not in mine:
        errors["area"] = (
            "area: not one of your areas. Use the ONS code of an area you work in: "
            + (", ".join(mine) or "you have none")
            + "."
        )
    substance = _one(args, "substance", errors)
    if substance is not None and substance not in set(substance_codes):
        errors["substance"] = "substance: unknown code. Use a code from the list in openapi.json."
    dates = {}
    for name in ("since", "until"):
        raw = _one(args, name, errors)
        if raw is not None:
            dates[name] = iso_date(raw)
            if dates[name] is None:
                errors[name] = f"{name}: write the date as YYYY-MM-DD, like 2026-03-14."
    if dates.get("since") and dates.get("until") and dates["since"] > dates["until"]:
        errors["until"] = "until is before since: check both dates."
    page = _whole(_one(args, "page", errors), "page", 1, PAGE_MAX, 1, errors)
    per_page = _whole(
        _one(args, "per_page", errors), "per_page", 1, PER_PAGE_MAX, PER_PAGE_DEFAULT, errors
    )
    if errors:
        return None, errors
    return (
        CaseQuery(
            CaseFilter(
                case_type=case_type,
                area_code=area,
                status=status,
                since=dates.get("since"),
                until=dates.get("until"),
                substance=substance,
            ),
            page,
            per_page,
        ),
        {},
    )


def reveal_request(args: Any, headers: Any) -> tuple[str | None, dict[str, str]]:
    """``reveal=1`` with a reason in the ``X-Reveal-Reason`` header asks for the identifiers (a
    ``reason`` in the query is refused: it would be logged). Returns the reason, None for the
    pseudonymised view, or the messages."""
    errors: dict[str, str] = {}
    for name in args:
        if name not in REVEAL_PARAMS:
            errors[name] = (
                f"Unknown parameter: use reveal and reason (or the {REASON_HEADER} header)."
            )
    reveal = _one(args, "reveal", errors)
    if reveal is not None and reveal not in {"0", "1"}:
        errors["reveal"] = "reveal: give 1 to reveal the identifiers (with a reason), or 0."
    # A reason in the address would sit in every proxy's and web server's access log, where the
    # reason check below comes too late to keep an identifier out: the header only.
    in_query = _one(args, "reason", errors)
    if in_query is not None:
        errors["reason"] = (
            f"Send the reason in the {REASON_HEADER} header, not in the address: addresses are "
            "written to web server logs. Nothing was revealed."
        )
    in_header = headers.get(REASON_HEADER)
    if in_header is not None:
        try:  # WSGI hands headers over as latin-1; a client sending UTF-8 meant UTF-8
            in_header = in_header.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    reason = in_header if in_query is None else None
    if reason is not None and len(reason) > REASON_MAX:
        errors["reason"] = f"reason: at most {REASON_MAX} characters."
    elif reason is not None and not storable(reason):
        errors["reason"] = "reason: remove the control or invalid characters."
    if reveal == "1" and not (reason or "").strip() and "reason" not in errors:
        errors["reason"] = (
            "Say why you need to see who this person is (for example 'preparing the panel "
            f"review'), in the {REASON_HEADER} header. Do not put "
            "names or other identifiers in it."
        )
    if reveal != "1" and reason is not None and "reason" not in errors and "reveal" not in errors:
        errors["reveal"] = "A reason was given without reveal=1: add reveal=1 to see identifiers."
    if errors:
        return None, errors
    return (reason.strip() if reveal == "1" and reason else None), {}


# -- workflow, requests and returns ------------------------------------------------------------
#
# Each body is checked against a small spec (the OpenAPI document is built from the same specs),
# then judged by the services the pages call: ``dr_panel.cases.workflow.move``,
# ``dr_panel.reviews.services.send_requests`` and ``save_return``.

VERSION_MAX = 2**31 - 1
REASON_TEXT_MAX = 2000  # workflow.move's limit on a reason, and send_requests' on a note
RETURN_TEXT_MAX = 20000  # save_return's limit on each text
REFERENCE_MAX = 40


@dataclass(frozen=True)
class Field:
    """One key of a JSON body: its kind ('text', 'date', 'version', 'bool', 'choice',
    'choices', 'number' or 'whole'), whether it is required, and for text its length limit, for
    choices the values, for numbers the range ``low..high``."""

    kind: str
    required: bool = False
    max_length: int = STRING_MAX
    low: float = 0.0  # 'number' and 'whole'
    high: float = 0.0
    values: tuple[str, ...] = ()
    newlines: bool = True
    minimum: int = 1  # 'version': the least accepted; 'choices' and 'objects': fewest items
    max_items: int = LIST_MAX  # 'choices' and 'objects'
    fields: Mapping[str, Field] | None = None  # 'object' and 'objects': each one's keys


def check_body(body: Any, spec: Mapping[str, Field]) -> tuple[dict[str, Any], dict[str, str]]:
    """The body's values, typed (dates as ``date``), with a message for every key that is
    unknown, missing or of the wrong type. ``null`` means not given."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in body:
        if key not in spec:
            errors[key] = "Unknown field: not accepted. Use only: " + ", ".join(spec) + "."
    for key, field in spec.items():
        value = body.get(key)
        if value is None:
            if field.required:
                errors[key] = f"{key}: required."
            continue
        if field.kind == "text":
            if not isinstance(value, str):
                errors[key] = f"{key}: give a string, or null."
            elif len(value) > field.max_length:
                errors[key] = f"{key}: at most {field.max_length} characters."
            elif not storable(value, newlines=field.newlines):
                errors[key] = f"{key}: remove the control or invalid characters."
            else:
                data[key] = value
        elif field.kind == "date":
            parsed = iso_date(value) if isinstance(value, str) else None
            if parsed is None:
                errors[key] = f"{key}: write the date as YYYY-MM-DD, like 2026-03-14."
            else:
                data[key] = parsed
        elif field.kind == "version":
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not field.minimum <= value <= VERSION_MAX
            ):
                errors[key] = f"{key}: give the whole number 'version' you were last given."
            else:
                data[key] = value
        elif field.kind == "bool":
            if not isinstance(value, bool):
                errors[key] = f"{key}: give true or false."
            else:
                data[key] = value
        elif field.kind in ("number", "whole"):
            whole = field.kind == "whole"
            fits = (
                not isinstance(value, bool)
                and isinstance(value, int if whole else (int, float))
                and math.isfinite(value)
                and field.low <= value <= field.high
            )
            if not fits:
                errors[key] = (f"{key}: give {'a whole number' if whole else 'a number'} from "
                               f"{plain_number(field.low)} to {plain_number(field.high)}.")
            else:
                data[key] = int(value) if whole else float(value)
        elif field.kind == "choice":
            if not isinstance(value, str) or value not in field.values:
                errors[key] = f"{key}: use one of " + ", ".join(field.values) + "."
            else:
                data[key] = value
        elif field.kind == "choices":
            if (
                not isinstance(value, list)
                or not field.minimum <= len(value) <= field.max_items
                or not all(isinstance(v, str) and v in field.values for v in value)
                or len(set(value)) != len(value)
            ):
                least = "at least one code" if field.minimum else "codes"
                errors[key] = (
                    f"{key}: give a list of {least}, each once, from: "
                    + (", ".join(field.values) or "none")
                    + "."
                )
            else:
                data[key] = value
        elif field.kind == "object":
            if not isinstance(value, dict):
                errors[key] = f"{key}: give a JSON object, or null."
            else:
                inner, wrong = check_body(value, field.fields or {})
                errors.update({f"{key}.{k}": m for k, m in wrong.items()})
                data[key] = inner
        elif field.kind == "objects":
            if not isinstance(value, list) or not field.minimum <= len(value) <= field.max_items:
                errors[key] = f"{key}: give a list of at most {field.max_items} objects."
                continue
            items = []
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    errors[f"{key}[{i}]"] = f"{key}[{i}]: give a JSON object."
                    continue
                inner, wrong = check_body(item, field.fields or {})
                errors.update({f"{key}[{i}].{k}": m for k, m in wrong.items()})
                items.append(inner)
            data[key] = items
        else:  # pragma: no cover
            raise KeyError(field.kind)
    return data, errors


def transition_spec() -> dict[str, Field]:
    from dr_panel.cases.workflow import TRANSITIONS

    return {
        "transition": Field("choice", required=True, values=tuple(t.name for t in TRANSITIONS)),
        "reason": Field("text", max_length=REASON_TEXT_MAX),
        "expected_on": Field("date"),
        "duplicate_of": Field("text", max_length=REFERENCE_MAX, newlines=False),
        "version": Field("version"),
    }


# workflow.WorkflowError names the page's form fields; the API's keys differ for one.
WORKFLOW_FIELDS = {"why": "reason"}


def request_spec(agency_codes: Sequence[str]) -> dict[str, Field]:
    return {
        "agencies": Field("choices", required=True, values=tuple(agency_codes)),
        "due_on": Field("date", required=True),
        "note": Field("text", max_length=REASON_TEXT_MAX),
    }


def return_spec() -> dict[str, Field]:
    from dr_panel.cases.models import YesNoUnknown
    from dr_panel.reviews.models import RETURN_TEXTS, Engagement

    spec = {
        "known_to_agency": Field(
            "choice", required=True, values=tuple(m.value for m in YesNoUnknown)
        ),
        "first_contact_on": Field("date"),
        "last_contact_on": Field("date"),
        "engagement": Field("choice", required=True, values=tuple(m.value for m in Engagement)),
    }
    for stem, _ in RETURN_TEXTS:
        spec[stem] = Field("text", max_length=RETURN_TEXT_MAX)
    spec["submit"] = Field("bool", required=True)
    spec["version"] = Field("version")
    return spec


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def transitions_json(case: Case, user: User) -> dict[str, Any]:
    """The moves the user may make now, and the case's timeline (reasons decrypted: only case
    readers reach this)."""
    from dr_panel.cases.workflow import available, reason_of

    return {
        "case": str(case.uuid),
        "status": case.status.value,
        "version": case.version,
        "available": [
            {
                "transition": t.name,
                "label": t.label,
                "to_status": t.target.value,
                "needs_reason": t.needs_reason,
                "needs_expected_on": t.needs_date,
                "needs_duplicate_of": t.needs_duplicate_of,
                "hint": t.hint,
            }
            for t in available(case, user)
        ],
        "timeline": [
            {
                "uuid": str(e.uuid),
                "occurred_at": e.occurred_at.isoformat(),
                "transition": e.transition,
                "from_status": e.from_status.value,
                "to_status": e.to_status.value,
                "by": e.actor.display_name if e.actor is not None else None,
                "reason": reason_of(e),
                "expected_on": _iso(e.expected_on),
            }
            for e in sorted(case.events, key=lambda e: (e.occurred_at, e.id))
        ],
    }


def request_json(req: Any) -> dict[str, Any]:
    """A request and its return, with no identifier of the person (the agency reveals those on
    the page, audited)."""
    from dr_panel.reviews.models import RETURN_TEXTS
    from dr_panel.reviews.services import text_of

    today = utcnow().date()
    return {
        "uuid": str(req.uuid),
        "case": {
            "uuid": str(req.case.uuid),
            "reference": req.case.reference,
            "case_type": req.case.case_type.value,
            "area": {"code": req.case.area.ons_code, "name": req.case.area.name},
        },
        "agency": {"code": req.agency.code, "name": req.agency.name},
        "status": req.status.value,
        "due_on": req.due_on.isoformat(),
        "overdue": req.is_overdue(today),
        "requested_at": req.requested_at.isoformat(),
        "note": text_of(req, "note"),
        "known_to_agency": req.known_to_agency.value,
        "first_contact_on": _iso(req.first_contact_on),
        "last_contact_on": _iso(req.last_contact_on),
        "engagement": req.engagement.value,
        **{stem: text_of(req, stem) for stem, _ in RETURN_TEXTS},
        "saved_at": _iso(req.saved_at),
        "returned_at": _iso(req.returned_at),
        "version": req.version,
    }


# -- actions ------------------------------------------------------------------------------------

ACTION_TEXT_MAX = 4000  # the actions service's limit on each text


def action_spec(agency_codes: Sequence[str]) -> dict[str, Field]:
    return {
        "description": Field("text", required=True, max_length=ACTION_TEXT_MAX),
        "agency": Field("choice", required=True, values=tuple(agency_codes)),
        "due_on": Field("date", required=True),
    }


def action_update_spec() -> dict[str, Field]:
    from dr_panel.reviews.actions import ActionStatus

    return {
        "status": Field("choice", required=True, values=tuple(m.value for m in ActionStatus)),
        "evidence": Field("text", max_length=ACTION_TEXT_MAX),
        "reason": Field("text", max_length=ACTION_TEXT_MAX),
        "version": Field("version"),
    }


def action_json(action: Any) -> dict[str, Any]:
    """An action, with no identifier of the person."""
    from dr_panel.reviews.actions import text_of

    case = action.case
    return {
        "uuid": str(action.uuid),
        "case": {
            "uuid": str(case.uuid),
            "reference": case.reference,
            "case_type": case.case_type.value,
            "area": {"code": case.area.ons_code, "name": case.area.name},
        },
        "agency": {"code": action.owner_agency.code, "name": action.owner_agency.name},
        "description": text_of(action, "description") or "",
        "due_on": action.due_on.isoformat(),
        "status": action.status.value,
        "overdue": action.is_overdue(utcnow().date()),
        "evidence": text_of(action, "evidence"),
        "not_accepted_reason": text_of(action, "not_accepted_reason"),
        "created_at": action.created_at.isoformat(),
        "updated_at": _iso(action.updated_at),
        "completed_at": _iso(action.completed_at),
        "version": action.version,
    }


# -- findings and safety plans ------------------------------------------------------------------

FACTORS_MAX = 40  # new factors in one save


def findings_spec(theme_codes: Sequence[str]) -> dict[str, Field]:
    from dr_panel.reviews import findings as fd

    factor = {
        "domain": Field("choice", required=True, values=tuple(m.value for m in fd.Domain)),
        "description": Field("text", required=True, max_length=fd.MAX_SHORT),
        "score": Field("choice", required=True, values=tuple(m.value for m in fd.Score)),
        "is_modifiable": Field("bool"),
    }
    point = {
        "text": Field("text", required=True, max_length=fd.MAX_SHORT),
        "themes": Field("choices", values=tuple(theme_codes), minimum=0),
    }
    return {
        "factors": Field("objects", required=True, minimum=0, max_items=FACTORS_MAX, fields=factor),
        "missed_opportunities": Field("text", max_length=fd.MAX_TEXT),
        "preventability": Field("choice", values=tuple(m.value for m in fd.Preventability)),
        "learning_point": Field("object", fields=point),
        "version": Field("version", required=True, minimum=0),
    }


def findings_errors(err: Any, body: Mapping[str, Any]) -> dict[str, str]:
    """A FindingsError keyed by the API's names (the service names the page's fields)."""
    field = err.field
    factors = body.get("factors") or []
    for stem in ("_description", "_score"):
        if field.endswith(stem):
            domain = field[: -len(stem)]
            for i, f in enumerate(factors):
                if isinstance(f, dict) and f.get("domain") == domain:
                    return {f"factors[{i}].{stem[1:]}": str(err)}
            return {"factors": str(err)}
    key = {"learning_point": "learning_point.text", "themes": "learning_point.themes"}.get(
        field, "missed_opportunities"
    )
    return {key: str(err)}


def findings_json(case: Case, view: Any) -> dict[str, Any]:
    """The panel's findings on a case, with no identifier of the person."""
    review = view.review
    return {
        "case": str(case.uuid),
        "version": view.version,
        "preventability": review.preventability.value if review is not None else "not_known",
        "missed_opportunities": view.missed_opportunities,
        "updated_at": _iso(review.updated_at) if review is not None else None,
        "factors": {
            domain.value: [
                {
                    "uuid": str(s.factor.uuid),
                    "description": s.description,
                    "score": s.factor.score.value,
                    "is_modifiable": s.factor.is_modifiable,
                    "created_at": s.factor.created_at.isoformat(),
                }
                for s in shown
            ]
            for domain, shown in view.factors.items()
        },
        "learning_points": [
            {
                "uuid": str(p.point.uuid),
                "text": p.text,
                "themes": [t.code for t in p.point.themes],
                "created_at": p.point.created_at.isoformat(),
            }
            for p in view.learning_points
        ],
    }


def plan_spec(agency_codes: Sequence[str]) -> dict[str, Field]:
    from dr_panel.reviews import actions as act

    return {
        "status": Field("choice", required=True, values=tuple(m.value for m in act.PlanStatus)),
        "risks": Field("text", max_length=act.MAX_TEXT),
        "protective": Field("text", max_length=act.MAX_TEXT),
        "interventions": Field(
            "choices",
            required=True,
            minimum=0,
            values=tuple(m.value for m in act.Intervention),
        ),
        "lead": Field("text", required=True, max_length=40, newlines=False),
        "lead_agency": Field("choice", values=tuple(agency_codes)),
        "review_on": Field("date"),
        "version": Field("version", required=True, minimum=0),
    }


def plan_json(plan: Any, user: User) -> dict[str, Any]:
    """A person's safety plan, with no identifier of the person; the case it was made from only
    when the user may see that case."""
    from dr_panel.reviews.actions import text_of

    made_from = plan.case
    return {
        "uuid": str(plan.uuid),
        "case": (
            {"uuid": str(made_from.uuid), "reference": made_from.reference}
            if made_from.can_view(user)
            else None
        ),
        "status": plan.status.value,
        "risks": text_of(plan, "risks"),
        "protective": text_of(plan, "protective"),
        "interventions": [i.value for i in plan.intervention_list],
        "lead": {"uuid": str(plan.lead_user.uuid), "name": plan.lead_user.display_name},
        "lead_agency": (
            {"code": plan.lead_agency.code, "name": plan.lead_agency.name}
            if plan.lead_agency is not None
            else None
        ),
        "review_on": plan.review_on.isoformat(),
        "review_overdue": plan.review_overdue(utcnow().date()),
        "created_at": plan.created_at.isoformat(),
        "updated_at": _iso(plan.updated_at),
        "version": plan.version,
    }
