"""The pattern layer: identifiers recognised by their shape alone, with no database.

Run on normalised text (``normalise``). Digits are read through separators: any run of spaces,
dots, slashes, dashes or brackets between digit groups ("999.000.0018", "999  000  0018",
"01253/477000"). Each recogniser returns ``Hit``s in the normalised text's offsets; the detector
maps them back to what the user typed.

- NHS numbers: 10 digits over whole digit groups with a valid modulus-11 check digit.
- Phone numbers: a national number of 10 or 11 digits starting 0, or +44 and the rest. Ofcom's
  non-geographic ranges (03, 080, 084, 087), which are never a person's own line, pass; so do the
  numbers an administrator allows.
- Dates: "01/02/1980", "01.02.1980", "01 02 1980", "1/2/80", "1.2.80", "01021980" (or "19800201"),
  "1980-02-01", "1 Feb 1980", "1st of February 1980", "February 1st, 1980", "February 1980",
  "02/1980". A full date ten or more years back may be a date of birth; a month and year only
  from ``MONTH_YEAR_DOB_YEARS`` back (recent months are how alerts say "since November 2026").
- Postcodes: a full UK postcode with any separator or none ("FY1 1AA", "FY1-1AA", "fy11aa").
- E-mail addresses.
- Addresses: a house number before one to three street words and a street word ("14a Acacia
  Avenue", "3 The Green"), and flat lines ("Flat 3", "Apartment 12b").
- Names by shape: a title before a capitalised word ("Mr X", "Mrs Jane Doe", "Dr. Foster").

Also the *contexts* that make a lone surname identifying: a title, an age ("aged 46",
"46-year-old", "(46)") or a date; the detector checks the words beside them against stored
surnames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from dr_panel.privacy import identity as ident

# A full date at least this many years back reads as a date of birth.
DOB_YEARS = 10
# A month and year ("February 1980") this many years back or more reads as a date of birth: the
# youngest people a panel reviews; a more recent month is how alerts date things.
MONTH_YEAR_DOB_YEARS = 14
# Ofcom's non-geographic ranges used by public services, charities and businesses; never a
# person's own landline or mobile: 03 (public bodies, charities), 080 (freephone), 084, 087.
SERVICE_NUMBER_PREFIXES = ("03", "080", "084", "087")


@dataclass(frozen=True)
class Hit:
    """One span of normalised text. ``value`` is for the caller's checks (allowed contacts,
    stored-people lookups) and is never shown, logged or kept."""

    start: int
    end: int
    kind: str
    form: str = ""  # dates: "numeric", "short", "compact", "written", "month_year"
    value: str = ""

    def __repr__(self) -> str:
        return f"<Hit {self.kind} {self.start}-{self.end}>"


# -- digits through separators --------------------------------------------------------------

_GAP = r"[ \t\u00a0.\-/()\u2010-\u2015]{1,3}"
_DIGIT_RUN = re.compile(rf"(\+)?(?<!\d)(\()?(\d+(?:{_GAP}\d+)*)")
_GROUP = re.compile(r"\d+")


def _groups(run: re.Match[str]) -> list[tuple[int, int, str]]:
    base = run.start(3)
    return [(base + g.start(), base + g.end(), g.group()) for g in _GROUP.finditer(run.group(3))]


def nhs_is_valid(digits: str) -> bool:
    return len(digits) == 10 and ident.nhs_number_problem(digits) is None


def _digit_hits(text: str) -> Iterator[Hit]:
    for run in _DIGIT_RUN.finditer(text):
        groups = _groups(run)
        nhs_cover: list[tuple[int, int]] = []
        for i in range(len(groups)):
            digits = ""
            for j in range(i, len(groups)):
                digits += groups[j][2]
                if len(digits) > 10:
                    break
                if len(digits) == 10 and nhs_is_valid(digits):
                    nhs_cover.append((groups[i][0], groups[j][1]))
                    yield Hit(groups[i][0], groups[j][1], "nhs_number", value=digits)
        i = 0
        while i < len(groups):
            found = _phone_from(groups, i, plus=bool(run.group(1)) and i == 0)
            if found is None:
                i += 1
                continue
            j, national = found
            start = run.start() if i == 0 else groups[i][0]
            if not any(s <= groups[i][0] < e for s, e in nhs_cover):
                yield Hit(start, groups[j][1], "phone", value=national)
            i = j + 1


def _phone_from(
    groups: list[tuple[int, int, str]], i: int, *, plus: bool
) -> tuple[int, str] | None:
    """The longest phone number starting at group ``i``: (last group, national digits)."""
    digits = ""
    best: tuple[int, str] | None = None
    for j in range(i, len(groups)):
        digits += groups[j][2]
        national = national_number(("+" if plus else "") + digits)
        if len(national) > 11:
            break
        if len(national) in (10, 11) and national[0] == "0" and national[1] != "0":
            best = (j, national)
    return best


def national_number(written: str) -> str:
    """A UK phone number as its national digits: "+44 (0)300 123 6600" -> "03001236600"."""
    digits = re.sub(r"\D", "", written)
    if written.lstrip().startswith("+") or digits.startswith("44"):
        if digits.startswith("440"):
            return digits[2:]
        if digits.startswith("44"):
            return "0" + digits[2:]
    return digits


# -- dates ------------------------------------------------------------------------------------

_MONTH_NAMES = (
    "jan(?:uary)?", "feb(?:ruary)?", "mar(?:ch)?", "apr(?:il)?", "may", "june?", "july?",
    "aug(?:ust)?", "sep(?:t(?:ember)?)?", "oct(?:ober)?", "nov(?:ember)?", "dec(?:ember)?",
)  # fmt: skip
MONTHS = {name[:3]: n for n, name in enumerate(_MONTH_NAMES, start=1)}
_MONTH = rf"\b({'|'.join(_MONTH_NAMES)})\.?"
_ORD = r"(?:st|nd|rd|th)?"
_DSEP = r"(?:[ \t]*[/.\-\u2010-\u2015][ \t]*|[ \t]+)"
_WSEP = r"[ \t,./\-]+"
_DMY = re.compile(rf"(?<![\d.])(\d{{1,2}}){_DSEP}(\d{{1,2}}){_DSEP}(\d{{4}})(?![\d])")
_DMY_SHORT = re.compile(r"(?<![\d/.])(\d{1,2})([/.])(\d{1,2})\2(\d{2})(?![\d/]|\.\d)")
_YMD = re.compile(rf"(?<![\d.])(\d{{4}}){_DSEP}(\d{{1,2}}){_DSEP}(\d{{1,2}})(?![\d])")
_COMPACT = re.compile(r"(?<![\d.])(\d{8})(?![\d.])")
_WRITTEN_DMY = re.compile(
    rf"(?<!\d)(\d{{1,2}}){_ORD}(?:[ \t]+of)?{_WSEP}{_MONTH}{_WSEP}(\d{{4}})(?!\d)", re.I
)
_WRITTEN_MDY = re.compile(rf"{_MONTH}{_WSEP}(\d{{1,2}}){_ORD},?{_WSEP}(\d{{4}})(?!\d)", re.I)
_MONTH_YEAR = re.compile(rf"{_MONTH}{_WSEP}(\d{{4}})(?!\d)", re.I)
_NUMERIC_MONTH_YEAR = re.compile(r"(?<![\d/.])(\d{1,2})/(\d{4})(?![\d/])")


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month(name: str) -> int:
    return MONTHS[name[:3].lower()]


@dataclass(frozen=True)
class DateHit:
    start: int
    end: int
    form: str
    readings: tuple[date, ...]  # a month-year reads as the 1st of the month

    def is_old(self, today: date) -> bool:
        years = MONTH_YEAR_DOB_YEARS if self.form == "month_year" else DOB_YEARS
        return any(d.year <= today.year - years and d <= today for d in self.readings)


def dates_in(text: str, today: date) -> list[DateHit]:
    """Every date written in ``text``; a numeric date can read day-first or month-first, and
    both readings are kept. A month-year inside a full date is not repeated."""
    found: list[DateHit] = []

    def add(m: re.Match[str], form: str, readings: Iterable[date | None]) -> None:
        kept = tuple(dict.fromkeys(d for d in readings if d))
        if kept:
            found.append(DateHit(m.start(), m.end(), form, kept))

    for m in _DMY.finditer(text):
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        add(m, "numeric", (_date(y, b, a), _date(y, a, b)))
    century = today.year % 100
    for m in _DMY_SHORT.finditer(text):
        a, b, yy = int(m.group(1)), int(m.group(3)), int(m.group(4))
        y = (2000 if yy <= century else 1900) + yy
        add(m, "short", (_date(y, b, a), _date(y, a, b)))
    for m in _YMD.finditer(text):
        add(m, "numeric", (_date(int(m.group(1)), int(m.group(2)), int(m.group(3))),))
    for m in _COMPACT.finditer(text):
        s = m.group(1)
        readings = (
            _date(int(s[4:]), int(s[2:4]), int(s[:2])),
            _date(int(s[4:]), int(s[:2]), int(s[2:4])),
            _date(int(s[:4]), int(s[4:6]), int(s[6:])),
        )
        add(m, "compact", (d for d in readings if d and 1900 <= d.year <= today.year))
    for m in _WRITTEN_DMY.finditer(text):
        add(m, "written", (_date(int(m.group(3)), _month(m.group(2)), int(m.group(1))),))
    for m in _WRITTEN_MDY.finditer(text):
        add(m, "written", (_date(int(m.group(3)), _month(m.group(1)), int(m.group(2))),))
    full = [(d.start, d.end) for d in found]
    for m in _MONTH_YEAR.finditer(text):
        if not any(s <= m.start() < e for s, e in full):
            add(m, "month_year", (_date(int(m.group(2)), _month(m.group(1)), 1),))
    for m in _NUMERIC_MONTH_YEAR.finditer(text):
        if not any(s <= m.start() < e for s, e in full):
            add(m, "month_year", (_date(int(m.group(2)), int(m.group(1)), 1),))
    return found


# -- postcodes, e-mail, addresses, names ---------------------------------------------------------

_POSTCODE = re.compile(
    r"(?<![\w#-])([A-Za-z]{1,2}\d[A-Za-z\d]?)[ \t.\-/]*(\d[A-Za-z]{2})(?![\w-])"
)
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
STREET_WORDS = (
    "road", "rd", "street", "st", "avenue", "ave", "lane", "ln", "close", "drive", "dr", "way",
    "court", "ct", "crescent", "cres", "place", "pl", "terrace", "gardens", "gdns", "grove",
    "walk", "row", "hill", "square", "sq", "parade", "mews", "view", "rise", "green", "park",
    "boulevard", "vale", "gate", "wharf", "yard", "croft", "mount", "promenade", "prom",
    "approach", "chase", "circus", "quay", "esplanade", "brow", "fold", "meadows",
)  # fmt: skip
# Words that never sit between a house number and its street: "3 people on the road",
# "10 years down the road" are not addresses.
NOT_STREET = frozenset(
    "in on at of to from by and or for per with near than over under into across around about "
    "since between were was are is had have has a an people persons men women adults children "
    "cases deaths overdoses tablets pills bags wraps doses times years months weeks days hours "
    "minutes reports samples mg ml more other miles yards metres down up along off out hour minute "
    "day week month year mile metre second time".split()
)
_STREET_WORD = r"[A-Za-z][A-Za-z'\u2019\-]*"
_HOUSE = re.compile(
    rf"(?<![\w.,/])(\d{{1,4}}[A-Za-z]?)(?:[ \t]*[-\u2013][ \t]*\d{{1,4}}[A-Za-z]?)?,?[ \t]+"
    rf"((?:{_STREET_WORD}[ \t]+){{1,3}}?)({'|'.join(STREET_WORDS)})\b\.?",
    re.I,
)
_FLAT = re.compile(
    r"\b(?:flat|apartment|apt|maisonette)\.?[ \t]*(?:no\.?[ \t]*)?\d{1,4}[A-Za-z]?\b", re.I
)
TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr")
# Title case only: "MR" (modified release) and "MS" (as in MS Contin) are drug words.
_TITLE_NAME = re.compile(
    r"\b(?:Mrs|Mr|Ms|Miss|Mx|Dr)\.?[ \t]+"
    r"[A-Z][\w'\u2019\-]*(?:[ \t]+[A-Z][\w'\u2019\-]*)?"
)
# An age: "aged 46", "age: 46", "46-year-old", "46 years old", "46yo", "(46)". Ranges are not a
# person's age ("men aged 30-49").
_AGE = re.compile(
    r"\bage[d]?[ \t]*:?[ \t]*\d{1,3}\b(?![ \t]*(?:[-\u2013]|to\b|and\b)[ \t]*\d)"
    r"|\b\d{1,3}[ \t]*[-\u2013 ]?[ \t]*(?:years?|yrs?)[ \t]*[-\u2013 ]?[ \t]*old\b"
    r"|\b\d{1,3}[ \t]*(?:yo|y/o)\b"
    r"|\([ \t]*\d{1,3}[ \t]*\)",
    re.I,
)
_TITLE = re.compile(rf"\b(?:{'|'.join(TITLES)})\b\.?", re.I)


def _postcodes(text: str) -> Iterator[Hit]:
    for m in _POSTCODE.finditer(text):
        if ident.normalise_postcode(m.group(1) + m.group(2)):
            yield Hit(m.start(), m.end(), "postcode")


def _addresses(text: str) -> Iterator[Hit]:
    for m in _HOUSE.finditer(text):
        between = m.group(2).split()
        if any(w.lower() in NOT_STREET for w in between):
            continue
        yield Hit(m.start(), m.end(), "address")
    for m in _FLAT.finditer(text):
        yield Hit(m.start(), m.end(), "address")


def contexts(text: str, dates: list[DateHit]) -> list[tuple[int, int]]:
    """Spans beside which a stored surname identifies someone: titles, ages, dates."""
    spans = [(m.start(), m.end()) for m in _TITLE.finditer(text)]
    spans += [(m.start(), m.end()) for m in _AGE.finditer(text)]
    spans += [(d.start, d.end) for d in dates]
    return sorted(spans)


def find_hits(
    text: str,
    *,
    today: date,
    allowed: frozenset[str] = frozenset(),
    any_numeric_date: bool = False,
    dates: list[DateHit] | None = None,
) -> list[Hit]:
    """Identifier-shaped spans of normalised ``text``. ``allowed``: national phone digits and
    case-folded e-mail addresses that pass. ``any_numeric_date``: refuse every date written in
    numbers, however recent (e-mails write due dates in words)."""
    hits: list[Hit] = []
    for hit in _digit_hits(text):
        if hit.kind == "phone" and (
            hit.value.startswith(SERVICE_NUMBER_PREFIXES) or hit.value in allowed
        ):
            continue
        hits.append(hit)
    for d in dates if dates is not None else dates_in(text, today):
        if d.is_old(today) or (any_numeric_date and d.form in ("numeric", "short")):
            hits.append(Hit(d.start, d.end, "date_of_birth", form=d.form))
    hits += _postcodes(text)
    for m in _EMAIL.finditer(text):
        if m.group(0).casefold() not in allowed:
            hits.append(Hit(m.start(), m.end(), "email"))
    hits += _addresses(text)
    hits += [Hit(m.start(), m.end(), "name") for m in _TITLE_NAME.finditer(text)]
    return hits
