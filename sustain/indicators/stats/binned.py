"""Distances and tests between two histograms over the same bins.

Every function takes ``ref_counts`` and ``cur_counts``: non-negative count
vectors (integers or weights) over the *same* bins, of the same length ``>= 2``,
each with a positive total. Counts are turned into proportions first, so
multiplying both vectors by the same positive number never changes a distance.

The ``_*_rows`` kernels work on ``(..., k)`` stacks of histograms and are shared
with :mod:`sustain.indicators.stats.calibration`, whose bootstrap evaluates
thousands of histogram pairs at once; the public functions are thin wrappers,
so the scalar and the vectorised paths give bit-identical answers.

The Wasserstein distances live in :mod:`sustain.indicators.stats.wasserstein`
(they need a model of the tails) and are re-exported here.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sustain.indicators.stats._validate import FloatArray, check_count_pair
from sustain.indicators.stats.results import TestResult
from sustain.indicators.stats.wasserstein import wasserstein_binned, wasserstein_normed

__all__ = [
    "DEFAULT_EPS",
    "KSTWO_MAX_N",
    "binned_ks",
    "chi_square",
    "hellinger",
    "js_distance",
    "kl_divergence",
    "psi",
    "total_variation",
    "wasserstein_binned",
    "wasserstein_normed",
]

DEFAULT_EPS = 1e-4
"""Floor applied to proportions before taking logarithms (PSI, KL)."""

KSTWO_MAX_N = 2000
"""Largest effective sample size for which :func:`binned_ks` calls ``scipy.stats.kstwo.sf``."""


def _rel_entr(x: FloatArray, y: FloatArray) -> FloatArray:
    """``scipy.special.rel_entr`` for y > 0 wherever x > 0, in NumPy: SciPy costs a third of a second to import,
    and the one-shot drift report answers in well under a second."""
    safe_x = np.where(x > 0, x, 1.0)
    safe_y = np.where(y > 0, y, 1.0)
    return np.where(x > 0, x * np.log(safe_x / safe_y), 0.0)


def _proportions(counts: FloatArray) -> FloatArray:
    result: FloatArray = counts / counts.sum(axis=-1, keepdims=True)
    return result


def _check_eps(eps: float) -> float:
    if not (math.isfinite(eps) and 0 < eps < 1):
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}.")
    return float(eps)


def _psi_rows(ref: FloatArray, cur: FloatArray, eps: float) -> FloatArray:
    p = np.maximum(_proportions(ref), eps)
    q = np.maximum(_proportions(cur), eps)
    result: FloatArray = np.sum((q - p) * np.log(q / p), axis=-1)
    return result


def _kl_rows(ref: FloatArray, cur: FloatArray, eps: float) -> FloatArray:
    p = _proportions(np.maximum(_proportions(ref), eps))
    q = _proportions(np.maximum(_proportions(cur), eps))
    result: FloatArray = np.maximum(np.sum(q * np.log(q / p), axis=-1), 0.0)
    return result


def _js_rows(ref: FloatArray, cur: FloatArray) -> FloatArray:
    p = _proportions(ref)
    q = _proportions(cur)
    m = (p + q) / 2.0
    divergence = np.sum(_rel_entr(p, m) + _rel_entr(q, m), axis=-1) / math.log(2.0)
    result: FloatArray = np.minimum(np.sqrt(np.maximum(divergence / 2.0, 0.0)), 1.0)
    return result


def _hellinger_rows(ref: FloatArray, cur: FloatArray) -> FloatArray:
    diff = np.sqrt(_proportions(ref)) - np.sqrt(_proportions(cur))
    result: FloatArray = np.minimum(np.sqrt(0.5 * np.sum(diff * diff, axis=-1)), 1.0)
    return result


def _total_variation_rows(ref: FloatArray, cur: FloatArray) -> FloatArray:
    result: FloatArray = np.minimum(0.5 * np.sum(np.abs(_proportions(ref) - _proportions(cur)), axis=-1), 1.0)
    return result


def psi(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, eps: float = DEFAULT_EPS) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` of two histograms.

    ``p`` and ``q`` are the reference and current proportions, each floored at
    ``eps`` before the logarithm (so an empty bin does not make the index
    infinite); the floored values are not renormalised, matching the common
    industry definition. Always ``>= 0``; 0 for identical proportions. Rules of
    thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift — but see
    :mod:`sustain.indicators.stats.calibration` for thresholds that account for
    sample size.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> round(psi(ref, cur), 4)
    0.0139
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    return float(_psi_rows(ref, cur, _check_eps(eps)))


def kl_divergence(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, eps: float = DEFAULT_EPS) -> float:
    """Kullback–Leibler divergence ``KL(cur || ref)`` in nats.

    Both proportion vectors are floored at ``eps`` and renormalised, so the
    result equals ``scipy.stats.entropy(q_floored, p_floored)`` and is finite
    and ``>= 0`` even when the reference has empty bins. Not symmetric.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> round(kl_divergence(ref, cur), 4)
    0.007
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    return float(_kl_rows(ref, cur, _check_eps(eps)))


def js_distance(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float:
    """Jensen–Shannon *distance* (square root of the divergence), base 2, in [0, 1].

    Equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` on the
    normalised counts. Symmetric, 0 for identical proportions, 1 for histograms
    with disjoint support; no ``eps`` is needed because the mixture never has an
    empty bin where either input has mass.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> round(js_distance(ref, cur), 4)
    0.05
    >>> js_distance([1, 0], [0, 1])
    1.0
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    return float(_js_rows(ref, cur))


def hellinger(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float:
    """Hellinger distance ``sqrt(sum((sqrt(p) - sqrt(q))**2) / 2)``, in [0, 1].

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> round(hellinger(ref, cur), 4)
    0.0416
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    return float(_hellinger_rows(ref, cur))


def total_variation(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float:
    """Total variation distance ``sum(|p - q|) / 2``: the largest difference in the
    probability the two histograms assign to any set of bins, in [0, 1].

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> round(total_variation(ref, cur), 4)
    0.0496
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    return float(_total_variation_rows(ref, cur))


def binned_ks(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> TestResult:
    """Kolmogorov–Smirnov test on two histograms over the same bins.

    The statistic ``D`` is the largest absolute difference between the cumulative
    proportions at the bin edges. Because the empirical CDFs are only observed at
    the edges, ``D`` is a *lower bound* of the exact two-sample KS statistic of
    the underlying raw data (with 100 quantile bins it is typically within 0.01).

    The p-value is asymptotic, with the effective sample size
    ``n_eff = round(n_ref * n_cur / (n_ref + n_cur))``: for ``n_eff <= 2000`` it is
    ``scipy.stats.kstwo.sf(D, n_eff)`` (exactly what ``scipy.stats.ks_2samp``
    reports with ``method="asymp"``); above that, ``kstwo.sf`` becomes very slow
    in SciPy (tens to hundreds of milliseconds for ``n_eff`` of 10^5-10^6), so the
    Kolmogorov limit with Stephens' small-sample correction,
    ``scipy.special.kolmogorov((sqrt(n_eff) + 0.12 + 0.11 / sqrt(n_eff)) * D)``,
    is used instead (within about 2 % relative of ``kstwo.sf`` for p-values above
    1e-4). Since ``D`` is biased low and the data are discretised, the p-value is
    conservative.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> res = binned_ks(ref, cur)
    >>> round(res.statistic, 4), f"{res.p_value:.1e}", res.n_ref
    (0.0496, '8.6e-06', 5000)
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    diff = np.cumsum(_proportions(ref) - _proportions(cur))[:-1]
    d = min(float(np.max(np.abs(diff))), 1.0)
    n_eff = max(1, round(n_ref * n_cur / (n_ref + n_cur)))
    if n_eff <= KSTWO_MAX_N:
        from scipy import stats

        p = float(stats.kstwo.sf(d, n_eff))
    else:
        root = math.sqrt(n_eff)
        from scipy import special

        p = float(special.kolmogorov((root + 0.12 + 0.11 / root) * d))
    p = min(max(p, 0.0), 1.0)
    return TestResult(method="binned_ks", statistic=d, p_value=p, n_ref=round(n_ref), n_cur=round(n_cur))


def chi_square(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> TestResult:
    """Pearson chi-square test of homogeneity on the 2 x k table ``[ref_counts, cur_counts]``.

    Bins empty in both histograms are dropped (they carry no information and
    would make an expected frequency zero). The statistic and p-value equal
    ``scipy.stats.chi2_contingency(table, correction=False)``; if fewer than two
    bins are left the histograms are trivially identical and the result is
    ``statistic=0, p_value=1``. The approximation wants expected counts of about
    5 or more per cell; merge sparse bins first if they are common.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref = rng.multinomial(5000, [0.25, 0.25, 0.25, 0.25])
    >>> cur = rng.multinomial(5000, [0.30, 0.25, 0.25, 0.20])
    >>> res = chi_square(ref, cur)
    >>> round(res.statistic, 2), f"{res.p_value:.1e}"
    (34.61, '1.5e-07')
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    n_ref, n_cur = round(float(ref.sum())), round(float(cur.sum()))
    keep = (ref > 0) | (cur > 0)
    if int(keep.sum()) < 2:
        return TestResult(method="chi_square", statistic=0.0, p_value=1.0, n_ref=n_ref, n_cur=n_cur)
    observed = np.stack([ref[keep], cur[keep]])
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = observed.shape[1] - 1
    from scipy import stats

    p = float(np.clip(stats.chi2.sf(statistic, dof), 0.0, 1.0))
    return TestResult(method="chi_square", statistic=statistic, p_value=p, n_ref=n_ref, n_cur=n_cur)


def sparse(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, min_expected: float = 5.0) -> bool:
    """Whether a cell of the table ``[ref_counts, cur_counts]`` (bins empty on both sides dropped) expects fewer
    than ``min_expected`` values: where the chi-square distribution of :func:`chi_square` stops holding.

    >>> sparse([500, 300, 3], [480, 310, 2]), sparse([500, 300], [480, 310])
    (True, False)
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    keep = (ref > 0) | (cur > 0)
    totals = np.array([ref[keep].sum(), cur[keep].sum()])
    expected = np.outer(totals, ref[keep] + cur[keep]) / totals.sum()
    return bool(expected.size and expected.min() < min_expected)


def chi_square_null(
    ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, draws: int = 400, seed: int = 0
) -> tuple[float, FloatArray]:
    """The chi-square statistic of ``[ref_counts, cur_counts]`` and ``draws`` values of it under "same
    distribution", conditional on the table's margins: the current side is redrawn from the pooled values
    without replacement (multivariate hypergeometric), the reference side is the rest. This is the permutation
    distribution of the statistic, valid however sparse or unbalanced the table (a category of 5% new in 1,000
    current values against 100,000 reference ones expects 0.5 current values: no chi-square there), and it
    keeps every category separate. Fit a tail to it (:func:`sustain.indicators.gamma.moment_matched_sf`) for
    p-values beyond ``1 / draws``.

    >>> import numpy as np
    >>> observed, null = chi_square_null([300, 200, 2, 0], [100, 80, 1, 40], draws=200)
    >>> bool(observed > null.max()), null.shape
    (True, (200,))
    """
    ref, cur = check_count_pair(ref_counts, cur_counts)
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]
    columns = np.rint(ref + cur).astype(np.int64)
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    total = n_ref + n_cur
    expected_ref, expected_cur = columns * n_ref / total, columns * n_cur / total

    def statistic(cur_rows: FloatArray) -> FloatArray:
        ref_rows = columns - cur_rows
        return np.asarray(
            ((ref_rows - expected_ref) ** 2 / expected_ref + (cur_rows - expected_cur) ** 2 / expected_cur).sum(
                axis=-1
            ),
            dtype=np.float64,
        )

    rng = np.random.default_rng(seed)
    drawn = rng.multivariate_hypergeometric(columns, round(n_cur), size=draws).astype(np.float64)
    return float(statistic(cur[np.newaxis, :])[0]), statistic(drawn)
