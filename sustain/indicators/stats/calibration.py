"""False-alarm control for distances computed from histograms.

A raw PSI or JS value has no fixed meaning: with 200 rows per window pure
sampling noise produces a PSI around 0.1 over 20 bins, with a million rows it is
below 0.0001. Fixed rules of thumb ("PSI > 0.2 is drift") therefore alarm
constantly on small windows and never on large ones. Calibration replaces the
rule of thumb by the distribution of the statistic under "no drift" at the
*actual* sample sizes:

1. estimate the bin probabilities ``p_hat`` from the reference histogram (empty
   bins get a pseudo-count of ``0.5 / k`` so unseen values stay possible);
2. draw ``draws`` pairs of histograms, reference ~ Multinomial(n_ref, p_hat) and
   current ~ Multinomial(n_cur, p_hat), and evaluate the statistic on each pair
   (:func:`null_distribution`);
3. alarm when the observed value exceeds the ``1 - alpha`` quantile of those
   draws (:func:`calibrated_threshold`), or report the permutation-style
   p-value (:func:`empirical_p_value`).

Both histograms are redrawn because the reference is itself a sample: keeping
it fixed would understate the noise and inflate the false-alarm rate.

:func:`psi`, :func:`js_distance`, :func:`hellinger`, :func:`kl_divergence` and
:func:`total_variation` (the function objects themselves, with their default
``eps``) are evaluated on all draws at once; any other callable is called once per
draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sustain.indicators.stats import binned
from sustain.indicators.stats._validate import (
    FloatArray,
    as_float_vector,
    check_count_pair,
    check_counts,
    check_nonneg_int,
    check_probability,
)

Statistic = Callable[[FloatArray, FloatArray], float]
"""A distance between two count vectors over the same bins, e.g. :func:`binned.psi`."""

_VECTORISED: dict[Callable[..., float], Callable[[FloatArray, FloatArray], FloatArray]] = {
    binned.psi: lambda r, c: binned._psi_rows(r, c, binned.DEFAULT_EPS),
    binned.kl_divergence: lambda r, c: binned._kl_rows(r, c, binned.DEFAULT_EPS),
    binned.js_distance: binned._js_rows,
    binned.hellinger: binned._hellinger_rows,
    binned.total_variation: binned._total_variation_rows,
}


def null_distribution(
    ref_counts: npt.ArrayLike,
    n_cur: int,
    statistic: Statistic,
    draws: int = 500,
    seed: int = 0,
    n_ref: int | None = None,
) -> FloatArray:
    """Values of ``statistic`` under "no drift" at the given sample sizes (parametric bootstrap).

    ``n_ref`` defaults to the total of ``ref_counts`` (rounded); ``n_cur`` is the
    size of the current window being judged. The result has ``draws`` values and
    is reproducible for a given ``seed``. The built-in distances are vectorised:
    1,000 draws over 100 bins take about 15 ms, almost all of it multinomial
    sampling (``k`` binomial draws per histogram). A statistic with a ``rows``
    method (two ``draws x bins`` count matrices in, one value per row out, like
    :class:`sustain.indicators.stats.wasserstein_rows.NormedWasserstein`) is
    evaluated that way; any other custom statistic costs one Python call per draw.

    >>> import numpy as np
    >>> from sustain.indicators.stats import psi
    >>> rng = np.random.default_rng(12345)
    >>> ref_counts = rng.multinomial(2000, np.full(10, 0.1))
    >>> null = null_distribution(ref_counts, n_cur=500, statistic=psi, draws=200)
    >>> null.shape, bool(np.all(null >= 0))
    ((200,), True)
    >>> round(float(np.median(null)), 3)
    0.019
    """
    ref = check_counts("ref_counts", ref_counts)
    if ref.size < 2:
        raise ValueError(f"ref_counts needs at least two bins, got {ref.size}.")
    n_cur = check_nonneg_int("n_cur", n_cur, minimum=1)
    draws = check_nonneg_int("draws", draws, minimum=1)
    n_ref = check_nonneg_int("n_ref", round(float(ref.sum())) if n_ref is None else n_ref, minimum=1)
    if not callable(statistic):
        raise ValueError("statistic must be a callable taking (ref_counts, cur_counts).")
    k = ref.size
    smoothed = np.where(ref > 0, ref, 0.5 / k)
    p_hat = smoothed / smoothed.sum()
    rng = np.random.default_rng(seed)
    ref_draws = rng.multinomial(n_ref, p_hat, size=draws).astype(np.float64)
    cur_draws = rng.multinomial(n_cur, p_hat, size=draws).astype(np.float64)
    fast = _VECTORISED.get(statistic) or getattr(statistic, "rows", None)
    if fast is not None:
        return np.asarray(fast(ref_draws, cur_draws), dtype=np.float64)
    out = np.empty(draws, dtype=np.float64)
    for i in range(draws):
        out[i] = float(statistic(ref_draws[i], cur_draws[i]))
    return out


def _check_null(null: npt.ArrayLike) -> FloatArray:
    arr = as_float_vector("null", null)
    if arr.size == 0:
        raise ValueError("null is empty; draw at least one value from the null distribution.")
    if np.any(np.isnan(arr)):
        raise ValueError("null contains NaN; the statistic must be defined on every draw.")
    return arr


def calibrated_threshold(null: npt.ArrayLike, alpha: float) -> float:
    """The ``1 - alpha`` quantile of ``null`` ("higher" interpolation).

    Alarm when ``observed > threshold``: for an observed value exchangeable with
    the draws this fires with probability at most ``alpha`` (ties only make it
    rarer). Use at least ``20 / alpha`` draws for a stable threshold.

    >>> import numpy as np
    >>> calibrated_threshold(np.arange(100.0), alpha=0.05)
    95.0
    """
    arr = _check_null(null)
    a = check_probability("alpha", alpha)
    return float(np.quantile(arr, 1.0 - a, method="higher"))


def empirical_p_value(null: npt.ArrayLike, observed: float) -> float:
    """Monte-Carlo p-value ``(1 + #(null >= observed)) / (1 + len(null))``.

    Never 0 (the smallest value is ``1 / (len(null) + 1)``), so it stays valid
    when combined across features with :mod:`sustain.indicators.stats.multiple`.

    >>> import numpy as np
    >>> empirical_p_value(np.arange(99.0), observed=95.0)
    0.05
    """
    arr = _check_null(null)
    obs = float(observed)
    if np.isnan(obs):
        raise ValueError("observed must not be NaN.")
    return float((1 + np.count_nonzero(arr >= obs)) / (1 + arr.size))


@dataclass(frozen=True)
class Calibration:
    """Threshold and p-value of an observed statistic against its bootstrap null.

    >>> Calibration(threshold=0.02, p_value=0.5, draws=500).draws
    500
    """

    threshold: float
    p_value: float
    draws: int


def calibrate(
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    statistic: Statistic,
    alpha: float,
    draws: int = 500,
    seed: int = 0,
) -> tuple[float, Calibration]:
    """Observed ``statistic(ref_counts, cur_counts)`` and its calibration at level ``alpha``.

    The null is drawn at the observed sample sizes (the totals of both
    histograms). Drift is flagged when ``observed > calibration.threshold``.

    >>> import numpy as np
    >>> from sustain.indicators.stats import js_distance
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, np.full(10, 0.1))
    >>> same = rng.multinomial(1000, np.full(10, 0.1))
    >>> shifted = rng.multinomial(1000, np.linspace(0.05, 0.15, 10))
    >>> value, cal = calibrate(ref, same, js_distance, alpha=0.05)
    >>> value > cal.threshold, cal.p_value > 0.05
    (False, True)
    >>> value, cal = calibrate(ref, shifted, js_distance, alpha=0.05)
    >>> value > cal.threshold, cal.p_value
    (True, 0.001996...)
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    check_probability("alpha", alpha)
    observed = float(statistic(ref, cur))
    null = null_distribution(ref, round(float(cur.sum())), statistic, draws=draws, seed=seed)
    calibration = Calibration(
        threshold=calibrated_threshold(null, alpha),
        p_value=empirical_p_value(null, observed),
        draws=int(null.size),
    )
    return observed, calibration
