"""Blind indexes of the parts of a stored name and address, so the detector finds a person in
free text without decrypting the table.

Per person, keyed HMACs (one key per purpose, derived from the ``blind_index`` root key as
``identity`` derives its own) of:

- ``pair``: each given name with the surname, folded ("jane|smith", "mary|smith" for
  "Jane Mary Smith"), so a middle name with the surname, or a first name and surname in
  different fields of a draft, are found;
- ``surname``: the surname alone (and each part of a double-barrelled one), for a surname next
  to a title, an age or a date ("Mr Smith", "Smith, aged 46"); never alone, so "Brown powder"
  passes;
- ``address``: a house number with the first word of its street ("14a|acacia"), so an address
  written without a usual street word ("14 Acacia") is found.

Why 31 bits, not the 20 of ``identity.INDEX_BITS``. The 20-bit indexes are looked up with a
handful of values per notification. The detector looks up every word of a draft and, for pairs,
every word with every candidate surname: thousands of values. At a million people a 20-bit
surname index would answer almost half of all words by chance, each a decryption. At 31 bits a
chance hit is about one lookup in two thousand (rows / 2**31), so a draft costs a few
decryptions. What truncation cannot give these tokens is the "many plausible values per index
value" protection of the NHS index: names are few enough to try them all at any length, so the
protection is the key, kept outside the database like every key, as for ``bi_name``. Equal
tokens show that two people share a surname, as ``bi_name_dob`` shows a shared surname and date
of birth; nothing more is readable without the key.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator

from dr_panel.crypto import KeyRing
from dr_panel.privacy import identity as ident
from dr_panel.privacy.normalise import normalise

TOKEN_BITS = 31
PAIR, SURNAME, ADDRESS = "pair", "surname", "address"
KINDS = (PAIR, SURNAME, ADDRESS)
INDEX_NAMES = {
    PAIR: "persons.name_pair",
    SURNAME: "persons.surname",
    ADDRESS: "persons.house_number_street",
}
MIN_PART = 2  # letters; initials are not tokens

# A house number (with a letter: "14a") and the street's first word, "the" skipped.
_HOUSE_KEY = re.compile(
    r"(?<![\w.,/])(\d{1,4}[a-z]?)(?![\w])[ \t]*,?[ \t]+(?:the[ \t]+)?([a-z][a-z'\u2019\-]*)",
    re.I,
)


_NOT_LETTER = re.compile(r"[^A-Za-z]+")


def fold(text: str) -> str:
    """``identity.fold``, quicker for ASCII text (most of it, once normalised)."""
    return _NOT_LETTER.sub("", text).lower() if text.isascii() else ident.fold(text)


def token(kind: str, value: str, ring: KeyRing) -> int:
    """The keyed HMAC of ``value`` under ``kind``'s own key, truncated to ``TOKEN_BITS``."""
    mac = hmac.digest(ring.index_key(INDEX_NAMES[kind]), value.encode("utf-8"), "sha256")
    return int.from_bytes(mac[:4], "big") >> (32 - TOKEN_BITS)


def name_parts(full_name: str) -> tuple[list[str], list[str]]:
    """Folded given names and surnames of a stored name: the surname is the last word, and
    each part of it when it is double-barrelled ("O'Brien-Smith": obriensmith, obrien, smith)."""
    words = [w for w in re.split(r"[\s,]+", normalise(full_name or "").text) if w]
    if not words:
        return [], []
    last = words[-1]
    surnames = [fold(last)] + [fold(p) for p in re.split(r"[-\u2010-\u2015]", last)]
    given = [fold(w) for w in words[:-1]]
    return (
        list(dict.fromkeys(g for g in given if len(g) >= MIN_PART)),
        list(dict.fromkeys(s for s in surnames if len(s) >= MIN_PART)),
    )


def pair_key(given: str, surname: str) -> str:
    return f"{given}|{surname}"


def name_values(full_name: str) -> dict[str, set[str]]:
    given, surnames = name_parts(full_name)
    return {
        PAIR: {pair_key(g, s) for g in given for s in surnames if g != s},
        SURNAME: set(surnames),
    }


def house_keys(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, "number|street")`` for each house number followed by a word, in
    normalised ``text``: what an address token hashes."""
    for m in _HOUSE_KEY.finditer(text):
        street = fold(m.group(2))
        if street:
            yield m.start(), m.end(), f"{m.group(1).lower()}|{street}"


def address_values(address: str) -> set[str]:
    return {key for _, _, key in house_keys(normalise(address or "").text)}


def person_tokens(identity: ident.Identity, ring: KeyRing) -> list[tuple[str, int]]:
    """Every ``(kind, token)`` of one person, without repeats."""
    values = name_values(identity.full_name)
    values[ADDRESS] = address_values(identity.address or "")
    return sorted({(kind, token(kind, v, ring)) for kind, vs in values.items() for v in vs})
