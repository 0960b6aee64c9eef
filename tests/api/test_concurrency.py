"""Nothing lost under concurrency: many writers at once, through the real app and database
(real threads, each with its own client and session), on SQLite and PostgreSQL.

What an attacker or a busy morning would notice: a submission answered 500 or "send it again",
two records with one reference, an audit chain that no longer verifies, a save that silently
overwrote a colleague's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel.alerts.models import DrugReport
from dr_panel.audit import services as audit
from dr_panel.auth.models import Role
from dr_panel.cases.models import Case
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reviews import meetings as mt
from dr_panel.reviews.models import MeetingItem
from tests.api.conftest import notification as api_notification
from tests.conftest import PASSWORD

CLIENTS = 6
EACH = 5


def in_threads(n: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` in ``n`` threads released together; return what they raised."""
    start = threading.Barrier(n)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            work(i)
        except BaseException as err:  # noqa: BLE001  reported to the test
            failures.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return failures


@pytest.fixture
def busy_app(app_factory: Callable[..., Flask]) -> Any:
    application = app_factory(DRUG_REPORT_LIMIT="1000 per minute")
    with application.app_context():
        yield application


def report_form(i: int) -> dict[str, str]:
    return {
        "area": "E06000009",
        "place": "town centre",
        "seen_on": (utcnow().date() - timedelta(days=1)).isoformat(),
        "substance": "Brown powder, suspected heroin",
        "form": "powder",
        "sold_as": "heroin",
        "appearance": f"Darker than usual, batch {i}",
        "effects": "Two people collapsed within minutes; needed several doses of naloxone.",
    }


def test_reports_sent_at_once_are_all_stored_with_distinct_references(busy_app: Flask) -> None:
    statuses: list[int] = []

    def send(i: int) -> None:
        client = busy_app.test_client()
        for j in range(EACH):
            response = client.post("/report-a-drug-concern", data=report_form(i * EACH + j))
            statuses.append(response.status_code)

    assert in_threads(CLIENTS, send) == []
    assert statuses == [200] * (CLIENTS * EACH)
    refs = list(db.session.scalars(select(DrugReport.reference)))
    assert len(refs) == CLIENTS * EACH and len(set(refs)) == len(refs)
    assert audit.verify().ok


def test_notifications_through_the_form_at_once_all_get_distinct_references(
    busy_app: Flask, create_user: Any
) -> None:
    emails = [create_user(Role.COORDINATOR).email for _ in range(CLIENTS)]
    statuses: list[int] = []
    year = utcnow().year

    def send(i: int) -> None:
        client = busy_app.test_client()
        client.post("/login", data={"email": emails[i], "password": PASSWORD})
        for j in range(EACH):
            data = api_notification(full_name=f"Person {i}-{j}", nhs_number=None,
                                    date_of_birth="1980-01-01", notified_on=f"{year}-01-02",
                                    event_date=f"{year}-01-01", substances="heroin",
                                    date_is_found=None)
            response = client.post("/cases/new", data=data)
            statuses.append(response.status_code)

    assert in_threads(CLIENTS, send) == []
    assert statuses == [302] * (CLIENTS * EACH)
    refs = list(db.session.scalars(select(Case.reference)))
    assert len(refs) == CLIENTS * EACH and len(set(refs)) == len(refs)
    assert sorted(refs) == [f"NFO-{year}-{n:04d}" for n in range(1, CLIENTS * EACH + 1)]
    assert audit.verify().ok


def test_notifications_through_the_api_at_once_are_never_told_to_send_again(
    busy_app: Flask, create_user: Any, bearer: Any
) -> None:
    headers = [bearer(create_user(Role.COORDINATOR)) for _ in range(CLIENTS)]
    statuses: list[int] = []

    def send(i: int) -> None:
        client = busy_app.test_client()
        for j in range(EACH):
            body = api_notification(full_name=f"Person {i}-{j}", nhs_number=None)
            response = client.post("/api/v1/cases", json=body, headers=headers[i])
            statuses.append(response.status_code)

    assert in_threads(CLIENTS, send) == []
    assert statuses == [201] * (CLIENTS * EACH)
    refs = list(db.session.scalars(select(Case.reference)))
    assert len(set(refs)) == CLIENTS * EACH
    assert audit.verify().ok


def test_audit_writers_at_once_leave_a_chain_that_verifies(busy_app: Flask) -> None:
    """Writers whose only write is the audit entry (a trend query, a refusal): before, two took
    the same seq on SQLite and one request failed."""
    before = audit.count()

    def write(i: int) -> None:
        for j in range(10):
            with busy_app.app_context():
                audit.record("test.concurrent", details={"writer": i, "n": j},
                             actor_label="test")
                db.session.commit()

    assert in_threads(CLIENTS, write) == []
    assert audit.count() == before + CLIENTS * 10
    result = audit.verify()
    assert result.ok, result.problem
    assert busy_app.test_cli_runner().invoke(main, ["audit", "verify"]).exit_code == 0


def test_a_moved_case_takes_the_counters_next_number_and_its_old_one_is_never_reused(
    busy_app: Flask, create_user: Any, create_case: Any
) -> None:
    from dr_panel.cases import services

    user = create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))
    first = create_case(user)
    old = first.reference
    n, errors = services.parse_notification(
        {**api_notification(area="E06000008"), "substances": "heroin,crack"},
        lookups=services.Lookups(), allowed_areas=user.area_ids,
    )
    assert n is not None, errors
    services.update_case(first, n, by=user, expected_version=first.version)
    db.session.commit()
    again = create_case(user)
    assert again.reference != old and again.reference.endswith("-0002")


def test_two_minutes_saves_from_the_same_version_the_second_is_refused(
    busy_app: Flask, create_user: Any, create_case: Any
) -> None:
    """Before, the second save silently overwrote the first one's text."""
    from dr_panel.reviews.models import Meeting

    user = create_user(Role.COORDINATOR)
    case = create_case(user)
    meeting = Meeting(area=case.area, held_on=utcnow().date(), location="Town hall",
                      created_by_id=user.id)
    db.session.add(meeting)
    db.session.flush()
    item = MeetingItem(meeting=meeting, case=case)
    db.session.add(item)
    db.session.commit()
    seen = item.version
    mt.save_minutes(item, "Agreed: refer to housing.", by=user, expected_version=seen)
    db.session.commit()
    with pytest.raises(mt.StaleMinutes):
        mt.save_minutes(item, "Agreed: nothing further.", by=user, expected_version=seen)
    db.session.rollback()
    assert mt.minutes_of(db.session.get(MeetingItem, item.id)) == "Agreed: refer to housing."


def race_twice(busy_app: Flask, emails: list[str], send: Callable[[Any, int], Any]) -> list[int]:
    """Two signed-in people send at the same moment; the status codes, sorted."""
    clients = []
    for email in emails:
        client = busy_app.test_client()
        client.post("/login", data={"email": email, "password": PASSWORD})
        clients.append(client)
    statuses: list[int] = []
    assert in_threads(2, lambda i: statuses.append(send(clients[i], i).status_code)) == []
    return sorted(statuses)


def test_two_edits_of_a_case_at_once_one_wins_the_other_keeps_their_input(
    busy_app: Flask, create_user: Any, create_case: Any
) -> None:
    """Before, the loser of the race past the version check got a 500."""
    from tests.cases.test_intake import notification as page_notification

    users = [create_user(Role.COORDINATOR) for _ in range(2)]
    emails = [u.email for u in users]
    for round_ in range(4):
        case = create_case(users[0])
        url, version = f"/cases/{case.uuid}/edit", str(case.version)
        form = page_notification(version=version)
        for key in ("full_name", "date_of_birth", "nhs_number", "postcode", "address"):
            form.pop(key)
        forms = [form | {"route": "smoked"}, form | {"route": "injected"}]
        statuses = race_twice(
            busy_app, emails, lambda c, i, url=url, forms=forms: c.post(url, data=forms[i])
        )
        assert statuses == [302, 409], (round_, statuses)


def test_two_signal_settings_saves_from_one_revision_one_is_refused(
    busy_app: Flask, create_user: Any, bearer: Any
) -> None:
    """Before, both saves were accepted on PostgreSQL (the second overwrote the first)."""
    from dr_panel.reference.models import Area

    headers = [bearer(create_user(Role.COORDINATOR)) for _ in range(2)]
    area = db.session.scalar(select(Area).where(Area.ons_code == "E06000009"))
    url = f"/api/v1/signal-settings/{area.uuid}"
    client = busy_app.test_client()
    for round_ in range(4):
        revision = client.get(url, headers=headers[0]).get_json()["revision"]
        statuses: list[int] = []

        def save(i: int, revision: int = revision, round_: int = round_,
                 statuses: list[int] = statuses) -> None:
            body = {"revision": revision, "min_count": 3 + 2 * round_ + i + 1}
            response = busy_app.test_client().patch(url, json=body, headers=headers[i])
            statuses.append(response.status_code)

        assert in_threads(2, save) == []
        assert sorted(statuses) == [200, 409], (round_, statuses)


def test_a_save_racing_past_the_version_check_is_refused_as_stale_not_a_500(
    busy_app: Flask, create_user: Any, create_case: Any
) -> None:
    """The loser read the same version as the winner, so its own check passes; the database's
    check (the UPDATE matching no row) must still refuse it, with the service's message."""
    from dr_panel.cases import services

    user = create_user(Role.COORDINATOR)
    case = create_case(user)
    seen = case.version
    n, errors = services.parse_notification(
        {**api_notification(route="smoked"), "substances": "heroin"},
        lookups=services.Lookups(), allowed_areas=user.area_ids,
    )
    assert n is not None, errors
    with busy_app.app_context():  # a colleague's save lands after this request read the case
        other = db.session.get(Case, case.id)
        other.naloxone_doses = 5
        db.session.commit()
    with pytest.raises(services.StaleEdit):
        services.update_case(case, n, by=user, expected_version=seen)
    db.session.rollback()
    kept = db.session.get(Case, case.id)
    assert kept.naloxone_doses == 5 and kept.route.value == "injected"  # theirs, not ours


def test_the_minutes_page_refuses_a_stale_save_and_keeps_the_text(
    busy_app: Flask, create_user: Any, create_case: Any
) -> None:
    from dr_panel.reviews.models import Meeting

    user = create_user(Role.COORDINATOR)
    case = create_case(user)
    meeting = Meeting(area=case.area, held_on=utcnow().date(), location="Town hall",
                      created_by_id=user.id)
    db.session.add(meeting)
    db.session.flush()
    db.session.add(MeetingItem(meeting=meeting, case=case))
    db.session.commit()
    url = f"/meetings/{meeting.uuid}/minutes/{case.uuid}"
    alice, bob = busy_app.test_client(), busy_app.test_client()
    for client in (alice, bob):
        client.post("/login", data={"email": user.email, "password": PASSWORD})
    first = alice.post(url, data={"minutes": "Agreed: refer to housing.", "version": "1"})
    assert first.status_code == 302
    stale = bob.post(url, data={"minutes": "Agreed: naloxone training.", "version": "1"})
    html = stale.get_data(as_text=True)
    assert stale.status_code == 409 and "Someone else saved the minutes" in html
    assert "Agreed: naloxone training." in html and "Agreed: refer to housing." in html
    db.session.expire_all()
    [item] = db.session.scalars(select(MeetingItem)).all()
    assert mt.minutes_of(item) == "Agreed: refer to housing."
