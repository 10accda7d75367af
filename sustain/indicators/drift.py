"""Data drift per feature and output, calibrated so that an alert means something.

For every column the indicator reports an *effect size* (a distance between
the window's histogram and the reference's, on the same bins) and a *p-value*
for "no drift". A column drifts when both hold:

* the p-value survives the multiple-comparison correction across the window's
  columns (Benjamini–Hochberg by default), so on undrifted data the chance that
  a window raises any alert stays within ``alpha``, the false-alarm budget;
* the effect size reaches ``min_effect``, so a huge window does not alert on a
  difference too small to matter (the classic failure of KS on large samples).

Where p-values come from (``test="auto"``): small windows use an exact test on
raw values (Kolmogorov–Smirnov on bounded samples for numbers, chi-square for
categories, Fisher's exact or the two-proportion z-test for booleans); large
windows use the distance's own null distribution, calibrated on the reference
by a parametric bootstrap of windows of the live window's size, with a gamma
tail fitted to it (so that tiny p-values survive the correction). The logic is
shared with the one-shot report in :mod:`sustain.indicators.decide`.

>>> DataDrift(alpha=0.05).params()["alpha"], DataDrift().test
(0.05, 'auto')
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext
from sustain.indicators.decide import (
    SAMPLE_TESTS,
    Assessment,
    Correction,
    DriftSettings,
    decide,
    insufficient,
    judge,
)
from sustain.transforms.bins import OTHER
from sustain.transforms.plan import ColumnPlan
from sustain.transforms.profile import ColumnProfile


class DataDrift(Indicator):
    """Per-column drift against the reference, with false-alarm control across columns.

    Customers half a standard deviation older than in the reference: age drifts, and so do the scores and the
    predicted class that follow from it; the last value is the share of columns that drifted.

    >>> from sustain.indicators.checks import sample_context
    >>> values = list(DataDrift().compute(sample_context(rows=1000, drift={"age": 0.5})))
    >>> [(v.feature, v.status) for v in values]
    [('age', 'alert'), ('income', 'ok'), ('plan', 'ok'), ('active', 'ok'), ('note', 'ok'), ('prediction', 'alert'),
     ('proba.no', 'alert'), ('proba.yes', 'alert'), (None, 'alert')]
    >>> values[-1].value, values[-1].details["drifted"]
    (0.5, ['age', 'prediction', 'proba.no', 'proba.yes'])
    """

    name = "drift"
    description = "distribution shift of each feature and output against the reference"
    needs_reference = True

    def __init__(
        self,
        method: str = "auto",
        test: str = "auto",
        alpha: float = 0.01,
        correction: Correction = "bh",
        min_samples: int = 30,
        min_effect: float | None = None,
        draws: int = 400,
        exact_max: int = 1000,
        share_threshold: float = 0.0,
    ) -> None:
        self.settings = DriftSettings(method, test, alpha, correction, min_effect, draws, exact_max)  # validated
        self.method = method
        self.test = test
        self.alpha = alpha
        self.correction: Correction = correction
        self.min_samples = min_samples
        self.min_effect = min_effect
        self.draws = draws
        self.exact_max = exact_max
        self.share_threshold = share_threshold

    def _counts(
        self, ctx: WindowContext, col: ColumnPlan, ref: ColumnProfile
    ) -> tuple[np.ndarray, np.ndarray, list[str]] | str:
        """Reference and window counts over the same bins (with the category of each bin), or why not."""
        if col.kind in ("categorical", "boolean"):
            summary = ctx.window.categories(col.column)
            if summary is None or ref.categories is None:
                return "no category counts"
            if ref.categories.get(OTHER, 0) or col.kind == "boolean":
                # The reference's rarest categories are kept only as one total: fold the window onto it.
                folded = ref.category_counts(summary.counts)
            else:
                # The reference's categories are all known: a category it never saw keeps a bin of its own, so
                # that the test, not the reference alone, decides which categories are too sparse to stand alone.
                folded = {k: 0 for k in ref.categories}
                for key, value in summary.counts.items():
                    folded[key] = folded.get(key, 0) + value
                folded.setdefault(OTHER, 0)
            keys = list(folded)
            return (
                np.array([ref.categories.get(k, 0) for k in keys], dtype=float),
                np.array([folded[k] for k in keys], dtype=float),
                keys,
            )
        numeric = ctx.window.numeric(col.column)
        if numeric is None or ref.counts is None:
            return "no binned counts"
        if len(numeric.bins) != len(ref.counts):
            return "the window and the reference use different bins (the reference changed; windows are rebuilt)"
        return np.asarray(ref.counts, dtype=float), np.asarray(numeric.bins, dtype=float), []

    def _column(self, ctx: WindowContext, col: ColumnPlan, samples: dict[str, np.ndarray]) -> Assessment:
        assert ctx.reference is not None
        ref = ctx.reference.columns.get(col.column)
        if ref is None:
            return insufficient(col.feature, col.kind, 0, "not in the reference data")
        counts = self._counts(ctx, col, ref)
        if isinstance(counts, str):
            return insufficient(col.feature, col.kind, 0, counts)
        ref_counts, cur_counts, keys = counts
        n = int(cur_counts.sum())
        if n < self.min_samples:
            return insufficient(col.feature, col.kind, n, f"{n} values, fewer than min_samples={self.min_samples}")
        if ref_counts.sum() == 0:
            return insufficient(col.feature, col.kind, n, "the reference has no values")
        sample = samples.get(col.column)
        pair = None
        if sample is not None:
            ref_sample = ctx.reference.sample_array(col.column)
            if len(sample) >= self.min_samples and len(ref_sample) >= self.min_samples:
                pair = (ref_sample, sample)
        return judge(
            col.feature,
            col.kind,
            ref_counts,
            cur_counts,
            self.settings,
            columns=len(ctx.columns),
            seed=ctx.seed,
            samples=pair,
            keys=keys,
            edges=ref.edges if ref.binned else None,
            nulls=ctx.nulls,
        )

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        if ctx.reference is None:
            reason = f"no reference profile for version {ctx.version!r}: upload reference data"
            yield IndicatorValue(None, None, status="insufficient", details={"reason": reason})
            return
        samples = self._samples(ctx)
        assessed = [self._column(ctx, col, samples) for col in ctx.columns]
        decide(assessed, self.alpha, self.correction)
        for a in assessed:
            details = dict(a.details)
            if a.distance:
                details.update(min_effect=a.floor, p_adjusted=a.p_adjusted)
                if a.margin:
                    details["effect_margin"] = a.margin
            yield IndicatorValue(
                feature=a.name,
                value=a.value,
                status=a.status,
                p_value=a.p_value,
                threshold=a.threshold,
                n=a.n,
                method=a.method or None,
                details=details,
            )
        drifted = [a.name for a in assessed if a.status == "alert"]
        evaluated = [a for a in assessed if a.status != "insufficient"]
        share = len(drifted) / len(evaluated) if evaluated else None
        status: Status = "insufficient"
        if evaluated:
            status = "ok"
            if drifted and share is not None and share > self.share_threshold:
                status = "alert"
            elif any(a.status in ("warn", "alert") for a in assessed):
                status = "warn"
        yield IndicatorValue(
            feature=None,
            value=share,
            status=status,
            threshold=self.share_threshold,
            n=ctx.window.rows,
            method=f"share of drifted columns ({self.correction}, alpha={self.alpha})",
            details={"drifted": drifted, "evaluated": len(evaluated)},
        )

    def _samples(self, ctx: WindowContext) -> dict[str, np.ndarray]:
        """Raw window values for the numeric columns that take a sample test."""
        wanted = []
        for col in ctx.columns:
            summary = ctx.window.numeric(col.column) if col.kind == "numeric" else None
            if summary is None:
                continue
            if self.test in SAMPLE_TESTS or (self.test == "auto" and summary.count <= self.exact_max):
                wanted.append(col.column)
        if not wanted:
            return {}
        table = ctx.sample(wanted, self.exact_max)
        out = {}
        for name in wanted:
            if name in table.column_names:
                values = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
                out[name] = values[~np.isnan(values)]
        return out
