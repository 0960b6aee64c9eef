"""`dr-panel bench` runs end to end at a small size, on a database of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from dr_panel.bench import Synthetic, nhs_check_digit
from dr_panel.cases.models import Case, Person
from dr_panel.cli import main
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident

FIGURES = {
    "intake_cases_per_s",
    "raw_executemany_cases_per_s",
    "intake_ratio_to_raw",
    "lookup_median_ms",
    "lookup_p95_ms",
    "naive_scan_sample_ms",
    "naive_scan_extrapolated_ms",
    "case_list_page1_median_ms",
    "case_list_page1_p95_ms",
    "case_list_deep_median_ms",
    "case_list_deep_p95_ms",
    "case_list_filtered_median_ms",
    "case_list_filtered_p95_ms",
    "peak_memory_mb",
    "trend_month_group_median_ms",
    "trend_month_group_duckdb_ms",
    "trend_month_group_ratio",
    "trend_age_sex_median_ms",
    "trend_age_sex_duckdb_ms",
    "trend_age_sex_ratio",
    "spike_scan_seconds",
    "spike_scan_cpu_seconds",
    "spike_scan_full_history_seconds",
    "fanout_seconds",
    "fanout_bare_smtplib_seconds",
    "fanout_ratio_to_bare_smtplib",
    "leak_gate_clean_ms",
    "leak_gate_named_ms",
}


def test_bench_writes_every_figure_and_never_touches_the_app_database(
    app: Any, runner: Any, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    result = runner.invoke(
        main,
        ["bench", "--cases", "2000", "--out", str(out), "--lookups", "50", "--page-requests", "3"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))

    figures = {f["key"]: f for f in data["figures"]}
    assert set(figures) == FIGURES
    for f in figures.values():
        assert isinstance(f["value"], int | float) and f["value"] > 0, f
        assert f["pass"] in (True, False, None)
    assert figures["intake_cases_per_s"]["target"] == ">= 5000"
    assert figures["lookup_median_ms"]["target"] == "<= 2"
    assert figures["case_list_page1_median_ms"]["target"] == "<= 50"
    assert figures["peak_memory_mb"]["target"] == "<= 1024"
    assert "extrapolat" in figures["naive_scan_extrapolated_ms"]["note"]
    # The leak gate passes the clean alert (FRANK's 0300 number included) and blocks the name.
    assert data["leak_gate"]["clean_findings"] == []
    assert data["leak_gate"]["named_findings"] == ["name"]
    assert data["leak_gate"]["characters"] >= 2000
    assert figures["leak_gate_clean_ms"]["target"] == "<= 100"
    assert figures["leak_gate_named_ms"]["note"] == "blocked"
    assert data["cases"] == 2000 and data["seed"] == 42
    assert data["intake"]["imported"] == 2000 and data["intake"]["rejected"] == 0
    assert data["cases_stored"] == 2000
    assert data["lookups"]["found"] == data["lookups"]["count"] == 50
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["python"]
    assert data["case_list_measured_through"].startswith("GET /cases")
    assert data["query_plans"]

    # Its own temporary database and keys, gone afterwards; the app's database untouched.
    database = data["database"]
    assert database["engine"] == "sqlite" and database["temporary"]
    assert database["url"] != app.config["SQLALCHEMY_DATABASE_URI"]
    assert app.instance_path not in database["url"]
    assert not Path(database["url"].removeprefix("sqlite:///")).exists()
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0
    assert "Intake" in result.stdout or "intake" in result.stdout
    assert "PASS" in result.stdout or "MISS" in result.stdout


def test_bench_refuses_a_database_that_is_not_empty(app: Any, runner: Any, tmp_path: Path) -> None:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    result = runner.invoke(main, ["bench", "--cases", "100", "--database-url", url])
    assert result.exit_code == 1
    assert "not empty" in result.output or "instance database" in result.output
    assert not (tmp_path / "bench.json").exists()


def test_synthetic_people_are_made_up_and_valid() -> None:
    synthetic = Synthetic(seed=42, cases=500)
    rows = list(synthetic.rows())
    assert len(rows) == 500 and synthetic.persons < 500
    again = list(Synthetic(seed=42, cases=500).rows())
    assert rows == again  # a fixed seed gives the same data
    numbers = {r["nhs_number"].replace(" ", "") for r in rows if r["nhs_number"]}
    assert numbers and all(n.startswith("999") for n in numbers)
    assert all(ident.nhs_number_problem(n) is None for n in numbers)
    assert nhs_check_digit("999000001") == 8
    assert all(ident.normalise_postcode(r["postcode"]) for r in rows if r["postcode"])
    deaths = [r for r in rows if r["case_type"] == "death"]
    assert 0 < len(deaths) < len(rows) / 4
    # Nobody is notified after their death.
    dead: set[int] = set()
    for k, r in zip(synthetic.person_of_row, rows, strict=True):
        assert k not in dead
        if r["case_type"] == "death":
            dead.add(k)


def test_bench_without_its_extra_says_how_to_install_it(
    app: Any, runner: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # as where the extra is not installed
    out = tmp_path / "bench.json"
    result = runner.invoke(main, ["bench", "--cases", "100", "--out", str(out)])
    assert result.exit_code == 1
    assert "duckdb" in result.output and "pip install 'dr-panel[bench]'" in result.output
    assert not out.exists()


def test_bench_help_lists_its_options(runner: Any) -> None:
    result = runner.invoke(main, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    assert "--cases" in result.output and "--database-url" in result.output
