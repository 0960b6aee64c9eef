"""The disclosure rule, in the one place it lives: NHS Digital's rule with configured thresholds."""

from __future__ import annotations

from typing import Any

import pytest

from dr_panel.auth.models import Role
from dr_panel.trends import disclosure
from dr_panel.trends.disclosure import shown_count


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (1, "*"), (7, "*"), (8, "10"), (12, "10"), (13, "15"), (22, "20"), (23, "25"),
     (28, "30"), (1002, "1000"), (1003, "1005")],
)
def test_the_rule_for_leads(app: Any, n: int, text: str) -> None:
    shown = shown_count(n, exact=False)
    assert shown.text == text
    assert shown.suppressed == (text == "*")
    assert shown.value == (None if text == "*" else int(text))


def test_exact_counts_are_as_they_are(app: Any) -> None:
    for n in (0, 1, 7, 12):
        assert shown_count(n, exact=True) == disclosure.Shown(str(n), n, False)
    with pytest.raises(ValueError):
        shown_count(-1, exact=False)


def test_the_thresholds_are_configuration(app_factory: Any) -> None:
    app = app_factory(DISCLOSURE_SUPPRESS_BELOW=10, DISCLOSURE_ROUND_TO=10,
                      DISCLOSURE_MIN_EVENTS_FOR_RATE=20)
    with app.app_context():
        assert shown_count(9, exact=False).text == "*"
        assert shown_count(14, exact=False).text == "10"
        assert shown_count(15, exact=False).text == "20"
        assert not disclosure.rate_allowed(19) and disclosure.rate_allowed(20)
        assert "1 to 9" in disclosure.note(False) and "nearest 10" in disclosure.note(False)


def test_rates_need_ten_events(app: Any) -> None:
    assert not disclosure.rate_allowed(9)
    assert disclosure.rate_allowed(10)


def test_percentages_use_the_rounded_figures(app: Any) -> None:
    # 12 of 28: shown 10 of 30, so 33%, not the 43% the raw counts would give away.
    assert disclosure.percent(shown_count(12, exact=False), shown_count(28, exact=False)) == "33%"
    assert disclosure.percent(shown_count(3, exact=False), shown_count(28, exact=False)) == "*"
    assert disclosure.percent(shown_count(0, exact=False), shown_count(0, exact=False)) == "–"


def test_the_note_says_which_rule_applied(app: Any) -> None:
    assert "1 to 7" in disclosure.note(False) and "fewer than 10 events" in disclosure.note(False)
    assert disclosure.note(True).startswith("Exact counts")


def test_exact_only_for_a_coordinator_covering_every_area(app: Any, create_user: Any) -> None:
    coordinator = create_user(Role.COORDINATOR, areas=("E06000009",))
    lead = create_user(Role.LEAD, areas=("E06000009", "E06000008"))
    blackpool = next(iter(coordinator.area_ids))
    other = next(iter(lead.area_ids - coordinator.area_ids))
    assert disclosure.exact_for(coordinator, [blackpool])
    assert not disclosure.exact_for(coordinator, [blackpool, other])
    assert not disclosure.exact_for(coordinator, [])
    assert not disclosure.exact_for(lead, [blackpool])
    panel = create_user(Role.PANEL_MEMBER, areas=("E06000009",))
    assert not disclosure.exact_for(panel, [blackpool])


def test_a_shown_count_does_not_print_its_value(app: Any) -> None:
    assert repr(shown_count(3, exact=False)) == "Shown('*')"
