"""Issue 11, defect 4: the generated probe suite (several hundred identifier variants in every
field of an alert draft and a report, and split across fields) is all blocked, and the corpus of
real-style alert wording all passes, with stored people created through the real intake."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask

from dr_panel.alerts import leakgate
from dr_panel.auth.models import Role
from dr_panel.dbtypes import utcnow
from tests.privacy.corpus import corpus
from tests.privacy.probes import ALERT_FILLER, REPORT_FILLER, is_blocked, probes, store_people


@pytest.fixture
def stored(app: Flask, create_user: Any) -> list[Any]:
    return store_people(create_user(Role.COORDINATOR))


def run_probes() -> tuple[Counter[str], Counter[str], list[Any]]:
    """``(blocked by family, passed by family, the probes that passed)``."""
    blocked: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    missed = []
    for probe in probes():
        if is_blocked(probe, leakgate.check_fields(probe.fields)):
            blocked[probe.family] += 1
        else:
            passed[probe.family] += 1
            missed.append(probe)
    return blocked, passed, missed


def test_every_generated_probe_is_blocked(stored: list[Any]) -> None:
    blocked, passed, missed = run_probes()
    total = sum(blocked.values()) + sum(passed.values())
    summary = ", ".join(f"{k}: {blocked[k]}/{blocked[k] + passed[k]}" for k in sorted(
        set(blocked) | set(passed)))  # fmt: skip
    print(f"\nPROBES blocked {sum(blocked.values())} of {total}, passed {sum(passed.values())}"
          f" ({summary})")  # fmt: skip
    assert total >= 500
    assert not missed, [(p, p.fields) for p in missed[:5]]


def test_the_probe_suite_can_fail(stored: list[Any]) -> None:
    """The check counts a probe as blocked only when its own span is marked."""
    probe = next(p for p in probes() if p.family == "NHS number")
    assert is_blocked(probe, leakgate.check_fields(probe.fields))
    assert not is_blocked(probe, leakgate.check_fields(ALERT_FILLER | REPORT_FILLER))


def test_real_alert_wording_passes(stored: list[Any]) -> None:
    texts = corpus(utcnow().date())
    assert len(texts) >= 40
    flagged = []
    for text in texts:
        # Each text alone, and every text of the corpus together as one long draft.
        findings = leakgate.check_fields({"advice": text})
        if findings:
            flagged.append((text, [(text[f.start : f.end], f.kind) for f in findings]))
    together = leakgate.check_fields({f"field{i}": t for i, t in enumerate(texts)})
    print(f"\nCORPUS passed {len(texts) - len(flagged)} of {len(texts)}, blocked {len(flagged)}")
    assert flagged == []
    assert together == []
    assert leakgate.check_fields(ALERT_FILLER) == [] and leakgate.check_fields(REPORT_FILLER) == []
