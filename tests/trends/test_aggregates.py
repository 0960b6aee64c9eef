"""The pre-aggregated trend counts always equal a fresh count of the cases.

The fresh count here is written independently of ``dr_panel.trends.aggregates``: one plain SQL
GROUP BY over cases, persons and substances. It is compared with the stored tables after
seeded random intake, edits, merges, sex edits, re-links, deletions and rollbacks through the
real services, after bulk imports, and after ``dr-panel trends rebuild``.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from dr_panel.auth.models import Role
from dr_panel.cases import bulk, services, workflow
from dr_panel.cases.models import Case, CaseStatus, MatchStatus, Person, Sex
from dr_panel.extensions import db
from dr_panel.trends import aggregates
from dr_panel.trends.models import DailyCount, TrendCount
from tests.cases.test_import import csv_bytes

AREAS = ("E06000009", "E06000008")
SUBSTANCES = [code for code, _, _ in services.SUBSTANCES]
SETTINGS = ["home", "hostel", "street", "custody", "hospital", "prison", "other"]
TREATMENT = ["in_treatment", "left_6m", "previously", "never", "unknown"]
OUTCOMES = ["conveyed", "treated_at_scene", "refused_conveyance", "self_discharged", "unknown", ""]
SEXES = ["female", "male", "other", "unknown", ""]

# Dimension values of each case, one row per value, in plain SQL. "ord" numbers the
# dimensions alphabetically, so a pair is counted once, with the first dimension as dim_a.
FRESH = """
WITH base AS (
    SELECT c.id AS case_id, c.area_id, c.event_date, c.case_type, {month} AS month,
           c.age_band, c.setting, c.treatment_status, c.nfo_outcome, p.sex, c.record_key
    FROM cases c JOIN persons p ON p.id = c.person_id
    WHERE c.status <> 'duplicate'
),
dv AS (
    SELECT case_id, 1 AS ord, 'age_band' AS dim, COALESCE(age_band, 'unknown') AS val FROM base
    UNION ALL
    SELECT case_id, 2, 'nfo_outcome',
           CASE WHEN case_type = 'death' THEN 'not_applicable'
                ELSE COALESCE(nfo_outcome, 'unknown') END
    FROM base
    UNION ALL SELECT case_id, 3, 'setting', setting FROM base
    UNION ALL SELECT case_id, 4, 'sex', sex FROM base
    UNION ALL
    SELECT b.case_id, 5, 'substance', COALESCE(s.code, 'none')
    FROM base b LEFT JOIN case_substances cs ON cs.case_id = b.case_id
    LEFT JOIN substances s ON s.id = cs.substance_id
    UNION ALL
    SELECT DISTINCT b.case_id, 6, 'substance_group', COALESCE(s."group", 'none')
    FROM base b LEFT JOIN case_substances cs ON cs.case_id = b.case_id
    LEFT JOIN substances s ON s.id = cs.substance_id
    UNION ALL SELECT case_id, 7, 'treatment_status', treatment_status FROM base
)
SELECT area_id, month, case_type, '' AS da, '' AS va, '' AS db, '' AS vb, COUNT(*),
       SUM(record_key)
FROM base GROUP BY area_id, month, case_type
UNION ALL
SELECT b.area_id, b.month, b.case_type, x.dim, x.val, '', '', COUNT(*), SUM(b.record_key)
FROM base b JOIN dv x ON x.case_id = b.case_id
GROUP BY b.area_id, b.month, b.case_type, x.dim, x.val
UNION ALL
SELECT b.area_id, b.month, b.case_type, x.dim, x.val, y.dim, y.val, COUNT(*),
       SUM(b.record_key)
FROM base b JOIN dv x ON x.case_id = b.case_id JOIN dv y ON y.case_id = b.case_id AND x.ord < y.ord
GROUP BY b.area_id, b.month, b.case_type, x.dim, x.val, y.dim, y.val
"""
FRESH_DAILY = """
WITH base AS (
    SELECT c.id AS case_id, c.area_id, c.event_date, c.case_type FROM cases c
    WHERE c.status <> 'duplicate'
)
SELECT area_id, event_date, case_type, '*', COUNT(*) FROM base
GROUP BY area_id, event_date, case_type
UNION ALL
SELECT area_id, event_date, case_type, grp, COUNT(*) FROM (
    SELECT DISTINCT b.case_id, b.area_id, b.event_date, b.case_type,
           COALESCE(s."group", 'none') AS grp
    FROM base b LEFT JOIN case_substances cs ON cs.case_id = b.case_id
    LEFT JOIN substances s ON s.id = cs.substance_id
) g
GROUP BY area_id, event_date, case_type, grp
"""


def _key(row: Any) -> tuple[Any, ...]:
    """Dates as ISO text, whatever the engine returns."""
    return tuple(
        str(v)[:10] if isinstance(v, date | str) and i == 1 else v for i, v in enumerate(row)
    )


def fresh() -> tuple[dict[tuple[Any, ...], Any], Counter[tuple[Any, ...]]]:
    """Both tables counted afresh in plain SQL; the cube as (count, sum of record keys)."""
    pg = db.session.get_bind().dialect.name == "postgresql"
    month = (
        "CAST(date_trunc('month', c.event_date) AS date)"
        if pg
        else "substr(c.event_date, 1, 7) || '-01'"
    )
    cube = {
        _key(r[:-2]): (r[-2], int(r[-1]))
        for r in db.session.execute(text(FRESH.format(month=month)))
    }
    daily = Counter({_key(r[:-1]): r[-1] for r in db.session.execute(text(FRESH_DAILY))})
    return cube, daily


def stored() -> tuple[dict[tuple[Any, ...], Any], Counter[tuple[Any, ...]]]:
    t, d = TrendCount, DailyCount
    cube: dict[tuple[Any, ...], Any] = {}
    for r in db.session.execute(
        select(t.area_id, t.month, t.case_type, t.dim_a, t.val_a, t.dim_b, t.val_b, t.n,
               t.key_sum)
    ):
        assert r[-2] > 0, "a row with no cases is kept"
        cube[_key(r[:-2])] = (r[-2], r[-1])
    daily: Counter[tuple[Any, ...]] = Counter()
    for r in db.session.execute(select(d.area_id, d.day, d.case_type, d.substance_group, d.n)):
        assert r[-1] > 0, "a daily row with no cases is kept"
        daily[_key(r[:-1])] = r[-1]
    return cube, daily


def assert_consistent(when: str) -> None:
    want_cube, want_daily = fresh()
    have_cube, have_daily = stored()
    wrong = {
        k: (have_cube.get(k), want_cube.get(k))
        for k in want_cube.keys() | have_cube.keys()
        if have_cube.get(k) != want_cube.get(k)
    }
    assert not wrong, f"{when}: {len(wrong)} trend rows differ, e.g. {sorted(wrong.items())[:3]}"
    wrong_daily = {
        k: (have_daily[k], want_daily[k])
        for k in want_daily.keys() | have_daily.keys()
        if have_daily[k] != want_daily[k]
    }
    assert not wrong_daily, f"{when}: daily rows differ, e.g. {sorted(wrong_daily.items())[:3]}"


# -- synthetic people and notifications ----------------------------------------------------------


def nhs_number(serial: int) -> str | None:
    """A number of the 999 test range with a valid check digit (None when the digit is 10)."""
    nine = f"999{serial:06d}"
    check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
    return None if check == 10 else nine + str(0 if check == 11 else check)


def people(rng: random.Random, count: int) -> list[dict[str, str]]:
    out = []
    serial = 0
    for i in range(count):
        nhs = ""
        if rng.random() < 0.7:
            while (number := nhs_number(serial)) is None:
                serial += 1
            serial += 1
            nhs = number
        dob = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        out.append(
            {
                "full_name": f"Testperson Quell{i:03d}",
                "date_of_birth": dob.isoformat(),
                "nhs_number": nhs,
                "sex": rng.choice(SEXES),
            }
        )
    return out


def event_fields(rng: random.Random, case_type: str | None = None) -> dict[str, str]:
    case_type = case_type or rng.choice(["nfo", "nfo", "death"])
    day = date(2024, 11, 1) + timedelta(days=rng.randrange(600))
    data = {
        "case_type": case_type,
        "area": rng.choice(AREAS),
        "event_date": day.isoformat(),
        "notified_on": (day + timedelta(days=rng.randrange(5))).isoformat(),
        "setting": rng.choice(SETTINGS),
        "substances": ",".join(rng.sample(SUBSTANCES, rng.choice([0, 1, 1, 2, 2, 3]))),
        "treatment_status": rng.choice(TREATMENT),
    }
    if case_type == "nfo":
        data["nfo_outcome"] = rng.choice(OUTCOMES)
    return data


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=AREAS)


def notify(user: Any, data: dict[str, str]) -> Case:
    n, errors = services.parse_notification(
        data, lookups=services.Lookups(), allowed_areas=user.area_ids
    )
    assert n is not None, errors
    return services.create_notification(n, by=user)


def edit(user: Any, case: Case, rng: random.Random) -> None:
    data = {**services.identity_values(case.person), **event_fields(rng)}
    taken = db.session.scalar(
        select(Case.id)
        .join(Case.area)
        .where(
            Case.reference == case.reference,
            Case.id != case.id,
            Case.area.has(ons_code=data["area"]),
        )
    )
    if taken:  # references are unique per area: keep the case where it is
        data["area"] = case.area.ons_code
    n, errors = services.parse_notification(
        data, lookups=services.Lookups(), allowed_areas=user.area_ids
    )
    assert n is not None, errors
    services.update_case(case, n, by=user, expected_version=case.version)


def counted_cases() -> list[Case]:
    return list(
        db.session.scalars(
            select(Case).where(Case.status != CaseStatus.DUPLICATE).order_by(Case.id)
        )
    )


# -- the tests ------------------------------------------------------------------------------------


def test_one_case_counts_under_each_substance_and_each_pair(app: Any, coordinator: Any) -> None:
    case = notify(
        coordinator,
        {
            **people(random.Random(1), 1)[0],
            "sex": "female",
            "date_of_birth": "1980-06-01",
            "case_type": "nfo",
            "area": "E06000009",
            "event_date": "2025-03-14",
            "notified_on": "2025-03-15",
            "setting": "street",
            "substances": "heroin,methadone,crack",
            "nfo_outcome": "conveyed",
        },
    )
    db.session.commit()
    area, month = case.area_id, date(2025, 3, 1)
    rows = {
        (r.dim_a, r.val_a, r.dim_b, r.val_b): r.n
        for r in db.session.scalars(select(TrendCount).where(TrendCount.area_id == area))
    }
    assert {r.month for r in db.session.scalars(select(TrendCount))} == {month}
    assert rows[("", "", "", "")] == 1
    # Two opioids and a stimulant: three substance rows, two group rows (deduplicated).
    assert {k[1] for k in rows if k[0] == "substance" and not k[2]} == {
        "heroin",
        "methadone",
        "crack",
    }
    assert {k[1] for k in rows if k[0] == "substance_group" and not k[2]} == {
        "opioids",
        "stimulants",
    }
    assert rows[("age_band", "35-44", "sex", "female")] == 1
    assert rows[("setting", "street", "substance", "heroin")] == 1
    assert rows[("substance", "crack", "substance_group", "opioids")] == 1
    # Every pair is stored once, alphabetically.
    assert all(a < b for a, _, b, _ in rows if b)
    # 1 plain + 10 single values + pairs: 5 single-valued dims (10 pairs) + each of those with
    # 3 substances and 2 groups (5 x 5) + substance x group (3 x 2).
    assert len(rows) == 1 + 10 + 10 + 25 + 6
    daily = {
        r.substance_group: r.n
        for r in db.session.scalars(select(DailyCount).where(DailyCount.day == date(2025, 3, 14)))
    }
    assert daily == {"*": 1, "opioids": 1, "stimulants": 1}
    assert_consistent("after one case")


def test_counts_follow_random_intake_edits_merges_relinks_and_deletions(
    app: Any, coordinator: Any
) -> None:
    rng = random.Random(20261122)
    pool = people(rng, 40)
    for person in pool[:12]:
        notify(coordinator, {**person, **event_fields(rng)})
    db.session.commit()
    assert_consistent("after the first notifications")
    done: Counter[str] = Counter()
    for step in range(1, 321):
        cases = counted_cases()
        op = rng.choices(
            ["create", "edit", "merge", "sex", "relink", "delete", "rollback"],
            weights=[30, 25, 10, 10, 10, 7, 8],
        )[0]
        if op == "create" or not cases:
            notify(coordinator, {**rng.choice(pool), **event_fields(rng)})
            op = "create"
        elif op == "edit":
            edit(coordinator, rng.choice(cases), rng)
        elif op == "merge":
            notified = [c for c in cases if c.status is CaseStatus.NOTIFIED]
            case = rng.choice(notified) if notified else None
            keep = [c for c in cases if case and c.area_id == case.area_id and c.id != case.id]
            if not keep:
                continue
            assert case is not None
            workflow.move(
                case,
                "duplicate",
                by=coordinator,
                duplicate_of_reference=rng.choice(keep).reference,
            )
        elif op == "sex":
            person = rng.choice(cases).person
            person.sex = rng.choice([s for s in Sex if s is not person.sex])
        elif op == "relink":
            waiting = [c for c in cases if c.match_status is MatchStatus.SUGGESTED]
            if waiting and rng.random() < 0.7:
                services.decide_match(
                    rng.choice(waiting), confirm=rng.random() < 0.8, by=coordinator
                )
            else:  # any re-linking of a case to another known person
                case = rng.choice(cases)
                case.person = rng.choice([c.person for c in cases])
        elif op == "delete":
            everyone = list(db.session.scalars(select(Case)))
            pointed = {c.duplicate_of_id for c in everyone}
            free = [c for c in everyone if c.id not in pointed]
            if not free:
                continue
            db.session.delete(rng.choice(free))
        elif op == "rollback":  # a request that fails half-way leaves the counts as they were
            edit(coordinator, rng.choice(cases), rng)
            notify(coordinator, {**rng.choice(pool), **event_fields(rng)})
            db.session.flush()
            db.session.rollback()
        db.session.commit()
        done[op] += 1
        if step % 80 == 0:
            assert_consistent(f"after step {step} ({dict(done)})")
    assert_consistent(f"at the end ({dict(done)})")
    assert min(done.values()) >= 5, done  # every kind of change was exercised
    total = db.session.scalar(select(TrendCount.n).where(TrendCount.dim_a == "").limit(1))
    assert total is not None

    # A rebuild from scratch gives exactly the same tables.
    before = stored()
    counted = aggregates.rebuild()
    db.session.commit()
    assert stored() == before
    assert counted == len(counted_cases())


def test_a_bulk_import_counts_its_cases_in_the_same_transaction(
    app: Any, coordinator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted cases are written every FLUSH_CASES cases (and at the end): make that often here.
    monkeypatch.setattr(aggregates, "FLUSH_CASES", 7)
    rng = random.Random(7)
    pool = people(rng, 30)
    for person in pool[:10]:
        notify(coordinator, {**person, **event_fields(rng)})
    db.session.commit()
    # Rows about people already held (linked, with their stored sex), new people, and people
    # of earlier rows of the same file and batch; two small batches.
    rows = [{**rng.choice(pool), **event_fields(rng)} for _ in range(60)]
    result = bulk.Importer(by=coordinator, mode=bulk.Mode.VALID_ROWS, batch_rows=25).run(
        bulk.CsvRows(io.BytesIO(csv_bytes(rows)))
    )
    db.session.commit()
    assert result.imported > 40 and result.linked > 5
    assert_consistent("after a bulk import")

    # All-or-nothing with a bad row saves nothing, counts included.
    before = stored()
    bad = [*[{**rng.choice(pool), **event_fields(rng)} for _ in range(5)], {"case_type": "x"}]
    result = bulk.import_csv(io.BytesIO(csv_bytes(bad)), by=coordinator)
    db.session.commit()
    assert not result.saved
    assert stored() == before

    # Editing an imported case afterwards keeps the counts right.
    edit(coordinator, counted_cases()[-1], rng)
    db.session.commit()
    assert_consistent("after editing an imported case")

    # And a rebuild, merging its partial counts every 7 cases, gives the same tables.
    before = stored()
    aggregates.rebuild()
    db.session.commit()
    assert stored() == before


def test_import_through_worker_processes_counts_the_same(app: Any, coordinator: Any) -> None:
    rng = random.Random(11)
    pool = people(rng, 20)
    rows = [{**rng.choice(pool), **event_fields(rng)} for _ in range(40)]
    result = bulk.Importer(by=coordinator, mode=bulk.Mode.VALID_ROWS, batch_rows=8, workers=2).run(
        bulk.CsvRows(io.BytesIO(csv_bytes(rows)))
    )
    db.session.commit()
    assert result.imported > 30
    assert_consistent("after an import with workers")


def test_rebuild_and_verify_commands(app: Any, runner: Any, coordinator: Any) -> None:
    from dr_panel.cli import main

    rng = random.Random(3)
    for person in people(rng, 15):
        notify(coordinator, {**person, **event_fields(rng)})
    db.session.commit()
    result = runner.invoke(main, ["trends", "verify"])
    assert result.exit_code == 0, result.output
    assert "match the 15 counted cases" in result.output

    # Counts damaged behind the application's back: verify says so, rebuild mends them.
    db.session.execute(text("UPDATE trend_counts SET n = n + 1 WHERE dim_a = 'sex'"))
    db.session.execute(text("DELETE FROM daily_counts WHERE substance_group = '*'"))
    db.session.commit()
    result = runner.invoke(main, ["trends", "verify"])
    assert result.exit_code == 1
    assert "Run 'dr-panel trends rebuild'" in result.output
    result = runner.invoke(main, ["trends", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Recounted 15 cases" in result.output
    db.session.rollback()
    assert_consistent("after the rebuild command")
    assert runner.invoke(main, ["trends", "verify"]).exit_code == 0

    # Only the key sums damaged (as the upgrade to cell keys leaves them, at 0): the counts are
    # right but disclosure control's cell keys are not. Verify says so; rebuild mends them.
    db.session.execute(text("UPDATE trend_counts SET key_sum = 0"))
    db.session.commit()
    result = runner.invoke(main, ["trends", "verify"])
    assert result.exit_code == 1 and "trend rows" in result.output
    assert runner.invoke(main, ["trends", "rebuild"]).exit_code == 0
    db.session.rollback()
    assert_consistent("after rebuilding the key sums")


def test_a_duplicate_is_not_counted_and_a_deleted_case_leaves_no_rows(
    app: Any, coordinator: Any
) -> None:
    base = {
        "case_type": "death", "area": "E06000009", "event_date": "2025-06-02",
        "notified_on": "2025-06-03", "setting": "home", "substances": "heroin",
    }  # fmt: skip
    a = notify(coordinator, {**people(random.Random(5), 1)[0], **base})
    b = notify(coordinator, {"full_name": "Testperson Ormbly", "sex": "male", **base})
    db.session.commit()
    plain = select(TrendCount.n).where(TrendCount.dim_a == "", TrendCount.case_type == "death")
    assert db.session.scalar(plain) == 2
    workflow.move(b, "duplicate", by=coordinator, duplicate_of_reference=a.reference)
    db.session.commit()
    assert db.session.scalar(plain) == 1
    assert_consistent("after a merge")
    # Out of duplicate again (no workflow step does this yet; the counts follow any status).
    b.status, b.duplicate_of = CaseStatus.NOTIFIED, None
    db.session.commit()
    assert db.session.scalar(plain) == 2
    b.status, b.duplicate_of = CaseStatus.DUPLICATE, a
    db.session.commit()
    assert db.session.scalar(plain) == 1
    db.session.delete(b)
    db.session.delete(a)
    db.session.commit()
    assert db.session.scalar(select(TrendCount.id).limit(1)) is None
    assert db.session.scalar(select(DailyCount.id).limit(1)) is None
    assert db.session.scalar(select(Person.id).limit(1)) is not None  # people are kept


def test_the_fast_tally_counts_exactly_as_the_case_by_case_expansion() -> None:
    """The bulk path and rebuild count with numpy (``Tally``), single edits case by case: the
    two must give the same rows, whatever the mix of substances, outcomes and missing values."""
    rng = random.Random(99)
    groups = {code: group for code, _, group in services.SUBSTANCES}
    tally = aggregates.Tally()
    profiles: Counter[Any] = Counter()
    for _ in range(3000):
        subs = [(c, groups[c]) for c in rng.sample(SUBSTANCES, rng.choice([0, 1, 1, 2, 3, 4]))]
        facts = (
            rng.choice([1, 2, 3]),
            date(2023, 1, 1) + timedelta(days=rng.randrange(1000)),
            rng.choice(["nfo", "death"]),
            rng.choice(SEXES[:-1]),
            rng.choice(["18-24", "25-34", "65+", None]),
            rng.choice(SETTINGS),
            rng.choice(TREATMENT),
            rng.choice([*OUTCOMES[:-1], None]),
        )
        area, day, ctype, sex, band, setting, treat, outcome = facts
        key = rng.randrange(256)
        tally.add(*facts, *aggregates.substance_values(subs), key)
        profile = aggregates.profile(
            area, day, ctype, "notified", sex, band, setting, treat, outcome, key, subs
        )
        profiles[profile] += 1
    assert tally.rows() == aggregates._expand(profiles)
    cube, _, key_sums = tally.rows()
    assert any(key_sums.values()) and set(key_sums) <= set(cube)
    assert aggregates.profile(1, date(2025, 1, 1), "nfo", "duplicate", "male", None, "home",
                              "never", None, 0, []) is None  # fmt: skip
