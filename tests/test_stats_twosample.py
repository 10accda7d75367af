"""Raw-sample tests: agreement with SciPy (1e-9 relative), edge cases, no escaping warnings."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sustain.indicators.stats import (
    TestResult,
    anderson_darling,
    chi_square_categories,
    cramer_von_mises,
    fisher_exact,
    ks_2samp,
    z_test_proportions,
)

REL = 1e-9


def _scipy_ad(x: np.ndarray, y: np.ndarray, **kwargs: object) -> tuple[float, float]:
    """SciPy's anderson_ksamp, silencing its cap warning (and, on SciPy >= 1.17, the `midrank` deprecation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.anderson_ksamp([x, y], **kwargs)
    return float(res.statistic), float(res.pvalue)


def _datasets() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(12345)
    return [
        ("normal_shift", rng.normal(0, 1, 400), rng.normal(0.2, 1, 300)),
        ("normal_same", rng.normal(0, 1, 250), rng.normal(0, 1, 260)),
        ("scale", rng.normal(0, 1, 500), rng.normal(0, 1.4, 120)),
        ("ties_rounded", np.round(rng.normal(0, 1, 300), 1), np.round(rng.normal(0.1, 1, 200), 1)),
        ("ties_integers", rng.integers(0, 5, 80).astype(float), rng.integers(0, 6, 90).astype(float)),
        ("small_5_7", rng.normal(0, 1, 5), rng.normal(1, 1, 7)),
        ("small_3_2", rng.normal(0, 1, 3), rng.normal(0, 1, 2)),
        ("small_ties", np.array([1.0, 1.0, 2.0, 3.0]), np.array([2.0, 2.0, 3.0])),
        ("unbalanced", rng.exponential(1.0, 2000), rng.exponential(1.3, 15)),
        ("identical", np.arange(30.0), np.arange(30.0)),
        ("disjoint", np.arange(10.0), np.arange(10.0) + 100.0),
    ]


DATASETS = _datasets()
IDS = [name for name, _, _ in DATASETS]


def _check(res: TestResult, statistic: float, p_value: float, method: str, x: np.ndarray, y: np.ndarray) -> None:
    assert res.method == method
    assert res.statistic == pytest.approx(statistic, rel=REL, abs=1e-300)
    assert res.p_value == pytest.approx(p_value, rel=REL, abs=1e-300)
    assert (res.n_ref, res.n_cur) == (x.size, y.size)


# --------------------------------------------------------------------------- KS


@pytest.mark.parametrize(("name", "x", "y"), DATASETS, ids=IDS)
@pytest.mark.parametrize("method", ["auto", "exact", "asymp"])
def test_ks_2samp_matches_scipy(name: str, x: np.ndarray, y: np.ndarray, method: str) -> None:
    expected = stats.ks_2samp(x, y, method=method)
    _check(ks_2samp(x, y, method=method), expected.statistic, expected.pvalue, "ks_2samp", x, y)


@pytest.mark.parametrize(("name", "x", "y"), DATASETS, ids=IDS)
def test_ks_statistic_matches_direct_ecdf_computation(name: str, x: np.ndarray, y: np.ndarray) -> None:
    grid = np.union1d(x, y)
    fx = np.searchsorted(np.sort(x), grid, side="right") / x.size
    fy = np.searchsorted(np.sort(y), grid, side="right") / y.size
    assert ks_2samp(x, y).statistic == pytest.approx(np.max(np.abs(fx - fy)), rel=REL)


# --------------------------------------------------------------------------- CvM


def _has_ties(x: np.ndarray, y: np.ndarray) -> bool:
    return bool(np.unique(np.concatenate([x, y])).size < x.size + y.size)


@pytest.mark.parametrize(("name", "x", "y"), [d for d in DATASETS if not _has_ties(d[1], d[2])])
def test_cramer_von_mises_matches_scipy_without_ties(name: str, x: np.ndarray, y: np.ndarray) -> None:
    expected = stats.cramervonmises_2samp(x, y)
    _check(cramer_von_mises(x, y), expected.statistic, expected.pvalue, "cramer_von_mises", x, y)


@pytest.mark.parametrize(("name", "x", "y"), DATASETS, ids=IDS)
def test_cramer_von_mises_statistic_is_the_ecdf_definition(name: str, x: np.ndarray, y: np.ndarray) -> None:
    grid, multiplicity = np.unique(np.concatenate([x, y]), return_counts=True)
    fx = np.searchsorted(np.sort(x), grid, side="right") / x.size
    fy = np.searchsorted(np.sort(y), grid, side="right") / y.size
    expected = x.size * y.size / (x.size + y.size) ** 2 * np.sum(multiplicity * (fx - fy) ** 2)
    assert cramer_von_mises(x, y).statistic == pytest.approx(expected, rel=REL, abs=1e-12)


def test_cramer_von_mises_keeps_its_level_on_discrete_data() -> None:
    """SciPy's midrank formula rejects nearly every pair of same-Poisson samples; ties must not inflate T."""
    rng = np.random.default_rng(7)
    draws = 300
    p = np.array([cramer_von_mises(rng.poisson(5.5, 3000), rng.poisson(5.5, 180)).p_value for _ in range(draws)])
    assert (p < 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws)
    shifted = [cramer_von_mises(rng.poisson(5.5, 3000), rng.poisson(6.5, 180)).p_value for _ in range(50)]
    assert np.mean(np.array(shifted) < 0.05) > 0.9  # and it still sees a real shift


def test_cramer_von_mises_needs_two_observations_per_sample() -> None:
    with pytest.raises(ValueError, match="cur needs at least 2 observations"):
        cramer_von_mises([1.0, 2.0, 3.0], [1.0])


# --------------------------------------------------------------------------- AD


@pytest.mark.parametrize(("name", "x", "y"), DATASETS, ids=IDS)
def test_anderson_darling_matches_scipy(name: str, x: np.ndarray, y: np.ndarray) -> None:
    statistic, p_value = _scipy_ad(x, y, variant="midrank")
    _check(anderson_darling(x, y), statistic, p_value, "anderson_darling", x, y)


def test_anderson_darling_p_value_is_capped_and_floored_like_scipy() -> None:
    rng = np.random.default_rng(12345)
    x = rng.normal(0, 1, 200)
    assert anderson_darling(x, x).p_value == 0.25  # "0.25 or more": SciPy's cap, not 1
    assert anderson_darling(x, x + 5.0).p_value == 0.001  # "0.001 or less": SciPy's floor


def test_anderson_darling_emits_no_warning_even_when_warnings_are_always_shown() -> None:
    rng = np.random.default_rng(12345)
    x = rng.normal(0, 1, 50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anderson_darling(x, x)
        anderson_darling(x, x + 10.0)
        ks_2samp(rng.normal(size=20_000), rng.normal(size=20_000), method="exact")
        cramer_von_mises(x, x)
        fisher_exact(0, 10, 0, 12)
    assert [str(w.message) for w in caught] == []


def test_anderson_darling_permutation_method_matches_scipy() -> None:
    rng = np.random.default_rng(12345)
    x, y = rng.normal(0, 1, 25), rng.normal(0.4, 1, 20)
    res = anderson_darling(x, y, method=stats.PermutationMethod(n_resamples=199, rng=np.random.default_rng(7)))
    statistic, p_value = _scipy_ad(
        x, y, variant="midrank", method=stats.PermutationMethod(n_resamples=199, rng=np.random.default_rng(7))
    )
    _check(res, statistic, p_value, "anderson_darling", x, y)


def test_anderson_darling_constant_data_and_tiny_samples() -> None:
    res = anderson_darling([2.0, 2.0, 2.0], [2.0, 2.0])
    assert (res.statistic, res.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least 4 observations together"):
        anderson_darling([1.0], [2.0, 3.0])


# --------------------------------------------------------------------------- proportions

PROPORTION_CASES = [
    (120, 1000, 160, 1000),
    (3, 20, 11, 20),
    (0, 50, 5, 60),
    (40, 40, 35, 41),
    (7, 9, 1, 3),
    (1, 1, 0, 1),
]


@pytest.mark.parametrize("case", PROPORTION_CASES)
def test_z_test_matches_uncorrected_chi_square_on_the_2x2_table(case: tuple[int, int, int, int]) -> None:
    a, n1, b, n2 = case
    chi = stats.chi2_contingency([[a, n1 - a], [b, n2 - b]], correction=False)
    res = z_test_proportions(a, n1, b, n2)
    assert res.statistic**2 == pytest.approx(chi.statistic, rel=REL)
    assert res.p_value == pytest.approx(chi.pvalue, rel=REL)
    assert np.sign(res.statistic) == np.sign(a / n1 - b / n2)
    p = (a + b) / (n1 + n2)
    z = (a / n1 - b / n2) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=REL)


def test_z_test_without_variance_is_no_evidence() -> None:
    for case in [(0, 10, 0, 20), (10, 10, 20, 20)]:
        res = z_test_proportions(*case)
        assert (res.statistic, res.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("case", PROPORTION_CASES)
def test_fisher_exact_matches_scipy(case: tuple[int, int, int, int]) -> None:
    a, n1, b, n2 = case
    expected = stats.fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="two-sided")
    res = fisher_exact(a, n1, b, n2)
    assert res.method == "fisher_exact"
    assert res.statistic == pytest.approx(expected.statistic, rel=REL)
    assert res.p_value == pytest.approx(expected.pvalue, rel=REL)


def test_fisher_exact_undefined_odds_ratio_is_reported_as_one() -> None:
    res = fisher_exact(0, 10, 0, 12)
    assert (res.statistic, res.p_value) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((11, 10, 1, 10), "ref_successes \\(11\\) must not exceed ref_n"),
        ((-1, 10, 1, 10), "ref_successes must be at least 0"),
        ((1, 0, 1, 10), "ref_n must be at least 1"),
        ((1, 10, 1.5, 10), "cur_successes must be an integer"),
        ((1, 10, True, 10), "cur_successes must be an integer, got a bool"),
    ],
)
def test_proportion_tests_reject_bad_counts(args: tuple[int, int, int, int], message: str) -> None:
    for function in (z_test_proportions, fisher_exact):
        with pytest.raises(ValueError, match=message):
            function(*args)


# --------------------------------------------------------------------------- categories


def test_chi_square_categories_aligns_the_union_of_categories() -> None:
    ref = {"a": 50, "b": 30, "c": 20}
    cur = {"b": 30, "a": 30, "d": 40}
    table = np.array([[50, 30, 20, 0], [30, 30, 0, 40]])
    expected = stats.chi2_contingency(table, correction=False)
    res = chi_square_categories(ref, cur)
    assert res.statistic == pytest.approx(expected.statistic, rel=REL)
    assert res.p_value == pytest.approx(expected.pvalue, rel=REL)
    assert (res.n_ref, res.n_cur) == (100, 100)


def test_chi_square_categories_single_category_and_errors() -> None:
    res = chi_square_categories({"x": 5}, {"x": 9})
    assert (res.statistic, res.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="ref_counts is empty"):
        chi_square_categories({}, {})
    with pytest.raises(ValueError, match="cur_counts sums to zero"):
        chi_square_categories({"a": 3}, {"a": 0})
    with pytest.raises(ValueError, match="negative"):
        chi_square_categories({"a": 3, "b": -1}, {"a": 1})
    with pytest.raises(ValueError, match=r"cur_counts\['a'\] must be a number"):
        chi_square_categories({"a": 3}, {"a": "7"})  # type: ignore[dict-item]


# --------------------------------------------------------------------------- input checks and properties

SAMPLE_FUNCTIONS: list[Callable[[np.ndarray, np.ndarray], TestResult]] = [ks_2samp, cramer_von_mises, anderson_darling]


@pytest.mark.parametrize("function", SAMPLE_FUNCTIONS)
def test_sample_tests_reject_empty_and_non_finite_input(function: Callable[..., TestResult]) -> None:
    with pytest.raises(ValueError, match="ref is empty"):
        function([], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="cur contains NaN"):
        function([1.0, 2.0, 3.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="ref must be one-dimensional"):
        function([[1.0, 2.0]], [1.0, 2.0])


def test_ks_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be"):
        ks_2samp([1.0, 2.0], [3.0, 4.0], method="fast")


samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False) | st.integers(-5, 5).map(float),
    min_size=2,
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(samples)
def test_identical_samples_show_no_difference(x: list[float]) -> None:
    ks = ks_2samp(x, list(x))
    assert (ks.statistic, ks.p_value) == (0.0, 1.0)
    cvm = cramer_von_mises(x, list(x))
    assert cvm.statistic == pytest.approx(0.0, abs=1e-12)
    assert cvm.p_value is not None and cvm.p_value >= 0.99
    if len(x) >= 2:
        ad = anderson_darling(x, list(x))
        assert ad.p_value is not None and ad.p_value >= 0.25  # SciPy caps the AD p-value at 0.25


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))), st.integers(1, 5))
def test_identical_proportions_show_no_difference(successes_n: tuple[int, int], c: int) -> None:
    k, n = successes_n
    z = z_test_proportions(k, n, c * k, c * n)
    assert z.statistic == pytest.approx(0.0, abs=1e-9)
    assert z.p_value == pytest.approx(1.0, abs=1e-9)
    assert fisher_exact(k, n, k, n).p_value == pytest.approx(1.0, abs=1e-9)
