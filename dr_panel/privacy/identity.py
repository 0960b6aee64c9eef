"""Who a person is: validating, normalising, encrypting, and finding them again without
decrypting the table.

Blind indexes (CipherSweet-style): HMAC-SHA256 under a key of their own (derived from the
``blind_index`` root key per index), over a normalised value, truncated to ``INDEX_BITS`` bits.

Why 20 bits. A lookup returns every person whose index value collides, and each candidate is then
decrypted and compared, so a shorter index costs a few decryptions and a longer one leaks more.
With n persons, a lookup decrypts about 1 + n / 2**20 candidates: 1 at a few thousand persons, 2
at a million. In exchange, if the index key (not the field key) were stolen, each index value
still stands for about 860 valid NHS numbers (9e8 / 2**20), so the index alone cannot be reversed
by trying every NHS number; CipherSweet's planner reaches the same order of size for this
population. Equal values do show that rows *may* be the same person; the link between a person's
cases is in the schema anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from flask import current_app

from dr_panel.crypto import KeyRing

INDEX_BITS = 20
NHS_INDEX = "persons.nhs_number"
NAME_DOB_INDEX = "persons.surname_dob"
NAME_INDEX = "persons.first_last"
POSTCODE_RE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")


def keys() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


# -- validation and normalisation -----------------------------------------------------------------


def nhs_digits(raw: str) -> str:
    return re.sub(r"[\s-]", "", raw or "")


def nhs_number_problem(raw: str) -> str | None:
    """Why an NHS number is not valid, or None. Modulus 11: weights 10..2 over the first nine
    digits; 11 - (sum mod 11) is the check digit, 11 means 0 and 10 means the number is invalid."""
    digits = nhs_digits(raw)
    if not (digits.isascii() and digits.isdigit()) or len(digits) != 10:  # not "²" or "١"
        return "An NHS number has 10 digits (spaces are fine): check for a missing or extra digit."
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    if check == 10 or check != int(digits[9]):
        return "This NHS number's check digit is wrong: check it for a mistyped digit."
    return None


def format_nhs(digits: str) -> str:
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def fold(text: str) -> str:
    """Letters only, accents removed, case-folded: "Siân O'Brien-Smith" -> "sianobriensmith"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(
        ch for ch in decomposed if ch.isalpha() and not unicodedata.combining(ch)
    ).casefold()


def surname(full_name: str) -> str:
    parts = [p for p in re.split(r"\s+", full_name.strip()) if p]
    return parts[-1] if parts else ""


def normalise_postcode(raw: str) -> str | None:
    compact = re.sub(r"\s+", "", (raw or "").upper())
    match = POSTCODE_RE.match(compact)
    return f"{match.group(1)} {match.group(2)}" if match else None


def postcode_district(postcode: str | None) -> str | None:
    """The outward code ("FY1"): coarse enough to show pseudonymised."""
    return postcode.split(" ")[0] if postcode else None


def age_on(dob: date | None, day: date) -> int | None:
    if dob is None:
        return None
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


# -- blind indexes ------------------------------------------------------------------------------


def _index(name: str, value: str, ring: KeyRing | None = None) -> int:
    key = (ring or keys()).index_key(name)
    mac = hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(mac[:4], "big") >> (32 - INDEX_BITS)


def nhs_index(nhs_number: str | None, ring: KeyRing | None = None) -> int | None:
    digits = nhs_digits(nhs_number or "")
    return _index(NHS_INDEX, digits, ring) if digits else None


def name_dob_index(full_name: str, dob: date | None, ring: KeyRing | None = None) -> int | None:
    last = fold(surname(full_name))
    if not last or dob is None:
        return None
    return _index(NAME_DOB_INDEX, f"{last}|{dob.isoformat()}", ring)


def name_key(full_name: str) -> str | None:
    """Folded first and last token, "first|last" (one token: "x|x"): what ``name_index`` hashes,
    so the alert leak gate can hash a pair of words from a draft the same way."""
    parts = [fold(p) for p in re.split(r"\s+", full_name.strip()) if fold(p)]
    return f"{parts[0]}|{parts[-1]}" if parts else None


def name_index(full_name: str, ring: KeyRing | None = None) -> int | None:
    """A person's first and last name, folded: lets the alert leak gate find a stored name in a
    draft (with accents or case changed) without decrypting the table. Its own HKDF key."""
    key = name_key(full_name or "")
    return _index(NAME_INDEX, key, ring) if key else None


# -- the identifiers of one person ------------------------------------------------------------


@dataclass
class Identity:
    full_name: str
    dob: date | None = None
    nhs_number: str | None = None  # digits only
    address: str | None = None
    postcode: str | None = None  # normalised "FY1 1AA"

    def __repr__(self) -> str:  # never show the values
        return "<Identity>"

    def same_person_as(self, other: Identity) -> bool:
        return compare(self, other) == "linked"


def compare(new: Identity, known: Identity) -> str:
    """The linking rule, after a blind-index hit. "linked": the same NHS number and an agreeing
    date of birth (or one side lacks it) -- the same person however the name is spelt, since
    names change and hyphens vary. "suggested": the same NHS number with a different date of
    birth, or the same folded surname and date of birth without a matching NHS number -- a
    coordinator decides. "none": otherwise."""
    same_nhs = bool(new.nhs_number and new.nhs_number == known.nhs_number)
    dob_agrees = new.dob is None or known.dob is None or new.dob == known.dob
    if same_nhs and dob_agrees:
        return "linked"
    same_name_dob = (
        new.dob is not None
        and new.dob == known.dob
        and fold(surname(new.full_name)) == fold(surname(known.full_name))
    )
    return "suggested" if same_nhs or same_name_dob else "none"


FIELDS = ("name", "dob", "nhs_number", "address", "postcode")


def seal(
    person: object, identity: Identity, ring: KeyRing | None = None, *, tokens: bool = True
) -> None:
    """Encrypt every identifier onto the person (bound to its UUID) and set its blind indexes,
    and (``tokens``) its name and address tokens for the identifier detector: the bulk path
    computes those itself (``privacy.tokens.person_tokens``) and writes them in its batches."""
    ring = ring or keys()
    record = str(person.uuid)  # type: ignore[attr-defined]
    values = {
        "name": identity.full_name,
        "dob": identity.dob.isoformat() if identity.dob else None,
        "nhs_number": identity.nhs_number,
        "address": identity.address,
        "postcode": identity.postcode,
    }
    for name, value in values.items():
        setattr(
            person,
            f"{name}_enc",
            ring.encrypt(value, table="persons", column=name, record=record) if value else None,
        )
    person.bi_nhs = nhs_index(identity.nhs_number, ring)  # type: ignore[attr-defined]
    person.bi_name_dob = name_dob_index(identity.full_name, identity.dob, ring)  # type: ignore[attr-defined]
    person.bi_name = name_index(identity.full_name, ring)  # type: ignore[attr-defined]
    if tokens:
        from dr_panel.privacy.models import PersonToken  # here: privacy imports this module
        from dr_panel.privacy.tokens import person_tokens

        person.tokens = [  # type: ignore[attr-defined]
            PersonToken(kind=kind, bi=bi) for kind, bi in person_tokens(identity, ring)
        ]


def unseal(person: object, ring: KeyRing | None = None) -> Identity:
    ring = ring or keys()
    record = str(person.uuid)  # type: ignore[attr-defined]

    def get(name: str) -> str | None:
        stored = getattr(person, f"{name}_enc")
        return ring.decrypt(stored, table="persons", column=name, record=record) if stored else None

    dob = get("dob")
    return Identity(
        full_name=get("name") or "",
        dob=date.fromisoformat(dob) if dob else None,
        nhs_number=get("nhs_number"),
        address=get("address"),
        postcode=get("postcode"),
    )
