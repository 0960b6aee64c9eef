"""The identifier-leak gate: nothing that identifies a person leaves in an alert.

Two checks over every text field of a draft (or a drug-concern report):

1. Patterns, shared with the e-mail guard (``dr_panel.mail.services``): NHS numbers with a valid
   modulus-11 check digit (spaced or not), full UK postcodes, dates that could be dates of birth
   (a full date ten or more years ago, in numbers or in words), phone numbers, e-mail addresses.
   Recent and future dates pass ("since 20 November 2026"), as do doses ("10mg"), counts and
   street names without a number. Services' numbers pass too, as harm-reduction advice needs
   them: Ofcom's non-geographic ranges that are never a person's own line (03, 080, 084, 087;
   FRANK is 0300 123 6600), and the phone numbers and e-mail addresses an administrator lists in
   ``LEAK_GATE_ALLOWED_CONTACTS`` (a local service's published landline or inbox). Landlines
   (01, 02), mobiles and personal numbers (07) and every other address are blocked.
2. People held in dr-panel, through the blind indexes only: each word and each pair of nearby
   words is folded (``identity.fold``) and hashed as ``identity.name_index`` hashes a stored
   name; ten-digit runs as ``nhs_index``; a word near a date as ``name_dob_index``. The indexes
   are 20-bit, so at a million people almost every lookup meets someone by chance: a hit is
   confirmed by decrypting just that candidate's name (or NHS number, date of birth), never the
   table, and only a confirmed hit blocks.

A ``Finding`` carries the field, the span and the kind, never the matched text: the page
highlights the span from the field's own text, and logs, audit entries and ``repr`` stay clean.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from flask import current_app, has_app_context
from sqlalchemy import select

from dr_panel.cases import identity as ident
from dr_panel.crypto import DecryptionError
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.services import (
    _DMY,
    _DMY_SHORT,
    _EMAIL,
    _MONTHS,
    _POSTCODE,
    _TEN_DIGITS,
    _WRITTEN_DMY,
    _WRITTEN_MDY,
    _YMD,
    WRITTEN_DATE_YEARS,
)

# A full date at least this many years back reads as a date of birth, as in the e-mail guard.
DOB_YEARS = WRITTEN_DATE_YEARS
# Words this far apart (or closer) are tried as "first last" of a stored name, either order:
# "Jane Mary Smith" and "Smith, Jane" both reach "jane|smith".
NAME_WINDOW = 3
# A word this many words or fewer from a date is tried as the surname of someone born then.
DOB_WINDOW = 6
_CHUNK = 400  # values per IN (...) lookup

# UK phone numbers: +44 or 0, then 9 or 10 more digits, single spaces, dashes or a bracketed
# area code between them ("01253 477 000", "(01253) 477000", "+44 7700 900123", "07700900123").
_PHONE = re.compile(
    r"(?<![\w+])(?:\+44[^\S\r\n]?(?:\(0\)[^\S\r\n]?)?|\(?0)"
    r"\d(?:\)?[^\S\r\n-]?\d){8,9}(?![\w])"
)
# Ofcom's non-geographic ranges used by public services, charities and businesses; never a
# person's own landline or mobile: 03 (public bodies, charities), 080 (freephone), 084, 087.
SERVICE_NUMBER_PREFIXES = ("03", "080", "084", "087")
# Words: letters with inner apostrophes or hyphens ("O'Brien-Smith"); accents kept.
_WORD = re.compile(r"[^\W\d_][^\W\d_\u0300-\u036f]*(?:['\u2019\-][^\W\d_]+)*|[\u0300-\u036f]+")
_POSSESSIVE = re.compile(r"['\u2019]s$", re.I)

KIND_MESSAGES = {
    "nhs_number": "This looks like an NHS number (ten digits with a valid check digit). "
    "Remove it: alerts never identify a person.",
    "person_nhs": "This is the NHS number of a person held in dr-panel. Remove it.",
    "date_of_birth": f"This is a full date at least {DOB_YEARS} years ago, which may be a date "
    "of birth. Remove it, or give only the year or an age band.",
    "person_dob": "A name next to this date matches the surname and date of birth of a person "
    "held in dr-panel. Remove the date (or the name).",
    "postcode": "This is a full postcode, which can point to a home. Give only the district "
    "(e.g. FY1) or the town.",
    "phone": "This is a phone number (a landline or mobile). Remove it: alerts carry no "
    "personal contact details. Services' 03 and 08 numbers pass; for a service's own published "
    "number, ask your system administrator to allow it (LEAK_GATE_ALLOWED_CONTACTS).",
    "email": "This is an e-mail address. Remove it: alerts carry no personal contact details. "
    "For a service's published inbox, ask your system administrator to allow it "
    "(LEAK_GATE_ALLOWED_CONTACTS).",
    "person_name": "These words match the name of a person held in dr-panel. Remove or "
    "rephrase them: alerts never name anyone.",
}


@dataclass(frozen=True)
class Finding:
    """One offending span of one field. ``text[start:end]`` is the span; never stored here."""

    field: str
    start: int
    end: int
    kind: str
    message: str


def _finding(field: str, start: int, end: int, kind: str) -> Finding:
    return Finding(field, start, end, kind, KIND_MESSAGES[kind])


# -- patterns -----------------------------------------------------------------------------------


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def dates_in(text: str) -> Iterator[tuple[int, int, list[date]]]:
    """Every full date written in ``text``: ``(start, end, readings)``. A numeric date can read
    day-first or month-first; both readings are kept."""
    for m in _DMY.finditer(text):
        a, b, y = int(m.group(1)), int(m.group(3)), int(m.group(4))
        readings = [d for d in (_make_date(y, b, a), _make_date(y, a, b)) if d]
        if readings:
            yield m.start(), m.end(), readings
    this_century = utcnow().year % 100
    for m in _DMY_SHORT.finditer(text):
        a, b, yy = int(m.group(1)), int(m.group(2)), int(m.group(3))
        y = (2000 if yy <= this_century else 1900) + yy
        readings = [d for d in (_make_date(y, b, a), _make_date(y, a, b)) if d]
        if readings:
            yield m.start(), m.end(), readings
    for m in _YMD.finditer(text):
        d = _make_date(int(m.group(1)), int(m.group(3)), int(m.group(4)))
        if d:
            yield m.start(), m.end(), [d]
    for m in _WRITTEN_DMY.finditer(text):
        d = _make_date(int(m.group(3)), _MONTHS[m.group(2)[:3].lower()], int(m.group(1)))
        if d:
            yield m.start(), m.end(), [d]
    for m in _WRITTEN_MDY.finditer(text):
        d = _make_date(int(m.group(3)), _MONTHS[m.group(1)[:3].lower()], int(m.group(2)))
        if d:
            yield m.start(), m.end(), [d]


def _nhs_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Ten-digit runs (spaces or dashes between digits) with a valid check digit."""
    seen: set[int] = set()
    for m in _TEN_DIGITS.finditer(text):
        start = m.start(1)
        if start in seen:
            continue
        if ident.nhs_number_problem(m.group(1)) is None:
            seen.add(start)
            yield start, m.end(1), ident.nhs_digits(m.group(1))


def find_patterns(text: str, field: str = "text", *, today: date | None = None) -> list[Finding]:
    """Identifier-shaped spans of ``text``: NHS numbers, possible dates of birth, full
    postcodes, phone numbers, e-mail addresses. Needs no database."""
    today = today or utcnow().date()
    found: list[Finding] = []
    nhs = list(_nhs_spans(text))
    found += [_finding(field, s, e, "nhs_number") for s, e, _ in nhs]
    limit = today.year - DOB_YEARS
    for start, end, readings in dates_in(text):
        if any(d.year <= limit and d <= today for d in readings):
            found.append(_finding(field, start, end, "date_of_birth"))
    for m in _POSTCODE.finditer(text):
        if ident.normalise_postcode(m.group(0)):
            found.append(_finding(field, m.start(), m.end(), "postcode"))
    allowed = allowed_contacts()
    for m in _PHONE.finditer(text):
        if any(s <= m.start() < e for s, e, _ in nhs):  # an NHS number is reported once
            continue
        number = national_number(m.group(0))
        if not number.startswith(SERVICE_NUMBER_PREFIXES) and number not in allowed:
            found.append(_finding(field, m.start(), m.end(), "phone"))
    for m in _EMAIL.finditer(text):
        if m.group(0).casefold() not in allowed:
            found.append(_finding(field, m.start(), m.end(), "email"))
    return found


def national_number(written: str) -> str:
    """A UK phone number as its national digits: "+44 (0)300 123 6600" -> "03001236600"."""
    digits = re.sub(r"\D", "", written)
    if digits.startswith("440"):
        return digits[2:]
    if digits.startswith("44"):
        return "0" + digits[2:]
    return digits


def allowed_contacts() -> frozenset[str]:
    """``LEAK_GATE_ALLOWED_CONTACTS``: national phone digits and case-folded addresses."""
    if not has_app_context():
        return frozenset()
    listed = current_app.config.get("LEAK_GATE_ALLOWED_CONTACTS") or ()
    return frozenset(
        item.strip().casefold() if "@" in item else national_number(item) for item in listed
    )


# -- stored people, through the blind indexes ---------------------------------------------------


@dataclass
class _Word:
    start: int
    end: int
    folded: str


def _words(text: str) -> list[_Word]:
    out = []
    for m in _WORD.finditer(text):
        folded = ident.fold(_POSSESSIVE.sub("", m.group(0)))
        if folded:
            out.append(_Word(m.start(), m.end(), folded))
    return out


def _candidates(column: object, values: Iterable[int]) -> list[object]:
    """Persons whose blind index is one of ``values``: the few to confirm by decryption."""
    from dr_panel.cases.models import Person

    wanted = sorted(set(values))
    people: list[object] = []
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        people += db.session.scalars(select(Person).where(column.in_(chunk))).all()  # type: ignore[attr-defined]
    return people


def _decrypt(person: object, column: str) -> str | None:
    stored = getattr(person, f"{column}_enc")
    if not stored:
        return None
    try:
        return ident.keys().decrypt(
            stored, table="persons", column=column, record=str(person.uuid)  # type: ignore[attr-defined]
        )
    except DecryptionError:
        return None


def _stored_names(field: str, words: list[_Word]) -> list[Finding]:
    from dr_panel.cases.models import Person

    ring = ident.keys()
    pairs: dict[str, list[tuple[int, int]]] = {}
    for i, w in enumerate(words):
        pairs.setdefault(f"{w.folded}|{w.folded}", []).append((w.start, w.end))
        for j in range(i + 1, min(len(words), i + 1 + NAME_WINDOW)):
            v = words[j]
            span = (w.start, v.end)
            pairs.setdefault(f"{w.folded}|{v.folded}", []).append(span)
            pairs.setdefault(f"{v.folded}|{w.folded}", []).append(span)
    by_index: dict[int, list[str]] = {}
    for key in pairs:
        by_index.setdefault(ident._index(ident.NAME_INDEX, key, ring), []).append(key)
    found = []
    for person in _candidates(Person.bi_name, by_index):
        name = _decrypt(person, "name")
        key = ident.name_key(name or "")
        if key and key in by_index.get(person.bi_name, []):  # type: ignore[attr-defined]
            found += [_finding(field, s, e, "person_name") for s, e in pairs[key]]
    return found


def _stored_nhs(field: str, text: str) -> list[Finding]:
    from dr_panel.cases.models import Person

    spans = {}
    for start, end, digits in _nhs_spans(text):
        spans.setdefault(digits, []).append((start, end))
    if not spans:
        return []
    ring = ident.keys()
    by_index = {ident.nhs_index(d, ring): d for d in spans}
    found = []
    for person in _candidates(Person.bi_nhs, [k for k in by_index if k is not None]):
        stored = _decrypt(person, "nhs_number")
        if stored and stored in spans:
            found += [_finding(field, s, e, "person_nhs") for s, e in spans[stored]]
    return found


def _stored_dobs(field: str, text: str, words: list[_Word]) -> list[Finding]:
    from dr_panel.cases.models import Person

    ring = ident.keys()
    tries: dict[int, list[tuple[str, date, int, int]]] = {}
    for start, end, readings in dates_in(text):
        near = [
            w for w in words
            if _distance_in_words(words, w, start, end) <= DOB_WINDOW
        ]
        for w in near:
            for d in readings:
                bi = ident._index(ident.NAME_DOB_INDEX, f"{w.folded}|{d.isoformat()}", ring)
                tries.setdefault(bi, []).append((w.folded, d, start, end))
    found: list[Finding] = []
    for person in _candidates(Person.bi_name_dob, tries):
        name, dob = _decrypt(person, "name"), _decrypt(person, "dob")
        if not name or not dob:
            continue
        last = ident.fold(ident.surname(name))
        for folded, d, start, end in tries.get(person.bi_name_dob, []):  # type: ignore[attr-defined]
            if folded == last and d.isoformat() == dob:
                found.append(_finding(field, start, end, "person_dob"))
    return found


def _distance_in_words(words: list[_Word], word: _Word, start: int, end: int) -> int:
    """How many words lie between ``word`` and the span ``start..end`` (0: adjacent)."""
    if word.end <= start:
        return sum(1 for w in words if word.end <= w.start and w.end <= start)
    if word.start >= end:
        return sum(1 for w in words if end <= w.start and w.end <= word.start)
    return 0


def check_fields(fields: dict[str, str], *, today: date | None = None) -> list[Finding]:
    """Everything the gate finds in ``fields`` (name -> text), in field order then position.
    Needs an app context: stored people are looked up through the blind indexes."""
    found: list[Finding] = []
    for field, text in fields.items():
        if not text:
            continue
        words = _words(text)
        field_found = find_patterns(text, field, today=today)
        stored_nhs = _stored_nhs(field, text)
        if stored_nhs:  # the more specific message replaces the pattern's
            spans = {(f.start, f.end) for f in stored_nhs}
            field_found = [
                f for f in field_found
                if not (f.kind == "nhs_number" and (f.start, f.end) in spans)
            ]
        field_found += stored_nhs + _stored_names(field, words) + _stored_dobs(field, text, words)
        unique = {(f.start, f.end, f.kind): f for f in field_found}
        found += sorted(unique.values(), key=lambda f: (f.start, f.end, f.kind))
    return found


def merged_spans(text: str, findings: Iterable[Finding]) -> list[tuple[str, list[Finding]]]:
    """``text`` cut into pieces for the page: ``(piece, findings covering it)``; a piece with
    findings is highlighted (``<mark>``) with their messages beside it. Overlapping spans merge."""
    spans = sorted((f.start, f.end, f) for f in findings)
    pieces: list[tuple[str, list[Finding]]] = []
    pos = 0
    i = 0
    while i < len(spans):
        start, end, f = spans[i]
        group = [f]
        i += 1
        while i < len(spans) and spans[i][0] < end:
            end = max(end, spans[i][1])
            group.append(spans[i][2])
            i += 1
        start = max(start, pos)
        if start > pos:
            pieces.append((text[pos:start], []))
        pieces.append((text[start:end], group))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], []))
    return pieces


# -- filling persons.bi_name on an existing database --------------------------------------------


def names_to_index() -> int:
    """How many people still lack ``bi_name`` (those with a stored name)."""
    from sqlalchemy import func

    from dr_panel.cases.models import Person

    return db.session.scalar(
        select(func.count()).select_from(Person).where(
            Person.bi_name.is_(None), Person.name_enc.is_not(None)
        )
    ) or 0


def reindex_names(batch_size: int = 500, progress: Callable[[int], None] | None = None) -> int:
    """Compute ``persons.bi_name`` for every person who lacks it: each name decrypted once, in
    memory. The migration cannot compute a keyed HMAC, so an existing database runs this once
    (``dr-panel alerts reindex-names``). Each batch is its own transaction; it selects only the
    rows still empty, so an interrupted run simply carries on. Returns how many were set."""
    from dr_panel.audit.services import record
    from dr_panel.cases.models import Person

    ring = ident.keys()
    done = 0
    last_id = 0
    while True:
        people = db.session.scalars(
            select(Person)
            .where(Person.bi_name.is_(None), Person.name_enc.is_not(None), Person.id > last_id)
            .order_by(Person.id)
            .limit(batch_size)
        ).all()
        if not people:
            break
        for person in people:
            person.bi_name = ident.name_index(_decrypt(person, "name") or "", ring)
        last_id = people[-1].id
        set_now = sum(1 for p in people if p.bi_name is not None)
        done += set_now
        db.session.commit()
        db.session.expunge_all()
        if progress:
            progress(len(people))
    record("alerts.names_reindexed", actor_label="cli", details={"persons": done})
    db.session.commit()
    return done
