"""Regression label metrics: scikit-learn as the oracle (to 1e-9), edge windows, errors and properties."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from sustain.indicators.metrics import MAPE_EPS, regression_metrics

REL = 1e-9


def sklearn_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
        "mape": skm.mean_absolute_percentage_error(y_true, y_pred),
        "r2": skm.r2_score(y_true, y_pred),
        "bias": float(np.mean(y_pred - y_true)),
    }


def assert_matches(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    ours = regression_metrics(y_true, y_pred)
    assert ours["n"] == len(y_true)
    for key, want in sklearn_metrics(y_true, y_pred).items():
        assert ours[key] == pytest.approx(want, rel=REL, abs=1e-12), key
    return ours


def _data(seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2000))
    if kind == "normal":
        y = rng.normal(50.0, 20.0, n)
        return y, y + rng.normal(1.0, 5.0, n)
    if kind == "zeros":  # MAPE divides by eps where y_true == 0
        y = rng.poisson(2.0, n).astype(float)
        return y, np.maximum(y + rng.normal(0.0, 1.0, n), 0.0)
    if kind == "large":
        y = rng.lognormal(10.0, 2.0, n)
        return y, y * rng.lognormal(0.0, 0.3, n)
    if kind == "bad_model":  # worse than predicting the mean: negative R²
        y = rng.normal(0.0, 1.0, n)
        return y, rng.normal(3.0, 2.0, n)
    y = rng.integers(-3, 4, n).astype(float)  # "integers"
    return y, y + rng.integers(-1, 2, n)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["normal", "zeros", "large", "bad_model", "integers"])
def test_matches_sklearn(seed: int, kind: str) -> None:
    y, pred = _data(seed, kind)
    assert_matches(y, pred)


def test_mape_uses_the_machine_epsilon_where_the_truth_is_zero() -> None:
    ours = assert_matches(np.array([0.0, 2.0]), np.array([1.0, 3.0]))
    assert ours["mape"] == pytest.approx((1.0 / MAPE_EPS + 0.5) / 2, rel=REL)


@pytest.mark.parametrize(("n", "value"), [(2, 3.0), (3, -1.5), (5, 0.0), (4, 0.5), (3, 1e6)])
def test_constant_truth_follows_sklearn_force_finite(n: int, value: float) -> None:
    """Perfect predictions of a constant truth: R² 1; any error: R² 0 (scikit-learn's force_finite)."""
    y = np.full(n, value)
    assert assert_matches(y, y.copy())["r2"] == 1.0
    assert assert_matches(y, y + np.arange(n))["r2"] == 0.0


def test_constant_truth_with_an_inexact_mean_is_constant_here() -> None:
    """The one deliberate difference: scikit-learn sees SS_tot = 3e-33 (not 0) for [0.1, 0.1, 0.1], whose floating
    mean is not exactly 0.1, and returns about -1.7e31; a window of equal values is constant here, so R² is 0."""
    y = np.full(3, 0.1)
    pred = np.array([0.1, 0.1, 0.2])
    assert skm.r2_score(y, pred) < -1e30
    assert regression_metrics(y, pred)["r2"] == 0.0
    assert regression_metrics(y, y)["r2"] == 1.0


def test_tiny_and_empty_windows() -> None:
    one = regression_metrics([2.0], [3.5])
    assert one == {"n": 1, "mae": 1.5, "rmse": 1.5, "mape": 0.75, "r2": None, "bias": 1.5}
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(skm.r2_score([2.0], [3.5]))
    assert_matches(np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    assert_matches(np.array([1.0, 2.0, 4.0]), np.array([0.5, 2.5, 3.0]))
    empty = regression_metrics([], [])
    assert empty == {"n": 0, "mae": None, "rmse": None, "mape": None, "r2": None, "bias": None}


def test_bias_sign() -> None:
    assert regression_metrics([1.0, 2.0], [2.0, 3.0])["bias"] == 1.0
    assert regression_metrics([1.0, 2.0], [0.0, 1.0])["bias"] == -1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        ([1.0, 2.0], [1.0], "y_pred has 1 values but y_true has 2"),
        ([1.0, math.nan], [1.0, 2.0], "y_true contains NaN"),
        ([1.0, 2.0], [1.0, math.inf], "y_pred contains NaN or infinite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "y_true must be one-dimensional"),
        (["a", "b"], [1.0, 2.0], "y_true must be a 1-D array of numbers"),
    ],
)
def test_bad_input_raises_a_sentence_naming_the_argument(y_true: Any, y_pred: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        regression_metrics(y_true, y_pred)


# --------------------------------------------------------------------------- properties

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=80, deadline=None)
@given(st.lists(finite, min_size=2, max_size=50))
def test_perfect_predictions_have_r2_one_and_no_error(values: list[float]) -> None:
    m = regression_metrics(values, values)
    assert m["r2"] == 1.0
    assert m["mae"] == m["rmse"] == m["mape"] == m["bias"] == 0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=50))
def test_error_orderings(pairs: list[tuple[float, float]]) -> None:
    y, pred = np.array(pairs).T
    m = regression_metrics(y, pred)
    assert 0.0 <= m["mae"] <= m["rmse"] * (1 + 1e-12) + 1e-12
    assert abs(m["bias"]) <= m["mae"] * (1 + 1e-12) + 1e-12
    assert m["mape"] >= 0.0
    if m["r2"] is not None:
        assert m["r2"] <= 1.0


def test_r2_when_the_spread_of_y_underflows_matches_scikit_learn() -> None:
    """Found by Hypothesis: two distinct values whose squared spread is 0.0 in floating point."""
    from sklearn.metrics import r2_score

    y, pred = np.array([0.0, 2.8618018986328193e-167]), np.array([0.0, 1.0])
    assert regression_metrics(y, pred)["r2"] == r2_score(y, pred) == 0.0
