"""Multiple-comparison corrections: SciPy oracle, reference implementations, error-rate simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sustain.indicators.stats import adjust, benjamini_hochberg, bonferroni, chi_square, holm

ALPHA = 0.05


def _p_value_sets() -> list[np.ndarray]:
    rng = np.random.default_rng(12345)
    return [
        rng.uniform(size=25),
        np.concatenate([rng.uniform(size=20), rng.uniform(0, 1e-4, size=5)]),
        np.array([0.01, 0.01, 0.01, 0.5, 0.5, 0.04]),  # ties
        np.array([0.0, 1.0, 0.0, 0.3]),  # boundary values
        np.array([0.03]),
        rng.beta(0.3, 1.0, size=200),
    ]


P_SETS = _p_value_sets()


def _bh_reference(p: np.ndarray, alpha: float) -> np.ndarray:
    """Textbook step-up: reject the k smallest, k = max{i : p_(i) <= i alpha / m}."""
    m = p.size
    order = np.argsort(p)
    below = np.nonzero(p[order] <= np.arange(1, m + 1) * alpha / m)[0]
    rejected = np.zeros(m, dtype=bool)
    if below.size:
        rejected[order[: below[-1] + 1]] = True
    return rejected


def _holm_reference(p: np.ndarray, alpha: float) -> np.ndarray:
    """Textbook step-down: reject while p_(i) <= alpha / (m - i + 1)."""
    m = p.size
    rejected = np.zeros(m, dtype=bool)
    for i, idx in enumerate(np.argsort(p)):
        if p[idx] > alpha / (m - i):
            break
        rejected[idx] = True
    return rejected


@pytest.mark.parametrize("p", P_SETS)
def test_benjamini_hochberg_matches_scipy_false_discovery_control(p: np.ndarray) -> None:
    rejected, adjusted = benjamini_hochberg(p.tolist(), ALPHA)
    np.testing.assert_allclose(adjusted, stats.false_discovery_control(p, method="bh"), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(rejected, _bh_reference(p, ALPHA))


@pytest.mark.parametrize("p", P_SETS)
def test_holm_and_bonferroni_match_reference_procedures(p: np.ndarray) -> None:
    rejected, adjusted = holm(p, ALPHA)
    np.testing.assert_array_equal(rejected, _holm_reference(p, ALPHA))
    rejected_b, adjusted_b = bonferroni(p, ALPHA)
    np.testing.assert_array_equal(adjusted_b, np.minimum(1.0, p * p.size))
    np.testing.assert_array_equal(rejected_b, p * p.size <= ALPHA)
    # Holm is never less powerful than Bonferroni, BH never less powerful than Holm
    assert np.all(adjusted <= adjusted_b)
    assert np.all(rejected >= rejected_b)
    assert np.all(benjamini_hochberg(p, ALPHA)[0] >= rejected)


def test_adjust_dispatches() -> None:
    p = P_SETS[1]
    for method, function in (("bh", benjamini_hochberg), ("bonferroni", bonferroni), ("holm", holm)):
        for got, want in zip(adjust(p, ALPHA, method), function(p, ALPHA), strict=True):  # type: ignore[arg-type]
            np.testing.assert_array_equal(got, want)
    rejected, adjusted = adjust(p, ALPHA, "none")
    np.testing.assert_array_equal(adjusted, p)
    np.testing.assert_array_equal(rejected, p <= ALPHA)
    with pytest.raises(ValueError, match="method must be one of"):
        adjust(p, ALPHA, "fdr")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["bh", "bonferroni", "holm", "none"])
def test_empty_input_and_bad_input(method: str) -> None:
    rejected, adjusted = adjust([], ALPHA, method)  # type: ignore[arg-type]
    assert rejected.shape == adjusted.shape == (0,)
    assert rejected.dtype == np.bool_
    assert adjusted.dtype == np.float64
    with pytest.raises(ValueError, match=r"p_values\[1\] is None"):
        adjust([0.1, None, 0.3], ALPHA, method)  # type: ignore[arg-type, list-item]
    with pytest.raises(ValueError, match="p_values contains NaN"):
        adjust([0.1, float("nan")], ALPHA, method)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"p_values must all lie in \[0, 1\]"):
        adjust([0.1, 1.5], ALPHA, method)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha must lie in"):
        adjust([0.1], 0.0, method)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), max_size=40),
    st.sampled_from(["bh", "bonferroni", "holm"]),
)
def test_adjusted_p_values_are_valid_monotone_and_order_equivariant(p: list[float], method: str) -> None:
    rejected, adjusted = adjust(p, ALPHA, method)  # type: ignore[arg-type]
    arr = np.asarray(p, dtype=float)
    assert np.all(adjusted >= arr) and np.all(adjusted <= 1.0)
    order = np.argsort(arr, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)
    np.testing.assert_array_equal(rejected, adjusted <= ALPHA)
    perm = np.random.default_rng(len(p)).permutation(len(p))
    rejected_perm, adjusted_perm = adjust(arr[perm], ALPHA, method)  # type: ignore[arg-type]
    np.testing.assert_array_equal(adjusted_perm, adjusted[perm])
    np.testing.assert_array_equal(rejected_perm, rejected[perm])


# --------------------------------------------------------------------------- error rates in simulation

TRIALS = 400
N_NULL, N_DRIFT = 20, 5


@pytest.fixture(scope="module")
def window_p_values() -> np.ndarray:
    """TRIALS x 25 chi-square p-values: 20 undrifted features, then 5 strongly drifted ones
    (10-bin histograms, 500 reference and 500 current rows per feature)."""
    rng = np.random.default_rng(20240601)
    base = np.full(10, 0.1)
    drifted = np.linspace(0.04, 0.16, 10)
    out = np.empty((TRIALS, N_NULL + N_DRIFT))
    for t in range(TRIALS):
        for f in range(N_NULL + N_DRIFT):
            ref = rng.multinomial(500, base)
            cur = rng.multinomial(500, base if f < N_NULL else drifted)
            p = chi_square(ref, cur).p_value
            assert p is not None
            out[t, f] = p
    return out


def test_benjamini_hochberg_controls_fdr_and_finds_the_drifted_features(window_p_values: np.ndarray) -> None:
    """Mean false discovery proportion <= alpha + 3 sqrt(alpha / trials) (FDP is in [0, 1] with mean
    about alpha * 20/25, so its standard deviation is below sqrt(alpha)); >= 95 % of drifted features found."""
    fdp, found = [], []
    for p in window_p_values:
        rejected, _ = benjamini_hochberg(p, ALPHA)
        false = int(rejected[:N_NULL].sum())
        fdp.append(false / max(int(rejected.sum()), 1))
        found.append(rejected[N_NULL:].mean())
    assert np.mean(fdp) <= ALPHA + 3 * math.sqrt(ALPHA / TRIALS), np.mean(fdp)
    assert np.mean(found) >= 0.95, np.mean(found)


@pytest.mark.parametrize("method", ["bonferroni", "holm"])
def test_family_wise_error_rate_is_controlled(window_p_values: np.ndarray, method: str) -> None:
    """P(any of the 20 undrifted features rejected) <= alpha + 3 binomial standard errors (0.05 + 0.033)."""
    any_false = [adjust(p, ALPHA, method)[0][:N_NULL].any() for p in window_p_values]  # type: ignore[arg-type]
    assert np.mean(any_false) <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / TRIALS), np.mean(any_false)


def test_without_correction_false_alarms_are_common(window_p_values: np.ndarray) -> None:
    """Sanity check of the simulation: uncorrected, most windows contain a false alarm (1 - 0.95**20 = 0.64)."""
    any_false = [adjust(p, ALPHA, "none")[0][:N_NULL].any() for p in window_p_values]
    assert np.mean(any_false) > 0.5
