"""The attacker's probe suite, generated: every written form of every identifier kind the issue
lists, put in every field of an alert draft and of a drug-concern report, and names split across
two fields. Stored people are synthetic and created through the real intake service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dr_panel.alerts.drafting import CONTENT_FIELDS
from dr_panel.alerts.reports import TEXT_FIELDS
from dr_panel.cases import services
from dr_panel.extensions import db

# Synthetic people; NHS numbers from the 999 test range only.
PEOPLE = [
    {"full_name": "Zebedee Quarrington-Vale", "date_of_birth": "1980-02-01",
     "nhs_number": "9990000018", "address": "14a Acacia Avenue, Blackpool",
     "postcode": "FY1 1AA"},
    {"full_name": "Ottoline Marigold Featherstonehaugh", "date_of_birth": "1975-11-23",
     "nhs_number": "9990000026", "address": "7 Larkspur, Thornton", "postcode": "FY5 2BX"},
    # Surnames that are everyday words: only beside a title, age or date, or in a pair.
    {"full_name": "Daniel Brown", "date_of_birth": "1990-06-15", "address": "3 Mill Lane"},
    {"full_name": "Sarah White", "date_of_birth": "1988-03-09", "address": "12 Chapel Street"},
    {"full_name": "James Hill", "date_of_birth": "1969-12-30", "address": "40 Park Road"},
]  # fmt: skip


def store_people(user: Any) -> list[Any]:
    """The people above, each notified through ``services.create_notification``."""
    cases = []
    for who in PEOPLE:
        values = {
            "case_type": "nfo", "area": "E06000009", "event_date": "2026-10-01",
            "notified_on": "2026-10-02", "setting": "street", "substances": "heroin",
            **who,
        }  # fmt: skip
        n, errors = services.parse_notification(
            values, lookups=services.Lookups(), allowed_areas=user.area_ids
        )
        assert n is not None, errors
        cases.append(services.create_notification(n, by=user))
    db.session.commit()
    return cases


ZW, SHY, RLM = "\u200b", "\u00ad", "\u200f"
CYRILLIC = str.maketrans("aeopcAEOPC", "аеорсАЕОРС")  # Latin -> Cyrillic look-alikes


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _names() -> dict[str, list[str]]:
    z, q = "Zebedee", "Quarrington-Vale"
    o, m, f = "Ottoline", "Marigold", "Featherstonehaugh"
    return {
        "stored name": [
            f"{z} {q}", f"{z} {q}".upper(), f"{z} {q}".lower(), f"{q}, {z}", f"{z} Quarrington",
            f"{z} Vale", f"Zeb{ZW}edee {q}", f"Zebe{SHY}dee Quarring{SHY}ton-Vale",
            f"{z} {q}".translate(CYRILLIC), f"{fullwidth(z)} {q}", f"{z}{RLM} {q}",
            f"{o} {m} {f}", f"{m} {f}", f"{o} {f}", f"{f}, {o}", f"{o} M. {f}",
            f"Otto{ZW}line Feather{ZW}stonehaugh", f"{m} {f}".translate(CYRILLIC),
            "Zébédée Quarrington-Vale", f"{z}  {q}", f"{z}\n{q}",
        ],
        "surname beside a title, age or date": [
            f"Mr {f}", f"mrs {f.lower()}", f"{f}, aged 51", f"{f} (51)", f"51-year-old {f}",
            f"{f} aged 51", f"Ms {q}", f"{q}, 46 years old", f"{f} on 3 November 2026",
            f"{f.translate(CYRILLIC)}, aged 51", "Mr Brown", "Brown, aged 36", "White (38)",
        ],
        "made-up name with a title": [
            "Mr Pemberton-Oakes", "Ms Ffyona Twistleton", "Dr. Aldous Penhaligon", "Mrs X",
        ],
        "NHS number": [
            "9990000018", "999 000 0018", "999-000-0018", "999.000.0018", "999/000/0018",
            "999  000  0018", "9 9 9 0 0 0 0 0 1 8", fullwidth("9990000018"),
            f"999{ZW}000{ZW}0018", "999 000 0034",
        ],
        "date of birth": [
            "01/02/1980", "1/2/1980", "01.02.1980", "01-02-1980", "01 02 1980", "01021980",
            "1980-02-01", "1980/02/01", "1 Feb 1980", "1st February 1980", "1st of February 1980",
            "February 1st 1980", "February 1st, 1980", "Feb 1, 1980", "February 1980",
            "Feb 1980", "02/1980", "1/2/80", "01 . 02 . 1980", f"01{ZW}/02/1980", "23.11.75",
        ],
        "postcode": [
            "FY1 1AA", "FY11AA", "fy1 1aa", "FY1-1AA", "FY1  1AA", "FY1 1AA".translate(CYRILLIC),
            fullwidth("FY1 1AA"), "FY1/1AA",
        ],
        "phone": [
            "07700 900123", "07700900123", "07700-900-123", "07700.900.123", "(01253) 477000",
            "+44 7700 900123", "+44 (0)7700 900123", "01253 477 000", "0 7 7 0 0 9 0 0 1 2 3",
            "07700  900  123",
        ],
        "e-mail": ["someone@example.org", "some.one+x@mail.example.co.uk"],
        "address": [
            "14a Acacia Avenue", "14 Acacia Avenue", "Flat 3", "flat 3b", "Apartment 12",
            "14A ACACIA AVE", "3 The Green", "22 Station Road", "14a Acacia", "7 Larkspur",
            "7, Larkspur", "7 LARKSPUR", "7 Larkspur".translate(CYRILLIC), "3 Mill",
        ],
    }


# Names split over two fields: the given name in one, the surname in another.
SPLITS = [
    ("Zebedee", "Quarrington-Vale"), ("Marigold", "Featherstonehaugh"),
    ("ottoline", "featherstonehaugh"), ("Zebedee".translate(CYRILLIC), "Quarrington-Vale"),
    ("Daniel", "Brown"),
]  # fmt: skip

# Ordinary text each field holds around the probe.
ALERT_FILLER = {
    "title": "Blue tablets sold as oxycodone",
    "substance": "A nitazene opioid",
    "sold_as": "Oxycodone 80mg",
    "appearance": "Round blue tablets marked OP 80",
    "adulterant": "Bromazolam",
    "signs_of_harm": "Pinpoint pupils, slow breathing, blue lips",
    "advice": "Do not use alone; carry naloxone; call 999.",
    "professional_actions": "Offer naloxone to everyone on your caseload.",
    "counts": "Fewer than 8 people in Blackpool",
    "note": "Updated after more reports.",
}
REPORT_FILLER = {
    "substance": "Brown powder",
    "form": "Powder",
    "sold_as": "Heroin",
    "appearance": "Light brown, small bags",
    "effects": "Very sleepy for hours",
    "place": "Town centre",
}
FORMS = {"alert draft": (tuple(CONTENT_FIELDS), ALERT_FILLER),
         "report": (tuple(TEXT_FIELDS), REPORT_FILLER)}  # fmt: skip


@dataclass(frozen=True)
class Probe:
    family: str
    form: str
    fields: dict[str, str]
    spans: tuple[tuple[str, int, int], ...]  # (field, start, end) that must each be marked

    def __repr__(self) -> str:
        return f"<Probe {self.family} in {self.form} {[s[0] for s in self.spans]}>"


def _place(filler: dict[str, str], field: str, written: str) -> tuple[dict[str, str], int]:
    fields = dict(filler)
    prefix = f"{filler[field]} Seen with "
    fields[field] = f"{prefix}{written} recently."
    return fields, len(prefix)


def probes() -> Iterator[Probe]:
    """Every probe: each written form in each field, and each split in each pair of fields."""
    for family, written_forms in _names().items():
        for written in written_forms:
            for form, (keys, filler) in FORMS.items():
                for key in keys:
                    fields, at = _place(filler, key, written)
                    yield Probe(family, form, fields, ((key, at, at + len(written)),))
    for given, surname in SPLITS:
        for form, (keys, filler) in FORMS.items():
            for a in keys:
                for b in keys:
                    if a == b:
                        continue
                    fields, at = _place(filler, a, given)
                    more, at_b = _place(fields, b, surname)
                    yield Probe(
                        "name split over two fields", form, more,
                        ((a, at, at + len(given)), (b, at_b, at_b + len(surname))),
                    )  # fmt: skip


def is_blocked(probe: Probe, findings: list[Any]) -> bool:
    """Every span of the probe is covered, at least in part, by a finding in its field."""
    return all(
        any(f.field == key and f.start < end and start < f.end for f in findings)
        for key, start, end in probe.spans
    )
