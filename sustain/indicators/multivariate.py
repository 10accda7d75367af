"""Multivariate drift: PCA reconstruction error, which sees changes no single feature shows.

When features keep their own distributions but change how they move together
(a correlation flips, a segment appears), every univariate test stays quiet.
Fitting PCA on a third of the reference sample and measuring how badly the rest
of the reference, and then the window, are reconstructed from the principal
components exposes exactly that: the window's mean reconstruction error rises.

The p-value compares the window's errors with those of the held-out reference
rows by a one-sided two-sample test (Mann–Whitney), so the reference rows that
fitted the PCA never calibrate it, and the held-out rows count as the sample
they are: treating their mean error as known alerted in 3-5% of undrifted
windows at alpha 1%. ``value`` is the relative increase of the mean error;
``min_effect`` keeps tiny increases on huge windows from alerting.

>>> MultivariateDrift(variance=0.8).params()["variance"]
0.8
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext
from sustain.transforms.plan import ColumnPlan
from sustain.transforms.profile import ReferenceProfile

Matrix = npt.NDArray[np.float64]


class _Encoder:
    """Standardise numbers and one-hot encode categories, learnt on the reference sample."""

    def __init__(self, columns: Sequence[ColumnPlan], reference: ReferenceProfile, max_categories: int) -> None:
        self.numeric: list[tuple[str, float, float]] = []
        self.categorical: list[tuple[str, list[str]]] = []
        for col in columns:
            values = reference.sample.get(col.column, [])
            if col.kind == "numeric":
                arr = np.array([v for v in values if v is not None], dtype=float)
                if len(arr) > 1 and arr.std() > 0:
                    self.numeric.append((col.column, float(arr.mean()), float(arr.std())))
            elif col.kind in ("categorical", "boolean"):
                counts: dict[str, int] = {}
                for v in values:
                    if v is not None:
                        key = str(v).lower() if isinstance(v, bool) else str(v)
                        counts[key] = counts.get(key, 0) + 1
                top = sorted(counts, key=lambda k: -counts[k])[:max_categories]
                if len(top) > 1:
                    self.categorical.append((col.column, top))

    @property
    def columns(self) -> list[str]:
        return [n for n, _, _ in self.numeric] + [n for n, _ in self.categorical]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for _, c in self.categorical)

    def encode(self, data: dict[str, list[Any]], rows: int) -> Matrix:
        out = np.zeros((rows, self.width))
        j = 0
        for name, mean, std in self.numeric:
            values = np.array([np.nan if v is None else float(v) for v in data.get(name, [None] * rows)])
            out[:, j] = np.nan_to_num((values - mean) / std, nan=0.0)
            j += 1
        for name, cats in self.categorical:
            index = {c: k for k, c in enumerate(cats)}
            for r, v in enumerate(data.get(name, [None] * rows)):
                key = str(v).lower() if isinstance(v, bool) else (None if v is None else str(v))
                k = index.get(key) if key is not None else None
                if k is not None:
                    out[r, j + k] = 1.0
            j += len(cats)
        return out

    def encode_table(self, table: pa.Table) -> Matrix:
        """:meth:`encode` of an Arrow table's columns, without a Python loop over its rows (the same numbers)."""
        rows = table.num_rows
        out = np.zeros((rows, self.width))
        present = [j for j, (name, _, _) in enumerate(self.numeric) if name in table.column_names]
        if present:  # one array operation for all the numbers (the same values as column by column)
            values = np.empty((rows, len(present)))
            for k, j in enumerate(present):
                column = pc.cast(table.column(self.numeric[j][0]), pa.float64())
                values[:, k] = column.to_numpy(zero_copy_only=False)
            means = np.array([self.numeric[j][1] for j in present])
            stds = np.array([self.numeric[j][2] for j in present])
            out[:, present] = np.nan_to_num((values - means) / stds, nan=0.0)
        j = len(self.numeric)
        for name, cats in self.categorical:
            if name in table.column_names:
                keys = pc.cast(table.column(name), pa.string())
                positions = pc.index_in(keys, value_set=pa.array(cats, pa.string()))
                found = np.asarray(positions.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                codes = np.asarray(positions.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
                out[np.flatnonzero(found), j + codes[found]] = 1.0
            j += len(cats)
        return out


class MultivariateDrift(Indicator):
    """Drift in the joint distribution of the features, from PCA reconstruction error on bounded samples.

    Weight followed height in the reference; in the window both keep their distributions, but weight no longer
    follows height. Per-feature drift sees nothing; the window's reconstruction error is five times the
    reference's:

    >>> import numpy as np
    >>> from sustain.indicators.checks import embedded_context
    >>> from sustain.spec import ModelSpec
    >>> spec = ModelSpec.model_validate({"name": "m", "features": {"height": "numeric", "weight": "numeric"}})
    >>> rng = np.random.default_rng(7)
    >>> h = rng.normal(170, 10, 3000)
    >>> reference = {"height": h, "weight": h - 100 + rng.normal(0, 4, 3000)}
    >>> now = rng.normal(170, 10, 500)
    >>> weight = 240 - now + rng.normal(0, 4, 500)
    >>> events = [{"features": {"height": a, "weight": b}} for a, b in zip(now.tolist(), weight.tolist())]
    >>> ctx = embedded_context(spec, events, reference=reference)
    >>> from sustain.indicators.drift import DataDrift
    >>> [(v.feature, v.status) for v in DataDrift().compute(ctx)]
    [('height', 'ok'), ('weight', 'ok'), (None, 'ok')]
    >>> [(v.status, round(v.value, 1), v.details["components"]) for v in MultivariateDrift().compute(ctx)]
    [('alert', 4.2, 1)]
    """

    name = "multivariate_drift"
    description = "PCA reconstruction error of the window against held-out reference rows"
    needs_reference = True

    def __init__(
        self,
        variance: float = 0.65,
        sample_size: int = 2000,
        alpha: float = 0.01,
        min_samples: int = 100,
        min_effect: float = 0.05,
        max_categories: int = 10,
    ) -> None:
        if not 0 < variance < 1:
            raise ValueError(f"variance must be between 0 and 1, not {variance}")
        self.variance = variance
        self.sample_size = sample_size
        self.alpha = alpha
        self.min_samples = min_samples
        self.min_effect = min_effect
        self.max_categories = max_categories
        self._encoded: dict[int, tuple[weakref.ref[ReferenceProfile], tuple[str, ...], _Encoder, Matrix]] = {}

    def _reference(self, features: Sequence[ColumnPlan], reference: ReferenceProfile) -> tuple[_Encoder, Matrix]:
        """The encoder learnt on the reference sample and the encoded sample, kept while the same profile comes
        back (every window of a model brings the same one: encoding its rows in Python cost ~5 ms a window)."""
        key = tuple(c.column for c in features)
        found = self._encoded.get(id(reference))
        if found is not None and found[0]() is reference and found[1] == key:
            return found[2], found[3]
        encoder = _Encoder(features, reference, self.max_categories)
        rows = len(next(iter(reference.sample.values()))) if reference.sample else 0
        matrix = encoder.encode(reference.sample, rows) if encoder.width >= 2 else np.zeros((rows, 0))
        if len(self._encoded) > 8:
            self._encoded.clear()
        self._encoded[id(reference)] = (weakref.ref(reference), key, encoder, matrix)
        return encoder, matrix

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        reference = ctx.reference
        features = [c for c in ctx.columns if not c.is_output]
        if reference is None or not reference.sample:
            yield IndicatorValue(None, None, status="insufficient", details={"reason": "no reference sample"})
            return
        encoder, ref_matrix = self._reference(features, reference)
        if encoder.width < 2:
            reason = "needs at least two usable features (numbers with spread or categories)"
            yield IndicatorValue(None, None, status="insufficient", details={"reason": reason})
            return
        ref_rows = len(ref_matrix)
        if ref_rows < 2 * self.min_samples:
            yield IndicatorValue(None, None, status="insufficient", details={"reason": f"{ref_rows} reference rows"})
            return
        window = ctx.sample(encoder.columns, self.sample_size)
        n = window.num_rows
        if n < self.min_samples:
            reason = f"{n} events in the window, fewer than min_samples={self.min_samples}"
            yield IndicatorValue(None, None, status="insufficient", n=n, details={"reason": reason})
            return
        cur_matrix = encoder.encode_table(window)
        found = reconstruction_drift(
            ref_matrix, cur_matrix, self.variance, self.alpha, self.min_effect, np.random.default_rng(ctx.seed)
        )
        value, p_value, threshold, k = found.value, found.p_value, found.threshold, found.components
        ref_mean, cur_mean = found.reference_error, found.window_error
        status: Status = "ok"
        if p_value < self.alpha and value >= self.min_effect:
            status = "alert"
        elif p_value < self.alpha:
            status = "warn"
        yield IndicatorValue(
            feature=None,
            value=value,
            status=status,
            p_value=p_value,
            threshold=threshold,
            n=n,
            method="pca reconstruction error",
            details={
                "components": k,
                "inputs": encoder.width,
                "reference_error": ref_mean,
                "window_error": cur_mean,
                "features": [c.feature for c in features if c.column in encoder.columns],
            },
        )


@dataclass(frozen=True)
class Reconstruction:
    """The outcome of :func:`reconstruction_drift`."""

    value: float  # relative increase of the mean reconstruction error
    p_value: float
    threshold: float
    components: int
    reference_error: float
    window_error: float


def reconstruction_drift(
    ref_matrix: Matrix, cur_matrix: Matrix, variance: float, alpha: float, min_effect: float, rng: np.random.Generator
) -> Reconstruction:
    """Fit PCA on part of the encoded reference sample, then compare the reconstruction errors of the other
    reference rows with the window's."""
    ref_rows, n = len(ref_matrix), len(cur_matrix)
    order = rng.permutation(ref_rows)
    cut = ref_rows // 3  # a third fits the components, two thirds calibrate: the held-out errors are a sample too
    fit, held = ref_matrix[order[:cut]], ref_matrix[order[cut:]]
    center = fit.mean(axis=0)
    _, s, vt = np.linalg.svd(fit - center, full_matrices=False)
    explained = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
    k = int(np.searchsorted(explained, variance) + 1)
    components = vt[:k]

    def errors(x: Matrix) -> Matrix:
        centered = x - center
        return np.asarray(np.linalg.norm(centered - centered @ components.T @ components, axis=1), dtype=float)

    ref_errors, cur_errors = errors(held), errors(cur_matrix)
    ref_mean, cur_mean = float(ref_errors.mean()), float(cur_errors.mean())
    # Both means are estimates: the noise of the difference counts the held-out rows' share too.
    spread = math.sqrt(float(ref_errors.var(ddof=1)) / len(ref_errors) + float(cur_errors.var(ddof=1)) / n)
    p_value = _greater_p(cur_errors, ref_errors)
    value = cur_mean / ref_mean - 1 if ref_mean > 0 else 0.0
    z_alpha = _z_quantile(alpha)
    threshold = max(min_effect, z_alpha * spread / ref_mean if ref_mean > 0 else 0.0)
    return Reconstruction(value, p_value, threshold, k, ref_mean, cur_mean)


def _greater_p(window: Matrix, held: Matrix) -> float:
    """One-sided Mann–Whitney p-value for "the window's errors are larger than the held-out reference rows'":
    both are samples, and under no drift they are exchangeable whatever the errors' distribution."""
    both = np.concatenate([window, held])
    if float(np.ptp(both)) == 0.0:
        return 1.0
    from scipy import stats

    test = stats.mannwhitneyu
    if np.isfinite(both).all():
        # SciPy's own function behind its axis and NaN handling: the same p-value on finite 1-D samples, without
        # the third of a call (0.4 ms) that handling costs
        test = getattr(test, "__wrapped__", test)
    return float(test(window, held, alternative="greater", method="asymptotic").pvalue)


def _z_quantile(alpha: float) -> float:
    """The upper ``alpha`` quantile of the standard normal (bisection on erfc; no SciPy needed)."""
    lo, hi = 0.0, 40.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
