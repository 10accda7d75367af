"""Exact-path two-sample tests on raw data and on proportions.

The continuous tests take two 1-D samples of floats (NaNs removed by the
caller) and wrap the SciPy implementations, so statistics and p-values agree
with SciPy to rounding error; the wrappers add argument checks with readable
messages, handle the edge cases SciPy does not (constant data, tiny samples)
and make sure no SciPy warning reaches the caller (the test suite turns
warnings into errors).

Conventions: ``ref`` is the reference (baseline) sample, ``cur`` the current
window; signed statistics are "ref relative to cur", as in SciPy and
statsmodels (the first sample is the first argument).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy import stats

from sustain.indicators.stats._validate import check_nonneg_int, check_sample
from sustain.indicators.stats.binned import chi_square
from sustain.indicators.stats.results import TestResult

_AD_HAS_VARIANT = "variant" in inspect.signature(stats.anderson_ksamp).parameters
"""SciPy >= 1.17 wants ``variant=...`` and warns when it is missing (``midrank`` is deprecated)."""


# SciPy's own function behind its axis and NaN handling, which costs a third of a call on 1-D samples already
# checked here (the same statistic and p-value).
_KS_2SAMP = getattr(stats.ks_2samp, "__wrapped__", stats.ks_2samp)


def _p(value: float) -> float:
    return float(min(max(float(value), 0.0), 1.0))


def ks_2samp(ref: npt.ArrayLike, cur: npt.ArrayLike, method: str = "auto") -> TestResult:
    """Two-sample Kolmogorov–Smirnov test (two-sided), as ``scipy.stats.ks_2samp``.

    ``method`` is passed through (``"auto"``, ``"exact"`` or ``"asymp"``). SciPy
    falls back from the exact to the asymptotic p-value when the exact
    computation does not converge; that fallback is silent here. Ties are
    allowed (the test is then conservative).

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref, cur = rng.normal(0.0, 1.0, 300), rng.normal(0.3, 1.0, 200)
    >>> res = ks_2samp(ref, cur)
    >>> round(res.statistic, 4), round(res.p_value, 4), res.n_cur
    (0.1217, 0.054, 200)
    """
    x, y = check_sample("ref", ref), check_sample("cur", cur)
    if method not in ("auto", "exact", "asymp"):
        raise ValueError(f"method must be 'auto', 'exact' or 'asymp', got {method!r}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _KS_2SAMP(x, y, method=method)
    return TestResult(
        method="ks_2samp", statistic=float(res.statistic), p_value=_p(res.pvalue), n_ref=x.size, n_cur=y.size
    )


def cramer_von_mises(ref: npt.ArrayLike, cur: npt.ArrayLike) -> TestResult:
    """Two-sample Cramér–von Mises test; as ``scipy.stats.cramervonmises_2samp`` when no value repeats.

    Without ties this is SciPy's ``method="auto"`` (exact p-value when both
    samples have at most 20 observations, asymptotic otherwise). With ties SciPy
    plugs midranks into a formula that assumes distinct values, which inflates
    the statistic: on two samples of the same Poisson variable it rejects at the
    1% level almost every time. Here tied data use the statistic's definition,
    ``n m / N**2 * sum((F_ref - F_cur)**2)`` over the pooled observations (equal
    to SciPy's value when there are no ties), with Anderson's (1962) normalised
    asymptotic p-value, which is conservative for discrete data (Conover,
    *Practical Nonparametric Statistics*, 6.2). More sensitive than KS to
    differences spread over the whole distribution. Each sample needs at least
    two observations.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref, cur = rng.normal(0.0, 1.0, 300), rng.normal(0.3, 1.0, 200)
    >>> res = cramer_von_mises(ref, cur)
    >>> round(res.statistic, 4), round(res.p_value, 4)
    (0.7382, 0.0103)
    >>> same = rng.poisson(3.0, 2000).astype(float), rng.poisson(3.0, 500).astype(float)
    >>> cramer_von_mises(*same).p_value > 0.05
    True
    """
    x, y = check_sample("ref", ref), check_sample("cur", cur)
    for name, arr in (("ref", x), ("cur", y)):
        if arr.size < 2:
            raise ValueError(f"{name} needs at least 2 observations for the Cramér–von Mises test, got {arr.size}.")
    values, multiplicity = np.unique(np.concatenate([x, y]), return_counts=True)
    if values.size == x.size + y.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.cramervonmises_2samp(x, y)
        statistic, p_value = float(res.statistic), float(res.pvalue)
    else:
        n, m = x.size, y.size
        f_ref = np.searchsorted(np.sort(x), values, side="right") / n
        f_cur = np.searchsorted(np.sort(y), values, side="right") / m
        statistic = float(n * m / (n + m) ** 2 * np.sum(multiplicity * (f_ref - f_cur) ** 2))
        p_value = _cvm_asymptotic_p(statistic, n, m)
    return TestResult(method="cramer_von_mises", statistic=statistic, p_value=_p(p_value), n_ref=x.size, n_cur=y.size)


def _cvm_asymptotic_p(t: float, n: int, m: int) -> float:
    """Anderson (1962): normalise T by its exact mean and variance, then use the limiting distribution."""
    big_n, k = n + m, n * m
    mean = (1 + 1 / big_n) / 6
    variance = (big_n + 1) * (4 * k * big_n - 3 * (n * n + m * m) - 2 * k) / (45 * big_n**2 * 4 * k)
    normalised = 1 / 6 + (t - mean) / math.sqrt(45 * variance)
    return 1.0 if normalised < 0.003 else 1.0 - _cvm_limit_cdf(normalised)


def _cvm_limit_cdf(x: float) -> float:
    """CDF of the limiting Cramér–von Mises distribution (Csörgő and Faraway 1996, eq. 1.2), as SciPy's."""
    from scipy.special import gammaln, kv

    total, k = 0.0, 0
    while True:
        y = 4 * k + 1
        q = y * y / (16 * x)
        term = math.exp(float(gammaln(k + 0.5) - gammaln(k + 1))) / (math.pi**1.5 * math.sqrt(x))
        term *= math.sqrt(y) * math.exp(-q) * float(kv(0.25, q))
        total += term
        if abs(term) < 1e-7:
            return float(total)
        k += 1


def anderson_darling(
    ref: npt.ArrayLike, cur: npt.ArrayLike, method: stats.PermutationMethod | None = None
) -> TestResult:
    """k-sample Anderson–Darling test on ``[ref, cur]``, as ``scipy.stats.anderson_ksamp``.

    The statistic is SciPy's normalised midrank statistic (valid with ties). By
    default the p-value is interpolated from SciPy's table and therefore
    **floored at 0.001 and capped at 0.25**: a reported 0.25 means "0.25 or
    more" (identical samples give 0.25, not 1) and 0.001 means "0.001 or
    less". SciPy's warning about the cap is suppressed. Pass
    ``method=scipy.stats.PermutationMethod(...)`` for an uncapped permutation
    p-value (slow: it recomputes the statistic for every resample).

    Needs at least 4 observations in total. If every pooled observation has the
    same value the samples cannot differ: the result is ``statistic=0`` and
    ``p_value=1`` (SciPy raises instead).

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref, cur = rng.normal(0.0, 1.0, 300), rng.normal(0.3, 1.0, 200)
    >>> res = anderson_darling(ref, cur)
    >>> round(res.statistic, 3), round(res.p_value, 4)
    (4.695, 0.0045)
    >>> anderson_darling(ref, ref).p_value
    0.25
    """
    x, y = check_sample("ref", ref), check_sample("cur", cur)
    if x.size + y.size < 4:
        raise ValueError(f"ref and cur need at least 4 observations together, got {x.size + y.size}.")
    if np.all(x == x[0]) and np.all(y == x[0]):
        return TestResult(method="anderson_darling", statistic=0.0, p_value=1.0, n_ref=x.size, n_cur=y.size)
    kwargs: dict[str, object] = {"variant": "midrank"} if _AD_HAS_VARIANT else {}
    if method is not None:
        kwargs["method"] = method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.anderson_ksamp([x, y], **kwargs)
    return TestResult(
        method="anderson_darling", statistic=float(res.statistic), p_value=_p(res.pvalue), n_ref=x.size, n_cur=y.size
    )


def _check_proportion(prefix: str, successes: int, n: int) -> tuple[int, int]:
    k = check_nonneg_int(f"{prefix}_successes", successes)
    total = check_nonneg_int(f"{prefix}_n", n, minimum=1)
    if k > total:
        raise ValueError(f"{prefix}_successes ({k}) must not exceed {prefix}_n ({total}).")
    return k, total


def z_test_proportions(ref_successes: int, ref_n: int, cur_successes: int, cur_n: int) -> TestResult:
    """Two-sided pooled z-test for equal proportions ``ref_successes/ref_n`` and ``cur_successes/cur_n``.

    ``z = (p_ref - p_cur) / sqrt(p_pool (1 - p_pool) (1/ref_n + 1/cur_n))`` and
    ``p = 2 * norm.sf(|z|)``; ``z**2`` equals the uncorrected chi-square
    statistic of the 2x2 table. When both samples are all successes or all
    failures there is no variance and no evidence: ``z = 0``, ``p = 1``. Use
    :func:`fisher_exact` when expected counts are small (below about 5).

    >>> res = z_test_proportions(120, 1000, 160, 1000)
    >>> round(res.statistic, 3), round(res.p_value, 4)
    (-2.578, 0.0099)
    """
    a, n1 = _check_proportion("ref", ref_successes, ref_n)
    b, n2 = _check_proportion("cur", cur_successes, cur_n)
    pooled = (a + b) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        return TestResult(method="z_test_proportions", statistic=0.0, p_value=1.0, n_ref=n1, n_cur=n2)
    z = (a / n1 - b / n2) / math.sqrt(variance)
    p = _p(2.0 * stats.norm.sf(abs(z)))
    return TestResult(method="z_test_proportions", statistic=float(z), p_value=p, n_ref=n1, n_cur=n2)


def fisher_exact(ref_successes: int, ref_n: int, cur_successes: int, cur_n: int) -> TestResult:
    """Two-sided Fisher exact test on ``[[ref_successes, ref_failures], [cur_successes, cur_failures]]``.

    Same p-value and statistic as ``scipy.stats.fisher_exact`` on that table:
    the statistic is the sample odds ratio ``odds_ref / odds_cur`` (``inf`` or
    ``0`` when a cell is empty). When both samples are all successes or all
    failures the odds ratio is undefined (SciPy returns NaN); it is reported as
    1.0, with p-value 1.

    >>> res = fisher_exact(3, 20, 11, 20)
    >>> round(res.statistic, 4), round(res.p_value, 4)
    (0.1444, 0.0187)
    """
    a, n1 = _check_proportion("ref", ref_successes, ref_n)
    b, n2 = _check_proportion("cur", cur_successes, cur_n)
    table = np.array([[a, n1 - a], [b, n2 - b]], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.fisher_exact(table, alternative="two-sided")
    odds = float(res.statistic)
    return TestResult(
        method="fisher_exact", statistic=1.0 if math.isnan(odds) else odds, p_value=_p(res.pvalue), n_ref=n1, n_cur=n2
    )


def chi_square_categories(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> TestResult:
    """Chi-square test of homogeneity for categorical counts keyed by category.

    The union of categories is used; a category absent on one side counts 0,
    and categories absent on both sides are ignored. Delegates to
    :func:`sustain.indicators.stats.binned.chi_square` (same result as
    ``scipy.stats.chi2_contingency(table, correction=False)``).

    >>> res = chi_square_categories({"a": 50, "b": 30, "c": 20}, {"a": 30, "b": 30, "d": 40})
    >>> round(res.statistic, 2), f"{res.p_value:.1e}", res.n_cur
    (65.0, '5.0e-14', 100)
    """
    for name, mapping in (("ref_counts", ref_counts), ("cur_counts", cur_counts)):
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{name} must be a mapping from category to count, got {type(mapping).__name__}.")
        for key, value in mapping.items():
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise ValueError(f"{name}[{key!r}] must be a number, got {value!r}.")
    categories = sorted(set(ref_counts) | set(cur_counts), key=str)
    ref = [float(ref_counts.get(c, 0)) for c in categories]
    cur = [float(cur_counts.get(c, 0)) for c in categories]
    if len(categories) == 1:  # a single shared category: pad so the binned test sees two bins
        ref.append(0.0)
        cur.append(0.0)
    return chi_square(ref, cur)
