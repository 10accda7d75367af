"""Prediction stability: does the model answer the way it answered in the previous window?

Drift compares each window with the reference; stability compares it with the
window before, so a sudden change in what the model says (a new model
version, a broken feature pipeline upstream) stands out even while both
windows are far from the reference. The decision is the calibrated one of
:mod:`sustain.indicators.decide`, with the previous window in the reference's
place.

>>> PredictionStability(alpha=0.05).params()["alpha"]
0.05
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sustain.indicators.base import Indicator, IndicatorValue
from sustain.indicators.context import WindowContext
from sustain.indicators.decide import (
    MIN_EFFECT,
    Assessment,
    Correction,
    assess,
    check_settings,
    choose_test,
    decide,
    default_distance,
    insufficient,
)
from sustain.transforms.plan import ColumnPlan
from sustain.transforms.window import CategorySummary, NumericSummary, WindowAggregates


class PredictionStability(Indicator):
    """Each output's distribution against the previous window's, decided as drift is.

    >>> from sustain.indicators.checks import sample_context
    >>> calm = sample_context(rows=800, earlier=[None])  # this hour and the one before, alike
    >>> [(v.feature, v.status) for v in PredictionStability().compute(calm)]
    [('prediction', 'ok'), ('proba.no', 'ok'), ('proba.yes', 'ok')]
    >>> moved = sample_context(rows=800, drift={"age": 2.0}, earlier=[None])  # older customers this hour
    >>> values = list(PredictionStability().compute(moved))
    >>> [(v.feature, v.status) for v in values], values[0].details["previous_window"]
    ([('prediction', 'alert'), ('proba.no', 'alert'), ('proba.yes', 'alert')], '2026-01-05T09:00:00+00:00')
    """

    name = "stability"
    description = "each output's distribution against the previous window"

    def __init__(
        self,
        alpha: float = 0.01,
        correction: Correction = "bh",
        min_samples: int = 30,
        min_effect: float | None = None,
        draws: int = 400,
        outputs_only: bool = True,
    ) -> None:
        check_settings(alpha=alpha, correction=correction)
        self.alpha = alpha
        self.correction: Correction = correction
        self.min_samples = min_samples
        self.min_effect = min_effect
        self.draws = draws
        self.outputs_only = outputs_only

    def _pair(
        self, col: ColumnPlan, before: WindowAggregates, now: WindowAggregates
    ) -> tuple[np.ndarray, np.ndarray, list[str]] | str:
        a, b = before.columns.get(col.column), now.columns.get(col.column)
        if isinstance(a, CategorySummary) and isinstance(b, CategorySummary):
            keys = sorted(set(a.counts) | set(b.counts))
            return (
                np.array([a.counts.get(k, 0) for k in keys], float),
                np.array([b.counts.get(k, 0) for k in keys], float),
                keys,
            )
        if isinstance(a, NumericSummary) and isinstance(b, NumericSummary):
            if not a.bins or len(a.bins) != len(b.bins):
                return "no reference bins yet (upload reference data)"
            return np.array(a.bins, float), np.array(b.bins, float), []
        return "no values in one of the two windows"

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        columns = [c for c in ctx.columns if c.is_output or not self.outputs_only]
        history = ctx.history(1)
        if not history:
            for col in columns:
                yield IndicatorValue(col.feature, None, status="insufficient", details={"reason": "no earlier window"})
            return
        before = history[-1]
        assessed: list[Assessment] = []
        for col in columns:
            pair = self._pair(col, before, ctx.window)
            if isinstance(pair, str):
                assessed.append(insufficient(col.feature, col.kind, 0, pair))
                continue
            prev, cur, keys = pair
            n = int(cur.sum())
            if n < self.min_samples or prev.sum() < self.min_samples:
                assessed.append(insufficient(col.feature, col.kind, n, "too few values in one of the windows"))
                continue
            distance = default_distance(col.kind)
            test = choose_test("auto", col.kind, n, 0, prev, cur)  # large-sample path: no raw values needed
            assessed.append(
                assess(
                    col.feature,
                    col.kind,
                    prev,
                    cur,
                    distance=distance,
                    test=test,
                    floor=self.min_effect if self.min_effect is not None else MIN_EFFECT[distance],
                    alpha=self.alpha,
                    columns=len(columns),
                    correction=self.correction,
                    draws=self.draws,
                    seed=ctx.seed,
                    true_index=[i for i, k in enumerate(keys) if k == "true"],
                )
            )
        decide(assessed, self.alpha, self.correction)
        for a in assessed:
            yield IndicatorValue(
                feature=a.name,
                value=a.value,
                status=a.status,
                p_value=a.p_value,
                threshold=a.threshold,
                n=a.n,
                method=a.method or None,
                details={**a.details, "previous_window": before.start.isoformat()},
            )
