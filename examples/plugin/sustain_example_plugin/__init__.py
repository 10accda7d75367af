"""An example indicator plugin for sustain: the entropy of a classifier's scores.

>>> from sustain.indicators.checks import sample_context
>>> [(v.feature, v.status, round(v.value, 3)) for v in PredictionEntropy().compute(sample_context(rows=300))]
[('proba', 'ok', 0.53)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sustain.indicators import Indicator, IndicatorValue, Status, WindowContext

METHOD = "mean normalised entropy"


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
        self.margin, self.sample_size, self.min_samples = margin, sample_size, min_samples

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        window, reference = ctx.rows(self.sample_size), ctx.reference_rows()  # window.n of window.total events
        for output in [o.name for o in ctx.spec.outputs if o.kind == "class_scores"]:
            now, before = window.frame([output]).dropna().to_numpy(), reference.frame([output]).dropna().to_numpy()
            if len(now) < self.min_samples or len(before) == 0:
                reason = "needs the window's scores and a reference with scores"
                yield IndicatorValue(output, None, "insufficient", n=len(now), details={"reason": reason})
                continue
            base, value = mean_entropy(before), mean_entropy(now)
            limit = base + self.margin
            status: Status = "alert" if value > limit else "ok"
            yield IndicatorValue(
                output, value, status, threshold=limit, n=len(now), method=METHOD, details={"reference": base}
            )
