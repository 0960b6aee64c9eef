"""One intake engine: the same notifications through every door (the page form, the partner
form, the JSON API, a CSV file on the import page) have the same effects: the same person
linking, the same reference sequence, the same trend counts, the same audit entries, and the
lead of the person's open safety plan alerted by e-mail when they overdose again.

Each door is driven for real, over HTTP, as its users use it. The story, for every door:
Anna's overdose (a new person), then a safety plan for her, then Anna's second overdose (linked:
her plan's lead is alerted) and Ben's death (a new person). On the import page the last two are
one file of two rows, so the alert also comes from inside a batch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role, User
from dr_panel.auth.tokens import create_token
from dr_panel.cases.models import Case, MatchStatus, Person
from dr_panel.cases.services import FIELDS
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.privacy import identity as ident
from dr_panel.trends import aggregates

# Made-up people; NHS numbers from the 999 test range, valid check digits.
ANNA = ("Anna Quillfeather", "1984-02-29", "9990000018", "FY1 3AB")
BEN = ("Ben Marrowby", "1979-11-05", "9990000026", "FY2 0AA")
SECRETS = (*ANNA, *BEN, "Quillfeather", "Marrowby", "999 000 0018")
DOORS = ["form", "partner", "api", "csv"]


def days_ago(n: int) -> str:
    return (utcnow().date() - timedelta(days=n)).isoformat()


def notification(who: tuple[str, str, str, str], **changes: str) -> dict[str, str]:
    """Only the fields the partner form has (the shortest door), so every door gets the same
    notification; blank ``notified_on`` means today on every door."""
    name, dob, nhs, postcode = who
    data = {
        "case_type": "nfo",
        "area": "E06000009",
        "notifying_agency": "TREATMENT",  # the partner form fills in the partner's agency
        "event_date": days_ago(10),
        "event_time": "23:15",
        "setting": "street",
        "substances": "heroin,crack",
        "naloxone_given": "yes",
        "naloxone_by": "peer",
        "nfo_outcome": "conveyed",
        "full_name": name,
        "date_of_birth": dob,
        "nhs_number": nhs,
        "postcode": postcode,
    }
    data.update(changes)
    return data


FIRST = notification(ANNA)
AGAIN = notification(ANNA, event_date=days_ago(3), setting="home")
DEATH = notification(
    BEN,
    case_type="death",
    event_date=days_ago(5),
    substances="methadone",
    naloxone_given="",
    naloxone_by="",
    nfo_outcome="",
)


class Door:
    """Sends notifications through one door, as its users do."""

    def __init__(self, name: str, app: Any, login: Any, users: dict[str, User]) -> None:
        self.name = name
        self.client = app.test_client()
        if name == "partner":
            login(self.client, users["partner"])
        elif name in ("form", "csv"):
            login(self.client, users["coordinator"])
        else:
            _, token = create_token(users["coordinator"], "feed", by=users["coordinator"])
            db.session.commit()
            self.headers = {"Authorization": f"Bearer {token}"}

    def send(self, *notifications: dict[str, str]) -> None:
        if self.name == "csv":  # one file, however many notifications
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(notifications)
            response = self.client.post(
                "/cases/import/",
                data={
                    "file": (io.BytesIO(out.getvalue().encode()), "n.csv"),
                    "mode": "all-or-nothing",
                },
                content_type="multipart/form-data",
            )
            assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
            assert f"Imported {len(notifications)} of" in response.get_data(as_text=True)
            return
        for data in notifications:
            if self.name == "api":
                body: dict[str, Any] = {k: v for k, v in data.items() if v}
                body["substances"] = data["substances"].split(",") if data["substances"] else []
                response = self.client.post("/api/v1/cases", json=body, headers=self.headers)
                assert response.status_code == 201, response.get_data(as_text=True)
            elif self.name == "form":
                response = self.client.post(
                    "/cases/new", data=data | {"substances": data["substances"].split(",")}
                )
                assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
            else:
                form = {k: v for k, v in data.items() if k != "notifying_agency"}
                response = self.client.post(
                    "/notify", data=form | {"substances": data["substances"].split(",")}
                )
                assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
                assert "Notification received" in response.get_data(as_text=True)


@pytest.fixture
def users(create_user: Callable[..., User]) -> dict[str, User]:
    return {
        "coordinator": create_user(Role.COORDINATOR),
        "lead": create_user(Role.PANEL_MEMBER, agency="TREATMENT"),
        "partner": create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"),
    }


def last_seq() -> int:
    return db.session.scalar(select(func.max(AuditEntry.seq))) or 0


def entries_since(seq: int) -> list[AuditEntry]:
    return list(
        db.session.scalars(select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq))
    )


def open_a_plan(app: Any, login: Any, users: dict[str, User], case: Case) -> None:
    client = app.test_client()
    login(client, users["coordinator"])
    response = client.post(
        f"/cases/{case.uuid}/safety-plan",
        data={
            "status": "open",
            "risks": "Reduced tolerance after prison release",
            "protective": "Sister visits weekly",
            "interventions": ["naloxone"],
            "lead": str(users["lead"].uuid),
            "lead_agency": "TREATMENT",
            "review_on": (utcnow().date() + timedelta(days=28)).isoformat(),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]


@pytest.mark.parametrize("door", DOORS)
def test_every_door_has_the_same_effects(
    app: Any, login: Any, users: dict[str, User], door: str
) -> None:
    year = utcnow().year
    through = Door(door, app, login, users)

    before = last_seq()
    through.send(FIRST)
    first_entries = entries_since(before)
    (first,) = db.session.scalars(select(Case)).all()
    open_a_plan(app, login, users, first)
    assert db.session.scalars(select(OutboxMessage)).all() == []  # no alert yet

    before = last_seq()
    through.send(AGAIN, DEATH)
    later_entries = entries_since(before)
    db.session.expire_all()

    # Linking and numbering: the engine's, whichever door.
    cases = db.session.scalars(select(Case).order_by(Case.id)).all()
    assert [(c.reference, c.match_status) for c in cases] == [
        (f"NFO-{year}-0001", MatchStatus.NONE),
        (f"NFO-{year}-0002", MatchStatus.LINKED),
        (f"DRD-{year}-0001", MatchStatus.NONE),
    ]
    anna, again, death = cases
    assert again.person_id == anna.person_id and death.person_id != anna.person_id
    assert db.session.scalar(select(func.count()).select_from(Person)) == 2
    assert ident.unseal(death.person).full_name == BEN[0]
    assert {c.notifying_agency.code for c in cases if c.notifying_agency} == {"TREATMENT"}
    assert all(c.notifying_agency for c in cases)
    assert {c.created_by_id for c in cases} == {
        users["partner" if door == "partner" else "coordinator"].id
    }
    assert [s.code for s in again.substances] == ["crack", "heroin"]

    # Trend counts: kept in the same transaction, equal to a fresh count of the cases.
    _, want_cube, want_daily, _ = aggregates.count_all()
    have_cube, have_daily, _ = aggregates.stored()
    assert have_cube == want_cube and have_daily == want_daily
    assert sum(n for k, n in have_daily.items() if "*" in k) == 3

    # The plan's lead is alerted once, by e-mail, with a link and no identifier.
    (alert,) = db.session.scalars(select(OutboxMessage)).all()
    assert alert.to_address == users["lead"].email and alert.kind == "safety_plan.alert"
    assert f"/cases/{again.uuid}/safety-plan" in alert.body_text
    for secret in (*SECRETS, anna.reference, again.reference):
        assert secret not in alert.body_text and secret not in alert.subject

    # The audit log: the same entries from every door, except how the intake itself is
    # recorded: a case.created per case from the single doors, one cases.imported per file
    # from the import (no case.created per row: README, "Bulk import").
    kinds = [e.action for e in first_entries + later_entries if not e.action.startswith("auth.")]
    effects = [k for k in kinds if k not in ("case.created", "cases.imported")]
    assert effects == ["safety_plan.alerted"]
    alerted = next(e for e in later_entries if e.action == "safety_plan.alerted")
    assert alerted.outcome is Outcome.SUCCESS and str(again.uuid) in (alerted.details or "")
    if door == "csv":
        imports = [e for e in first_entries + later_entries if e.action == "cases.imported"]
        assert [e.outcome for e in imports] == [Outcome.SUCCESS, Outcome.SUCCESS]
        assert [json.loads(e.details or "{}")["imported"] for e in imports] == [1, 2]
        assert "case.created" not in kinds
    else:
        created = [e for e in first_entries + later_entries if e.action == "case.created"]
        assert [e.object_uuid for e in created] == [str(c.uuid) for c in cases]
        source = {"form": "form", "partner": "partner", "api": "api"}[door]
        assert all(f'"source":"{source}"' in (e.details or "") for e in created)
    for entry in first_entries + later_entries:
        for secret in SECRETS:
            assert secret not in (entry.details or "")


@pytest.mark.parametrize("door", DOORS)
def test_no_alert_without_an_open_plan_through_any_door(
    app: Any, login: Any, users: dict[str, User], door: str
) -> None:
    through = Door(door, app, login, users)
    through.send(FIRST)
    through.send(AGAIN)
    cases = db.session.scalars(select(Case).order_by(Case.id)).all()
    assert cases[1].match_status is MatchStatus.LINKED
    assert db.session.scalars(select(OutboxMessage)).all() == []
    assert "safety_plan.alerted" not in db.session.scalars(select(AuditEntry.action)).all()


def test_a_refused_file_alerts_no_one(app: Any, login: Any, users: dict[str, User]) -> None:
    """All or nothing: a file refused for one bad row saves no case, so no lead is told of
    an overdose that was not recorded (the alert is in the import's transaction)."""
    through = Door("csv", app, login, users)
    through.send(FIRST)
    open_a_plan(app, login, users, db.session.scalars(select(Case)).one())
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows([AGAIN, notification(BEN, setting="moon")])
    response = through.client.post(
        "/cases/import/",
        data={"file": (io.BytesIO(out.getvalue().encode()), "n.csv"), "mode": "all-or-nothing"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200 and "Nothing was imported" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1
    assert db.session.scalars(select(OutboxMessage)).all() == []
    assert "safety_plan.alerted" not in db.session.scalars(select(AuditEntry.action)).all()
