"""Drug-concern ("bad batch") reports from the professional information network and the public.

One field list for every door (the signed-in form, the public form, the API), checked by
``check_report``. Every text field goes through the identifier-leak gate
(``dr_panel.alerts.leakgate.check_fields``) before anything is saved: a report that names or
otherwise identifies someone is refused with the span to remove. What is saved is encrypted all
the same (a description of someone can identify them without a name): the free text as one JSON
value in ``content_enc``, and the public reporter's contact address, used only for the
confirmation, in ``reporter_contact_enc``.

Each report gets a reference ``DC-<year>-<nnnn>``, counting per year of receipt. The reporter gets
a confirmation e-mail (the reference, never the content), queued in the same transaction.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_mod
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Integer, cast, func, select

from dr_panel.alerts.models import DrugReport, ItemStatus, ReportSource
from dr_panel.audit.services import record
from dr_panel.cases.identity import keys
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area

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


def area_choices() -> list[Area]:
    return list(db.session.scalars(select(Area).order_by(Area.name)))


def check_report(data: ReportInput, *, public: bool, today: date | None = None) -> Area:
    """The area, or ``ReportRefused`` naming every problem (leak-gate findings included)."""
    from dr_panel.alerts import leakgate

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
    findings = leakgate.check_fields({k: v for k, v in texts.items() if v}, today=today)
    for f in findings:
        errors.setdefault(
            f.field,
            f"{f.message} (characters {f.start + 1} to {f.end}, highlighted below the form).",
        )
    if errors:
        raise ReportRefused(errors, findings)
    assert area is not None
    return area


def next_reference(year: int) -> str:
    prefix = f"DC-{year}-"
    last = db.session.scalar(
        select(func.max(cast(func.substr(DrugReport.reference, len(prefix) + 1), Integer))).where(
            DrugReport.reference.like(prefix + "%")
        )
    )
    return f"{prefix}{(last or 0) + 1:04d}"


def _seal(report: DrugReport, column: str, text: str) -> str:
    return keys().encrypt(text, table="drug_reports", column=column, record=str(report.uuid))


def content_of(report: DrugReport) -> dict[str, str]:
    """The report's free text (decrypted): for coordinators of its area only."""
    raw = keys().decrypt(
        report.content_enc, table="drug_reports", column="content", record=str(report.uuid)
    )
    value = json.loads(raw)
    return {k: str(value.get(k) or "") for k in TEXT_FIELDS}


def file_report(data: ReportInput, *, by: Any = None, today: date | None = None) -> DrugReport:
    """Check, save and confirm a report; the caller commits. ``by`` is the signed-in reporter,
    or None for the public form."""
    from dr_panel.mail import services as mail

    public = by is None
    area = check_report(data, public=public, today=today)
    now = utcnow()
    texts = {k: (data.texts.get(k) or "").strip() for k in TEXT_FIELDS}
    report = DrugReport(
        uuid=uuid_mod.uuid4(),
        reference=next_reference(now.year),
        source=ReportSource.PUBLIC if public else ReportSource.PROFESSIONAL,
        area=area,
        reporter_id=None if public else by.id,
        seen_on=data.seen_on,
        is_urgent=bool(data.is_urgent),
        status=ItemStatus.NEW,
        received_at=now,
    )
    report.content_enc = _seal(report, "content", json.dumps(texts, ensure_ascii=False))
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
        )
    return report


def visible_reports(user: Any, status: ItemStatus | None = None) -> list[DrugReport]:
    """Reports a coordinator may see: their areas only, newest first."""
    if user.role != "coordinator":
        return []
    stmt = select(DrugReport).where(DrugReport.area_id.in_(user.area_ids or {-1}))
    if status is not None:
        stmt = stmt.where(DrugReport.status == status)
    return list(db.session.scalars(stmt.order_by(DrugReport.received_at.desc()).limit(500)))


# -- the JSON API's shapes ------------------------------------------------------------------------


def report_spec() -> dict[str, Any]:
    """The body of ``POST /api/v1/reports`` (checked by ``api.services.check_body``)."""
    from dr_panel.api.services import Field

    spec: dict[str, Any] = {
        "area": Field("text", required=True, max_length=9, newlines=False),
        "seen_on": Field("date", required=True),
        "is_urgent": Field("bool"),
    }
    for key, (_, limit) in TEXT_FIELDS.items():
        spec[key] = Field("text", required=key in REQUIRED_TEXT, max_length=limit)
    return spec


def report_input(data: dict[str, Any]) -> ReportInput:
    return ReportInput(
        area=data["area"],
        seen_on=data["seen_on"],
        is_urgent=bool(data.get("is_urgent")),
        texts={k: data.get(k) or "" for k in TEXT_FIELDS},
    )


def report_json(report: DrugReport, *, content: bool = False) -> dict[str, Any]:
    """A report's metadata; with ``content`` (coordinators of the area, audited by the caller)
    its decrypted text too."""
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
    return body
