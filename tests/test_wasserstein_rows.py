"""The normed Wasserstein distance over many draws at once equals the one-pair function, and calibrates faster."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sustain.indicators.decide import distance_function
from sustain.indicators.stats.calibration import null_distribution
from sustain.indicators.stats.wasserstein import exponential_gap, wasserstein_normed
from sustain.indicators.stats.wasserstein_rows import NormedWasserstein


@settings(max_examples=60, deadline=None)
@given(
    bins=st.integers(3, 40),
    draws=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    empty_tails=st.booleans(),
)
def test_rows_equal_the_one_pair_function(bins, draws, seed, empty_tails) -> None:
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.uniform(-10, 10, bins - 1))
    edges = edges[np.concatenate(([True], np.diff(edges) > 1e-6))]
    if edges.size < 2:
        return
    k = edges.size + 1
    ref = rng.multinomial(rng.integers(50, 5000), rng.dirichlet(np.ones(k)), size=draws).astype(float)
    cur = rng.multinomial(rng.integers(50, 5000), rng.dirichlet(np.ones(k)), size=draws).astype(float)
    if empty_tails:  # outer or adjacent bins empty: the scale falls back to a width or the cap
        ref[:, 0] = 0
        cur[:, -2:] = 0
        cur[:, 1] += 1
    statistic = NormedWasserstein(edges)
    expected = [wasserstein_normed(r, c, edges) for r, c in zip(ref, cur, strict=True)]
    assert statistic.rows(ref, cur) == pytest.approx(expected, rel=1e-10, abs=1e-13)
    assert statistic(ref[0], cur[0]) == expected[0]


def test_calibration_uses_the_rows_and_matches_the_loop() -> None:
    rng = np.random.default_rng(3)
    edges = np.quantile(rng.normal(size=50_000), np.linspace(0, 1, 21)[1:-1])
    ref_counts = np.bincount(np.searchsorted(edges, rng.normal(size=50_000)), minlength=20)
    statistic = distance_function("wasserstein", edges.tolist())
    assert isinstance(statistic, NormedWasserstein)

    def one_by_one(r, c):  # the same function without ``rows``: the calibration loops
        return statistic(r, c)

    fast = null_distribution(ref_counts, n_cur=10_000, statistic=statistic, draws=400, seed=5)
    slow = null_distribution(ref_counts, n_cur=10_000, statistic=one_by_one, draws=400, seed=5)
    assert fast == pytest.approx(slow, rel=1e-10)


@settings(max_examples=80, deadline=None)
@given(
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    s=st.floats(1e-3, 1e3),
    u=st.floats(1e-3, 1e3),
)
@example(a=0.0, b=1.8044005440908855e-11, s=1.0, u=801.0)  # quad warned here once
@example(a=6.836694599308769e-270, b=1.0, s=458.0, u=454.0)  # quad missed all the mass here once
def test_exponential_gap_equals_numerical_integration(a, b, s, u) -> None:
    """The closed form against scipy's adaptive quadrature, split at the sign change so quad sees no kink."""
    from scipy import integrate

    def gap(t: float) -> float:
        return abs(a * np.exp(-t / s) - b * np.exp(-t / u))

    # Split at the sign change, and where each exponential has all but e^-50 of its mass, so quad never looks for
    # the mass near 0 inside an interval millions of scales wide (a = 6.8e-270 puts the sign change at 3e7).
    splits = {0.0, 50.0 * s, 50.0 * u}
    if a > 0 and b > 0 and s != u:
        root = np.log(b / a) / (1 / u - 1 / s)
        if 0 < root < np.inf:
            splits.add(float(root))
    points = [*sorted(splits), np.inf]
    with warnings.catch_warnings():  # quad doubts itself on tiny integrands (b = 1.8e-11); its error bound stays
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        parts = [integrate.quad(gap, lo, hi, limit=200) for lo, hi in itertools.pairwise(points)]
    numeric, error = sum(p[0] for p in parts), sum(p[1] for p in parts)
    assert float(exponential_gap(a, s, b, u)) == pytest.approx(numeric, rel=1e-7, abs=2 * error + 1e-15)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="at least two interior edges"):
        NormedWasserstein([0.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        NormedWasserstein([1.0, 0.0])
    with pytest.raises(ValueError, match="3 columns"):
        NormedWasserstein([0.0, 1.0]).rows(np.ones((2, 4)), np.ones((2, 4)))


@settings(max_examples=40, deadline=None)
@given(bins=st.integers(3, 40), seed=st.integers(0, 2**32 - 1), empty_tails=st.booleans())
def test_a_remembered_reference_gives_the_one_pair_value_bit_for_bit(bins, seed, empty_tails) -> None:
    """The second and later windows against one reference read its remembered side: the same float as
    :func:`wasserstein_normed` computes from scratch, window after window."""
    rng = np.random.default_rng(seed)
    edges = np.unique(np.round(np.sort(rng.uniform(-10, 10, bins - 1)), 4))
    if edges.size < 2:
        return
    k = edges.size + 1
    ref = rng.multinomial(rng.integers(50, 5000), rng.dirichlet(np.ones(k))).astype(float)
    if empty_tails:
        ref[0] = 0
    for _ in range(4):
        cur = rng.multinomial(rng.integers(1, 3000), rng.dirichlet(np.ones(k))).astype(float)
        if empty_tails:
            cur[-2:] = 0
            cur[1] += 1
        # a fresh instance each time, as the drift indicator makes one per column and window
        assert NormedWasserstein(edges)(ref.copy(), cur) == wasserstein_normed(ref, cur, edges)


def test_a_remembered_reference_still_rejects_a_bad_window_with_the_same_message() -> None:
    edges = np.array([-1.0, 0.0, 1.0])
    ref = np.array([10.0, 20.0, 30.0, 40.0])
    statistic = NormedWasserstein(edges)
    assert statistic(ref, np.array([1.0, 2.0, 3.0, 4.0])) == wasserstein_normed(ref, [1.0, 2.0, 3.0, 4.0], edges)
    for bad in ([1.0, 2.0, 3.0], [1.0, np.nan, 3.0, 4.0], [1.0, -2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]):
        with pytest.raises(ValueError) as direct:
            wasserstein_normed(ref, bad, edges)
        with pytest.raises(ValueError) as remembered:
            statistic(ref, bad)
        assert str(remembered.value) == str(direct.value)
    constant = np.array([0.0, 50.0, 0.0, 0.0])  # all in one inner bin: the binned deviation is not zero
    point = np.array([100.0, 0.0, 0.0, 0.0])  # all in an outer bin with an empty neighbour
    for reference in (constant, point):
        try:
            expected: float | str = wasserstein_normed(reference, ref, edges)
        except ValueError as exc:
            expected = str(exc)
        for _ in range(2):
            try:
                got: float | str = statistic(reference, ref)
            except ValueError as exc:
                got = str(exc)
            assert got == expected


def test_the_one_pair_exponential_gap_is_the_array_one_bit_for_bit() -> None:
    """Random masses (zeros among them) and scales over twelve orders of magnitude, half of them crossing."""
    from sustain.indicators.stats.wasserstein import _exponential_gap_one

    rng = np.random.default_rng(11)
    masses = np.where(rng.random((5000, 2)) < 0.1, 0.0, rng.random((5000, 2)))
    scales = 10 ** rng.uniform(-6, 6, (5000, 2))
    scales[::50, 1] = scales[::50, 0]  # equal scales: no sign change
    expected = exponential_gap(masses[:, 0], scales[:, 0], masses[:, 1], scales[:, 1])
    got = [_exponential_gap_one(a, s, b, u) for (a, b), (s, u) in zip(masses.tolist(), scales.tolist(), strict=True)]
    assert got == expected.tolist()
