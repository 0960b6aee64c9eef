"""Pre-aggregated counts for trends and spike detection, and population denominators.

``trend_counts`` is a "pair cube": for every area, month of the event and case type, the number
of cases with each value of each dimension, and with each pair of values of each unordered pair
of dimensions. Any table of up to two dimensions crossed (plus period, area and case type, which
are key columns) is a sum over its rows, so trends never rescan the case tables. It is kept
consistent with ``cases`` in the same transaction by ``dr_panel.trends.aggregates``.

Multi-valued dimensions: a case mentioning two substances counts under each, so counts by
substance (or substance group) sum to more than the number of cases. Cases merged as duplicates
(status ``duplicate``) are not counted: they are the same event as the case they were merged into.
Each row also carries the sum of its cases' record keys (``key_sum``), so disclosure control can
perturb any aggregate consistently (``dr_panel.privacy.disclosure``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.dbtypes import UTCDateTime, utcnow
from dr_panel.extensions import db

# The dimensions a trend can be broken down by, besides period, area and case type (which are
# key columns of every row). Alphabetical, as pairs are stored with dim_a < dim_b.
DIMENSIONS = (
    "substance",
    "substance_group",
    "age_band",
    "sex",
    "setting",
    "treatment_status",
    "nfo_outcome",
)
# Values used where a dimension has no value for a case.
NO_SUBSTANCE = "none"
UNKNOWN = "unknown"
NOT_APPLICABLE = "not_applicable"  # nfo_outcome of a death
ALL_SUBSTANCES = "*"  # daily_counts.substance_group of the all-substances row


class TrendCount(db.Model):  # type: ignore[name-defined,misc]
    """Cases per (area, month, case type) with ``dim_a = val_a`` and ``dim_b = val_b``.

    ``dim_a = dim_b = ""``: all cases; ``dim_b = ""``: one dimension; otherwise a pair with
    ``dim_a < dim_b``. Rows whose count falls to 0 are deleted."""

    __tablename__ = "trend_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)  # first day of the event's month
    case_type: Mapped[str] = mapped_column(String(10), nullable=False)
    dim_a: Mapped[str] = mapped_column(String(20), nullable=False)
    val_a: Mapped[str] = mapped_column(String(40), nullable=False)
    dim_b: Mapped[str] = mapped_column(String(20), nullable=False)
    val_b: Mapped[str] = mapped_column(String(40), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    # The sum of the record keys (``Case.record_key``) of the cases counted here: summed over
    # any cells, it gives the cell key of exactly those cases (ONS cell key method).
    key_sum: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

    __table_args__ = (
        UniqueConstraint("area_id", "month", "case_type", "dim_a", "val_a", "dim_b", "val_b"),
        # A query names its dimensions, then areas and months: this finds its rows directly.
        Index("ix_trend_counts_dims_area_month", "dim_a", "dim_b", "area_id", "month"),
    )

    def __repr__(self) -> str:
        return f"<TrendCount {self.month} {self.case_type} {self.dim_a}/{self.dim_b} n={self.n}>"


class DailyCount(db.Model):  # type: ignore[name-defined,misc]
    """Cases per area, day of the event, case type and substance group, for spike detection.
    ``substance_group = "*"`` counts every case once; otherwise one row per distinct group a
    case mentions ("none" when it mentions no substance)."""

    __tablename__ = "daily_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    case_type: Mapped[str] = mapped_column(String(10), nullable=False)
    substance_group: Mapped[str] = mapped_column(String(30), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (UniqueConstraint("area_id", "day", "case_type", "substance_group"),)

    def __repr__(self) -> str:
        return f"<DailyCount {self.day} {self.case_type} {self.substance_group} n={self.n}>"


class Population(db.Model):  # type: ignore[name-defined,misc]
    """Mid-year population estimate by area, sex and single year of age (90 means 90 and
    over), the denominator of rates."""

    __tablename__ = "populations"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    year: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    sex: Mapped[str] = mapped_column(String(10), nullable=False)  # "female" / "male"
    age: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 0..90, 90 = 90+
    population: Mapped[int] = mapped_column(Integer, nullable=False)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (UniqueConstraint("area_id", "year", "sex", "age"),)

    def __repr__(self) -> str:
        return f"<Population {self.year} {self.sex} {self.age}>"
