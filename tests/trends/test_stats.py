"""Byar's and Dobson's intervals, and the ESP 2013 weights, against values worked by hand.

z = 1.959964 (the 97.5th centile of the normal distribution) throughout.
"""

from __future__ import annotations

import pytest

from dr_panel.cases.models import AGE_BANDS
from dr_panel.trends import stats


def test_z_is_the_two_sided_95_percent_point() -> None:
    assert stats.Z95 == pytest.approx(1.959964, abs=1e-6)


def test_byar_limits_for_a_small_count() -> None:
    # O = 12
    # lower = 12 * (1 - 1/(9*12) - z/(3*sqrt(12)))^3
    #       = 12 * (1 - 0.0092593 - 1.959964/10.392305)^3
    #       = 12 * (1 - 0.0092593 - 0.1885976)^3 = 12 * 0.8021431^3 = 12 * 0.5161258 = 6.19351
    # upper = 13 * (1 - 1/(9*13) + z/(3*sqrt(13)))^3
    #       = 13 * (1 - 0.0085470 + 1.959964/10.816654)^3
    #       = 13 * (1 - 0.0085470 + 0.1811987)^3 = 13 * 1.1726517^3 = 13 * 1.6125275 = 20.96286
    lower, upper = stats.byar_limits(12)
    assert lower == pytest.approx(6.19351, abs=1e-4)
    assert upper == pytest.approx(20.96286, abs=1e-4)


def test_byar_limits_for_a_large_count() -> None:
    # O = 1000
    # lower = 1000 * (1 - 1/9000 - z/(3*sqrt(1000)))^3 = 1000 * (1 - 0.0001111 - 0.0206598)^3
    #       = 1000 * 0.9792291^3 = 1000 * 0.9389725 = 938.9725
    # upper = 1001 * (1 - 1/9009 + z/(3*sqrt(1001)))^3 = 1001 * (1 - 0.0001110 + 0.0206495)^3
    #       = 1001 * 1.0205385^3 = 1001 * 1.0628897 = 1063.9526
    lower, upper = stats.byar_limits(1000)
    assert lower == pytest.approx(938.9725, abs=1e-3)
    assert upper == pytest.approx(1063.9526, abs=1e-3)


def test_byar_at_zero_has_a_lower_limit_of_zero() -> None:
    # upper = 1 * (1 - 1/9 + z/3)^3 = (0.8888889 + 0.6533213)^3 = 1.5422102^3 = 3.66801
    assert stats.byar_limits(0) == pytest.approx((0.0, 3.66801), abs=1e-4)
    with pytest.raises(ValueError):
        stats.byar_limits(-1)


def test_crude_rates_per_100000() -> None:
    # 12 events in 141,000 person-years: 12 / 141,000 * 100,000 = 8.5106;
    # limits 6.19351 / 1.41 = 4.3926 and 20.96286 / 1.41 = 14.8673.
    r = stats.crude_rate(12, 141_000)
    assert (r.value, r.ci_low, r.ci_high) == pytest.approx((8.5106, 4.3926, 14.8673), abs=1e-4)
    # 1,000 events in 1,240,000: 80.6452; limits 938.9725 / 12.4 = 75.7236 and
    # 1063.9526 / 12.4 = 85.8026.
    r = stats.crude_rate(1000, 1_240_000)
    assert (r.value, r.ci_low, r.ci_high) == pytest.approx((80.6452, 75.7236, 85.8026), abs=1e-4)
    # Pooled: 36 events over three years of 141,000 divide by the summed 423,000 person-years.
    assert stats.crude_rate(36, 3 * 141_000).value == pytest.approx(8.5106, abs=1e-4)
    with pytest.raises(ValueError):
        stats.crude_rate(3, 0)


def test_esp_2013_weights_total_100000_and_split_our_bands() -> None:
    assert sum(w for _, _, w in stats.ESP2013) == 100_000
    # under 18 = 0-4 (5000) + 5-9 (5500) + 10-14 (5500) + 3/5 of 15-19 (3300) = 19,300
    # 18-24 = 2/5 of 15-19 (2200) + 20-24 (6000) = 8,200
    # 25-34 = 6000 + 6500 = 12,500; 35-44 = 7000 + 7000; 45-54 = 7000 + 7000;
    # 55-64 = 6500 + 6000; 65+ = 5500 + 5000 + 4000 + 2500 + 1500 + 1000 = 19,500
    weights = {label: stats.esp_weight(lo, hi) for lo, hi, label in AGE_BANDS}
    assert weights == {
        "under 18": 19_300, "18-24": 8_200, "25-34": 12_500, "35-44": 14_000,
        "45-54": 14_000, "55-64": 12_500, "65+": 19_500,
    }
    assert sum(weights.values()) == 100_000


def test_dobson_interval_for_a_small_count() -> None:
    # Two bands: 4 events in 20,000 (weight 30,000) and 8 in 40,000 (weight 70,000).
    # DSR = (30000 * 4/20000 + 70000 * 8/40000) / 100000 = (6 + 14) / 100000 = 0.0002 -> 20.0
    # var = (30000^2 * 4/20000^2 + 70000^2 * 8/40000^2) / 100000^2 = (9 + 24.5) / 1e10
    #     = 3.35e-9; O = 12; sqrt(var / O) = sqrt(2.79167e-10) = 1.670828e-5
    # lower = 0.0002 + 1.670828e-5 * (6.19351 - 12) = 0.0002 - 9.70165e-5 = 1.029835e-4 -> 10.298
    # upper = 0.0002 + 1.670828e-5 * (20.96286 - 12) = 0.0002 + 1.497540e-4 = 3.497540e-4
    #       -> 34.975
    r = stats.dsr([stats.Stratum(4, 20_000, 30_000), stats.Stratum(8, 40_000, 70_000)])
    assert (r.value, r.ci_low, r.ci_high) == pytest.approx((20.0, 10.298, 34.975), abs=1e-3)


def test_dobson_interval_for_a_large_count() -> None:
    # 400 events in 200,000 (weight 30,000) and 600 in 300,000 (weight 70,000).
    # DSR = (30000 * 0.002 + 70000 * 0.002) / 100000 = 0.002 -> 200.0
    # var = (9e8 * 400/4e10 + 4.9e9 * 600/9e10) / 1e10 = (9 + 32.66667) / 1e10 = 4.166667e-9
    # O = 1000; sqrt(var / O) = sqrt(4.166667e-12) = 2.041241e-6
    # lower = 0.002 + 2.041241e-6 * (938.9725 - 1000) = 0.002 - 1.245719e-4 -> 187.543
    # upper = 0.002 + 2.041241e-6 * (1063.9526 - 1000) = 0.002 + 1.305427e-4 -> 213.054
    r = stats.dsr([stats.Stratum(400, 200_000, 30_000), stats.Stratum(600, 300_000, 70_000)])
    assert (r.value, r.ci_low, r.ci_high) == pytest.approx((200.0, 187.543, 213.054), abs=1e-3)


def test_a_dsr_equals_the_crude_rate_when_every_band_has_the_same_rate() -> None:
    strata = [stats.Stratum(n, n * 1000, w) for n, w in ((10, 20_000), (30, 50_000),
                                                         (5, 30_000))]
    assert stats.dsr(strata).value == pytest.approx(100.0)
    with pytest.raises(ValueError):
        stats.dsr([stats.Stratum(1, 0, 100)])
    zero = stats.dsr([stats.Stratum(0, 1000, 50_000), stats.Stratum(0, 2000, 50_000)])
    assert zero.value == 0 and zero.ci_low == 0 and zero.ci_high > 0


def test_band_populations_sum_single_years() -> None:
    single = {age: 100 for age in range(91)}
    bands = stats.band_populations(single, AGE_BANDS)
    assert bands["under 18"] == 1800 and bands["18-24"] == 700 and bands["65+"] == 2600
