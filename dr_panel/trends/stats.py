"""Rates and their 95% confidence intervals, as England's public-health profiles publish them
(PHE/OHID, "Technical Guide: Confidence intervals", and "Technical Guide: Age-standardised
rates"). Pure arithmetic on counts and populations: nothing here reads the database or knows
who is asking; disclosure control happens before and after, in ``queries`` and ``disclosure``.

Rates are per 100,000 person-years. A calendar year's person-years are its mid-year population;
a pooled period (three years, a financial year, twelve rolling months) divides by the person-years
summed over the period, so a three-year rate is an average annual rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

PER = 100_000
#: The 97.5th centile of the standard normal distribution: two-sided 95% intervals.
Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054

#: The 2013 European Standard Population: weights of 5-year age groups 0-4, 5-9, ... 85-89 and
#: 90+, totalling 100,000 (Eurostat, "Revision of the European Standard Population", 2013).
ESP2013: tuple[tuple[int, int, int], ...] = (
    (0, 4, 5000), (5, 9, 5500), (10, 14, 5500), (15, 19, 5500), (20, 24, 6000),
    (25, 29, 6000), (30, 34, 6500), (35, 39, 7000), (40, 44, 7000), (45, 49, 7000),
    (50, 54, 7000), (55, 59, 6500), (60, 64, 6000), (65, 69, 5500), (70, 74, 5000),
    (75, 79, 4000), (80, 84, 2500), (85, 89, 1500), (90, 90, 1000),
)
#: Single years of age run 0..90 in the population tables; 90 stands for "90 and over".
MAX_AGE = 90


def esp_weight(lo: int, hi: int) -> float:
    """The ESP 2013 weight of single years ``lo..hi`` (``hi`` capped at 90+): each year of a
    5-year group carries a fifth of its weight, so bands that cut across the groups (our
    "under 18", "18-24", "65+") get exactly the standard population of the ages they cover."""
    total = 0.0
    for g_lo, g_hi, weight in ESP2013:
        years = g_hi - g_lo + 1
        overlap = min(hi, g_hi, MAX_AGE) - max(lo, g_lo) + 1
        if overlap > 0:
            total += weight * overlap / years
    return total


@dataclass(frozen=True)
class Rate:
    """A rate per 100,000 with its 95% interval (``ci_low``/``ci_high``)."""

    value: float
    ci_low: float
    ci_high: float


def byar_limits(observed: float, z: float = Z95) -> tuple[float, float]:
    """Byar's approximation to the exact Poisson limits of a count O:

        lower = O * (1 - 1/(9 O) - z / (3 sqrt(O)))^3
        upper = (O + 1) * (1 - 1/(9 (O + 1)) + z / (3 sqrt(O + 1)))^3

    used here for every count, small or large, as the brief asks (the PHE guide prefers the
    exact method below 10 events, where our rates are withheld anyway). The lower limit of 0
    is 0."""
    if observed < 0:
        raise ValueError("a count cannot be negative")
    if observed == 0:
        lower = 0.0
    else:
        lower = observed * (1 - 1 / (9 * observed) - z / (3 * math.sqrt(observed))) ** 3
    o1 = observed + 1
    upper = o1 * (1 - 1 / (9 * o1) + z / (3 * math.sqrt(o1))) ** 3
    return max(lower, 0.0), upper


def crude_rate(count: int, person_years: float, z: float = Z95) -> Rate:
    """Crude rate per 100,000 person-years, ``count / person_years * 100,000``, with Byar's
    limits on the count divided by the same person-years."""
    if person_years <= 0:
        raise ValueError("person-years must be positive")
    lower, upper = byar_limits(count, z)
    scale = PER / person_years
    return Rate(count * scale, lower * scale, upper * scale)


@dataclass(frozen=True)
class Stratum:
    """One age band: its events, its person-years and its ESP 2013 weight."""

    count: int
    person_years: float
    weight: float


def dsr(strata: Iterable[Stratum], z: float = Z95) -> Rate:
    """Directly age-standardised rate per 100,000 with Dobson's 95% interval.

    With O_i events and n_i person-years in age band i and w_i its standard population:

        DSR      = sum(w_i O_i / n_i) / sum(w_i) * 100,000
        var(DSR) = sum(w_i^2 O_i / n_i^2) / sum(w_i)^2 * 100,000^2
        O        = sum(O_i), whose variance is O (Poisson)
        limits   = DSR + sqrt(var(DSR) / O) * (O_L - O)   and   (O_U - O)

    where O_L, O_U are Byar's limits on O (``byar_limits``): Dobson et al. (1991), as in the
    PHE technical guide. A band with no person-years cannot be standardised: the caller must
    not ask (``queries`` withholds the rate and says the population is missing)."""
    bands = list(strata)
    total_weight = sum(s.weight for s in bands)
    if not bands or total_weight <= 0:
        raise ValueError("no age bands to standardise over")
    if any(s.person_years <= 0 for s in bands):
        raise ValueError("every age band needs person-years")
    value = sum(s.weight * s.count / s.person_years for s in bands) / total_weight
    variance = sum(s.weight**2 * s.count / s.person_years**2 for s in bands) / total_weight**2
    observed = sum(s.count for s in bands)
    if observed == 0:
        # var(DSR)/var(O) is 0/0; Dobson's limit at O = 0 uses the largest weight-to-
        # person-years ratio, the rate one event would give in the band that weighs most.
        _, upper = byar_limits(0, z)
        worst = max(s.weight / s.person_years for s in bands) / total_weight
        return Rate(0.0, 0.0, upper * worst * PER)
    lower, upper = byar_limits(observed, z)
    ratio = math.sqrt(variance / observed)
    return Rate(
        value * PER,
        max(value + ratio * (lower - observed), 0.0) * PER,
        (value + ratio * (upper - observed)) * PER,
    )


def band_populations(
    single_years: Mapping[int, float], bands: Iterable[tuple[int, int, str]]
) -> dict[str, float]:
    """Sum single-year populations (age 0..90, 90 meaning 90+) into our case age bands."""
    out: dict[str, float] = {}
    for lo, hi, label in bands:
        out[label] = sum(v for age, v in single_years.items() if lo <= age <= min(hi, MAX_AGE))
    return out
