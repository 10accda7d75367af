"""An example indicator plugin for sustain: the entropy of a classifier's scores.

>>> from sustain.indicators.checks import sample_context
>>> [v.status for v in PredictionEntropy().compute(sample_context(rows=300))]
['ok']
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sustain.indicators import Indicator, IndicatorValue, WindowContext


def mean_entropy(scores: np.ndarray) -> float:
    """Mean Shannon entropy of score rows, scaled to [0, 1] by log(number of classes)."""
    p = np.clip(scores / scores.sum(axis=1, keepdims=True), 1e-12, 1.0)
    return float(np.mean(-np.sum(p * np.log(p), axis=1)) / math.log(scores.shape[1]))


class PredictionEntropy(Indicator):
    """Alert when the model's scores are more uncertain than on the reference data."""

    name = "prediction_entropy"
    description = "mean entropy of the class scores, against the reference"
    needs_reference = True

    def __init__(self, margin: float = 0.1, sample_size: int = 2000, min_samples: int = 50) -> None:
        self.margin = margin
        self.sample_size = sample_size
        self.min_samples = min_samples

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        for output in ctx.spec.outputs:
            if output.kind != "class_scores" or not output.classes:
                continue
            columns = [f"o:{output.name}:{c}" for c in output.classes]
            window = ctx.sample(columns, self.sample_size)
            rows = (
                np.column_stack([np.asarray(window.column(c).to_numpy(zero_copy_only=False), float) for c in columns])
                if window.num_rows
                else np.empty((0, len(columns)))
            )
            rows = rows[~np.isnan(rows).any(axis=1)]
            reference = ctx.reference.sample if ctx.reference is not None else {}
            if any(c not in reference for c in columns) or len(rows) < self.min_samples:
                yield IndicatorValue(
                    output.name,
                    None,
                    status="insufficient",
                    n=len(rows),
                    details={"reason": "needs the window's scores and a reference with scores"},
                )
                continue
            ref_rows = np.array([[v if v is not None else np.nan for v in reference[c]] for c in columns], float).T
            ref_rows = ref_rows[~np.isnan(ref_rows).any(axis=1)]
            baseline = mean_entropy(ref_rows)
            value = mean_entropy(rows)
            limit = baseline + self.margin
            yield IndicatorValue(
                output.name,
                value,
                status="alert" if value > limit else "ok",
                threshold=limit,
                n=len(rows),
                method="mean normalised entropy",
                details={"reference": baseline},
            )
