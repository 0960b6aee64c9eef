"""The one identifier detector: every free text that leaves dr-panel passes through it (alert
drafts, drug-concern reports, reveal reasons, e-mails).

Two layers, kept apart on purpose:

1. Patterns (``patterns``), on text normalised first (``normalise``: NFKC, zero-width and other
   format characters removed, look-alike letters folded to Latin, digits read through any
   separators): NHS numbers, phone numbers, dates that may be dates of birth, postcodes, e-mail
   addresses, house numbers with a street and flat lines, a title with a name. No database.
2. Stored people, through blind indexes only (``stored=True``), over the WHOLE draft at once so
   a name split over two fields is found: every word against the surname tokens, then every
   word paired with each surname found (given name, middle name or first name, in any field);
   a surname next to a title, an age or a date; a surname within a few words of a date matching
   that person's date of birth (``bi_name_dob``); NHS numbers (``bi_nhs``); house number and
   street against the address tokens. A hit is confirmed by decrypting only that candidate's
   name, NHS number, date of birth or address, never the table.

What a user sees never depends on whether a person is held. A stored hit has the same kind and
the same message as the pattern for that kind ("These words may identify a person..."), and is a
separate ``Finding`` with ``stored=True`` and the matched ``person_ids`` (never shown, not in
``repr``): a caller that must not reveal who is held (the public form, users outside the
person's area) drops the stored findings and shows the pattern findings, which are the same for
a made-up name. Spans are in the ORIGINAL text: the page marks what the user typed.

A stored person whose given name and surname are both ordinary words ("Rose White") blocks a
draft that uses both words anywhere, as the issue asks of split names; the message asks to
rephrase, which is always possible.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from flask import current_app, has_app_context
from sqlalchemy import select

from dr_panel.crypto import DecryptionError
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from dr_panel.privacy import tokens as tk
from dr_panel.privacy.models import PersonToken
from dr_panel.privacy.normalise import Normalised, normalise
from dr_panel.privacy.patterns import (
    DateHit,
    Hit,
    contexts,
    dates_in,
    find_hits,
    national_number,
)

# Words this far apart (or closer) in one field are marked as one name span.
NAME_WINDOW = 3
# A word this many words or fewer from a date is tried as the surname of someone born then.
DOB_WINDOW = 6
# Words allowed between a surname and the title, age or date beside it: "Smith, who was aged 46".
CONNECTORS = frozenset(
    "aged age was is who born on dob b d died a an the of from at in".split()
)
CONNECTORS_MAX = 2
# For a surname beside a title or age, the people holding it that are read to confirm it.
SURNAME_CANDIDATES = 50
_CHUNK = 400  # values per IN (...) lookup

NAME_MESSAGE = (
    "These words may identify a person. Remove or rephrase them: describe people in general "
    'terms (for example "a man in his 40s"), never by name.'
)
KIND_MESSAGES = {
    "name": NAME_MESSAGE,
    "nhs_number": "This looks like an NHS number. Remove it: no NHS number may appear here.",
    "date_of_birth": "This looks like a date of birth. Remove it, or give only an age band "
    '(for example "aged 40 to 49").',
    "postcode": "This is a full postcode, which can point to a home. Give only the first half "
    "(for example FY1) or the town.",
    "address": "This looks like a home address (a house or flat number with a street). Remove "
    "the number, or name only the street or the area.",
    "phone": "This looks like a personal phone number (a landline or mobile). Remove it. "
    "Services' numbers starting 03 or 08 are fine; to include a service's own published "
    "number, ask your system administrator to add it to the allowed contacts.",
    "email": "This is an e-mail address. Remove it. To include a service's published inbox, "
    "ask your system administrator to add it to the allowed contacts.",
}


class Span(Protocol):
    """What forms read of a finding, and of a held report's stored span (``HeldSpan``)."""

    @property
    def field(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def stored(self) -> bool: ...
    @property
    def person_ids(self) -> frozenset[int]: ...


@dataclass(frozen=True)
class Finding:
    """One offending span of one field, in the field's original text. ``text[start:end]`` is
    the span; the matched text is never held here. ``stored``: found by matching a stored
    person (``person_ids``, internal ids, never shown) rather than by a pattern."""

    field: str
    start: int
    end: int
    kind: str
    message: str
    # ``dataclasses.field``: inside the class body the name ``field`` reads as the attribute above.
    stored: bool = dataclasses.field(default=False, repr=False)
    person_ids: frozenset[int] = dataclasses.field(default=frozenset(), repr=False)


def _finding(
    name: str, norm: Normalised, start: int, end: int, kind: str,
    person_ids: Iterable[int] | None = None,
) -> Finding:  # fmt: skip
    s, e = norm.span(start, end)
    ids = frozenset(person_ids or ())
    return Finding(name, s, e, kind, KIND_MESSAGES[kind], stored=person_ids is not None,
                   person_ids=ids)  # fmt: skip


def allowed_contacts() -> frozenset[str]:
    """``LEAK_GATE_ALLOWED_CONTACTS``: national phone digits and case-folded addresses."""
    if not has_app_context():
        return frozenset()
    listed = current_app.config.get("LEAK_GATE_ALLOWED_CONTACTS") or ()
    return frozenset(
        item.strip().casefold() if "@" in item else national_number(item) for item in listed
    )


# -- one field, read ----------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['\u2019\-][^\W\d_]+)*")
_POSSESSIVE = re.compile(r"['\u2019]s$", re.I)


@dataclass
class _Word:
    start: int
    end: int
    folded: str


@dataclass
class _Doc:
    name: str
    norm: Normalised
    dates: list[DateHit]
    hits: list[Hit]
    words: list[_Word] = field(default_factory=list)
    word_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for m in _WORD.finditer(self.norm.text):
            folded = tk.fold(_POSSESSIVE.sub("", m.group(0)))
            if folded:
                self.words.append(_Word(m.start(), m.end(), folded))
        self.word_starts = [w.start for w in self.words]

    def words_between(self, start: int, end: int) -> list[_Word]:
        i = bisect.bisect_left(self.word_starts, start)
        out = []
        while i < len(self.words) and self.words[i].end <= end:
            out.append(self.words[i])
            i += 1
        return out


def _read(name: str, text: str, today: date, allowed: frozenset[str],
          any_numeric_date: bool) -> _Doc:  # fmt: skip
    norm = normalise(text)
    dates = dates_in(norm.text, today)
    hits = find_hits(
        norm.text, today=today, allowed=allowed, any_numeric_date=any_numeric_date, dates=dates
    )
    return _Doc(name, norm, dates, hits)


# -- the detector -------------------------------------------------------------------------------


def detect(
    fields: Mapping[str, str],
    *,
    today: date | None = None,
    stored: bool = True,
    allowed: frozenset[str] | None = None,
    any_numeric_date: bool = False,
) -> list[Finding]:
    """Every finding in ``fields`` (name -> text), in field order then position. ``stored``
    also matches stored people (needs an app context and the database); without it, patterns
    only. ``allowed``: contacts that pass (default: the configured allowed contacts)."""
    today = today or utcnow().date()
    allowed = allowed_contacts() if allowed is None else allowed
    docs = [
        _read(name, text, today, allowed, any_numeric_date)
        for name, text in fields.items()
        if text
    ]
    found = [_finding(d.name, d.norm, h.start, h.end, h.kind) for d in docs for h in d.hits]
    if stored and docs:
        found += _Stored(docs).findings()
    order = {name: i for i, name in enumerate(fields)}
    merged: dict[tuple[str, int, int, str, bool], Finding] = {}
    for f in found:
        key = (f.field, f.start, f.end, f.kind, f.stored)
        if key in merged:
            ids = merged[key].person_ids | f.person_ids
            f = Finding(f.field, f.start, f.end, f.kind, f.message, f.stored, ids)
        merged[key] = f
    return sorted(
        merged.values(), key=lambda f: (order[f.field], f.start, f.end, f.kind, f.stored)
    )


def find_patterns(
    text: str, field_name: str = "text", *, today: date | None = None,
    allowed: frozenset[str] | None = None, any_numeric_date: bool = False,
) -> list[Finding]:  # fmt: skip
    """The pattern layer alone, for one text. Needs no database."""
    return detect(
        {field_name: text}, today=today, stored=False, allowed=allowed,
        any_numeric_date=any_numeric_date,
    )  # fmt: skip


def pattern_hits(
    text: str, *, today: date | None = None, allowed: frozenset[str] | None = None,
    any_numeric_date: bool = False,
) -> list[Hit]:  # fmt: skip
    """The pattern layer's raw hits on ``text`` once normalised (offsets in the normalised
    text), with each date's written form: for callers that need the form, not the span (the
    e-mail guard words numeric and written dates differently)."""
    today = today or utcnow().date()
    allowed = allowed_contacts() if allowed is None else allowed
    return find_hits(
        normalise(text).text, today=today, allowed=allowed, any_numeric_date=any_numeric_date
    )


# -- stored people, through the blind indexes ---------------------------------------------------


class _Stored:
    """The stored-people layer over every field of one draft at once."""

    def __init__(self, docs: list[_Doc]) -> None:
        self.docs = docs
        self.ring = ident.keys()
        # The persons table by name, as SQLAlchemy Core: the cases package (its model) sits
        # above privacy, which it uses for the identity, the tokens and disclosure control.
        self.person = db.metadata.tables["persons"].c
        self.token = PersonToken
        self._plain: dict[tuple[int, str], str | None] = {}
        self.out: list[Finding] = []

    def findings(self) -> list[Finding]:
        self._nhs()
        surnames = self._candidate_surnames()
        if surnames:
            self._pairs(surnames)
            self._beside_context(surnames)
            self._dates_of_birth(surnames)
        self._addresses()
        return self.out

    # -- reading candidates --------------------------------------------------------------------

    def _token_rows(self, kind: str, values: Iterable[int]) -> list[tuple[int, int]]:
        """``(token, person id)`` for every stored token of ``kind`` among ``values``."""
        wanted = sorted(set(values))
        t = self.token
        rows: list[tuple[int, int]] = []
        for i in range(0, len(wanted), _CHUNK):
            rows += db.session.execute(
                select(t.bi, t.person_id).where(t.kind == kind, t.bi.in_(wanted[i : i + _CHUNK]))
            ).all()  # type: ignore[arg-type]
        return rows

    def _load(self, ids: Iterable[int], columns: tuple[str, ...]) -> None:
        """Decrypt ``columns`` of the persons ``ids`` (only those not read yet), in memory."""
        p = self.person
        need = sorted({i for i in ids if any((i, c) not in self._plain for c in columns)})
        for k in range(0, len(need), _CHUNK):
            rows = db.session.execute(
                select(p.id, p.uuid, *[getattr(p, f"{c}_enc") for c in columns]).where(
                    p.id.in_(need[k : k + _CHUNK])
                )
            ).all()
            for pid, puuid, *stored in rows:
                for column, value in zip(columns, stored, strict=True):
                    self._plain[(pid, column)] = self._decrypt(value, column, puuid)

    def _decrypt(self, value: str | None, column: str, puuid: object) -> str | None:
        if not value:
            return None
        try:
            return self.ring.decrypt(value, table="persons", column=column, record=str(puuid))
        except DecryptionError:
            return None

    def _plain_of(self, pid: int, column: str) -> str | None:
        return self._plain.get((pid, column))

    # -- NHS numbers -----------------------------------------------------------------------------

    def _nhs(self) -> None:
        spans: dict[str, list[tuple[_Doc, Hit]]] = defaultdict(list)
        for d in self.docs:
            for h in d.hits:
                if h.kind == "nhs_number":
                    spans[h.value].append((d, h))
        if not spans:
            return
        by_index: dict[int, list[str]] = defaultdict(list)
        for digits in spans:
            by_index[ident.nhs_index(digits, self.ring)].append(digits)  # type: ignore[index]
        p = self.person
        candidates = db.session.scalars(
            select(p.id).where(p.bi_nhs.in_(list(by_index)))
        ).all()
        self._load(candidates, ("nhs_number",))
        for pid in candidates:
            stored = self._plain_of(pid, "nhs_number")
            for d, h in spans.get(stored or "", []):
                self.out.append(_finding(d.name, d.norm, h.start, h.end, "nhs_number", {pid}))

    # -- names -------------------------------------------------------------------------------------

    def _candidate_surnames(self) -> set[str]:
        """Words of the draft that are some stored person's surname token (a 31-bit token:
        chance hits are rare, and each use below is confirmed by decryption)."""
        words = {w.folded for d in self.docs for w in d.words if len(w.folded) >= tk.MIN_PART}
        words -= CONNECTORS
        by_token = {tk.token(tk.SURNAME, w, self.ring): w for w in words}
        hits = {bi for bi, _ in self._token_rows(tk.SURNAME, by_token)}
        return {by_token[bi] for bi in hits}

    def _pairs(self, surnames: set[str]) -> None:
        words = {w.folded for d in self.docs for w in d.words if len(w.folded) >= tk.MIN_PART}
        by_token: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for s in surnames:
            for w in words - {s}:
                by_token[tk.token(tk.PAIR, tk.pair_key(w, s), self.ring)].append((w, s))
        rows = self._token_rows(tk.PAIR, by_token)
        self._load({pid for _, pid in rows}, ("name",))
        confirmed: dict[tuple[str, str], set[int]] = defaultdict(set)
        for bi, pid in rows:
            pairs = tk.name_values(self._plain_of(pid, "name") or "")[tk.PAIR]
            for w, s in by_token[bi]:
                if tk.pair_key(w, s) in pairs:
                    confirmed[(w, s)].add(pid)
        for (w, s), ids in confirmed.items():
            self._mark_pair(w, s, ids)

    def _mark_pair(self, given: str, surname: str, ids: set[int]) -> None:
        """Every use of the two words: one span when they are close in one field, else each."""
        for d in self.docs:
            mine = [(i, w) for i, w in enumerate(d.words) if w.folded in (given, surname)]
            for i, w in mine:
                partners = [
                    (j, v) for j, v in mine
                    if v.folded != w.folded and abs(i - j) <= NAME_WINDOW
                ]  # fmt: skip
                if partners:
                    for _, v in partners:
                        start, end = min(w.start, v.start), max(w.end, v.end)
                        self.out.append(_finding(d.name, d.norm, start, end, "name", ids))
                else:
                    self.out.append(_finding(d.name, d.norm, w.start, w.end, "name", ids))

    def _beside_context(self, surnames: set[str]) -> None:
        """A stored surname next to a title, an age or a date: "Mr Smith", "Smith (46)"."""
        marked: dict[str, list[tuple[_Doc, _Word]]] = defaultdict(list)
        for d in self.docs:
            spans = contexts(d.norm.text, d.dates)
            for w in d.words:
                if w.folded in surnames and any(self._beside(d, w, s, e) for s, e in spans):
                    marked[w.folded].append((d, w))
        for surname, uses in marked.items():
            rows = self._token_rows(tk.SURNAME, [tk.token(tk.SURNAME, surname, self.ring)])
            ids = sorted(pid for _, pid in rows)[:SURNAME_CANDIDATES]
            self._load(ids, ("name",))
            holders = {
                pid for pid in ids
                if surname in tk.name_values(self._plain_of(pid, "name") or "")[tk.SURNAME]
            }  # fmt: skip
            if holders:
                for d, w in uses:
                    self.out.append(_finding(d.name, d.norm, w.start, w.end, "name", holders))

    @staticmethod
    def _beside(d: _Doc, w: _Word, start: int, end: int) -> bool:
        if start <= w.start < end:
            return False  # the word is part of the title, age or date itself
        between = d.words_between(w.end, start) if w.end <= start else d.words_between(end, w.start)
        return len(between) <= CONNECTORS_MAX and all(v.folded in CONNECTORS for v in between)

    def _dates_of_birth(self, surnames: set[str]) -> None:
        """A surname within ``DOB_WINDOW`` words of a date that is that person's date of birth,
        however recent (a child's): through ``bi_name_dob``."""
        tries: dict[int, list[tuple[str, date, _Doc, DateHit, _Word]]] = defaultdict(list)
        for d in self.docs:
            for dh in d.dates:
                if dh.form == "month_year":
                    continue
                before = d.words_between(0, dh.start)[-DOB_WINDOW:]
                after = d.words_between(dh.end, len(d.norm.text))[:DOB_WINDOW]
                for w in before + after:
                    if w.folded not in surnames:
                        continue
                    for day in dh.readings:
                        key = f"{w.folded}|{day.isoformat()}"
                        bi = ident._index(ident.NAME_DOB_INDEX, key, self.ring)
                        tries[bi].append((w.folded, day, d, dh, w))
        if not tries:
            return
        p = self.person
        candidates = db.session.execute(
            select(p.id, p.bi_name_dob).where(p.bi_name_dob.in_(list(tries)))
        ).all()
        self._load([pid for pid, _ in candidates], ("name", "dob"))
        for pid, stored_bi in candidates:
            if stored_bi is None:  # never: the IN above matches no NULL
                continue
            name, dob = self._plain_of(pid, "name"), self._plain_of(pid, "dob")
            if not name or not dob:
                continue
            last = ident.fold(ident.surname(name))
            for folded, day, d, dh, w in tries.get(stored_bi, []):
                if folded == last and day.isoformat() == dob:
                    self.out.append(_finding(d.name, d.norm, dh.start, dh.end, "date_of_birth",
                                             {pid}))  # fmt: skip
                    self.out.append(_finding(d.name, d.norm, w.start, w.end, "name", {pid}))

    # -- addresses ---------------------------------------------------------------------------------

    def _addresses(self) -> None:
        by_token: dict[int, list[tuple[str, _Doc, int, int]]] = defaultdict(list)
        for d in self.docs:
            for start, end, key in tk.house_keys(d.norm.text):
                by_token[tk.token(tk.ADDRESS, key, self.ring)].append((key, d, start, end))
        if not by_token:
            return
        rows = self._token_rows(tk.ADDRESS, by_token)
        self._load({pid for _, pid in rows}, ("address",))
        for bi, pid in rows:
            keys = tk.address_values(self._plain_of(pid, "address") or "")
            for key, d, start, end in by_token[bi]:
                if key in keys:
                    self.out.append(_finding(d.name, d.norm, start, end, "address", {pid}))


def merged_spans(text: str, findings: Iterable[Span]) -> list[tuple[str, list[Span]]]:
    """``text`` cut into pieces for the page: ``(piece, findings covering it)``; a piece with
    findings is highlighted (``<mark>``) with their messages beside it. Overlapping spans merge."""
    spans = sorted(((f.start, f.end, i, f) for i, f in enumerate(findings)), key=lambda t: t[:3])
    pieces: list[tuple[str, list[Span]]] = []
    pos = 0
    i = 0
    while i < len(spans):
        start, end, _, f = spans[i]
        group = [f]
        i += 1
        while i < len(spans) and spans[i][0] < end:
            end = max(end, spans[i][1])
            group.append(spans[i][3])
            i += 1
        start = max(start, pos)
        if start > pos:
            pieces.append((text[pos:start], []))
        pieces.append((text[start:end], group))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], []))
    return pieces
