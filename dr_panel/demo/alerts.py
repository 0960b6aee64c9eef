"""Demo data for the local drug information system, so a newcomer sees it working: subscribers
(e-mail, and one partner-system webhook that is shown disabled because no receiver runs in the
demo), three drug-concern reports, the signals a scan finds in the demo notifications, and alerts
issued, updated and cancelled, some public and some restricted.

Everything goes through the real services (report intake, grading, drafting with the leak gate,
second-person approval by the demo lead, the broadcast outbox), as the demo coordinator and lead.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from dr_panel.alerts import assessment as grading
from dr_panel.alerts import drafting, reports, signals
from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.models import (
    Alert,
    AlertLevel,
    Channel,
    Decision,
    Rating,
    Reliability,
    Scope,
    Severity,
)
from dr_panel.auth.models import User
from dr_panel.extensions import db

SUBSCRIBERS = [
    # (name, organisation, address, areas, audiences, restricted)
    ("Duty manager", "Community drug and alcohol treatment service", "treatment.duty@example.org",
     ["E06000009", "E06000008", "E10000017"], ["treatment"], True),
    ("Hostel managers", "Blackpool supported housing partnership", "hostels@example.org",
     ["E06000009"], ["hostels"], True),
    ("ED consultants", "Blackpool Teaching Hospitals", "ed.alerts@example.org",
     ["E06000009"], ["emergency_departments"], True),
    ("Outreach team", "Harm-reduction outreach", "outreach@example.org",
     ["E06000008", "E10000017"], ["outreach"], True),
    ("Community pharmacies", "Local pharmaceutical committee", "lpc@example.org",
     ["E06000009", "E06000008", "E10000017"], ["pharmacies"], True),
    ("Custody healthcare", "Lancashire Constabulary", "custody.health@example.org",
     ["E10000017"], ["police"], True),
    ("Public information", "Council communications team", "comms@example.org",
     ["E06000009", "E06000008", "E10000017"], ["public"], False),
]

ALERTS = [
    # (report index, level, scope, content, then: None | "update" | "cancel")
    (0, AlertLevel.URGENT_ALERT, Scope.RESTRICTED, {
        "title": "Strong sedation after using heroin in Blackpool town centre",
        "substance": "Suspected heroin adulterated with a nitazene-type synthetic opioid",
        "sold_as": "Heroin (brown powder)",
        "appearance": "Light brown powder in small clear bags",
        "adulterant": "Nitazene-type synthetic opioid suspected; toxicology awaited",
        "signs_of_harm": "Rapid, deep sedation; slow or stopped breathing; pinpoint pupils; "
                         "several doses of naloxone needed",
        "advice": "Do not use alone; start with a small test amount; carry naloxone and keep "
                  "giving it while waiting for the ambulance.",
        "professional_actions": "Make sure everyone you work with has naloxone; call 999 early; "
                                "report further incidents to the drug information network.",
    }, "update"),
    (1, AlertLevel.DRUG_ALERT, Scope.PUBLIC, {
        "title": "Yellow 'diazepam' tablets causing heavy sedation",
        "substance": "Counterfeit tablets, suspected to contain bromazolam",
        "sold_as": "Diazepam (street 'blues' and 'yellows')",
        "appearance": "Yellow round tablets marked 'DAN 10'",
        "adulterant": "Bromazolam (a designer benzodiazepine) suspected",
        "signs_of_harm": "Heavy sedation, memory loss, falls; greater overdose risk with opioids "
                         "or alcohol",
        "advice": "Tablets bought outside a pharmacy may not be what they seem. Avoid mixing "
                  "with alcohol or opioids.",
        "professional_actions": "Ask about street tablets at assessments; share this notice "
                                "with people at risk.",
    }, None),
    (2, AlertLevel.INFORMATION_NOTICE, Scope.PUBLIC, {
        "title": "Vapes sold as cannabis (THC) containing synthetic cannabinoids",
        "substance": "Synthetic cannabinoid receptor agonists suspected",
        "sold_as": "THC vape cartridges",
        "appearance": "Unbranded vape cartridges with a clear liquid",
        "adulterant": "",
        "signs_of_harm": "Vomiting, agitation, collapse in young people",
        "advice": "Vapes sold as THC may contain much stronger substances.",
        "professional_actions": "Schools and youth services: share the advice with young people.",
    }, "cancel"),
]

REPORTS = [
    ("E06000009", True, {
        "substance": "Brown powder sold as heroin",
        "form": "Powder",
        "sold_as": "Heroin",
        "appearance": "Light brown powder in small clear bags",
        "effects": "Several people very sedated within minutes, needed repeated naloxone",
        "place": "Town centre",
    }),
    ("E10000017", False, {
        "substance": "Yellow tablets",
        "form": "Tablet",
        "sold_as": "Diazepam",
        "appearance": "Yellow round tablets marked DAN 10",
        "effects": "Heavy sedation and memory loss",
        "place": "Around the bus station",
    }),
    ("E06000008", False, {
        "substance": "Vape liquid sold as THC",
        "form": "Vape cartridge",
        "sold_as": "Cannabis (THC) vape",
        "appearance": "Unbranded cartridges, clear liquid",
        "effects": "Vomiting and collapse in two young people",
        "place": "Near a secondary school",
    }),
]


# The demo's partner endpoint: a name under the reserved .example TLD (RFC 2606), which passes
# the outbound rules under any setting and never resolves, so enabling it sends nothing anywhere.
DEMO_WEBHOOK = "https://partner-system.example/dr-panel-demo"


def load(coordinator: User, lead: User, today: date) -> int:
    """Create the LDIS demo; returns how many alerts were issued. Does nothing once any alert
    exists. The caller commits."""
    if db.session.scalar(select(func.count()).select_from(Alert)):
        return 0
    for name, org, address, areas, audiences, restricted in SUBSCRIBERS:
        subs.create(
            subs.Details(Channel.EMAIL, name, org, address, areas, audiences, restricted),
            by=coordinator,
        )
    hook, _secret = subs.create(
        subs.Details(Channel.WEBHOOK, "Partner case-management system", "Regional NHS trust",
                     DEMO_WEBHOOK, ["E06000009", "E10000017"], [], True),
        by=coordinator,
    )
    subs.disable(hook, "Demo endpoint: no receiver runs in the demo", by=coordinator)
    signals.scan(today)
    filed = [
        reports.file_report(
            reports.ReportInput(area=area, seen_on=today - timedelta(days=3 + i),
                                is_urgent=urgent, texts=texts),
            by=coordinator,
            today=today,
        )
        for i, (area, urgent, texts) in enumerate(REPORTS)
    ]
    issued = 0
    for index, level, scope, content, then in ALERTS:
        decision = Decision(level.value)
        graded = grading.assess(
            filed[index],
            grading.Grading(
                reliability=Reliability.B,
                plausibility=Rating.HIGH,
                local_relevance=Rating.HIGH,
                severity=Severity.EXTREME if level is AlertLevel.URGENT_ALERT else Severity.SEVERE,
                decision=decision,
                rationale="Consistent with reports from treatment and ambulance partners.",
            ),
            by=coordinator,
        )
        alert = drafting.start_draft(graded, by=coordinator)
        version = alert.draft
        assert version is not None  # noqa: S101  (start_draft always makes one)
        drafting.edit_draft(
            alert,
            drafting.DraftInput(
                content={**drafting.content_of(version), **content},
                level=level,
                scope=scope,
                area_codes=[a.ons_code for a in version.areas],
                audiences=list(_audiences(level)),
                expires_on=today + timedelta(days=28),
            ),
            by=coordinator,
            expected_revision=None,
        )
        drafting.submit(alert, by=coordinator, expected_revision=None)
        drafting.approve(alert, by=lead, expected_revision=None)
        issued += 1
        if then == "update":
            update = drafting.start_update(alert, by=coordinator)
            drafting.edit_draft(
                alert,
                drafting.DraftInput(
                    content={**drafting.content_of(update),
                             "adulterant": "Toxicology confirmed a nitazene-type synthetic "
                                           "opioid (protonitazene) in two samples",
                             "note": "Toxicology results received: the adulterant is "
                                     "confirmed. The alert is extended by two weeks."},
                    level=update.level,
                    scope=update.scope,
                    area_codes=[a.ons_code for a in update.areas],
                    audiences=drafting.audiences_of(update),
                    expires_on=today + timedelta(days=42),
                ),
                by=coordinator,
                expected_revision=None,
            )
            drafting.submit(alert, by=coordinator, expected_revision=None)
            drafting.approve(alert, by=lead, expected_revision=None)
        elif then == "cancel":
            drafting.cancel(alert, reason="Laboratory testing found only THC in the vapes "
                                          "submitted; the notice is withdrawn.",
                            urgent=True, by=coordinator)
    db.session.flush()
    return issued


def _audiences(level: AlertLevel) -> list[str]:
    if level is AlertLevel.INFORMATION_NOTICE:
        return ["treatment", "outreach", "public"]
    return ["treatment", "hostels", "emergency_departments", "outreach", "pharmacies", "police",
            "public"]
