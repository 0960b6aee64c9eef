"""The signal scan: statistical spikes in daily counts, and clusters of reviewed cases.

Spikes: every area x case type x substance group series of ``daily_counts`` (kept consistent
with the cases by ``dr_panel.trends.aggregates``; group "*" is all substances) is read in one
query, stacked into a matrix and run through EARS C1/C2/C3 and the Poisson threshold
(``dr_panel.alerts.ears``) with the area's settings: config ``SIGNAL_SETTINGS`` over the
defaults, then ``SIGNAL_AREA_SETTINGS[ons_code]``, then what the area's coordinators set on the
settings page (``signal_settings``; ``save_area_settings``). An alarm on a day in the look-back
window becomes a ``Signal``; the unique constraint makes a second scan find nothing new.

Clusters: at least ``CLUSTER_MIN_CASES`` reviewed cases (reviewed, actions in progress, closed)
in one area within ``CLUSTER_WINDOW_DAYS`` days sharing a learning theme or a substance. The
signal's day is the latest such case's event date, so rescanning finds the same cluster once
and a new case joining it makes a new signal.

Evidence holds counts, dates, thresholds and (clusters) case UUIDs; never an identifier or free
text. A death series, or a cluster with a death, is urgent. Signals are for people to assess:
nothing here broadcasts.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from flask import current_app
from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.orm.attributes import flag_modified

from dr_panel.alerts import ears
from dr_panel.alerts.models import ItemStatus, Signal, SignalKind, SignalMethod, SignalSettings
from dr_panel.audit.services import record
from dr_panel.cases.models import Case, CaseStatus, CaseType, Substance, case_substances
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from dr_panel.reviews.findings import LearningPoint, Theme, learning_point_themes
from dr_panel.trends.models import ALL_SUBSTANCES, DailyCount

if TYPE_CHECKING:
    from dr_panel.auth.models import User

log = logging.getLogger("dr_panel.alerts.signals")

REVIEWED = (CaseStatus.REVIEWED, CaseStatus.ACTIONS_IN_PROGRESS, CaseStatus.CLOSED)
CHART_DAYS = 42  # days of the series kept in a spike's evidence, for its chart
SPIKE_METHODS = {
    "c1": SignalMethod.C1,
    "c2": SignalMethod.C2,
    "c3": SignalMethod.C3,
    "poisson": SignalMethod.POISSON,
}
EPOCH = date(1970, 1, 1)


# -- settings -------------------------------------------------------------------------------------


def _coerce(raw: dict[str, Any], base: ears.Settings) -> ears.Settings:
    """Apply the known keys of ``raw`` to ``base``; an unknown key or wrong type is a config
    error worth stopping for, so the message names it."""
    known = {f.name: f for f in fields(ears.Settings)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ValueError(f"signal setting {key!r} is unknown; use {', '.join(known)}")
        kind = type(getattr(base, key))
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"signal setting {key!r} must be true or false")
        values[key] = kind(value)
    return replace(base, **values)


# What an area's coordinators may set, on the page and through the API: the methods on or off,
# and each number's range (lowest, highest, whole number or not).
METHOD_KEYS = ("c1", "c2", "c3", "poisson")
SETTING_RANGES: dict[str, tuple[float, float, bool]] = {
    "threshold": (0.5, 10, False),
    "c3_threshold": (0.5, 10, False),
    "min_sigma": (0, 10, False),
    "min_count": (1, 1000, True),
    "alpha": (0.000001, 0.1, False),
    "poisson_baseline": (7, 365, True),
    "lookback": (1, 90, True),
}


def configured_settings(area_code: str | None) -> ears.Settings:
    """An area's settings before its own page: defaults, SIGNAL_SETTINGS, SIGNAL_AREA_SETTINGS."""
    cfg = current_app.config
    settings = _coerce(cfg.get("SIGNAL_SETTINGS") or {}, ears.Settings())
    if area_code:
        settings = _coerce((cfg.get("SIGNAL_AREA_SETTINGS") or {}).get(area_code, {}), settings)
    return settings


def stored_row(area_id: int) -> SignalSettings | None:
    """An area's own settings row from the page, if it has one."""
    return db.session.scalar(select(SignalSettings).where(SignalSettings.area_id == area_id))


def own_overrides(row: SignalSettings | None) -> dict[str, Any]:
    return json.loads(row.overrides) if row else {}


def stored_overrides() -> dict[int, dict[str, Any]]:
    """Every area's own settings from the page, by area id (one query, for a whole scan)."""
    return {row.area_id: json.loads(row.overrides)
            for row in db.session.scalars(select(SignalSettings))}


def settings_for(area_code: str | None, overrides: dict[str, Any] | None = None) -> ears.Settings:
    """The EARS settings of an area: defaults, then SIGNAL_SETTINGS, then SIGNAL_AREA_SETTINGS,
    then what its coordinators set on the page (``overrides``; read here when not given)."""
    settings = configured_settings(area_code)
    if area_code:
        if overrides is None:
            overrides = own_overrides(db.session.scalar(
                select(SignalSettings).join(Area).where(Area.ons_code == area_code)
            ))
        settings = _coerce(overrides, settings)
    return settings


class StaleSettings(Exception):
    """Someone else saved the area's settings after this page was opened."""


def save_area_settings(
    area: Area, chosen: ears.Settings, *, by: User, revision: int | None
) -> list[str]:
    """Store the settings a coordinator chose for ``area``: only where they differ from the
    configured ones, so a later change of configuration still reaches the rest. Returns the
    names of the settings that changed (audited with old and new values: numbers only)."""
    row = stored_row(area.id)
    if (row.revision if row else 0) != (revision or 0):
        raise StaleSettings()
    before = settings_for(area.ons_code, own_overrides(row))
    base = configured_settings(area.ons_code)
    overrides = {f.name: getattr(chosen, f.name) for f in fields(ears.Settings)
                 if getattr(chosen, f.name) != getattr(base, f.name)}
    changed = {f.name: [getattr(before, f.name), getattr(chosen, f.name)]
               for f in fields(ears.Settings) if getattr(before, f.name) != getattr(chosen, f.name)}
    if not changed:
        return []
    if row is None:
        row = SignalSettings(area_id=area.id)
        db.session.add(row)
    row.overrides = json.dumps(overrides, sort_keys=True)
    row.updated_by_id = by.id
    # Always an UPDATE, so its version check always runs: two saves of the same values from
    # the same revision used to emit no UPDATE for the second, and both were accepted.
    flag_modified(row, "overrides")
    db.session.flush()
    record("signals.settings.changed", actor=by, object_type="areas", object_uuid=area.uuid,
           details={"changed": changed})
    return sorted(changed)


def reset_area_settings(area: Area, *, by: User) -> bool:
    """Drop the area's own settings: it goes back to the configured ones. False if it had none."""
    row = stored_row(area.id)
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    record("signals.settings.reset", actor=by, object_type="areas", object_uuid=area.uuid,
           details={"dropped": sorted(json.loads(row.overrides))})
    return True


# -- reading the series ---------------------------------------------------------------------------


@dataclass
class Series:
    """Stacked daily series: ``counts[i, d]`` is series ``keys[i]`` on day ``first + d``."""

    keys: list[tuple[int, str, str]]  # (area_id, case_type, substance_group)
    first: date
    counts: np.ndarray[Any, np.dtype[np.float64]]

    def day(self, index: int) -> date:
        return self.first + timedelta(days=index)


def _day_number() -> Any:
    """The day as a whole number of days since 1970, computed by the database."""
    if db.session.get_bind().dialect.name == "sqlite":
        return func.cast(func.julianday(DailyCount.day) - 2440587.5, db.Integer)
    return DailyCount.day - date(1970, 1, 1)


def read_series(start: date, end: date) -> Series:
    """Every series with a count between ``start`` and ``end`` (inclusive), zero-filled. The
    daily scan reads only the weeks its methods need (``_history_days`` plus the look-back),
    a few thousand rows whatever the size of the history."""
    n_days = (end - start).days + 1
    if n_days <= 0:
        return Series([], start, np.zeros((0, 0)))
    rows = db.session.connection().execute(
        select(
            DailyCount.area_id,
            DailyCount.case_type,
            DailyCount.substance_group,
            _day_number(),
            DailyCount.n,
        ).where(DailyCount.day >= start, DailyCount.day <= end)
    ).all()
    if not rows:
        return Series([], start, np.zeros((0, n_days)))
    area_ids, types, group_names, days, counts_ = zip(*rows, strict=True)
    index: dict[tuple[int, str, str], int] = {}
    row_index = np.fromiter(
        (index.setdefault(k, len(index)) for k in zip(area_ids, types, group_names, strict=True)),
        dtype=np.int64,
        count=len(rows),
    )
    col = np.asarray(days, dtype=np.int64) - (start - EPOCH).days
    matrix = np.zeros((len(index), n_days))
    np.add.at(matrix, (row_index, col), np.asarray(counts_, dtype=np.float64))
    return Series(list(index), start, matrix)


# -- the scan -------------------------------------------------------------------------------------


@dataclass
class ScanReport:
    series: int = 0
    alarms: int = 0
    new_spikes: int = 0
    new_clusters: int = 0

    @property
    def new(self) -> int:
        return self.new_spikes + self.new_clusters


def _history_days(s: ears.Settings) -> int:
    """Days before the first day tested that the methods need: C3 uses C2 two days back."""
    return max(ears.BASELINE + ears.GUARD + ears.C3_DAYS - 1, s.poisson_baseline + ears.GUARD)


def spike_candidates(
    today: date, days: int | None = None, progress: Callable[[int], None] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Alarms on the days of the look-back window, as dicts ready for ``Signal`` rows; and the
    number of series scanned. ``days`` overrides each area's look-back."""
    areas = {a.id: a for a in db.session.scalars(select(Area))}
    stored = stored_overrides()
    by_settings: dict[ears.Settings, list[int]] = defaultdict(list)
    for area in areas.values():
        s = settings_for(area.ons_code, stored.get(area.id, {}))
        if days is not None:
            s = replace(s, lookback=days)
        by_settings[s].append(area.id)
    widest = max((s.lookback + _history_days(s) for s in by_settings), default=0)
    series = read_series(today - timedelta(days=widest - 1), today)
    found: list[dict[str, Any]] = []
    for s, area_ids in by_settings.items():
        rows = [i for i, k in enumerate(series.keys) if k[0] in set(area_ids)]
        if not rows or not s.enabled():
            if progress:
                progress(len(rows))
            continue
        counts = series.counts[rows]
        results = ears.run(counts, s)
        first_tested = max(counts.shape[1] - s.lookback, 0)
        for method, result in results.items():
            hit_rows, hit_days = np.nonzero(result.alarm[:, first_tested:])
            for r, d in zip(hit_rows.tolist(), (hit_days + first_tested).tolist(), strict=True):
                key = series.keys[rows[r]]
                found.append(_spike(series, counts[r], key, d, method, result, r, s))
        if progress:
            progress(len(rows))
    return found, len(series.keys)


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def _spike(
    series: Series,
    counts: np.ndarray[Any, np.dtype[np.float64]],
    key: tuple[int, str, str],
    d: int,
    method: str,
    result: ears.Result,
    r: int,
    s: ears.Settings,
) -> dict[str, Any]:
    area_id, case_type, group = key
    lo = max(d - CHART_DAYS + 1, 0)
    evidence = {
        "method": method,
        "series": {
            "from": series.day(lo).isoformat(),
            "to": series.day(d).isoformat(),
            "counts": [int(c) for c in counts[lo : d + 1]],
            "upper": [_num(u) for u in result.upper[r, lo : d + 1]],
        },
        "statistic": _num(result.statistic[r, d]),
        "threshold": result.threshold,
        "upper": _num(result.upper[r, d]),
        "expected": _num(result.expected[r, d]),
        "settings": {
            "min_sigma": s.min_sigma,
            "min_count": s.min_count,
            "threshold": s.threshold,
            "c3_threshold": s.c3_threshold,
            "alpha": s.alpha,
            "poisson_baseline": s.poisson_baseline,
        },
    }
    return {
        "kind": SignalKind.SPIKE,
        "method": SPIKE_METHODS[method],
        "area_id": area_id,
        "case_type": CaseType(case_type),
        "subject": group,
        "day": series.day(d),
        "observed": int(counts[d]),
        "expected": _num(result.expected[r, d]),
        "threshold": _num(result.upper[r, d]),
        "evidence": json.dumps(evidence, separators=(",", ":")),
        "is_urgent": case_type == CaseType.DEATH.value,
    }


def cluster_candidates(today: date) -> list[dict[str, Any]]:
    """Theme and substance clusters of reviewed cases ending on or before ``today``."""
    cfg = current_app.config
    window = int(cfg["CLUSTER_WINDOW_DAYS"])
    minimum = int(cfg["CLUSTER_MIN_CASES"])
    since = today - timedelta(days=window - 1)
    base = and_(Case.status.in_(REVIEWED), Case.event_date >= since, Case.event_date <= today)
    theme_rows = db.session.execute(
        select(Case.area_id, Theme.code, Case.uuid, Case.event_date, Case.case_type)
        .join(LearningPoint, LearningPoint.case_id == Case.id)
        .join(learning_point_themes, learning_point_themes.c.learning_point_id == LearningPoint.id)
        .join(Theme, Theme.id == learning_point_themes.c.theme_id)
        .where(base)
        .distinct()
    ).all()
    substance_rows = db.session.execute(
        select(Case.area_id, Substance.code, Case.uuid, Case.event_date, Case.case_type)
        .join(case_substances, case_substances.c.case_id == Case.id)
        .join(Substance, Substance.id == case_substances.c.substance_id)
        .where(base)
        .distinct()
    ).all()
    found = []
    sources = ((SignalMethod.THEME, theme_rows), (SignalMethod.SUBSTANCE, substance_rows))
    for method, rows in sources:
        groups: dict[tuple[int, str], dict[Any, tuple[date, CaseType]]] = defaultdict(dict)
        for area_id, code, case_uuid, event_date, case_type in rows:
            groups[(area_id, code)][case_uuid] = (event_date, case_type)
        for (area_id, code), cases in groups.items():
            if len(cases) < minimum:
                continue
            dates = sorted(d for d, _ in cases.values())
            deaths = sum(1 for _, t in cases.values() if t is CaseType.DEATH)
            evidence = {
                "method": method.value,
                "window_days": window,
                "minimum": minimum,
                "from": dates[0].isoformat(),
                "to": dates[-1].isoformat(),
                "cases": len(cases),
                "deaths": deaths,
                "nfos": len(cases) - deaths,
                "case_uuids": sorted(str(u) for u in cases),
            }
            found.append(
                {
                    "kind": SignalKind.CLUSTER,
                    "method": method,
                    "area_id": area_id,
                    "case_type": None,
                    "subject": code[:40],
                    "day": dates[-1],
                    "observed": len(cases),
                    "expected": None,
                    "threshold": float(minimum),
                    "evidence": json.dumps(evidence, separators=(",", ":")),
                    "is_urgent": deaths > 0,
                }
            )
    return found


def _key(c: dict[str, Any]) -> tuple[Any, ...]:
    case_type = c["case_type"].value if c["case_type"] is not None else None
    return (c["kind"].value, c["method"].value, c["area_id"], case_type, c["subject"], c["day"])


def store(candidates: list[dict[str, Any]]) -> int:
    """Add the candidates not already stored (by the unique key); returns how many are new.
    The caller commits; a concurrent scan that stored the same signal first makes the commit
    fail on the unique constraint, and the CLI says to run again."""
    if not candidates:
        return 0
    days = [c["day"] for c in candidates]
    existing = set()
    for kind, method, area_id, case_type, subject, day in db.session.execute(
        select(
            Signal.kind, Signal.method, Signal.area_id, Signal.case_type, Signal.subject,
            Signal.day,
        ).where(Signal.day >= min(days), Signal.day <= max(days))
    ):
        existing.add(
            (kind.value, method.value, area_id, case_type.value if case_type else None, subject,
             day)
        )
    new = 0
    seen = set()
    now = utcnow()
    for c in candidates:
        key = _key(c)
        if key in existing or key in seen:
            continue
        seen.add(key)
        db.session.add(Signal(**c, detected_at=now))
        new += 1
    db.session.flush()
    return new


# Which method names a signal when several alarm on the same day (the earliest-warning first).
METHOD_ORDER = ("c1", "c2", "c3", "poisson")
EPISODE_DAYS = 7


def episodes(spikes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One signal per burst, not one per method and day: a coordinator should see "opioid
    overdoses in Blackpool are up" once, not twenty times. Alarms on the same series and day
    become one signal naming every method that fired (``evidence["methods"]``); the
    all-substances series is left out on a day one of its substance groups alarmed (the group
    says more); and a day within ``EPISODE_DAYS`` after an earlier alarm of the same series
    (stored and still open, or earlier in this scan) belongs to that signal's episode."""
    by_day: dict[tuple[int, str, str, date], list[dict[str, Any]]] = defaultdict(list)
    for c in spikes:
        by_day[(c["area_id"], c["case_type"].value, c["subject"], c["day"])].append(c)
    grouped_days = {(a, t, d) for (a, t, subject, d) in by_day if subject != ALL_SUBSTANCES}
    merged = []
    for (area_id, case_type, subject, day), found in sorted(by_day.items(), key=lambda i: i[0][3]):
        if subject == ALL_SUBSTANCES and (area_id, case_type, day) in grouped_days:
            continue
        found.sort(key=lambda c: METHOD_ORDER.index(c["method"].value))
        first = dict(found[0])
        evidence = json.loads(first["evidence"])
        evidence["methods"] = [c["method"].value for c in found]
        first["evidence"] = json.dumps(evidence, separators=(",", ":"))
        merged.append(first)
    if not merged:
        return []
    since = min(c["day"] for c in merged) - timedelta(days=EPISODE_DAYS)
    last_seen: dict[tuple[int, str, str], date] = {}
    for area_id, stored_type, subject, day in db.session.execute(
        select(Signal.area_id, Signal.case_type, Signal.subject, Signal.day).where(
            Signal.kind == SignalKind.SPIKE,
            Signal.status.in_((ItemStatus.NEW, ItemStatus.ASSESSED)),
            Signal.day >= since,
        )
    ):
        key = (area_id, stored_type.value if stored_type else "", subject)
        last_seen[key] = max(day, last_seen.get(key, day))
    kept = []
    for c in merged:
        key = (c["area_id"], c["case_type"].value, c["subject"])
        before = last_seen.get(key)
        if before is not None and c["day"] != before and (c["day"] - before).days <= EPISODE_DAYS:
            last_seen[key] = max(before, c["day"])
            continue
        last_seen[key] = c["day"]
        kept.append(c)
    return kept


def scan(
    today: date | None = None,
    *,
    days: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanReport:
    """Find and store new spike and cluster signals. The caller commits. Audited as one entry
    (counts only)."""
    today = today or utcnow().date()
    spikes, n_series = spike_candidates(today, days, progress)
    clusters = cluster_candidates(today)
    report = ScanReport(series=n_series, alarms=len(spikes) + len(clusters))
    report.new_spikes = store(episodes(spikes))
    report.new_clusters = store(clusters)
    record(
        "signals.scanned",
        actor_label="system",
        details={
            "series": report.series,
            "new_spikes": report.new_spikes,
            "new_clusters": report.new_clusters,
            "until": today.isoformat(),
        },
    )
    return report


def series_count() -> int:
    """How many series a scan will read (for the progress bar's length)."""
    return int(
        db.session.scalar(
            select(func.count()).select_from(
                select(tuple_(DailyCount.area_id, DailyCount.case_type, DailyCount.substance_group))
                .distinct()
                .subquery()
            )
        )
        or 0
    )


# -- presentation helpers ---------------------------------------------------------------------


def subject_label(signal: Signal) -> str:
    """What the signal is about, in words."""
    if signal.method is SignalMethod.THEME:
        theme = db.session.scalar(select(Theme.name).where(Theme.code == signal.subject))
        return f"Learning theme: {theme or signal.subject}"
    if signal.method is SignalMethod.SUBSTANCE:
        name = db.session.scalar(select(Substance.name).where(Substance.code == signal.subject))
        return f"Substance: {name or signal.subject}"
    group = "all substances" if signal.subject == ALL_SUBSTANCES else signal.subject
    kind = "Deaths" if signal.case_type is CaseType.DEATH else "Non-fatal overdoses"
    return f"{kind}, {group.replace('_', ' ')}"


METHOD_LABELS = {
    SignalMethod.C1: "EARS C1 (7-day baseline)",
    SignalMethod.C2: "EARS C2 (7-day baseline, 2-day guard band)",
    SignalMethod.C3: "EARS C3 (3-day cumulative C2)",
    SignalMethod.POISSON: "Poisson upper threshold",
    SignalMethod.THEME: "Cluster of reviewed cases sharing a learning theme",
    SignalMethod.SUBSTANCE: "Cluster of reviewed cases sharing a substance",
}


def method_text(signal: Signal) -> str:
    """The method that names the signal, and the others that alarmed on the same day."""
    text = METHOD_LABELS[signal.method]
    others = [m for m in evidence_of(signal).get("methods", []) if m != signal.method.value]
    if others:
        text += "; also flagged by " + ", ".join(
            "Poisson" if m == "poisson" else m.upper() for m in others
        )
    return text


def evidence_of(signal: Signal) -> dict[str, Any]:
    try:
        value = json.loads(signal.evidence or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def chart_svg(signal: Signal) -> str | None:
    """The spike's series and the method's threshold as an accessible SVG (server-side
    matplotlib, no script): bars of daily counts, the threshold as a dashed step line, the
    flagged day marked. None for a cluster (it has no daily series)."""
    import io
    from datetime import date as date_cls
    from xml.sax.saxutils import escape

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    ev = evidence_of(signal).get("series")
    if not isinstance(ev, dict) or not ev.get("counts"):
        return None
    counts = [int(c) for c in ev["counts"]]
    upper = [u if isinstance(u, int | float) else None for u in ev.get("upper", [])]
    first = date_cls.fromisoformat(ev["from"])
    days = [first + timedelta(days=i) for i in range(len(counts))]
    title = f"{subject_label(signal)} in {signal.area.name}: daily counts and the threshold"
    flagged = signal.day
    desc = (
        f"Bars: cases a day from {days[0]:%-d %B %Y} to {days[-1]:%-d %B %Y}. Dashed line: "
        f"the count a day had to exceed to alarm ({METHOD_LABELS[signal.method]}). "
        f"On {flagged:%-d %B %Y}, the day flagged, there were {signal.observed} against a "
        f"threshold of {signal.threshold if signal.threshold is not None else 'none'}. "
        "Counts by day: " + ", ".join(f"{d:%-d %b} {c}" for d, c in zip(days, counts, strict=True))
        + "."
    )
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "dr-panel", "font.size": 9}):
        fig = Figure(figsize=(8, 3.2))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        colours = ["#D55E00" if d == flagged else "#0072B2" for d in days]
        # matplotlib's stubs take numbers only; its date converter plots days (see DateFormatter)
        ax.bar(days, counts, color=colours, width=0.8, label="Cases a day")  # type: ignore[arg-type]
        ax.bar([], [], color="#D55E00", label="The day flagged")  # its legend entry
        xs = [d for d, u in zip(days, upper, strict=False) if u is not None]
        ys = [u for u in upper if u is not None]
        if xs:
            ax.step(xs, ys, where="mid", color="#000000", linestyle="--",  # type: ignore[arg-type]
                    linewidth=1.2, label="Threshold")  # (days, as for the bars)
        ax.set_ylabel("Cases a day")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        # "15 Oct", as on the page; matplotlib.dates ships without annotations
        ax.xaxis.set_major_formatter(DateFormatter("%-d %b"))  # type: ignore[no-untyped-call]
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # cases are whole numbers
        fig.autofmt_xdate()
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg")
    svg = out.getvalue()
    # Accessible name and description for the image, first thing inside <svg>.
    start = svg.index("<svg")
    close = svg.index(">", start)
    head = svg[start:close]
    head += ' role="img" aria-labelledby="chart-title chart-desc"'
    return (
        svg[:start] + head + ">"
        + f'<title id="chart-title">{escape(title)}</title>'
        + f'<desc id="chart-desc">{escape(desc)}</desc>'
        + svg[close + 1 :]
    )


def signal_json(signal: Signal) -> dict[str, Any]:
    """A signal for the API: counts, dates, thresholds and its evidence; no identifiers."""
    return {
        "uuid": str(signal.uuid),
        "kind": signal.kind.value,
        "method": signal.method.value,
        "area": {"code": signal.area.ons_code, "name": signal.area.name},
        "case_type": signal.case_type.value if signal.case_type else None,
        "subject": signal.subject,
        "label": subject_label(signal),
        "day": signal.day.isoformat(),
        "observed": signal.observed,
        "expected": signal.expected,
        "threshold": signal.threshold,
        "is_urgent": signal.is_urgent,
        "status": signal.status.value,
        "detected_at": signal.detected_at.isoformat(),
        "evidence": evidence_of(signal),
    }


def full_scan(start: date, end: date) -> tuple[int, int, dict[str, int]]:
    """Every series over every day from ``start`` to ``end``, through every enabled method:
    (series, days, alarms by method). What the benchmark times; the cron scan is ``scan``."""
    stored = stored_overrides()
    settings = {a.id: settings_for(a.ons_code, stored.get(a.id, {}))
                for a in db.session.scalars(select(Area))}
    series = read_series(start, end)
    by_settings: dict[ears.Settings, list[int]] = defaultdict(list)
    for i, key in enumerate(series.keys):
        by_settings[settings.get(key[0]) or settings_for(None)].append(i)
    alarms: dict[str, int] = defaultdict(int)
    for s, rows in by_settings.items():
        for method, result in ears.run(series.counts[rows], s).items():
            alarms[method] += int(result.alarm.sum())
    return len(series.keys), series.counts.shape[1], dict(alarms)
