"""The identifier-leak gate: nothing that identifies a person leaves in an alert or a
drug-concern report.

A thin door onto the one identifier detector (``dr_panel.privacy.detector``), which the e-mail
guard and every other free-text exit share: patterns on normalised text (NHS numbers, dates of
birth in any written form, postcodes, phone numbers, e-mail addresses, house numbers with a
street, a title with a name), and stored people through blind indexes over all the fields of a
draft together. Services' numbers pass, as harm-reduction advice needs them: Ofcom's
non-geographic ranges that are never a person's own line (03, 080, 084, 087; FRANK is 0300 123
6600), and the phone numbers and e-mail addresses an administrator lists in
``LEAK_GATE_ALLOWED_CONTACTS``.

A ``Finding`` carries the field, the span (in the text as typed) and the kind, never the matched
text: the page highlights the span from the field's own text, and logs, audit entries and
``repr`` stay clean. A stored person's match is its own finding (``stored=True``) with the same
kind and message as a pattern's, so callers can hide it from whoever may not know the person is
held, and what remains reads exactly as it would for a made-up name.
"""

from __future__ import annotations

from datetime import date

from dr_panel.cases.reindex import names_to_index, reindex_names
from dr_panel.privacy.detector import (
    DOB_WINDOW,
    KIND_MESSAGES,
    NAME_WINDOW,
    Finding,
    allowed_contacts,
    detect,
    find_patterns,
    merged_spans,
)
from dr_panel.privacy.patterns import DOB_YEARS, SERVICE_NUMBER_PREFIXES, national_number

__all__ = [
    "DOB_WINDOW", "DOB_YEARS", "KIND_MESSAGES", "NAME_WINDOW", "SERVICE_NUMBER_PREFIXES",
    "Finding", "allowed_contacts", "check_fields", "find_patterns", "merged_spans",
    "names_to_index", "national_number", "reindex_names",
]  # fmt: skip


def check_fields(
    fields: dict[str, str], *, today: date | None = None, stored: bool = True
) -> list[Finding]:
    """Everything the gate finds in ``fields`` (name -> text), in field order then position,
    all fields read together. ``stored=False`` runs the patterns only (no database); otherwise
    an app context is needed, as stored people are looked up through the blind indexes."""
    return detect(fields, today=today, stored=stored)
