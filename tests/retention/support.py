"""Building people with a full history (identifiers, reasons, a return, findings, an action, a
safety plan) for the retention tests, and reading back what the database holds."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from dr_panel.cases import workflow
from dr_panel.cases.models import Case, YesNoUnknown
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency
from dr_panel.retention.services import free_text_tables
from dr_panel.reviews import actions as act
from dr_panel.reviews import findings as fnd
from dr_panel.reviews import services as req
from dr_panel.reviews.models import Engagement
from tests.cases.test_intake import create

NAME, DOB, NHS, POSTCODE, ADDRESS = (
    "Siân O'Brien-Smith", "1984-02-29", "9990000018", "FY1 3AB", "Flat 2, 14 Example Road"
)
# What must not survive disposal, in any written form, in any table or audit entry.
SECRETS = ("Siân", "O'Brien", "Brien-Smith", "9990000018", "999 000 0018", "1984-02-29",
           "FY1 3AB", "Example Road")
FREE_TEXT = "Seen by the outreach worker on Tuesday"


def agency(code: str) -> Agency:
    return db.session.scalars(select(Agency).where(Agency.code == code)).one()


def nfo(coordinator: Any, **changes: Any) -> Case:
    return create(coordinator, **changes)


def full_history(coordinator: Any, contributor: Any, lead: Any, **changes: Any) -> Case:
    """An overdose taken to panel and closed, with free text at every step."""
    case = create(coordinator, **changes)
    workflow.move(case, "review", by=coordinator, reason=f"{FREE_TEXT} (triage)")
    (request,) = req.send_requests(
        case, [agency("TREATMENT")], due_on=utcnow().date() + timedelta(days=14),
        note=f"{FREE_TEXT} (note)", by=coordinator,
    )
    db.session.commit()
    req.save_return(
        request,
        req.Return(
            known_to_agency=YesNoUnknown.YES,
            first_contact_on=None, last_contact_on=None, engagement=Engagement.PARTLY,
            texts={"risks": f"{FREE_TEXT} (risks)", "services": None, "safeguarding": None,
                   "chronology": f"{FREE_TEXT} (chronology)"},
        ),
        submit=True, by=contributor, expected_version=None,
    )
    db.session.commit()
    workflow.move(case, "ready", by=coordinator)
    fnd.save_findings(
        case,
        fnd.FindingsInput(
            missed_opportunities=f"{FREE_TEXT} (missed)",
            preventability=fnd.Preventability.POTENTIALLY_PREVENTABLE,
            factors=[fnd.NewFactor(fnd.Domain.PERSON, f"{FREE_TEXT} (factor)",
                                   fnd.Score.MAY_HAVE_CONTRIBUTED, True)],
            learning_point=f"{FREE_TEXT} (learning)",
            theme_codes=["using_alone"],
        ),
        by=coordinator, expected_version=0,
    )
    workflow.move(case, "reviewed", by=coordinator)
    act.create_action(case, description=f"{FREE_TEXT} (action)", agency=agency("TREATMENT"),
                      due_on=utcnow().date() + timedelta(days=30), by=coordinator)
    act.save_plan(
        case,
        act.PlanInput(status=act.PlanStatus.CLOSED, risks=f"{FREE_TEXT} (plan risks)",
                      protective="Sister visits weekly", interventions=[act.Intervention.NALOXONE],
                      lead=lead, lead_agency=agency("TREATMENT"),
                      review_on=utcnow().date() + timedelta(days=28)),
        by=coordinator, expected_version=None,
    )
    workflow.move(case, "close", by=coordinator)
    db.session.commit()
    return case


def at(day: Any) -> datetime:
    """Noon UTC on a day: the run's clock."""
    return datetime.combine(day, time(12), tzinfo=UTC)


def stored_text() -> dict[str, list[Any]]:
    """Every encrypted free-text value the case tables hold, by table."""
    out: dict[str, list[Any]] = {}
    for table, _ in free_text_tables():
        cols = [c for c in table.c if c.name.endswith("_enc")]
        out[table.name] = [v for row in db.session.execute(select(*cols)) for v in row if v]
    return out
