"""Bootstrap calibration: false-alarm rate, power, p-value behaviour, fast paths and speed."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from sustain.indicators.stats import (
    Calibration,
    calibrate,
    calibrated_threshold,
    empirical_p_value,
    hellinger,
    js_distance,
    kl_divergence,
    null_distribution,
    psi,
    total_variation,
)
from sustain.indicators.stats import calibration as calibration_module

FAST = [psi, js_distance, hellinger, kl_divergence, total_variation]
ALPHA = 0.05
TRIALS = 400
DRAWS = 200
N_BINS = 20
EDGES = stats.norm.ppf(np.arange(1, N_BINS) / N_BINS)  # 20 equiprobable bins of N(0, 1)


def _bin_probabilities(shift: float) -> np.ndarray:
    cdf = np.concatenate([[0.0], stats.norm.cdf(EDGES - shift), [1.0]])
    return np.diff(cdf)


def _margin(alpha: float, trials: int) -> float:
    """Three binomial standard errors of an observed rate whose true value is ``alpha``."""
    return 3.0 * math.sqrt(alpha * (1.0 - alpha) / trials)


# --------------------------------------------------------------------------- null distribution


@pytest.mark.parametrize("statistic", FAST, ids=lambda f: f.__name__)
def test_vectorised_fast_path_equals_calling_the_statistic_per_draw(statistic: Callable[..., float]) -> None:
    rng = np.random.default_rng(12345)
    ref = rng.multinomial(3000, rng.dirichlet(np.ones(30)))
    ref[:3] = 0  # empty bins exercise the pseudo-count and the eps floor
    fast = null_distribution(ref, 800, statistic, draws=300, seed=3)
    slow = null_distribution(ref, 800, lambda r, c: statistic(r, c), draws=300, seed=3)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-15)


def test_fast_path_evaluates_all_draws_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def spy(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        shapes.append((r.shape, c.shape))
        return np.zeros(r.shape[0])

    monkeypatch.setitem(calibration_module._VECTORISED, psi, spy)
    null_distribution(np.ones(100), 5000, psi, draws=1000)
    assert shapes == [((1000, 100), (1000, 100))]


def test_null_distribution_is_reproducible_and_uses_the_given_sizes() -> None:
    ref = np.array([500, 300, 200, 0])
    a = null_distribution(ref, 100, psi, draws=50, seed=9)
    b = null_distribution(ref, 100, psi, draws=50, seed=9)
    c = null_distribution(ref, 100, psi, draws=50, seed=10)
    assert a.shape == (50,)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    totals: list[tuple[float, float]] = []

    def record(r: np.ndarray, cur: np.ndarray) -> float:
        totals.append((float(r.sum()), float(cur.sum())))
        return 0.0

    null_distribution(ref, 100, record, draws=5, n_ref=77)
    assert totals == [(77.0, 100.0)] * 5


def test_pseudo_count_makes_unseen_bins_possible() -> None:
    seen: list[np.ndarray] = []

    def record(r: np.ndarray, c: np.ndarray) -> float:
        seen.append(c)
        return 0.0

    null_distribution([100, 100, 0, 100, 100, 100, 100, 100, 100, 100], 20_000, record, draws=20)
    # p_hat(empty bin) = 0.05 / 900.05, so about 1.1 expected current rows per draw
    assert sum(int(c[2]) for c in seen) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ref_counts": [], "n_cur": 10}, "ref_counts is empty"),
        ({"ref_counts": [5], "n_cur": 10}, "at least two bins"),
        ({"ref_counts": [5, -1], "n_cur": 10}, "negative"),
        ({"ref_counts": [5, 5], "n_cur": 0}, "n_cur must be at least 1"),
        ({"ref_counts": [5, 5], "n_cur": 10, "draws": 0}, "draws must be at least 1"),
        ({"ref_counts": [5, 5], "n_cur": 10, "n_ref": 2.5}, "n_ref must be an integer"),
    ],
)
def test_null_distribution_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        null_distribution(statistic=psi, **kwargs)  # type: ignore[arg-type]


def test_threshold_and_p_value_definitions() -> None:
    null = np.random.default_rng(12345).normal(size=499)
    assert calibrated_threshold(null, 0.05) == np.quantile(null, 0.95, method="higher")
    observed = float(np.sort(null)[-10])
    assert empirical_p_value(null, observed) == (1 + 10) / 500
    assert empirical_p_value(null, 1e9) == 1 / 500
    assert empirical_p_value(null, -1e9) == 1.0
    for alpha in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="alpha must lie in"):
            calibrated_threshold(null, alpha)
    with pytest.raises(ValueError, match="null is empty"):
        calibrated_threshold([], 0.05)
    with pytest.raises(ValueError, match="null contains NaN"):
        empirical_p_value([0.1, float("nan")], 0.2)
    with pytest.raises(ValueError, match="observed must not be NaN"):
        empirical_p_value([0.1, 0.2], float("nan"))


def test_calibrate_combines_the_pieces() -> None:
    rng = np.random.default_rng(12345)
    ref = rng.multinomial(4000, _bin_probabilities(0.0))
    cur = rng.multinomial(1000, _bin_probabilities(0.0))
    observed, cal = calibrate(ref, cur, js_distance, alpha=0.01, draws=300, seed=4)
    null = null_distribution(ref, 1000, js_distance, draws=300, seed=4)
    assert observed == js_distance(ref, cur)
    assert cal == Calibration(
        threshold=calibrated_threshold(null, 0.01), p_value=empirical_p_value(null, observed), draws=300
    )
    with pytest.raises(ValueError, match="alpha must lie in"):
        calibrate(ref, cur, js_distance, alpha=1.5)


# --------------------------------------------------------------------------- statistical behaviour


@pytest.fixture(scope="module")
def null_trials() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per statistic: alarms and p-values over TRIALS undrifted windows (current ~ reference distribution)."""
    rng = np.random.default_rng(20240601)
    p = _bin_probabilities(0.0)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for statistic in (psi, js_distance):
        alarms, p_values = np.zeros(TRIALS, dtype=bool), np.zeros(TRIALS)
        for t in range(TRIALS):
            ref = rng.multinomial(2000, p)
            cur = rng.multinomial(500, p)
            null = null_distribution(ref, 500, statistic, draws=DRAWS, seed=t)
            value = statistic(ref, cur)
            alarms[t] = value > calibrated_threshold(null, ALPHA)
            p_values[t] = empirical_p_value(null, value)
        out[statistic.__name__] = (alarms, p_values)
    return out


@pytest.mark.parametrize("name", ["psi", "js_distance"])
def test_false_alarm_rate_is_at_most_alpha_plus_binomial_margin(
    null_trials: dict[str, tuple[np.ndarray, np.ndarray]], name: str
) -> None:
    """400 undrifted windows (2,000 reference rows, 500 current rows, 20 bins, 200 draws):
    the alarm rate of ``value > threshold`` stays below alpha + 3 binomial standard errors
    (0.05 + 0.033)."""
    alarms, _ = null_trials[name]
    assert alarms.mean() <= ALPHA + _margin(ALPHA, TRIALS), alarms.mean()


@pytest.mark.parametrize("name", ["psi", "js_distance"])
def test_p_value_is_roughly_uniform_under_no_drift(
    null_trials: dict[str, tuple[np.ndarray, np.ndarray]], name: str
) -> None:
    """Mean in [0.4, 0.6] (uniform: 0.5 +- 0.014 s.e.) and P(p <= 0.1) at most 0.1 + margin."""
    _, p_values = null_trials[name]
    assert 0.4 <= p_values.mean() <= 0.6, p_values.mean()
    assert (p_values <= 0.1).mean() <= 0.1 + _margin(0.1, TRIALS)


@pytest.mark.parametrize("statistic", [psi, js_distance], ids=lambda f: f.__name__)
def test_power_against_a_0_2_sd_mean_shift(statistic: Callable[..., float]) -> None:
    """0.2-sd shift, 5,000 reference and 5,000 current rows over 20 bins: alarms in >= 95 % of 100 trials."""
    rng = np.random.default_rng(7)
    p0, p1 = _bin_probabilities(0.0), _bin_probabilities(0.2)
    trials, hits = 100, 0
    for t in range(trials):
        ref = rng.multinomial(5000, p0)
        cur = rng.multinomial(5000, p1)
        value, cal = calibrate(ref, cur, statistic, alpha=ALPHA, draws=DRAWS, seed=t)
        hits += value > cal.threshold
    assert hits / trials >= 0.95
