"""Importing population estimates: both layouts, the per-row report, all or nothing, upsert,
the command, the upload page, the audit entry and the demo sample."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cli import main
from dr_panel.extensions import db
from dr_panel.trends import populations as pops
from dr_panel.trends.models import Population
from tests.conftest import csrf_token_from
from tests.trends import t2_data

HEADER = "ladcode23,laname23,sex,age,population_2024,population_2025\n"


def wide(code: str = "E06000009", *, base: int = 800, skip: tuple[int, int] | None = None,
         extra: str = "") -> bytes:
    """A complete ONS-layout file for one area, two years (182 rows)."""
    lines = [HEADER]
    for sex in (1, 2):
        for age in range(91):
            if skip == (sex, age):
                continue
            lines.append(f"{code},Somewhere,{sex},{age},{base + age},{base + age + 1}\n")
    return ("".join(lines) + extra).encode()


def held() -> int:
    return int(db.session.scalar(select(func.count()).select_from(Population)) or 0)


def run_import(data: bytes, **kwargs: Any) -> pops.ImportResult:
    return pops.import_csv(io.BytesIO(data), by=None, source="test", **kwargs)


def last_audit() -> AuditEntry:
    return db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()


def test_the_ons_layout_imports_every_year(app: Any) -> None:
    result = run_import(wide())
    db.session.commit()
    assert result.saved and result.inserted == 364 and result.updated == 0
    assert result.years == [2024, 2025] and result.areas == ["E06000009"]
    assert held() == 364
    row = db.session.scalar(select(Population).where(Population.year == 2025,
                                                     Population.sex == "female",
                                                     Population.age == 90))
    assert row.population == 800 + 90 + 1 and row.imported_at.tzinfo is not None
    entry = last_audit()
    assert entry.action == "populations.import" and '"inserted":364' in entry.details


def test_reimporting_replaces_figures(app: Any) -> None:
    run_import(wide())
    db.session.commit()
    result = run_import(wide(base=900))
    db.session.commit()
    assert result.saved and (result.inserted, result.updated) == (0, 364)
    assert held() == 364
    assert db.session.scalar(select(func.sum(Population.population))) == sum(
        900 + a + d for _ in (1, 2) for a in range(91) for d in (0, 1))


def test_the_long_layout(app: Any) -> None:
    lines = ["ladcode,year,sex,age,population\n"]
    # Sex as words and age 90 written "90+" are understood too.
    lines += [f"E06000008,2023,{s},{'90+' if a == 90 else a},{1000 + a}\n"
              for s in ("male", "female") for a in range(91)]
    result = run_import("".join(lines).encode())
    db.session.commit()
    assert result.saved and result.inserted == 182 and result.layout == "long"


def test_any_bad_row_saves_nothing_and_each_problem_names_row_and_column(app: Any) -> None:
    data = wide().decode().splitlines(keepends=True)
    data[3] = "E06000009,Somewhere,3,2,802,803\n"  # row 4: sex 3
    data[5] = "E06000009,Somewhere,1,4,eight hundred,805\n"  # row 6: a word
    data[7] = "E06000009,Somewhere,1,six,806,807\n"  # row 8: age not a number
    data[9] = "E99999999,Somewhere,1,8,808,809\n"  # row 10: unknown area
    result = run_import("".join(data).encode())
    assert not result.saved and held() == 0
    where = {(p.row, p.column) for p in result.problems}
    assert where == {(4, "sex"), (6, "population_2024"), (8, "age"), (10, "ladcode")}
    unknown = next(p for p in result.problems if p.row == 10)
    assert "E99999999" not in unknown.message and "not an area in dr-panel" in unknown.message
    for p in result.problems:
        assert p.message.endswith(".")
    entry = last_audit()
    assert entry.action == "populations.import" and entry.outcome == "failure"


def test_duplicates_and_incomplete_years_are_refused(app: Any) -> None:
    repeat = "E06000009,Somewhere,1,0,1,1\n"
    result = run_import(wide(extra=repeat))
    assert [(p.row, p.column) for p in result.problems] == [(184, "age")]
    assert "Row 2 already gives" in result.problems[0].message
    result = run_import(wide(skip=(2, 40)))
    assert not result.saved and held() == 0
    assert [p.row for p in result.problems] == [None, None]  # 2024 and 2025
    assert "1 of the 182 figures" in result.problems[0].message
    # Once a year is complete, a file may correct some of its figures.
    run_import(wide())
    db.session.commit()
    fix = HEADER + "E06000009,Somewhere,2,40,5,5\n"
    assert run_import(fix.encode()).saved


def test_files_that_cannot_be_read_are_refused_whole(app: Any) -> None:
    for data in (b"", b"name,count\nx,1\n", b"ladcode,sex,age\nE06000009,1,1\n",
                 "ladcode,sex,age,population_2024\n".encode("utf-16")):
        with pytest.raises(pops.FileRefused):
            run_import(data)
    assert held() == 0


def test_a_lead_may_load_only_their_areas(app: Any) -> None:
    result = run_import(wide("E06000008"), allowed_areas=["E06000009"])
    assert not result.saved and "not one of yours" in result.problems[0].message


def test_the_command(app: Any, runner: Any, tmp_path: Any) -> None:
    path = tmp_path / "mye.csv"
    path.write_bytes(wide())
    result = runner.invoke(main, ["populations", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 364 figures (364 new, 0 replaced) for E06000009, 2024-2025." in result.output
    path.write_bytes(wide(extra="E06000009,Somewhere,1,95,1,1\n"))
    result = runner.invoke(main, ["populations", "import", str(path)])
    assert result.exit_code == 1
    assert "Row 184, age: Age must be a whole number from 0 to 90" in result.output
    assert "Nothing was imported" in result.output


def test_the_upload_page(app: Any, client: Any, create_user: Any, login: Any) -> None:
    lead = create_user(Role.LEAD, areas=("E06000009",))
    login(client, lead)
    page = client.get("/trends/populations")
    assert page.status_code == 200 and b"No estimates are held yet" in page.data
    token = csrf_token_from(page.data)
    response = client.post("/trends/populations", data={
        "csrf_token": token, "file": (io.BytesIO(wide("E06000008")), "mye.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 400 and b"This area is not one of yours" in response.data
    assert held() == 0
    response = client.post("/trends/populations", data={
        "csrf_token": token, "file": (io.BytesIO(wide()), "mye.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200 and b"Imported 364 figures" in response.data
    assert b"Blackpool" in response.data and held() == 364
    response = client.post("/trends/populations", data={"csrf_token": token},
                           content_type="multipart/form-data")
    assert b"Choose the CSV file" in response.data


def test_an_admin_may_load_any_area(app: Any, client: Any, create_user: Any, login: Any) -> None:
    login(client, create_user(Role.ADMIN))
    page = client.get("/trends/populations")
    response = client.post("/trends/populations", data={
        "csrf_token": csrf_token_from(page.data),
        "file": (io.BytesIO(wide("E06000008")), "mye.csv")}, content_type="multipart/form-data")
    assert response.status_code == 200 and held() == 364


def test_the_demo_sample_is_plausible_and_loads_once(app: Any) -> None:
    t2_data.add_lancashire()
    assert pops.load_demo_populations() == 3 * 182 * 7
    assert pops.load_demo_populations() == 0
    totals = {h["code"]: h["population"] for h in pops.held_summary() if h["year"] == 2023}
    assert 135_000 < totals["E06000009"] < 147_000
    assert 150_000 < totals["E06000008"] < 160_000
    assert 1_200_000 < totals["E10000017"] < 1_280_000
    assert all(h["complete"] for h in pops.held_summary())
