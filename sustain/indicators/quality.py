"""Data quality per feature, from the window aggregates alone: missing values, type errors, values out of the
declared range, categories nobody has seen before.

Each indicator reports a share (0–1) per column and alerts above ``max_rate``.
``missing`` is judged against the reference: a feature that is 30% missing in
the training data is not alarming at 30% in production, so its default limit
is the reference's rate plus ``tolerance``.

>>> from datetime import datetime, timezone
>>> from sustain.spec import ModelSpec
>>> from sustain.transforms.plan import plan_for
>>> from sustain.transforms.window import NumericSummary, WindowAggregates
>>> from sustain.indicators.context import WindowContext, select_columns
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"age": {"kind": "numeric", "range": [0, 120]}}})
>>> plan = plan_for(spec, "1h", None)
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> w = WindowAggregates("m", "1", "1h", t, t, rows=100,
...     columns={"f:age": NumericSummary(count=90, missing=10, invalid=2, out_of_range=9)})
>>> ctx = WindowContext(spec, plan, w, None, select_columns(spec, plan, None))
>>> [(v.feature, v.value, v.status) for v in OutOfRange().compute(ctx)]
[('age', 0.1, 'alert')]
>>> [(v.feature, v.value, v.status) for v in MissingValues().compute(ctx)]
[('age', 0.1, 'alert')]
"""

from __future__ import annotations

from collections.abc import Iterable

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext
from sustain.transforms.plan import ColumnPlan
from sustain.transforms.profile import OTHER
from sustain.transforms.window import CategorySummary, NumericSummary


def _status(rate: float | None, limit: float, n: int, min_samples: int) -> Status:
    if rate is None or n < min_samples:
        return "insufficient"
    if rate > limit:
        return "alert"
    if rate > limit / 2:
        return "warn"
    return "ok"


def _summary(ctx: WindowContext, col: ColumnPlan) -> NumericSummary | CategorySummary | None:
    return ctx.window.columns.get(col.column)


class _Share(Indicator):
    """Shared shape: one share per column, alert above a limit."""

    max_rate: float | None

    def __init__(self, max_rate: float | None = 0.01, min_samples: int = 20) -> None:
        if max_rate is not None and not 0 <= max_rate <= 1:
            raise ValueError(f"max_rate must be between 0 and 1, not {max_rate}")
        self.max_rate = max_rate
        self.min_samples = min_samples

    def _share(self, ctx: WindowContext, col: ColumnPlan) -> tuple[float | None, int, dict[str, object]] | None:
        raise NotImplementedError

    def _limit(self, ctx: WindowContext, col: ColumnPlan) -> float:
        return 0.01 if self.max_rate is None else self.max_rate

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        for col in ctx.columns:
            found = self._share(ctx, col)
            if found is None:
                continue
            rate, n, details = found
            limit = self._limit(ctx, col)
            yield IndicatorValue(
                feature=col.feature,
                value=rate,
                status=_status(rate, limit, n, self.min_samples),
                threshold=limit,
                n=n,
                method=self.name,
                details=details,
            )


class MissingValues(_Share):
    """Share of events missing each feature, alerting above the reference's own rate plus ``tolerance``.

    >>> from sustain.indicators.checks import sample_context
    >>> def lose_incomes(events):  # a fifth of the incomes lost upstream
    ...     for e in events[::5]:
    ...         e["features"]["income"] = None
    >>> ctx = sample_context(rows=400, edit=lose_incomes)
    >>> [(v.feature, v.value, v.status) for v in MissingValues().compute(ctx) if v.feature in ("age", "income")]
    [('age', 0.0, 'ok'), ('income', 0.2, 'alert')]
    """

    name = "missing"
    description = "share of events where the feature is missing, against the reference's rate"

    def __init__(self, max_rate: float | None = None, tolerance: float = 0.05, min_samples: int = 20) -> None:
        super().__init__(max_rate, min_samples)
        self.tolerance = tolerance

    def _share(self, ctx: WindowContext, col: ColumnPlan) -> tuple[float | None, int, dict[str, object]] | None:
        summary = _summary(ctx, col)
        if summary is None:
            return None
        total = summary.total
        return (summary.missing / total if total else None), total, {"missing": summary.missing}

    def _limit(self, ctx: WindowContext, col: ColumnPlan) -> float:
        if self.max_rate is not None:
            return float(self.max_rate)
        reference = ctx.reference.columns.get(col.column) if ctx.reference is not None else None
        baseline = reference.missing / reference.n if reference is not None and reference.n else 0.0
        return baseline + self.tolerance


class TypeErrors(_Share):
    """Share of events whose value had the wrong type for its feature (stored as missing, listed as invalid).

    >>> from sustain.indicators.checks import sample_context
    >>> def spell_out(events):
    ...     for e in events[::10]:
    ...         e["features"]["age"] = "forty"
    >>> ctx = sample_context(rows=400, edit=spell_out)
    >>> [(v.feature, v.value, v.status) for v in TypeErrors().compute(ctx) if v.value]
    [('age', 0.1, 'alert')]
    """

    name = "type_errors"
    description = "share of events whose value had the wrong type (stored as null, listed in 'invalid')"

    def _share(self, ctx: WindowContext, col: ColumnPlan) -> tuple[float | None, int, dict[str, object]] | None:
        summary = _summary(ctx, col)
        if summary is None:
            return None
        total = summary.total
        return (summary.invalid / total if total else None), total, {"invalid": summary.invalid}


class OutOfRange(_Share):
    """Share of values outside the ``range`` the spec declares for a numeric feature.

    >>> from sustain.indicators.checks import sample_context
    >>> def too_old(events):  # the spec allows ages 0 to 120
    ...     for e in events[::20]:
    ...         e["features"]["age"] = 150.0
    >>> [(v.feature, v.value, v.status) for v in OutOfRange().compute(sample_context(rows=400, edit=too_old))]
    [('age', 0.05, 'alert')]
    """

    name = "out_of_range"
    description = "share of values outside the range the spec declares"

    def _share(self, ctx: WindowContext, col: ColumnPlan) -> tuple[float | None, int, dict[str, object]] | None:
        summary = _summary(ctx, col)
        if col.range is None or not isinstance(summary, NumericSummary):
            return None
        n = summary.count
        details: dict[str, object] = {"out_of_range": summary.out_of_range, "range": list(col.range)}
        details.update(min=summary.min, max=summary.max)
        return (summary.out_of_range / n if n else None), n, details


class UnseenCategories(_Share):
    """Share of values in categories neither the spec nor the reference knows, the commonest named.

    >>> from sustain.indicators.checks import sample_context
    >>> def new_plan(events):
    ...     for e in events[::8]:
    ...         e["features"]["plan"] = "enterprise"
    >>> (plan, prediction) = UnseenCategories().compute(sample_context(rows=400, edit=new_plan))
    >>> plan.feature, plan.value, plan.status, plan.details["unseen"]
    ('plan', 0.125, 'alert', {'enterprise': 50})
    """

    name = "unseen_categories"
    description = "share of values in categories neither the spec nor the reference knows"

    def _share(self, ctx: WindowContext, col: ColumnPlan) -> tuple[float | None, int, dict[str, object]] | None:
        summary = _summary(ctx, col)
        if col.kind != "categorical" or not isinstance(summary, CategorySummary):
            return None
        known = set(col.categories or ())
        reference = ctx.reference.columns.get(col.column) if ctx.reference is not None else None
        if reference is not None and reference.categories:
            known |= {k for k in reference.categories if k != OTHER}
        if not known:
            return None
        unseen = {k: v for k, v in summary.counts.items() if k not in known}
        n = summary.count
        top = sorted(unseen, key=lambda k: -unseen[k])[:10]
        details: dict[str, object] = {"unseen": {k: unseen[k] for k in top}, "known": len(known)}
        return (sum(unseen.values()) / n if n else None), n, details
