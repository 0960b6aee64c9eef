"""EARS C1, C2, C3 and the Poisson threshold on series worked out by hand (arithmetic in the
comments). Defaults: threshold 3 sd (C1, C2), 2 (C3), min_sigma 0.5, min_count 3, alpha 0.001."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dr_panel.alerts import ears

# A flat baseline of 2 a day with a spike of 10 on day 12.
FLAT = [2] * 12 + [10, 2, 2]
SPIKE = 12


def alarm_days(result: ears.Result) -> list[int]:
    return [int(i) for i in np.nonzero(result.alarm)[0]]


def test_c1_flat_baseline_with_a_spike() -> None:
    r = ears.c1(FLAT)
    # Days 0..6 have no 7-day baseline: no statistic, no alarm.
    assert np.isnan(r.statistic[:7]).all()
    # Day 12: baseline days 5..11 = all 2 -> mean 2, sd 0 -> sigma = min_sigma 0.5;
    # C1 = (10 - 2) / 0.5 = 16 > 3, and 10 >= 3 events: alarm. Upper = 2 + 3 * 0.5 = 3.5.
    assert r.statistic[SPIKE] == pytest.approx(16.0)
    assert r.upper[SPIKE] == pytest.approx(3.5)
    assert r.expected[SPIKE] == pytest.approx(2.0)
    # Day 13: baseline days 6..12 = six 2s and the 10: mean 22/7 = 3.142857;
    # squares about the mean: 6 * (8/7)^2 + (48/7)^2 = 2688/49; / 6 = 9.142857; sd = 3.023716;
    # C1 = (2 - 3.142857) / 3.023716 = -0.377964: no alarm.
    assert r.statistic[13] == pytest.approx(-0.377964, abs=1e-6)
    assert alarm_days(r) == [SPIKE]


def test_c2_uses_a_two_day_guard_band() -> None:
    r = ears.c2(FLAT)
    # First full baseline is on day 9 (days 0..6).
    assert np.isnan(r.statistic[:9]).all() and not np.isnan(r.statistic[9])
    # Day 12: baseline days 3..9 = all 2 -> C2 = (10 - 2) / 0.5 = 16: alarm.
    assert r.statistic[SPIKE] == pytest.approx(16.0)
    # Days 13 and 14: baselines 4..10 and 5..11, still all 2 (the guard band keeps the spike
    # out): C2 = 0.
    assert r.statistic[13] == pytest.approx(0.0)
    assert r.statistic[14] == pytest.approx(0.0)
    assert alarm_days(r) == [SPIKE]


def test_c3_accumulates_but_needs_the_minimum_count_on_the_day() -> None:
    r = ears.c3(FLAT)
    # Day 12: C2 on days 10, 11, 12 = 0, 0, 16; max(0, C2 - 1) = 0, 0, 15; C3 = 15 > 2: alarm.
    assert r.statistic[SPIKE] == pytest.approx(15.0)
    # Days 13 and 14 still carry day 12's 15 (C3 = 15), but only 2 events each: no alarm.
    assert r.statistic[13] == pytest.approx(15.0)
    assert r.statistic[14] == pytest.approx(15.0)
    assert alarm_days(r) == [SPIKE]
    # With no minimum count, the two days after the spike alarm too.
    loose = ears.c3(FLAT, ears.Settings(min_count=0))
    assert alarm_days(loose) == [12, 13, 14]


def test_poisson_flat_baseline_with_a_spike() -> None:
    s = ears.Settings(poisson_baseline=7)
    r = ears.poisson(FLAT, s)
    # Day 12: lambda = mean of days 3..9 = 2. P(X >= 10 | 2) = e^-2 * sum_{k>=10} 2^k / k!
    # = 0.135335 * (2.8219e-4 + 5.1307e-5 + 8.5511e-6 + 1.3156e-6 + 1.8794e-7 + 2.5e-8 ...)
    # = 0.135335 * 3.4357e-4 = 4.6498e-5 < 0.001: alarm.
    assert r.statistic[SPIKE] == pytest.approx(4.6498e-5, rel=1e-3)
    # The least count that alarms at lambda 2: P(X >= 8) = 0.0011 (no), P(X >= 9) = 0.000237
    # (yes): 9, so the day must exceed 8.
    assert r.upper[SPIKE] == 8
    assert alarm_days(r) == [SPIKE]


# Sparse counts, as deaths in one area are: mostly 0, sometimes 1.
SPARSE = [0] * 7 + [1] + [0] * 7 + [2, 0, 1, 0, 0, 0, 1, 0, 3]
#          0..6     7     8..14    15 16 17 18 19 20 21 22 23


def test_sparse_counts_a_single_event_never_alarms() -> None:
    r = ears.c1(SPARSE)
    # Day 7: baseline all 0, sd 0 -> sigma 0.5; C1 = 1 / 0.5 = 2 <= 3: no alarm.
    assert r.statistic[7] == pytest.approx(2.0)
    # Day 15: baseline days 8..14 all 0; C1 = 2 / 0.5 = 4 > 3, but 2 < 3 events: no alarm.
    assert r.statistic[15] == pytest.approx(4.0)
    # Day 23: baseline days 16..22 = 0,1,0,0,0,1,0: mean 2/7 = 0.285714; squares
    # 5 * (2/7)^2 + 2 * (5/7)^2 = 70/49; / 6 = 0.238095; sd 0.487950 < 0.5 -> sigma 0.5;
    # C1 = (3 - 0.285714) / 0.5 = 5.428571 > 3 and 3 events: alarm.
    assert r.statistic[23] == pytest.approx(5.428571, abs=1e-6)
    assert alarm_days(r) == [23]
    # Without a minimum count, day 15's 2 events alarm too.
    assert alarm_days(ears.c1(SPARSE, ears.Settings(min_count=0))) == [15, 23]
    # With minimum sigma 1: day 23 is (3 - 0.285714) / 1 = 2.714 <= 3: nothing alarms.
    assert alarm_days(ears.c1(SPARSE, ears.Settings(min_sigma=1.0))) == []


def test_sparse_counts_c2_and_c3() -> None:
    r2 = ears.c2(SPARSE)
    # Day 23: baseline days 14..20 = 0,2,0,1,0,0,0: mean 3/7 = 0.428571; squares
    # 5 * 0.183673 + 2.469388 + 0.326531 = 3.714286; / 6 = 0.619048; sd 0.786796;
    # (more exactly sqrt(0.6190476) = 0.7867958)
    # C2 = (3 - 0.428571) / 0.786796 = 3.268229 > 3: alarm.
    assert r2.statistic[23] == pytest.approx(3.268229, abs=1e-6)
    # Day 15: baseline 6..12 = one 1, six 0: sd 0.377964 -> sigma 0.5; C2 = (2 - 1/7) / 0.5
    # = 3.714 > 3, but only 2 events: no alarm.
    assert r2.statistic[15] == pytest.approx(3.714286, abs=1e-6)
    assert alarm_days(r2) == [23]
    r3 = ears.c3(SPARSE)
    # Day 21: baseline 12..18 = 0,0,0,2,0,1,0 (same mean and sd as above):
    # C2 = (1 - 0.428571) / 0.786796 = 0.726273 -> max(0, -0.27) = 0.
    # Day 22: baseline 13..19, same values: C2 < 0 -> 0. Day 23: 3.268229 - 1 = 2.268229.
    # C3 = 0 + 0 + 2.268229 > 2: alarm.
    assert r3.statistic[23] == pytest.approx(2.268229, abs=1e-6)
    assert alarm_days(r3) == [23]


def test_sparse_counts_poisson_does_not_alarm_where_ears_does() -> None:
    r = ears.poisson(SPARSE, ears.Settings(poisson_baseline=7))
    # Day 23: lambda = 3/7 = 0.428571. P(X >= 3) = 1 - e^-l (1 + l + l^2/2)
    # = 1 - 0.651439 * 1.520408 = 0.009547 >= 0.001: no alarm.
    assert r.statistic[23] == pytest.approx(0.009547, abs=1e-6)
    assert alarm_days(r) == []


def test_poisson_tail_is_exact_far_out() -> None:
    # P(X >= 50 | 1) = e^-1 / 50! * (1 + 1/51 + 1/(51*52) + ...): far below what 1 - CDF shows.
    expected = math.exp(-1 - math.lgamma(51)) * (1 + 1 / 51 + 1 / (51 * 52) + 1 / (51 * 52 * 53))
    assert ears.poisson_tail(50, 1.0) == pytest.approx(expected, rel=1e-6)
    assert ears.poisson_tail(0, 3.0) == 1.0
    # P(X >= 1 | 2) = 1 - e^-2
    assert ears.poisson_tail(1, 2.0) == pytest.approx(1 - math.exp(-2))


def test_many_series_at_once_match_one_by_one() -> None:
    stacked = np.array([FLAT + [2] * 9, SPARSE])
    together = ears.run(stacked)
    for row, series in enumerate((FLAT + [2] * 9, SPARSE)):
        alone = ears.run(series)
        for method in ("c1", "c2", "c3", "poisson"):
            assert (together[method].alarm[row] == alone[method].alarm).all()


def test_methods_can_be_switched_off() -> None:
    assert set(ears.run(FLAT, ears.Settings(c1=False, poisson=False))) == {"c2", "c3"}
    with pytest.raises(ValueError, match="negative"):
        ears.c1([1, -1])
