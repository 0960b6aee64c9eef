"""Drug-concern ("bad batch") reports from the professional information network and the public.

One field list for every door (the signed-in form, the public form, the API), checked by
``check_report``. Every text field goes through the identifier-leak gate
(``dr_panel.alerts.leakgate.check_fields``) before anything is saved, and what it finds is split
by ``dr_panel.cases.visibility.split_findings``:

- What has the shape of an identifier (an NHS-number-like run of digits, a date, a postcode, an
  address, a phone number, an e-mail address) is refused with the span to remove, with the same
  message whoever is stored.
- A match against a stored person is refused in the same way only for a coordinator or panel
  member whose areas hold a case of that person. For everyone else (the public, partners, leads,
  colleagues of other areas) refusing it would say that the person is held, so the report is
  accepted exactly as any other (same page, status, e-mail, audit action, and the same work
  done) and HELD: ``is_held`` is set and the spans, with the matched people, are kept in
  ``held_enc`` for the area's coordinators, whose report page marks them.

What is saved is encrypted all the same (a description of someone can identify them without a
name): the free text as one JSON value in ``content_enc``, the held spans in ``held_enc`` (sealed
for every report, an empty list when nothing is held), and the public reporter's contact address,
used only for the confirmation, in ``reporter_contact_enc``; its confirmation is queued with the
address encrypted in the outbox too (``mail.queue(private_recipient=True)``).

Each report gets a reference ``DC-<year>-<nnnn>``, counting per year of receipt. The reporter gets
a confirmation e-mail (the reference, never the content), queued in the same transaction.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid as uuid_mod
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, cast, func, select

from dr_panel import counters
from dr_panel.alerts.models import DrugReport, ItemStatus, ReportSource
from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.cases.visibility import person_ids_of, split_findings
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.identity import keys
from dr_panel.reference.models import Area
from dr_panel.roles import Role
from dr_panel.search import starts_with

if TYPE_CHECKING:
    from dr_panel.auth.models import User

# The free-text fields, in the order the forms show them, with their labels and limits.
TEXT_FIELDS: dict[str, tuple[str, int]] = {
    "substance": ("What was seen (the substance, if known)", 500),
    "form": ("Its form (powder, tablet, liquid, vape, herbal...)", 200),
    "sold_as": ("What it was sold as", 300),
    "appearance": ("Appearance (colour, markings, packaging)", 1000),
    "effects": ("Effects seen", 2000),
    "place": ("Where, in general terms (e.g. town centre)", 200),
}
REQUIRED_TEXT = ("substance", "effects")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass
class ReportInput:
    """What a reporter sends; ``__repr__`` shows no content."""

    area: str = ""
    seen_on: date | None = None
    is_urgent: bool = False
    contact: str = ""
    texts: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<ReportInput area={self.area!r}>"


class ReportRefused(ValueError):
    """The report cannot be saved; ``errors`` says per field what to fix. ``findings`` are the
    leak gate's spans, for the page to highlight."""

    def __init__(self, errors: dict[str, str], findings: list[Any] | None = None) -> None:
        super().__init__("The report was not saved: " + ", ".join(errors))
        self.errors = errors
        self.findings = findings or []


def record_refusal(err: ReportRefused, *, by: User | None) -> None:
    """Roll the refused report back; if the leak gate refused it, audit that (the kinds and the
    fields, never the words) in a transaction of its own."""
    db.session.rollback()
    if not err.findings:
        return
    record(
        "drug_report.refused",
        outcome=Outcome.DENIED,
        actor=by,
        actor_label=None if by else "public",
        details={
            "why": "identifier",
            "kinds": sorted({f.kind for f in err.findings}),
            "fields": sorted({f.field for f in err.findings}),
        },
    )
    db.session.commit()


def area_choices() -> list[Area]:
    return list(db.session.scalars(select(Area).order_by(Area.name)))


def _gate(texts: dict[str, str], by: User | None, today: date) -> tuple[list[Any], list[Any]]:
    """``(shown, held)`` findings for this reporter (``by`` None: the public). The patterns of
    every field are added to what is shown whatever the gate says of stored people, so that a
    stored person's NHS number or date of birth is refused exactly as a made-up one is."""
    from dr_panel.alerts import leakgate

    present = {k: v for k, v in texts.items() if v}
    shown, held = split_findings(leakgate.check_fields(present, today=today), by)
    for key, text in present.items():
        shown += leakgate.find_patterns(text, key, today=today)
    order = {key: n for n, key in enumerate(TEXT_FIELDS)}
    unique = {(f.field, f.start, f.end, f.kind): f for f in shown}
    ordered = sorted(
        unique.values(), key=lambda f: (order.get(f.field, 99), f.start, f.end, f.kind)
    )
    return ordered, held


def check_report(
    data: ReportInput, *, public: bool, today: date | None = None, by: User | None = None
) -> tuple[Area, list[Any]]:
    """The area and the findings to hold, or ``ReportRefused`` naming every problem the
    reporter may be told about (the leak gate's included)."""
    today = today or utcnow().date()
    errors: dict[str, str] = {}
    area = db.session.scalar(select(Area).where(Area.ons_code == (data.area or "").strip()))
    if area is None:
        errors["area"] = "Choose the area where it was seen from the list."
    if data.seen_on is None:
        errors["seen_on"] = "Give the date it was seen, like 2026-11-20."
    elif data.seen_on > today:
        errors["seen_on"] = "The date is in the future: give the day it was seen, today or earlier."
    texts = {k: (data.texts.get(k) or "").strip() for k in TEXT_FIELDS}
    for key, (label, limit) in TEXT_FIELDS.items():
        if key in REQUIRED_TEXT and not texts[key]:
            errors[key] = f"Fill in “{label.split(' (')[0]}”: say what you can, even if unsure."
        elif len(texts[key]) > limit:
            errors[key] = f"Keep “{label.split(' (')[0]}” to {limit:,} characters."
    contact = (data.contact or "").strip()
    if contact and not public:
        errors["contact"] = "Signed-in reporters get the confirmation at their account's address."
    elif contact and (len(contact) > 254 or not _EMAIL.match(contact)):
        errors["contact"] = "Give an e-mail address like name@example.org, or leave it empty."
    findings, held = _gate(texts, by, today)
    for f in findings:
        errors.setdefault(
            f.field,
            f"{f.message} (characters {f.start + 1} to {f.end}, highlighted below the form).",
        )
    if errors:
        raise ReportRefused(errors, findings)
    assert area is not None
    return area, held


def _highest(prefix: str) -> int:
    return db.session.scalar(
        select(func.max(cast(func.substr(DrugReport.reference, len(prefix) + 1), Integer))).where(
            starts_with(DrugReport.reference, prefix)
        )
    ) or 0


def next_reference(year: int) -> str:
    """From the year's counter row, locked until the report commits (``dr_panel.counters``):
    reports sent at the same moment never take the same number."""
    prefix = f"DC-{year}-"
    return f"{prefix}{counters.take('drug_reports', prefix, floor=lambda: _highest(prefix)):04d}"


def _seal(report: DrugReport, column: str, text: str) -> str:
    return keys().encrypt(text, table="drug_reports", column=column, record=str(report.uuid))


@dataclass(frozen=True)
class HeldSpan:
    """Words of a held report that matched a stored person: where they are, never what they
    say. Read back by ``held_of``; shaped like a leak-gate finding for ``merged_spans``."""

    field: str
    start: int
    end: int
    kind: str
    person_ids: frozenset[int] = dataclasses.field(default=frozenset(), repr=False)
    stored: bool = True
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "people": sorted(self.person_ids),
        }


def _held_json(held: list[Any]) -> str:
    spans = [
        HeldSpan(f.field, f.start, f.end, f.kind, person_ids_of(f)).as_json() for f in held
    ]
    return json.dumps(spans, separators=(",", ":"))


def held_of(report: DrugReport) -> list[HeldSpan]:
    """The held spans of a report (decrypted): for coordinators of its area only."""
    if not report.held_enc:
        return []
    raw = keys().decrypt(
        report.held_enc, table="drug_reports", column="held", record=str(report.uuid)
    )
    return [
        HeldSpan(
            str(s["field"]), int(s["start"]), int(s["end"]), str(s["kind"]),
            frozenset(int(p) for p in s.get("people") or ()),
        )
        for s in json.loads(raw)
    ]


HELD_NOTE = "These words may identify someone. Do not copy them into an alert."
HELD_NOTE_VISIBLE = (
    "These words match a person whose cases you can see. Do not copy them into an alert."
)


def held_for_viewer(report: DrugReport, viewer: User | None) -> dict[str, list[HeldSpan]]:
    """The held spans per field, each with the note ``viewer`` may read: that the words match
    a person only where ``viewer`` may see one of that person's cases (the same rule as the
    forms), otherwise only that they may identify someone."""
    spans = held_of(report)
    shown, _ = split_findings(spans, viewer)
    visible = {id(s) for s in shown}
    out: dict[str, list[HeldSpan]] = {}
    for s in spans:
        note = HELD_NOTE_VISIBLE if id(s) in visible else HELD_NOTE
        out.setdefault(s.field, []).append(
            HeldSpan(s.field, s.start, s.end, s.kind, s.person_ids, message=note)
        )
    return out


def content_of(report: DrugReport) -> dict[str, str]:
    """The report's free text (decrypted): for coordinators of its area only."""
    raw = keys().decrypt(
        report.content_enc, table="drug_reports", column="content", record=str(report.uuid)
    )
    value = json.loads(raw)
    return {k: str(value.get(k) or "") for k in TEXT_FIELDS}


def file_report(
    data: ReportInput, *, by: User | None = None, today: date | None = None
) -> DrugReport:
    """Check, save and confirm a report; the caller commits. ``by`` is the signed-in reporter,
    or None for the public form."""
    from dr_panel.mail import services as mail

    public = by is None
    area, held = check_report(data, public=public, today=today, by=by)
    now = utcnow()
    texts = {k: (data.texts.get(k) or "").strip() for k in TEXT_FIELDS}
    report = DrugReport(
        uuid=uuid_mod.uuid4(),
        reference=next_reference(now.year),
        source=ReportSource.PUBLIC if public else ReportSource.PROFESSIONAL,
        area=area,
        reporter_id=by.id if by is not None else None,  # None: the public
        seen_on=data.seen_on,
        is_urgent=bool(data.is_urgent),
        status=ItemStatus.NEW,
        received_at=now,
        is_held=bool(held),
    )
    report.content_enc = _seal(report, "content", json.dumps(texts, ensure_ascii=False))
    # Sealed for every report, held or not: the same work either way.
    report.held_enc = _seal(report, "held", _held_json(held))
    contact = (data.contact or "").strip() if public else ""
    if contact:
        report.reporter_contact_enc = _seal(report, "reporter_contact", contact)
    db.session.add(report)
    db.session.flush()
    record(
        "drug_report.filed",
        actor=by,
        actor_label=None if by else "public",
        object_type="drug_reports",
        object_uuid=report.uuid,
        details={
            "reference": report.reference,
            "source": report.source.value,
            "area": area.ons_code,
            "urgent": report.is_urgent,
            # How many spans were held for the coordinator, and of what kind; never the words.
            "held": len(held),
            "held_kinds": sorted({f.kind for f in held}),
        },
    )
    to = contact or (getattr(by, "email", "") if by else "")
    if to:
        mail.queue(
            to,
            f"Drug concern report received: {report.reference}",
            (
                f"Thank you. Your report of a drug concern has reached the {area.name} drug "
                f"information team. Its reference is {report.reference}.\n\n"
                "Quote the reference if you contact the team about it. This e-mail does not "
                "repeat what you reported.\n\n"
                "If someone is unwell now, call 999.\n"
            ),
            kind="drug_report.confirmation",
            dedupe_key=f"drug_report:{report.uuid}",
            private_recipient=public,
        )
    return report


def visible_reports(user: User, status: ItemStatus | None = None) -> list[DrugReport]:
    """Reports a coordinator may see: their areas only, newest first."""
    if user.role != Role.COORDINATOR:
        return []
    stmt = select(DrugReport).where(DrugReport.area_id.in_(user.area_ids or {-1}))
    if status is not None:
        stmt = stmt.where(DrugReport.status == status)
    return list(db.session.scalars(stmt.order_by(DrugReport.received_at.desc()).limit(500)))


# -- the JSON API's answer (its body is ``dr_panel.alerts.schemas.NewDrugReport``) ----------------


def report_json(
    report: DrugReport, *, content: bool = False, viewer: User | None = None
) -> dict[str, Any]:
    """A report's metadata; with ``content`` (coordinators of the area, audited by the caller)
    its decrypted text too, and its held spans (character offsets into that text) with the note
    ``viewer`` may read. Whether a report is held is never in the metadata: the answer to the
    reporter's own POST is the same for a held report as for any other."""
    body: dict[str, Any] = {
        "uuid": str(report.uuid),
        "reference": report.reference,
        "source": report.source.value,
        "area": {"code": report.area.ons_code, "name": report.area.name},
        "seen_on": report.seen_on.isoformat(),
        "is_urgent": report.is_urgent,
        "status": report.status.value,
        "received_at": report.received_at.isoformat(),
    }
    if content:
        body["content"] = content_of(report)
        held = held_for_viewer(report, viewer) if report.is_held else {}
        body["held"] = [
            {"field": s.field, "start": s.start, "end": s.end, "note": s.message}
            for key in TEXT_FIELDS
            for s in held.get(key, [])
        ]
    return body
