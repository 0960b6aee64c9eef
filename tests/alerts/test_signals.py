"""The signal scan: spikes from daily counts, clusters of reviewed cases, idempotence, the command
and the coordinator's pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import signals as sig
from dr_panel.alerts.models import Signal, SignalKind, SignalMethod
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases import services
from dr_panel.cases.models import Case, CaseStatus
from dr_panel.cli import main
from dr_panel.extensions import db
from dr_panel.privacy.identity import keys
from dr_panel.reference.models import Area
from dr_panel.reviews.findings import LearningPoint, Theme
from dr_panel.trends.models import DailyCount

TODAY = date(2026, 11, 20)


def area(code: str = "E06000009") -> Area:
    found = db.session.scalar(select(Area).where(Area.ons_code == code))
    assert found is not None
    return found


def flat_with_spike(
    code: str = "E06000009", case_type: str = "nfo", group: str = "opioids", spike: int = 10
) -> None:
    """40 days of 2 a day, then ``spike`` on TODAY (rows only where n > 0, as T1 keeps them)."""
    a = area(code)
    for back in range(40, 0, -1):
        db.session.add(DailyCount(area_id=a.id, day=TODAY - timedelta(days=back),
                                  case_type=case_type, substance_group=group, n=2))
    db.session.add(DailyCount(area_id=a.id, day=TODAY, case_type=case_type,
                              substance_group=group, n=spike))
    db.session.commit()


def stored_signals() -> list[Signal]:
    return list(db.session.scalars(select(Signal).order_by(Signal.method)))


def test_a_spike_is_one_signal_naming_every_method_that_fired(app: Flask) -> None:
    flat_with_spike()
    report = sig.scan(TODAY)
    db.session.commit()
    got = stored_signals()
    assert len(got) == 1
    s = got[0]
    assert s.kind is SignalKind.SPIKE and s.day == TODAY and s.observed == 10
    assert s.subject == "opioids" and not s.is_urgent
    # C1 names it (the earliest warning); baseline all 2: mean 2, sd 0 -> sigma 0.5; the count
    # to exceed is 2 + 3 * 0.5 = 3.5
    assert s.method is SignalMethod.C1
    assert s.expected == 2.0 and s.threshold == 3.5
    evidence = json.loads(s.evidence)
    assert evidence["methods"] == ["c1", "c2", "c3", "poisson"]
    assert evidence["series"]["counts"][-1] == 10 and evidence["series"]["to"] == "2026-11-20"
    assert report.new_spikes == 1 and report.new_clusters == 0
    # The same scan again finds nothing new.
    again = sig.scan(TODAY)
    db.session.commit()
    assert again.new == 0 and len(stored_signals()) == 1
    assert db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "signals.scanned")
    ) is not None


def test_a_burst_over_several_days_is_one_episode(app: Flask) -> None:
    """Three high days in a row, in a substance group and so in "all substances" too: one
    signal, on the group, on the burst's first day."""
    a = area()
    for back in range(40, 0, -1):
        day = TODAY - timedelta(days=back)
        n = 6 if back <= 2 else 1
        for group in ("opioids", "*"):
            db.session.add(DailyCount(area_id=a.id, day=day, case_type="nfo",
                                      substance_group=group, n=n))
    db.session.add(DailyCount(area_id=a.id, day=TODAY, case_type="nfo",
                              substance_group="opioids", n=6))
    db.session.add(DailyCount(area_id=a.id, day=TODAY, case_type="nfo",
                              substance_group="*", n=6))
    db.session.commit()
    sig.scan(TODAY)
    db.session.commit()
    got = stored_signals()
    assert [(s.subject, s.day) for s in got] == [("opioids", TODAY - timedelta(days=2))]
    # A later scan during the same burst adds nothing while that signal is open.
    sig.scan(TODAY + timedelta(days=1))
    db.session.commit()
    assert len(stored_signals()) == 1


def test_a_death_series_is_urgent_and_a_quiet_one_is_not_flagged(app: Flask) -> None:
    flat_with_spike(case_type="death", group="*", spike=6)
    flat_with_spike(code="E06000008", spike=2)  # no spike at all
    sig.scan(TODAY)
    db.session.commit()
    got = stored_signals()
    assert got and all(s.is_urgent and s.area.ons_code == "E06000009" for s in got)
    assert sig.subject_label(got[0]) == "Deaths, all substances"


def test_a_spike_older_than_the_look_back_is_not_reported(app: Flask) -> None:
    flat_with_spike()
    assert sig.scan(TODAY + timedelta(days=20)).new == 0  # default look-back 14 days
    assert sig.scan(TODAY + timedelta(days=20), days=21).new_spikes == 1


def test_area_settings_override_the_defaults(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(
        SIGNAL_AREA_SETTINGS={"E06000009": {"min_sigma": 5.0, "poisson": False}},
        SIGNAL_SETTINGS={"c3": False},
    )
    with app.app_context():
        flat_with_spike()  # Blackpool: sigma 5 -> C1 = (10 - 2) / 5 = 1.6: no alarm
        flat_with_spike(code="E06000008")
        sig.scan(TODAY)
        db.session.commit()
        got = stored_signals()
        assert [s.area.ons_code for s in got] == ["E06000008"]
        # C3 is off everywhere; Blackburn's alarm names the methods still on.
        assert json.loads(got[0].evidence)["methods"] == ["c1", "c2", "poisson"]
        assert sig.settings_for("E06000009").min_sigma == 5.0


def _case(user: Any, day: date, substances: str, case_type: str = "nfo", n: int = 0) -> Case:
    data = {
        "case_type": case_type,
        "area": "E06000009",
        "event_date": day.isoformat(),
        "setting": "street",
        "substances": substances,
        "full_name": f"Testperson Cluster{n:02d}",
    }
    if case_type == "nfo":
        data["nfo_outcome"] = "treated_at_scene"
    parsed, errors = services.parse_notification(
        data, lookups=services.Lookups(), allowed_areas=user.area_ids
    )
    assert parsed is not None, errors
    return services.create_notification(parsed, by=user)


def _learning(case: Case, theme_code: str) -> None:
    point = LearningPoint(case_id=case.id)
    point.uuid = __import__("uuid").uuid4()
    point.text_enc = keys().encrypt(
        "Synthetic learning.", table="learning_points", column="text", record=str(point.uuid)
    )
    point.themes = [db.session.scalar(select(Theme).where(Theme.code == theme_code))]
    db.session.add(point)


def test_clusters_of_reviewed_cases_sharing_a_theme_or_substance(
    app: Flask, create_user: Any
) -> None:
    user = create_user(Role.COORDINATOR)
    reviewed = [
        _case(user, TODAY - timedelta(days=d), "heroin", n=i, case_type=t)
        for i, (d, t) in enumerate([(80, "nfo"), (40, "death"), (5, "nfo")])
    ]
    not_reviewed = _case(user, TODAY - timedelta(days=3), "heroin", n=9)
    for c in reviewed:
        c.status = CaseStatus.REVIEWED
        _learning(c, "left_treatment")
    _learning(not_reviewed, "left_treatment")
    db.session.commit()
    report = sig.scan(TODAY)
    db.session.commit()
    clusters = [s for s in stored_signals() if s.kind is SignalKind.CLUSTER]
    assert {(s.method, s.subject) for s in clusters} == {
        (SignalMethod.THEME, "left_treatment"), (SignalMethod.SUBSTANCE, "heroin")
    }
    theme = next(s for s in clusters if s.method is SignalMethod.THEME)
    assert theme.observed == 3 and theme.day == TODAY - timedelta(days=5)
    assert theme.is_urgent  # one of them is a death
    evidence = json.loads(theme.evidence)
    assert sorted(evidence["case_uuids"]) == sorted(str(c.uuid) for c in reviewed)
    assert "Cluster" not in theme.evidence  # no names in the evidence
    assert report.new_clusters == 2
    # Outside the 90-day window, the oldest case drops out and the cluster is too small.
    assert sig.scan(TODAY + timedelta(days=15)).new_clusters == 0


def test_scan_command_is_cronable(app: Flask, runner: Any) -> None:
    flat_with_spike()
    as_of = ["--date", TODAY.isoformat()]
    result = runner.invoke(main, ["signals", "scan", "--days", "3", *as_of])
    assert result.exit_code == 0, result.output
    assert ": 1 new signal (1 spikes, 0 clusters)" in result.output
    # Run again (as cron would), with the default look-back: nothing new, still exit 0.
    result = runner.invoke(main, ["signals", "scan", *as_of])
    assert result.exit_code == 0 and ": 0 new signals" in result.output
    # A look-back that ends before the spike finds nothing; a day that is not a date is refused.
    result = runner.invoke(main, ["signals", "scan", "--date", "2026-11-19", "--days", "3"])
    assert result.exit_code == 0 and ": 0 new signals" in result.output
    result = runner.invoke(main, ["signals", "scan", "--date", "20/11/2026"])
    assert result.exit_code == 2 and "does not match the format '%Y-%m-%d'" in result.output


def test_coordinator_sees_the_signal_its_chart_and_others_do_not(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    flat_with_spike()
    sig.scan(TODAY)
    db.session.commit()
    (s,) = stored_signals()
    coordinator = create_user(Role.COORDINATOR)
    login(client, coordinator)
    page = client.get(f"/ldis/signals/{s.uuid}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Non-fatal overdoses, opioids" in html and f"/ldis/signals/{s.uuid}/chart.svg" in html
    assert "also flagged by C2, C3, Poisson" in html
    chart = client.get(f"/ldis/signals/{s.uuid}/chart.svg")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    svg = chart.get_data(as_text=True)
    assert '<title id="chart-title">' in svg and "<desc" in svg and "20 Nov 10" in svg
    listing = client.get("/ldis/signals").get_data(as_text=True)
    assert listing.count(f"/ldis/signals/{s.uuid}") >= 1
    queue = client.get("/ldis/queue").get_data(as_text=True)
    assert f"/ldis/signals/{s.uuid}" in queue

    other = app.test_client()
    login(other, create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert other.get(f"/ldis/signals/{s.uuid}").status_code == 404
    assert f"/ldis/signals/{s.uuid}" not in other.get("/ldis/queue").get_data(as_text=True)
    member = app.test_client()
    login(member, create_user(Role.PANEL_MEMBER))
    assert member.get(f"/ldis/signals/{s.uuid}").status_code == 403
