"""Spike detection on daily counts: CDC EARS C1, C2, C3 and a Poisson upper threshold.

Pure arithmetic on arrays of daily counts: nothing here reads the database. The scan
(``dr_panel.alerts.signals``) stacks every area x case type x substance group series into one
matrix (one row a series, one column a day) and calls these once, so every function takes either
one series (1-D) or many (2-D, days on the last axis).

Definitions (Hutwagner et al., "The bioterrorism preparedness and response Early Aberration
Reporting System (EARS)", J Urban Health 2003; Fricker, Hegler and Dunfee, "Comparing syndromic
surveillance detection methods: EARS' versus a CUSUM-based methodology", Stat Med 2008; as the R
package ``surveillance::earsC`` implements them). For day t with count Y_t:

* **C1** ("mild"): baseline = the 7 days immediately before t, Y_{t-7} .. Y_{t-1}.
  mean_1 = their mean, s_1 = their sample standard deviation (divisor 6).
  C1_t = (Y_t - mean_1) / max(s_1, min_sigma). Alarm when C1_t > 3.
* **C2** ("medium"): the same with a 2-day guard band: baseline Y_{t-9} .. Y_{t-3} (the 7 days
  ending 2 days before t), so the first days of an outbreak do not inflate its own baseline.
  C2_t = (Y_t - mean_2) / max(s_2, min_sigma). Alarm when C2_t > 3.
* **C3** ("ultra"): C3_t = sum over i = t-2, t-1, t of max(0, C2_i - k), with k = 1 (the C2
  statistic less one standard deviation, per Fricker 2008); alarm when C3_t > 2. It accumulates
  a rise that lasts a few days. (The original C3 left out a day's term when that day had
  alarmed itself; like Fricker and ``earsC`` we keep every term.)
* **Poisson**: lambda_t = mean of the C2 baseline widened to ``poisson_baseline`` days (28 by
  default, also ending 2 days before t). p_t = P(X >= Y_t | X ~ Poisson(lambda_t)), computed as a
  sum of log probabilities (log-sum-exp), so tiny tails do not vanish into 1 - CDF; alarm when
  p_t < alpha (0.001). The threshold shown is the least count that would alarm.

Sparse counts: deaths in one area are usually 0 or 1 a day, where s is 0 and any event would be
"infinitely" unusual. ``min_sigma`` (default 0.5) floors the standard deviation, and
``min_count`` (default 3) means no method alarms on a day with fewer events than that: a single
event never alarms. Days without a full baseline have no statistic (NaN) and never alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

BASELINE = 7  # days, C1 and C2
GUARD = 2  # days between the C2 baseline and the day tested
C3_DAYS = 3  # t-2, t-1, t
C3_K = 1.0  # subtracted from each C2 statistic before its positive part is summed


@dataclass(frozen=True)
class Settings:
    """The knobs of the scan; config gives the defaults, each area may override them."""

    c1: bool = True
    c2: bool = True
    c3: bool = True
    poisson: bool = True
    threshold: float = 3.0  # C1 and C2, in standard deviations
    c3_threshold: float = 2.0
    min_sigma: float = 0.5
    min_count: int = 3
    alpha: float = 0.001
    poisson_baseline: int = 28
    lookback: int = 14  # days back from today the scan records signals for

    def enabled(self) -> list[str]:
        return [m for m in ("c1", "c2", "c3", "poisson") if getattr(self, m)]


@dataclass
class Result:
    """One method over one or many series: arrays shaped like the counts. ``threshold`` is the
    method's cut-off on its own statistic; ``upper`` the count a day would have had to exceed
    (what the chart draws); ``expected`` the baseline mean."""

    statistic: NDArray[np.float64]
    threshold: float
    upper: NDArray[np.float64]
    expected: NDArray[np.float64]
    alarm: NDArray[np.bool_]
    extra: dict[str, NDArray[np.float64]] = field(default_factory=dict)


def _as_counts(counts: object) -> NDArray[np.float64]:
    y = np.asarray(counts, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ValueError("counts must be one series (1-D) or a stack of series (2-D)")
    if np.any(y < 0):
        raise ValueError("counts cannot be negative")
    return y


def _shift(a: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """``a`` moved ``k`` days later along the last axis, NaN on the first ``k`` days."""
    out = np.empty_like(a)
    out[..., :k] = np.nan
    out[..., k:] = a[..., : a.shape[-1] - k]
    return out


@dataclass
class _Sums:
    """Running sums of the counts and of their squares (a leading 0 on the last axis): every
    window's sum is one subtraction. Whole numbers, so exact in floating point (to 2^53)."""

    y: NDArray[np.float64]
    s1: NDArray[np.float64]
    s2: NDArray[np.float64] | None = None

    @classmethod
    def of(cls, y: NDArray[np.float64]) -> _Sums:
        pad = [(0, 0)] * (y.ndim - 1) + [(1, 0)]
        return cls(y, np.pad(np.cumsum(y, axis=-1), pad))

    def window(self, length: int, squares: bool = False) -> NDArray[np.float64]:
        """Sum over the ``length`` days immediately before each day; NaN where incomplete."""
        if squares and self.s2 is None:
            pad = [(0, 0)] * (self.y.ndim - 1) + [(1, 0)]
            self.s2 = np.pad(np.cumsum(self.y * self.y, axis=-1), pad)
        s = self.s2 if squares else self.s1
        assert s is not None
        n = self.y.shape[-1]
        out = np.empty(self.y.shape)
        out[..., : min(length, n)] = np.nan
        if n > length:
            out[..., length:] = s[..., length:n] - s[..., : n - length]
        return out


def _baseline(
    y: NDArray[np.float64], length: int, lag: int, *, with_sd: bool = True,
    sums: _Sums | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and sample standard deviation of the ``length`` days ending ``lag`` days before
    each day (lag 0: the days immediately before). NaN where the window is incomplete."""
    sums = sums or _Sums.of(y)
    total = sums.window(length)
    mean = total / length
    sd = np.full(y.shape, np.nan)
    if with_sd:
        squares = sums.window(length, squares=True)
        var = (squares - total * mean) / (length - 1)
        with np.errstate(invalid="ignore"):
            sd = np.sqrt(np.maximum(var, 0.0))
    if lag:
        mean, sd = _shift(mean, lag), _shift(sd, lag)
    return mean, sd


def _ears(
    y: NDArray[np.float64], lag: int, s: Settings,
    base: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> Result:
    """C1 (lag 0) or C2 (lag 2). ``base``: the lag-0 mean and sigma, when already computed."""
    if base is None:
        mean, sd = _baseline(y, BASELINE, 0)
        sigma = np.maximum(sd, s.min_sigma)
    else:
        mean, sigma = base
    if lag:
        mean, sigma = _shift(mean, lag), _shift(sigma, lag)
    with np.errstate(invalid="ignore"):
        stat = (y - mean) / sigma
        alarm = (stat > s.threshold) & (y >= s.min_count)
    return Result(stat, s.threshold, mean + s.threshold * sigma, mean, alarm, {"sigma": sigma})


def c1(counts: object, settings: Settings | None = None) -> Result:
    """EARS C1: baseline the 7 days immediately before each day."""
    return _ears(_as_counts(counts), 0, settings or Settings())


def c2(counts: object, settings: Settings | None = None) -> Result:
    """EARS C2: baseline the 7 days ending 2 days before each day (guard band)."""
    return _ears(_as_counts(counts), GUARD, settings or Settings())


def c3(counts: object, settings: Settings | None = None, c2_result: Result | None = None) -> Result:
    """EARS C3: sum of max(0, C2 - 1) over the day and the two before it; alarm above 2."""
    s = settings or Settings()
    y = _as_counts(counts)
    r2 = c2_result or _ears(y, GUARD, s)
    part = np.maximum(r2.statistic - C3_K, 0.0)  # NaN stays NaN: no full baseline
    earlier = _shift(part, 1) + _shift(part, 2)  # the two previous days' terms
    stat = part + earlier
    sigma = r2.extra["sigma"]
    upper = r2.expected + sigma * (C3_K + np.maximum(s.c3_threshold - earlier, 0.0))
    with np.errstate(invalid="ignore"):
        alarm = (stat > s.c3_threshold) & (y >= s.min_count)
    return Result(stat, s.c3_threshold, upper, r2.expected, alarm)


def poisson_log_tail(lam: float, upto: int) -> NDArray[np.float64]:
    """log P(X >= k) for k = 0..upto, X ~ Poisson(lam), summed in log space from the top so
    a tail of 1e-30 is as exact as one of 0.3."""
    k = np.arange(upto + 1, dtype=np.float64)
    if lam <= 0:
        out = np.full(upto + 1, -np.inf)
        out[0] = 0.0
        return out
    log_pmf = -lam + k * math.log(lam) - np.array([math.lgamma(x + 1) for x in k])
    # reverse cumulative log-sum-exp: log sum_{j >= k} pmf(j), ignoring the part above ``upto``,
    # which callers choose far enough out (mean + 12 sd + 40) to be below 1e-40 of the rest.
    return np.logaddexp.accumulate(log_pmf[::-1])[::-1]  # type: ignore[no-any-return]


def poisson_tail(observed: int, lam: float) -> float:
    """P(X >= observed) for X ~ Poisson(lam)."""
    if observed <= 0:
        return 1.0
    upto = int(observed + lam + 12 * math.sqrt(lam) + 40)
    return float(math.exp(poisson_log_tail(lam, upto)[observed]))


def poisson(
    counts: object, settings: Settings | None = None, sums: _Sums | None = None
) -> Result:
    """Poisson upper threshold: alarm when P(X >= Y_t | mean of the baseline) < alpha."""
    s = settings or Settings()
    y = _as_counts(counts)
    mean, _ = _baseline(y, s.poisson_baseline, GUARD, with_sd=False, sums=sums)
    pvalue = np.full(y.shape, np.nan)
    upper = np.full(y.shape, np.nan)
    ok = ~np.isnan(mean)
    if ok.any():
        # The baseline sum is a whole number, so lambda takes few distinct values: one row of
        # log tail probabilities per value, P(X >= k) for k = 0..top, serves every day.
        raw = np.rint(mean[ok] * s.poisson_baseline).astype(np.int64)
        present = np.zeros(int(raw.max()) + 1, dtype=bool)  # np.unique without its sort
        present[raw] = True
        levels = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[raw]
        lam = levels / s.poisson_baseline
        obs = y[ok].astype(np.int64)
        top = int(max(obs.max(), lam.max()) + lam.max() + 12 * math.sqrt(lam.max()) + 40)
        k = np.arange(top + 1, dtype=np.float64)
        log_fact = np.array([math.lgamma(x + 1) for x in k])
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pmf = -lam[:, None] + k[None, :] * np.log(lam)[:, None] - log_fact[None, :]
        zero = lam == 0  # X is always 0
        log_pmf[zero] = -np.inf
        log_pmf[zero, 0] = 0.0
        tail = np.logaddexp.accumulate(log_pmf[:, ::-1], axis=1)[:, ::-1]
        pvalue[ok] = np.exp(tail[inverse, obs])
        alarming = tail < math.log(s.alpha)
        least = np.where(alarming.any(axis=1), alarming.argmax(axis=1), top + 1)
        # "upper" as for EARS: the count a day must exceed, i.e. the least alarming count - 1
        upper[ok] = (least - 1)[inverse]
    with np.errstate(invalid="ignore"):
        alarm = (pvalue < s.alpha) & (y >= s.min_count)
    return Result(pvalue, s.alpha, upper, mean, alarm)


def run(counts: object, settings: Settings | None = None) -> dict[str, Result]:
    """Every enabled method over the counts, by method code ("c1", "c2", "c3", "poisson").
    The 7-day baseline is computed once: C2's is C1's two days later."""
    s = settings or Settings()
    y = _as_counts(counts)
    sums = _Sums.of(y)
    out: dict[str, Result] = {}
    if s.c1 or s.c2 or s.c3:
        mean, sd = _baseline(y, BASELINE, 0, sums=sums)
        base = (mean, np.maximum(sd, s.min_sigma))
        if s.c1:
            out["c1"] = _ears(y, 0, s, base)
        if s.c2 or s.c3:
            r2 = _ears(y, GUARD, s, base)
            if s.c2:
                out["c2"] = r2
            if s.c3:
                out["c3"] = c3(y, s, r2)
    if s.poisson:
        out["poisson"] = poisson(y, s, sums)
    return out
