"""Histogram distances and tests: oracles (SciPy, raw data) and properties (hypothesis)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from sustain.indicators.stats import (
    binned_ks,
    chi_square,
    hellinger,
    js_distance,
    kl_divergence,
    psi,
    total_variation,
    wasserstein_binned,
    wasserstein_normed,
)

SEEDS = [0, 1, 2, 3, 4]
REL = 1e-9


def _histograms(seed: int, k: int = 12, zeros: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two count vectors over k bins; with ``zeros`` some bins are empty on one or both sides."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k))
    q = rng.dirichlet(np.ones(k))
    ref = rng.multinomial(int(rng.integers(50, 5000)), p).astype(float)
    cur = rng.multinomial(int(rng.integers(20, 3000)), q).astype(float)
    if zeros:
        ref[0] = 0.0
        cur[1] = 0.0
        ref[2] = cur[2] = 0.0
    return ref, cur


def _quantile_binned(ref: np.ndarray, cur: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = np.quantile(ref, np.arange(1, n_bins) / n_bins)
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n_bins)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=n_bins)
    return ref_counts, cur_counts, edges


# --------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("zeros", [False, True])
def test_js_distance_matches_scipy_jensenshannon(seed: int, zeros: bool) -> None:
    ref, cur = _histograms(seed, zeros=zeros)
    expected = jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
    assert js_distance(ref, cur) == pytest.approx(expected, rel=REL, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_divergence_matches_scipy_entropy_of_floored_proportions(seed: int) -> None:
    ref, cur = _histograms(seed)
    eps = 1e-4
    p = np.maximum(ref / ref.sum(), eps)
    q = np.maximum(cur / cur.sum(), eps)
    assert kl_divergence(ref, cur, eps=eps) == pytest.approx(stats.entropy(q, p), rel=REL)


@pytest.mark.parametrize("seed", SEEDS)
def test_psi_matches_textbook_formula(seed: int) -> None:
    ref, cur = _histograms(seed)
    expected = 0.0
    for r, c in zip(ref / ref.sum(), cur / cur.sum(), strict=True):
        r, c = max(r, 1e-4), max(c, 1e-4)
        expected += (c - r) * math.log(c / r)
    assert psi(ref, cur) == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("seed", SEEDS)
def test_hellinger_and_total_variation_match_alternative_formulas(seed: int) -> None:
    ref, cur = _histograms(seed)
    p, q = ref / ref.sum(), cur / cur.sum()
    assert hellinger(ref, cur) == pytest.approx(math.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))), rel=1e-7)
    assert total_variation(ref, cur) == pytest.approx(np.sum(np.clip(p - q, 0, None)), rel=REL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3, 12])
def test_chi_square_matches_scipy_chi2_contingency(seed: int, k: int) -> None:
    ref, cur = _histograms(seed, k=k, zeros=k > 3)
    keep = (ref > 0) | (cur > 0)
    expected = stats.chi2_contingency(np.stack([ref[keep], cur[keep]]), correction=False)
    res = chi_square(ref, cur)
    assert res.method == "chi_square"
    assert res.statistic == pytest.approx(expected.statistic, rel=REL)
    assert res.p_value == pytest.approx(expected.pvalue, rel=REL)
    assert (res.n_ref, res.n_cur) == (int(ref.sum()), int(cur.sum()))


def test_chi_square_with_a_single_nonempty_bin_is_no_evidence() -> None:
    res = chi_square([0, 7, 0], [0, 3, 0])
    assert (res.statistic, res.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_binned_ks_equals_scipy_asymp_on_discrete_data(seed: int) -> None:
    """When every bin is one distinct value the binned CDF *is* the empirical CDF, so the
    binned test must reproduce ``scipy.stats.ks_2samp(method="asymp")`` on the raw values."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 8, int(rng.integers(5, 400)))
    b = np.minimum(rng.poisson(3.0, int(rng.integers(5, 400))), 7)
    res = binned_ks(np.bincount(a, minlength=8), np.bincount(b, minlength=8))
    expected = stats.ks_2samp(a, b, method="asymp")
    assert res.statistic == pytest.approx(expected.statistic, rel=REL)
    assert res.p_value == pytest.approx(expected.pvalue, rel=REL)


def test_binned_ks_large_samples_use_the_corrected_kolmogorov_limit() -> None:
    """Above n_eff = 2000 the p-value is Stephens' corrected Kolmogorov limit: within 3 % of
    ``kstwo.sf`` for p-values above 1e-4, and fast even for millions of rows."""
    base = np.full(20, 50_000.0)
    for shift in (0.0, 0.0005, 0.001, 0.0015, 0.002):
        cur = base.copy()
        cur[:10] *= 1 + shift
        cur[10:] *= 1 - shift
        res = binned_ks(base, cur)
        n_eff = round(base.sum() * cur.sum() / (base.sum() + cur.sum()))
        root = math.sqrt(n_eff)
        assert res.p_value == pytest.approx(special.kolmogorov((root + 0.12 + 0.11 / root) * res.statistic), rel=1e-12)
    for n_eff, d in [(2001, 0.03), (5000, 0.02), (10_000, 0.012)]:
        root = math.sqrt(n_eff)
        reference = stats.kstwo.sf(d, n_eff)
        assert reference > 1e-4
        assert special.kolmogorov((root + 0.12 + 0.11 / root) * d) == pytest.approx(reference, rel=0.03)
    large = binned_ks(np.full(100, 1e5), np.full(100, 1e5) + np.arange(100))  # ten million values: asymptotic
    assert large.p_value is not None and 0.0 <= large.p_value <= 1.0 and math.isfinite(large.statistic)


# --------------------------------------------------------------------------- binned vs raw data

RAW_CASES = {
    "shift_0.5sd": lambda rng: rng.normal(0.5, 1.0, 100_000),
    "scale_1.5": lambda rng: rng.normal(0.0, 1.5, 100_000),
    "shift_0.1sd": lambda rng: rng.normal(0.1, 1.0, 100_000),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_wasserstein_binned_within_2_percent_of_raw_scipy_value(seed: int, case: str) -> None:
    """100 quantile bins of a 100,000-row N(0, 1) reference vs 100,000 current rows: the binned
    distance (exponential tails, with and without the observed min/max) is within 2 % (relative)
    of ``scipy.stats.wasserstein_distance`` on the raw samples (observed worst case over these
    seeds and cases: 0.7 %). The normed variant is within 2 % of ``W1 / np.std(ref)`` (observed
    worst: 0.9 %)."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0.0, 1.0, 100_000)
    cur = RAW_CASES[case](rng)
    ref_counts, cur_counts, edges = _quantile_binned(ref, cur, 100)
    exact = stats.wasserstein_distance(ref, cur)
    lo, hi = min(ref.min(), cur.min()), max(ref.max(), cur.max())
    assert wasserstein_binned(ref_counts, cur_counts, edges) == pytest.approx(exact, rel=0.02)
    assert wasserstein_binned(ref_counts, cur_counts, edges, lo, hi) == pytest.approx(exact, rel=0.02)
    normed = wasserstein_normed(ref_counts, cur_counts, edges)
    assert normed == pytest.approx(exact / np.std(ref), rel=0.02)
    assert wasserstein_normed(ref_counts, cur_counts, edges, ref_std=float(np.std(ref))) == pytest.approx(
        exact / np.std(ref), rel=0.02
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_binned_ks_within_0_02_of_exact_ks_and_never_above(seed: int, case: str) -> None:
    """With 100 quantile bins the binned D is a lower bound of the exact KS D and within 0.02 of it
    (observed worst gap over these seeds and cases: 0.0008)."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0.0, 1.0, 100_000)
    cur = RAW_CASES[case](rng)[:20_000]
    ref_counts, cur_counts, _ = _quantile_binned(ref, cur, 100)
    exact = stats.ks_2samp(ref, cur, method="asymp").statistic
    binned = binned_ks(ref_counts, cur_counts).statistic
    assert exact - 0.02 <= binned <= exact + 1e-12


def _piecewise_uniform_oracle(p: np.ndarray, q: np.ndarray, bounds: np.ndarray) -> float:
    """W1 between two piecewise-uniform densities, by discretising every bin into 4,000 points."""
    points, wp, wq = [], [], []
    for j in range(p.size):
        x = np.linspace(bounds[j], bounds[j + 1], 4000)
        points.append(x)
        wp.append(np.full(x.size, p[j] / x.size))
        wq.append(np.full(x.size, q[j] / x.size))
    xs = np.concatenate(points)
    return float(stats.wasserstein_distance(xs, xs, np.concatenate(wp), np.concatenate(wq)))


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_tail_model_is_exact_for_piecewise_uniform_data(seed: int) -> None:
    """With ``tail="uniform"`` the model is exact when mass really is uniform within bins
    (tolerance 0.2 %, the discretisation error of the oracle)."""
    ref, cur = _histograms(seed, k=8, zeros=True)
    rng = np.random.default_rng(seed)
    edges = np.cumsum(rng.uniform(0.1, 2.0, 7))
    lo, hi = edges[0] - 1.3, edges[-1] + 0.4
    expected = _piecewise_uniform_oracle(ref / ref.sum(), cur / cur.sum(), np.concatenate([[lo], edges, [hi]]))
    assert wasserstein_binned(ref, cur, edges, lo, hi, tail="uniform") == pytest.approx(expected, rel=2e-3)
    # default bounds for the uniform model: one inner-bin width beyond the outer edges
    lo_d, hi_d = edges[0] - (edges[1] - edges[0]), edges[-1] + (edges[-1] - edges[-2])
    expected_d = _piecewise_uniform_oracle(ref / ref.sum(), cur / cur.sum(), np.concatenate([[lo_d], edges, [hi_d]]))
    assert wasserstein_binned(ref, cur, edges, tail="uniform") == pytest.approx(expected_d, rel=2e-3)


def test_wasserstein_two_bins_uses_lo_and_hi() -> None:
    # all reference mass uniform on [0, 1], all current mass uniform on [1, 3]: W1 = 1.5
    assert wasserstein_binned([5, 0], [0, 5], [1.0], lo=0.0, hi=3.0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="lo and hi are required"):
        wasserstein_binned([5, 0], [0, 5], [1.0])


def test_wasserstein_of_a_pure_location_shift_between_interior_bins() -> None:
    # all mass in interior bin (1, 2] vs interior bin (3, 4]: uniform within bins, W1 = 2
    assert wasserstein_binned([0, 4, 0, 0, 0], [0, 0, 0, 9, 0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(2.0)


def test_exponential_tail_model_closed_forms() -> None:
    """Hand-computed cases of the exponential tail model (see the wasserstein module docstring)."""
    # ref: half its mass uniform on (0, 1], half in the lower tail; the adjacent density is 0.5, so the
    # tail is Exp(scale 0.5 * 1 / 0.5 = 1) below 0. cur: all mass uniform on (0, 1].
    # W1 = integral_{-inf}^0 0.5 e^x dx + integral_0^1 (0.5 - 0.5 x) dx = 0.5 + 0.25
    assert wasserstein_binned([2, 2, 0], [0, 4, 0], [0.0, 1.0]) == pytest.approx(0.75, rel=1e-12)
    # ref = 0.5 (-Exp(1)) + 0.5 U(0, 1): mean -0.25, E[x^2] = 0.5 * 2 + 0.5 / 3
    std = math.sqrt(0.5 * 2.0 + 0.5 / 3.0 - 0.25**2)
    assert wasserstein_normed([2, 2, 0], [0, 4, 0], [0.0, 1.0]) == pytest.approx(0.75 / std, rel=1e-12)
    # cur entirely in the lower tail with an empty adjacent bin: scale = interior span = 1, so cur's mean
    # is -1 (or -(1 - 5 / expm1(5)) when truncated at lo = -5); everything of cur lies below ref's U(0, 1)
    assert wasserstein_binned([0, 2, 0], [3, 0, 0], [0.0, 1.0]) == pytest.approx(1.5, rel=1e-12)
    truncated_mean = 1.0 - 5.0 / math.expm1(5.0)
    assert wasserstein_binned([0, 2, 0], [3, 0, 0], [0.0, 1.0], lo=-5.0) == pytest.approx(0.5 + truncated_mean)
    assert wasserstein_binned([0, 2, 0], [3, 0, 0], [0.0, 1.0], lo=-5.0, tail="uniform") == pytest.approx(3.0)
    # zero-width outer bins (lo, hi on the edges): point masses at the edges
    assert wasserstein_binned([1, 0, 0], [0, 0, 1], [0.0, 1.0], lo=0.0, hi=1.0) == pytest.approx(1.0)


# --------------------------------------------------------------------------- properties

HIST_SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def count_pairs(draw: st.DrawFn, max_bins: int = 25) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, max_bins))
    counts = st.lists(st.integers(0, 5000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0)
    return np.array(draw(counts), dtype=float), np.array(draw(counts), dtype=float)


@st.composite
def binned_with_edges(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref, cur = draw(count_pairs())
    k = ref.size
    if k == 2:
        ref, cur = np.append(ref, 1.0), np.append(cur, 1.0)
        k = 3
    start = draw(st.floats(-100.0, 100.0))
    widths = draw(st.lists(st.floats(0.01, 10.0), min_size=k - 2, max_size=k - 2))
    edges = start + np.concatenate([[0.0], np.cumsum(widths)])
    return ref, cur, edges


DISTANCES = [psi, kl_divergence, js_distance, hellinger, total_variation]


@HIST_SETTINGS
@given(count_pairs())
def test_identical_histograms_have_distance_zero_and_p_value_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, _ = pair
    for distance in DISTANCES:
        assert distance(ref, ref) == 0.0
    assert binned_ks(ref, ref).statistic == 0.0
    assert binned_ks(ref, ref).p_value == 1.0
    assert chi_square(ref, ref).p_value == pytest.approx(1.0, abs=1e-9)
    scaled = chi_square(ref, 3 * ref).p_value
    assert scaled is not None and scaled >= 0.99


@HIST_SETTINGS
@given(binned_with_edges())
def test_identical_histograms_have_wasserstein_zero(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ref, _, edges = data
    assert wasserstein_binned(ref, ref, edges) == 0.0
    assert wasserstein_binned(ref, ref, edges, tail="uniform") == 0.0


@HIST_SETTINGS
@given(count_pairs())
def test_ranges_and_non_negativity(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    assert psi(ref, cur) >= 0.0
    assert kl_divergence(ref, cur) >= 0.0
    for bounded in (js_distance, hellinger, total_variation):
        assert 0.0 <= bounded(ref, cur) <= 1.0
    res = binned_ks(ref, cur)
    assert 0.0 <= res.statistic <= 1.0
    assert res.p_value is not None and 0.0 <= res.p_value <= 1.0


@HIST_SETTINGS
@given(count_pairs())
def test_symmetric_distances(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    for distance in (js_distance, hellinger, total_variation, psi):
        assert distance(ref, cur) == pytest.approx(distance(cur, ref), rel=1e-12, abs=1e-15)


@HIST_SETTINGS
@given(binned_with_edges())
def test_wasserstein_symmetric_and_non_negative(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ref, cur, edges = data
    for tail in ("exponential", "uniform"):
        forward = wasserstein_binned(ref, cur, edges, tail=tail)
        assert forward >= 0.0
        assert forward == pytest.approx(wasserstein_binned(cur, ref, edges, tail=tail), rel=1e-12, abs=1e-15)
    lo, hi = edges[0] - 3.0, edges[-1] + 0.5
    assert wasserstein_binned(ref, cur, edges, lo, hi) == pytest.approx(
        wasserstein_binned(cur, ref, edges, lo, hi), rel=1e-12, abs=1e-15
    )


@HIST_SETTINGS
@given(count_pairs(), st.integers(2, 1000))
def test_scaling_both_histograms_leaves_distances_unchanged(pair: tuple[np.ndarray, np.ndarray], c: int) -> None:
    ref, cur = pair
    for distance in (js_distance, hellinger, psi, total_variation, kl_divergence):
        assert distance(c * ref, c * cur) == pytest.approx(distance(ref, cur), rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    ("ref", "cur", "message"),
    [
        ([], [], "ref_counts is empty"),
        ([1, -1], [1, 1], "ref_counts contains negative counts"),
        ([1, 1], [1, 1, 1], "same number of bins"),
        ([1], [1], "at least two bins"),
        ([0, 0], [1, 1], "ref_counts sums to zero"),
        ([1, 1], [0, 0], "cur_counts sums to zero"),
        ([1, float("nan")], [1, 1], "NaN"),
        ([[1, 1]], [[1, 1]], "one-dimensional"),
        (["a", "b"], [1, 1], "array of numbers"),
    ],
)
def test_bad_counts_raise_value_error_naming_the_argument(ref: Any, cur: Any, message: str) -> None:
    functions: list[Callable[[Any, Any], object]] = [*DISTANCES, binned_ks, chi_square]
    for function in functions:
        with pytest.raises(ValueError, match=message):
            function(ref, cur)


def test_bad_eps_edges_and_bounds() -> None:
    with pytest.raises(ValueError, match="eps"):
        psi([1, 2], [2, 1], eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        kl_divergence([1, 2], [2, 1], eps=float("nan"))
    with pytest.raises(ValueError, match="edges must hold the 2 interior edges"):
        wasserstein_binned([1, 2, 3], [3, 2, 1], [0.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        wasserstein_binned([1, 2, 3], [3, 2, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="edges contains NaN"):
        wasserstein_binned([1, 2, 3], [3, 2, 1], [0.0, float("inf")])
    with pytest.raises(ValueError, match="lo must be"):
        wasserstein_binned([1, 2, 3], [3, 2, 1], [0.0, 1.0], lo=0.5)
    with pytest.raises(ValueError, match="hi must be"):
        wasserstein_binned([1, 2, 3], [3, 2, 1], [0.0, 1.0], hi=0.5)
    with pytest.raises(ValueError, match="tail must be"):
        wasserstein_binned([1, 2, 3], [3, 2, 1], [0.0, 1.0], tail="gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ref_std must be positive"):
        wasserstein_normed([1, 2, 3], [3, 2, 1], [0.0, 1.0], ref_std=0.0)
