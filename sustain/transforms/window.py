"""Typed window aggregates: what indicators read, whichever engine computed them.

The embedded engine stores partials as long rows ``(column, stat, key, value)``;
the Elasticsearch engine stores one transform document per bucket. Both become
:class:`WindowAggregates`, and partials merge with ``+=`` (river's ``Mean``
style), so windows combine across buckets and versions.

>>> a = NumericSummary(count=2, sum=3.0, sumsq=5.0, min=1.0, max=2.0, bins=[1, 1])
>>> b = NumericSummary(count=1, sum=3.0, sumsq=9.0, min=3.0, max=3.0, bins=[0, 1])
>>> a += b
>>> a.count, a.mean, a.bins, a.max
(3, 2.0, [1, 2], 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sustain.transforms.bins import OTHER
from sustain.transforms.plan import TransformPlan

ADDITIVE = frozenset({"rows", "errors", "count", "missing", "invalid", "sum", "sumsq", "bin", "cat", "oor"})


@dataclass
class NumericSummary:
    """Count, moments (around ``shift``), extremes and binned counts of one numeric column."""

    count: int = 0
    missing: int = 0
    invalid: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    shift: float = 0.0
    min: float | None = None
    max: float | None = None
    bins: list[int] = field(default_factory=list)
    out_of_range: int = 0

    @property
    def mean(self) -> float | None:
        return None if self.count == 0 else self.shift + self.sum / self.count

    @property
    def variance(self) -> float | None:
        if self.count < 2:
            return None
        return max(0.0, (self.sumsq - self.sum * self.sum / self.count) / (self.count - 1))

    @property
    def std(self) -> float | None:
        var = self.variance
        return None if var is None else math.sqrt(var)

    @property
    def total(self) -> int:
        """Events in the window: with a value, missing, or with a value of the wrong type."""
        return self.count + self.missing + self.invalid

    def __iadd__(self, other: NumericSummary) -> NumericSummary:
        if other.count and self.count and other.shift != self.shift:
            raise ValueError("cannot merge summaries taken around different shifts")
        if not self.count:
            self.shift = other.shift
        self.count += other.count
        self.missing += other.missing
        self.invalid += other.invalid
        self.out_of_range += other.out_of_range
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.min = other.min if self.min is None else (self.min if other.min is None else min(self.min, other.min))
        self.max = other.max if self.max is None else (self.max if other.max is None else max(self.max, other.max))
        if len(other.bins) > len(self.bins):
            self.bins = self.bins + [0] * (len(other.bins) - len(self.bins))
        for i, c in enumerate(other.bins):
            self.bins[i] += c
        return self

    def quantile(self, q: float, edges: tuple[float, ...] | list[float]) -> float | None:
        """A quantile read from the bins, interpolating linearly inside the bin (outer bins use min/max)."""
        total = sum(self.bins)
        if total == 0:
            return None
        target = q * total
        running = 0
        for i, c in enumerate(self.bins):
            if c and running + c >= target:
                lo = edges[i - 1] if i > 0 else (self.min if self.min is not None else edges[0])
                hi = edges[i] if i < len(edges) else (self.max if self.max is not None else edges[-1])
                frac = (target - running) / c
                return float(lo + (hi - lo) * frac)
            running += c
        return self.max


@dataclass
class CategorySummary:
    """Counts per value of one categorical or boolean column."""

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    invalid: int = 0

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def total(self) -> int:
        """Events in the window: with a value, missing, or with a value of the wrong type."""
        return self.count + self.missing + self.invalid

    def capped(self, limit: int | None) -> CategorySummary:
        """The ``limit`` most frequent categories (ties by name), the others counted together under ``OTHER``.

        What Elasticsearch's ``terms`` aggregation keeps of a window (count descending, then key), so both
        engines hold the same counts; the remainder keeps :attr:`count` unchanged.

        >>> CategorySummary({"a": 5, "b": 3, "c": 3, "d": 1}).capped(2).counts
        {'a': 5, 'b': 3, '__other__': 4}
        """
        named = {k: v for k, v in self.counts.items() if k != OTHER}
        if limit is None or len(named) <= limit:
            return self
        ranked = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(ranked[:limit])
        kept[OTHER] = self.counts.get(OTHER, 0) + sum(count for _, count in ranked[limit:])
        return CategorySummary(kept, self.missing, self.invalid)

    def __iadd__(self, other: CategorySummary) -> CategorySummary:
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        self.missing += other.missing
        self.invalid += other.invalid
        return self


Summary = NumericSummary | CategorySummary


@dataclass
class WindowAggregates:
    """Everything one (model, version, window, bucket) kept about its events."""

    model: str
    version: str
    window: str
    start: datetime
    end: datetime
    rows: int = 0
    errors: int = 0
    latency: NumericSummary = field(default_factory=NumericSummary)
    columns: dict[str, Summary] = field(default_factory=dict)
    last_event: datetime | None = None  # the time of the window's latest event (None: not kept by this engine)

    def numeric(self, column: str) -> NumericSummary | None:
        s = self.columns.get(column)
        return s if isinstance(s, NumericSummary) else None

    def categories(self, column: str) -> CategorySummary | None:
        s = self.columns.get(column)
        return s if isinstance(s, CategorySummary) else None

    def __iadd__(self, other: WindowAggregates) -> WindowAggregates:
        self.rows += other.rows
        self.errors += other.errors
        self.latency += other.latency
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        if other.last_event is not None and (self.last_event is None or other.last_event > self.last_event):
            self.last_event = other.last_event
        for name, summary in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = _copy(summary)
            else:
                _merge(mine, summary)
        return self


def _merge(mine: Summary, other: Summary) -> None:
    if isinstance(mine, NumericSummary) and isinstance(other, NumericSummary):
        mine += other
    elif isinstance(mine, CategorySummary) and isinstance(other, CategorySummary):
        mine += other
    else:
        raise ValueError("cannot merge a numeric summary with a categorical one")


def _copy(summary: Summary) -> Summary:
    if isinstance(summary, NumericSummary):
        fresh = NumericSummary(shift=summary.shift)
        fresh += summary
        return fresh
    cats = CategorySummary()
    cats += summary
    return cats


def from_long_rows(
    plan: TransformPlan,
    version: str,
    start: datetime,
    rows: Iterable[tuple[str, str, str, float]],
) -> WindowAggregates:
    """Build a window from ``(column, stat, key, value)`` rows (the embedded engine's storage)."""
    from datetime import timedelta

    window = WindowAggregates(plan.model, version, plan.window, start, start + timedelta(seconds=plan.window_seconds))
    window.latency = NumericSummary(bins=[0] * (len(plan.latency_edges) + 1))
    kinds = {c.column: c for c in plan.columns}
    for column, stat, key, value in rows:
        if column == "*":
            if stat == "rows":
                window.rows = int(value)
            elif stat == "errors":
                window.errors = int(value)
            continue
        if column == "ts":
            if stat == "max":
                window.last_event = datetime.fromtimestamp(value / 1e6, UTC)
            continue
        if column == "latency_ms":
            _apply_numeric(window.latency, stat, key, value)
            continue
        col = kinds.get(column)
        if col is None:
            continue
        if col.kind in ("categorical", "boolean"):
            cats = window.columns.get(column)
            if not isinstance(cats, CategorySummary):
                cats = window.columns[column] = CategorySummary()
            if stat == "cat":
                cats.counts[key] = cats.counts.get(key, 0) + int(value)
            elif stat == "missing":
                cats.missing = int(value)
            elif stat == "invalid":
                cats.invalid = int(value)
        else:
            num = window.columns.get(column)
            if not isinstance(num, NumericSummary):
                bins = [0] * (len(col.edges) + 1) if col.edges is not None else []
                num = window.columns[column] = NumericSummary(shift=col.shift, bins=bins)
            _apply_numeric(num, stat, key, value)
    for col in plan.columns:
        summary = window.columns.get(col.column)
        if isinstance(summary, CategorySummary):
            window.columns[col.column] = summary.capped(col.category_limit)
    return window


# partial name -> (NumericSummary attribute, its type)
_NUMERIC_FIELDS: dict[str, tuple[str, type[int] | type[float]]] = {
    "count": ("count", int),
    "missing": ("missing", int),
    "invalid": ("invalid", int),
    "sum": ("sum", float),
    "sumsq": ("sumsq", float),
    "min": ("min", float),
    "max": ("max", float),
    "oor": ("out_of_range", int),
}


def _apply_numeric(num: NumericSummary, stat: str, key: str, value: float) -> None:
    if stat == "bin":
        i = int(key)
        if i >= len(num.bins):
            num.bins.extend([0] * (i + 1 - len(num.bins)))
        num.bins[i] = int(value)
        return
    target = _NUMERIC_FIELDS.get(stat)
    if target is not None:
        setattr(num, target[0], target[1](value))
