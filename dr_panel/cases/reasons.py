"""Reveal reasons: checked for identifiers before they reach the audit log.

A reason is written to the append-only audit log, where it stays for good: nothing can take an
NHS number or a name back out of it. So it is checked with the identifier detector first
(``dr_panel.privacy.detector.detect``) under the forms' rule
(``dr_panel.cases.visibility.split_findings``):

- anything shaped like an identifier (NHS-number-like digits, a date that may be a date of birth,
  a postcode, an address, a phone number, an e-mail address), or the name of a person the user
  may see, refuses the reveal: nothing is revealed and the refusal is audited without the text;
- the name of a person the user may NOT see cannot be refused (the refusal would tell them that
  person is held), so the reveal goes ahead as with any other reason and those words are replaced
  by ``REMOVED`` in what is stored.

Reasons are not encrypted: the audit log is append-only and each entry's MAC covers its reason, so
a reason sealed under a field key could never be re-encrypted when that key is rotated (the key
would have to be kept for ever, or the reasons lost). A reason checked before it is stored needs
no key.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.cases.visibility import split_findings
from dr_panel.privacy.detector import detect, find_patterns

if TYPE_CHECKING:
    from dr_panel.auth.models import User

REFUSED = "Say why you need to see who this is, without naming or numbering anyone."
REMOVED = "[words removed]"


class ReasonRefused(ValueError):
    """The reason carries an identifier. ``kinds`` (what was found, never the text) are for the
    audit entry."""

    def __init__(self, kinds: list[str]) -> None:
        super().__init__(REFUSED)
        self.kinds = kinds


def checked_reason(reason: str, *, user: User, today: date | None = None) -> str:
    """The reason as it may be stored, or ``ReasonRefused``. The detector runs in full for every
    reason, so a reason naming someone held takes as long as one naming no one."""
    text = (reason or "").strip()
    if not text:
        return text
    shown, held = split_findings(detect({"reason": text}, today=today), user)
    shown += find_patterns(text, "reason", today=today)
    if shown:
        raise ReasonRefused(sorted({f.kind for f in shown}))
    spans: list[list[int]] = []
    for f in sorted(held, key=lambda f: (f.start, f.end)):
        if spans and f.start <= spans[-1][1]:  # overlapping or touching: one removal
            spans[-1][1] = max(spans[-1][1], f.end)
        else:
            spans.append([f.start, f.end])
    for start, end in reversed(spans):
        text = text[:start] + REMOVED + text[end:]
    return text


def reason_for_audit(
    reason: str, *, by: User, action: str, object_type: str, object_uuid: Any,
    details: dict[str, Any],
) -> str:
    """The reason as the audit entry of ``action`` may carry it, or ``ReasonRefused`` after a
    refusal entry of that action (the kinds found, never the text) is added to the caller's
    transaction. One rule for every page that asks why (reveal, subject access)."""
    try:
        return checked_reason(reason, user=by)
    except ReasonRefused as refused:
        record(
            action,
            outcome=Outcome.DENIED,
            actor=by,
            object_type=object_type,
            object_uuid=object_uuid,
            details={**details, "why": "identifier in reason", "kinds": refused.kinds},
        )
        raise
