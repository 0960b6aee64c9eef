"""Statistical disclosure control: the one place the rule lives.

Two layers, as the Office for National Statistics published them for Census 2021 tables
("cell key method"), with NHS Digital's rule as the visible layer on top:

1. **Consistent perturbation (ONS cell key method).** Every case carries a random record key
   (0-255, drawn once when the case is created and never changed). A cell's key is the sum of
   its records' keys modulo 256, so the same set of records gives the same key however the
   cell is reached (a month of the month table, the total of a table filtered to that month,
   a row of an area table or the total of that area alone). A fixed perturbation table
   (``PTABLE``) maps (count, cell key) to a small noise, between ``-MAX_NOISE`` and
   ``+MAX_NOISE``, with mean zero wherever the count allows it: 0 stays 0 and a positive count
   never becomes 0. The same cell asked twice, or two ways, gives the same perturbed count, so
   asking again and averaging learns nothing; two different cells carry noise that does not
   cancel, so subtracting overlapping figures gives an estimate, never the exact count.
2. **NHS Digital's rule on the perturbed count** (DESIGN.md, "Standards"): 0 stays 0; 1 to
   ``DISCLOSURE_SUPPRESS_BELOW - 1`` (1-7) shown as ``*``; others rounded to the nearest
   ``DISCLOSURE_ROUND_TO`` (5). Totals are cells of their own (their own records, their own
   key), so rows may not add up to the total.

Everything else is worked out from the figures as shown, never from exact counts: rates and
their intervals from the shown count; age-standardised rates from each age band's shown count
(a band shown as ``*`` counts as ``SUPPRESSED_BAND_VALUE``, the middle of 1-7); percentages
from the shown counts. Whether a rate is given is decided from the shown count alone
(``rate_allowed_shown``), so "no rate" never narrows a count the table already shows.

Coordinators may see exact counts for their own areas (``exact_for``); leads never do.
Alert text (``dr_panel.alerts.drafting``) uses the plain rule without a key: a coordinator
writes it from counts they may see exactly, and a second person approves it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from dr_panel.roles import Role

if TYPE_CHECKING:
    from dr_panel.auth.models import User

SUPPRESSED = "*"
KEY_SPACE = 256  # record keys and cell keys are 0..255
MAX_NOISE = 2  # the perturbation is at most this many events either way
# The noise distribution for counts large enough to take it whole (-2..+2): variance 1.2.
BASE_NOISE = {-2: 0.1, -1: 0.2, 0: 0.4, 1: 0.2, 2: 0.1}
SUPPRESSED_BAND_VALUE = 4  # an age band shown as * counts as 4 in an age-standardised rate


def new_record_key() -> int:
    """A case's record key: uniform over 0..255 from the operating system's generator, so a
    lead cannot guess it. Drawn once, when the case is created, and never changed."""
    return secrets.randbelow(KEY_SPACE)


def _tilted(support: list[int]) -> dict[int, float]:
    """``BASE_NOISE`` restricted to ``support`` and exponentially tilted to mean zero (the
    maximum-entropy change of the base distribution with no bias), when the support allows
    a zero mean; otherwise all mass on no noise."""
    if min(support) >= 0:
        return {0: 1.0}

    def dist(lam: float) -> dict[int, float]:
        w = {d: BASE_NOISE[d] * math.exp(lam * d) for d in support}
        total = sum(w.values())
        return {d: v / total for d, v in w.items()}

    lo, hi = -20.0, 20.0
    for _ in range(100):  # bisection on the mean, which rises with lambda
        mid = (lo + hi) / 2
        if sum(d * p for d, p in dist(mid).items()) > 0:
            hi = mid
        else:
            lo = mid
    return dist((lo + hi) / 2)


def _build_ptable() -> dict[int, tuple[tuple[int, int], ...]]:
    """Row per count 1..MAX_NOISE + 1 (the last serves every larger count): (upper bound of
    the cell-key range, noise) pairs, the key ranges splitting 0..255 in proportion to the
    noise probabilities. A fixed table, the same on every node and every run."""
    table: dict[int, tuple[tuple[int, int], ...]] = {}
    for n in range(1, MAX_NOISE + 2):
        support = [d for d in BASE_NOISE if n + d >= 1]
        probs = _tilted(support)
        bounds: list[tuple[int, int]] = []
        acc = 0.0
        for d in sorted(probs):
            acc += probs[d]
            upper = min(KEY_SPACE, round(acc * KEY_SPACE))
            if not bounds or upper > bounds[-1][0]:
                bounds.append((upper, d))
        bounds[-1] = (KEY_SPACE, bounds[-1][1])
        table[n] = tuple(bounds)
    return table


PTABLE = _build_ptable()


def noise(n: int, cell_key: int) -> int:
    """The perturbation of a count ``n`` whose cell key is ``cell_key`` (0..255)."""
    if n <= 0:
        return 0
    row = PTABLE[min(n, MAX_NOISE + 1)]
    k = cell_key % KEY_SPACE
    for upper, d in row:
        if k < upper:
            return d
    return row[-1][1]


def perturbed(n: int, key_sum: int) -> int:
    """The count after the cell key method: ``key_sum`` is the sum of the cell's record keys
    (any size; its remainder modulo 256 is the cell key). 0 stays 0; never below 1 otherwise."""
    if n <= 0:
        return 0
    return max(1, n + noise(n, key_sum % KEY_SPACE))


@dataclass(frozen=True)
class Shown:
    """A count as it may be shown: ``text`` to print, ``value`` to compute with (None when
    suppressed). Built only by ``shown_count``, so a raw count cannot pass for a protected one."""

    text: str
    value: int | None
    suppressed: bool

    def __repr__(self) -> str:
        return f"Shown({self.text!r})"


def _setting(key: str, default: int) -> int:
    try:
        return int(current_app.config.get(key, default))
    except RuntimeError:  # outside an app (a plain unit test): the documented defaults
        return default


def suppress_below() -> int:
    return _setting("DISCLOSURE_SUPPRESS_BELOW", 8)


def round_to() -> int:
    return _setting("DISCLOSURE_ROUND_TO", 5)


def min_events_for_rate() -> int:
    return _setting("DISCLOSURE_MIN_EVENTS_FOR_RATE", 10)


def _round_half_up(n: int, base: int) -> int:
    """Nearest multiple of ``base``, halves up (12.5 -> 15): plain integers, no float surprises
    and no banker's rounding."""
    if base <= 1:
        return n
    return ((n + base // 2) // base) * base


@dataclass(frozen=True)
class Rule:
    """The thresholds in force, read once (a table of a thousand cells need not read the
    configuration two thousand times)."""

    suppress_below: int
    round_to: int
    min_events_for_rate: int


def current_rule() -> Rule:
    return Rule(suppress_below(), round_to(), min_events_for_rate())


def shown_count(
    n: int, *, exact: bool, rule: Rule | None = None, key: int | None = None
) -> Shown:
    """The count as the viewer may see it. ``exact`` (a coordinator in their own areas): as is.
    Otherwise the count is perturbed by its cell key (``key``: the sum of the cell's record
    keys) and NHS Digital's rule applied to the result: 0 stays 0, 1..7 becomes ``*``, anything
    else is rounded to the nearest 5. Every lead-facing figure passes ``key``; without one only
    the visible rule applies (alert text, written by a coordinator and approved by another).
    ``rule``: the thresholds, when the caller has read them already."""
    n = int(n)
    if n < 0:
        raise ValueError("a count cannot be negative")
    if exact or n == 0:
        return Shown(str(n), n, False)
    rule = rule or current_rule()
    if key is not None:
        n = perturbed(n, key)
    if n < rule.suppress_below:
        return Shown(SUPPRESSED, None, True)
    value = _round_half_up(n, rule.round_to)
    return Shown(str(value), value, False)


def rate_allowed(n: int, rule: Rule | None = None) -> bool:
    """A rate only on enough events to mean something: for exact counts (a coordinator)."""
    return n >= (rule.min_events_for_rate if rule else min_events_for_rate())


def rate_allowed_shown(shown: Shown, rule: Rule | None = None) -> bool:
    """Whether a protected figure may carry a rate, decided from what the viewer already sees
    (the shown count), so that "no rate" cannot narrow it: a count shown as 10 always gets
    its rate; a ``*`` never does."""
    return shown.value is not None and rate_allowed(shown.value, rule)


def no_rate_text(rule: Rule | None = None) -> str:
    """Why a protected figure has no rate, in words that add nothing to the count shown."""
    floor = rule.min_events_for_rate if rule else min_events_for_rate()
    return f"No rate: a rate is given only where the count shown is at least {floor}."


def band_value(shown: Shown) -> int:
    """An age band's count as an age-standardised rate uses it for a protected figure: the
    shown count, or ``SUPPRESSED_BAND_VALUE`` for ``*``. Solving the rate back gives no more
    than the table by age band already shows."""
    return SUPPRESSED_BAND_VALUE if shown.value is None else shown.value


def percent(num: Shown, den: Shown) -> str:
    """A percentage from the figures as shown (rounded), never from the raw counts, so it
    cannot be turned back into a suppressed or unrounded count. ``*`` if either is suppressed;
    "–" where the denominator is 0."""
    if num.suppressed or den.suppressed or num.value is None or den.value is None:
        return SUPPRESSED
    if den.value == 0:
        return "–"
    return f"{100 * num.value / den.value:.0f}%"


def note(exact: bool) -> str:
    """The sentence under every table, chart and export: which rule was applied."""
    if exact:
        return (
            "Exact counts: you coordinate every area in these figures, so no disclosure "
            "control was applied. Apply it before sharing them outside the panel: counts of "
            f"1 to {suppress_below() - 1} as *, others rounded to the nearest {round_to()}. "
            f"No rate is given on fewer than {min_events_for_rate()} events."
        )
    return (
        f"Disclosure control: each count is first moved by up to {MAX_NOISE} at random, the "
        "same way every time the same cases are counted (the Office for National Statistics' "
        "cell key method); then NHS Digital's rule applies: 0 is shown as 0; counts from 1 to "
        f"{suppress_below() - 1} are shown as *; other counts are rounded to the nearest "
        f"{round_to()}. Totals are counted separately, so rows may not add up to the total. "
        "Rates, age-standardised rates and percentages are worked out from the counts as "
        f"shown, and a rate is given only where the count shown is at least "
        f"{min_events_for_rate()}. Periods are whole calendar or financial years, quarters "
        "and months."
    )


def exact_for(user: User, area_ids: Iterable[int]) -> bool:
    """Exact counts only for a coordinator whose own areas cover every area in the figure.
    Leads (and every other role) never get them."""
    if user.role is not Role.COORDINATOR:
        return False
    wanted = set(area_ids)
    return bool(wanted) and wanted <= set(user.area_ids)
