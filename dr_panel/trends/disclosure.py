"""Statistical disclosure control: the one place the rule lives.

NHS Digital's rule for figures below national level (DESIGN.md, "Standards"): 0 stays 0; counts
from 1 to ``DISCLOSURE_SUPPRESS_BELOW - 1`` (1-7) are shown as ``*``; every other count is
rounded to the nearest ``DISCLOSURE_ROUND_TO`` (5); totals are computed from the unrounded
figures and then rounded; percentages use the rounded figures; no rate is given on fewer than
``DISCLOSURE_MIN_EVENTS_FOR_RATE`` (10) events. The thresholds are configuration.

Pages, charts, exports and the API all take their figures through ``shown_count``, and print
``note`` under every table, chart and file, so the rule and its explanation cannot drift apart.
Coordinators may see exact counts for their own areas (``exact_for``); leads never do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app

SUPPRESSED = "*"


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


def shown_count(n: int, *, exact: bool, rule: Rule | None = None) -> Shown:
    """The count as the viewer may see it. ``exact`` (a coordinator in their own areas): as is.
    Otherwise 0 stays 0, 1..7 becomes ``*``, anything else is rounded to the nearest 5.
    ``rule``: the thresholds, when the caller has read them already."""
    n = int(n)
    if n < 0:
        raise ValueError("a count cannot be negative")
    if exact or n == 0:
        return Shown(str(n), n, False)
    rule = rule or current_rule()
    if n < rule.suppress_below:
        return Shown(SUPPRESSED, None, True)
    value = _round_half_up(n, rule.round_to)
    return Shown(str(value), value, False)


def rate_allowed(n: int, rule: Rule | None = None) -> bool:
    """A rate only on enough events to mean something (and not to point at a person)."""
    return n >= (rule.min_events_for_rate if rule else min_events_for_rate())


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
        f"Disclosure control (NHS Digital's rule): 0 is shown as 0; counts from 1 to "
        f"{suppress_below() - 1} are shown as *; other counts are rounded to the nearest "
        f"{round_to()}. Totals are worked out from the unrounded counts and then rounded, so "
        "rows may not add up to the total; percentages use the rounded counts. No rate is "
        f"given on fewer than {min_events_for_rate()} events."
    )


def exact_for(user: Any, area_ids: Iterable[int]) -> bool:
    """Exact counts only for a coordinator whose own areas cover every area in the figure.
    Leads (and every other role) never get them."""
    role = getattr(getattr(user, "role", None), "value", getattr(user, "role", None))
    if role != "coordinator":
        return False
    wanted = set(area_ids)
    return bool(wanted) and wanted <= set(user.area_ids)
