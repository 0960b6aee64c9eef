"""The disclosure rule, in the one place it lives: NHS Digital's rule with configured thresholds."""

from __future__ import annotations

from typing import Any

import pytest

from dr_panel.auth.models import Role
from dr_panel.privacy import disclosure
from dr_panel.privacy.disclosure import shown_count


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
    note = disclosure.note(False)
    assert "1 to 7" in note and "cell key method" in note and "at least 10" in note
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


# -- the cell key method (ONS, Census 2021) -------------------------------------------------------


def test_the_perturbation_keeps_zeros_and_never_makes_a_count_zero() -> None:
    for key in range(disclosure.KEY_SPACE):
        assert disclosure.perturbed(0, key) == 0
        for n in range(1, 40):
            moved = disclosure.perturbed(n, key)
            assert moved >= 1 and abs(moved - n) <= disclosure.MAX_NOISE, (n, key, moved)


def test_the_perturbation_has_no_bias_and_depends_on_the_cell_key() -> None:
    """Over the 256 cell keys every count from 2 up is moved by -2..+2 with mean zero (1 is
    never moved: it could only go up); which way depends on the key, so two cells of the same
    size are not moved alike, and a lead cannot undo it without the keys."""
    for n in range(2, 30):
        moves = [disclosure.noise(n, k) for k in range(disclosure.KEY_SPACE)]
        assert abs(sum(moves)) / len(moves) < 0.01, n
    assert {disclosure.noise(10, k) for k in range(256)} == {-2, -1, 0, 1, 2}
    assert {disclosure.noise(2, k) for k in range(256)} == {-1, 0, 1, 2}
    assert {disclosure.noise(1, k) for k in range(256)} == {0}
    # The key is the sum of the records' keys modulo 256: any sum will do.
    assert disclosure.perturbed(12, 256 * 7 + 30) == disclosure.perturbed(12, 30)


def test_the_same_cell_gives_the_same_figure_and_the_rule_applies_on_top(app: Any) -> None:
    seen = {shown_count(12, exact=False, key=k).text for k in range(256)}
    assert seen == {"10", "15"}  # 10..14, rounded
    assert {shown_count(3, exact=False, key=k).text for k in range(256)} == {"*"}
    assert {shown_count(9, exact=False, key=k).text for k in range(256)} == {"*", "10"}
    for k in range(256):
        assert shown_count(12, exact=False, key=k) == shown_count(12, exact=False, key=k)
    assert shown_count(12, exact=True, key=5).text == "12"  # a coordinator's own areas


def test_no_rate_is_decided_from_the_shown_figure(app: Any) -> None:
    """A figure shown as 10 (which may stand for 6 to 14 events) always has its rate; "*" and
    0 never do; the words say nothing about the exact count."""
    assert disclosure.rate_allowed_shown(disclosure.Shown("10", 10, False))
    assert not disclosure.rate_allowed_shown(disclosure.Shown("*", None, True))
    assert not disclosure.rate_allowed_shown(disclosure.Shown("0", 0, False))
    assert "count shown is at least 10" in disclosure.no_rate_text()
    assert disclosure.band_value(disclosure.Shown("*", None, True)) == 4
    assert disclosure.band_value(disclosure.Shown("15", 15, False)) == 15


def test_record_keys_are_uniform_bytes() -> None:
    keys = [disclosure.new_record_key() for _ in range(4000)]
    assert min(keys) == 0 and max(keys) == 255
    assert 10 < sum(k < 16 for k in keys) < 500  # about 1/16 of them, not a constant
