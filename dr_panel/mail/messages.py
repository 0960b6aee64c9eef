"""What an e-mail may say: links to the page built without a request, one-line headers, and the
identifier guard every message passes before it is queued.

Mail never carries an identifier: ``check_no_identifiers`` refuses NHS numbers, postcodes, full
numeric dates, old written dates and third parties' e-mail addresses. E-mails say what needs
doing and link to the page (URLs carry UUIDs only).
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import date
from typing import Any
from urllib.parse import unquote

from flask import current_app, has_app_context

from dr_panel.dbtypes import utcnow
from dr_panel.mail.transports import address_of
from dr_panel.privacy.detector import allowed_contacts, pattern_hits
from dr_panel.privacy.patterns import DOB_YEARS


class IdentifierInMail(ValueError):
    """A message would carry an identifier. The message names what kind, never the value."""

    def __init__(self, kinds: list[str] | str, where: str) -> None:
        self.kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        self.kind = self.kinds[0]
        self.where = where
        super().__init__(
            f"Refused to queue an e-mail: its {where} contains {' and '.join(self.kinds)}. "
            "E-mails carry links to the page, never identifiers."
        )


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_TAG = re.compile(r"<[^>]*>")
# A written date this many years back or more reads as a date of birth, not a due date.
WRITTEN_DATE_YEARS = DOB_YEARS
# What a refusal says each kind of identifier is: never the value, no digit but in the example.
_NUMERIC_DATE = (
    "a full date written in numbers, which may be a date of birth (write due dates in words, "
    "like 3 March 2026)"
)
_KIND_WORDS = {
    "nhs_number": "an NHS number",
    "postcode": "a postcode",
    "email": "an e-mail address other than the recipient's",
    "phone": "a personal phone number",
    "address": "a home address",
    "name": "a person's name",
}


def _problems(text: str, allowed_addresses: set[str], today: date) -> list[str]:
    """Every kind of identifier in ``text``, in words, through the identifier detector's
    pattern layer (``dr_panel.privacy``): the same shapes the alert leak gate refuses, read
    through look-alike letters and any separators, and every date written in numbers."""
    allowed = allowed_contacts() | frozenset(allowed_addresses)
    kinds: list[str] = []
    for hit in pattern_hits(text, today=today, allowed=allowed, any_numeric_date=True):
        if hit.kind == "date_of_birth":
            words = (
                _NUMERIC_DATE if hit.form in ("numeric", "short")
                else f"a date more than {WRITTEN_DATE_YEARS} years ago, which may be a date of "
                "birth"
            )  # fmt: skip
        else:
            words = _KIND_WORDS[hit.kind]
        if words not in kinds:
            kinds.append(words)
    return kinds


def _views(text: str, *, is_html: bool) -> list[str]:
    """The texts a reader (or a link) could show: as written, URL-decoded, and for HTML the
    visible text with entities decoded. UUIDs are blanked first: their digit groups could
    otherwise pass for an NHS number about once in a few hundred links."""
    views = [text, unquote(text)]
    if is_html:
        visible = html_lib.unescape(_TAG.sub("", text))
        views += [html_lib.unescape(text), visible]
    return [_UUID.sub(" ", v) for v in views]


def check_no_identifiers(
    subject: str, text: str, html: str | None = None, *, recipient: str | None = None
) -> None:
    """Raise ``IdentifierInMail`` if the message would carry an identifier.

    A backstop, not a licence: the identifier detector's patterns (NHS numbers, postcodes,
    phone numbers but services' and allowed ones, house numbers with a street, a title with a
    name, dates of birth), any full date written in numbers, and any e-mail address but the
    recipient's, the sender's and the allowed contacts. Each part is read as written,
    URL-decoded and, for HTML, as visible text. It cannot recognise a bare name: messages are
    built from templates that link to the record."""
    allowed = {a.casefold() for a in (recipient, _sender_address()) if a}
    today = utcnow().date()
    parts: list[tuple[str, str | None, bool]] = [
        ("subject", subject, False),
        ("text body", text, False),
        ("HTML body", html, True),
    ]
    for where, value, is_html in parts:
        if not value:
            continue
        kinds: list[str] = []
        for view in _views(value, is_html=is_html):
            kinds += [k for k in _problems(view, allowed, today) if k not in kinds]
        if kinds:
            raise IdentifierInMail(kinds, where)


def _sender_address() -> str | None:
    if not has_app_context():
        return None
    return address_of(current_app.config.get("MAIL_FROM", "")) or None


def link(endpoint: str, **values: Any) -> str:
    """An absolute link for an e-mail: ``BASE_URL`` + the route's path. Works without a request
    (workers, cron), and never takes the host from a request's headers."""
    adapter = current_app.url_map.bind("localhost")
    path = adapter.build(endpoint, values, force_external=False)
    return str(current_app.config["BASE_URL"]).rstrip("/") + path


def check_header(name: str, value: str, max_length: int) -> None:
    """A header (or a value stored beside one) is one line of 1 to ``max_length`` characters."""
    if not value or "\r" in value or "\n" in value or len(value) > max_length:
        raise ValueError(f"An e-mail's {name} must be one line of 1 to {max_length} characters.")
