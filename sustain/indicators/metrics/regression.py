"""Label metrics of a regressor over one window: the numbers scikit-learn would give, in NumPy.

:func:`regression_metrics` returns the count, MAE, RMSE, MAPE, R² and bias of
one window. The definitions follow scikit-learn (the tests use it as the
oracle, to 1e-9):

* ``mae`` — ``mean(|y_pred - y_true|)`` (``mean_absolute_error``).
* ``rmse`` — ``sqrt(mean((y_true - y_pred)²))`` (``root_mean_squared_error``).
* ``mape`` — ``mean(|y_pred - y_true| / max(|y_true|, eps))`` with ``eps`` the
  float64 machine epsilon (``mean_absolute_percentage_error``): a fraction, not
  a percentage, and enormous (about 4.5e15 per unit of error) where
  ``y_true == 0``.
* ``r2`` — ``1 - SS_res / SS_tot`` (``r2_score`` with its default
  ``force_finite=True``): a constant ``y_true`` gives 1.0 for perfect
  predictions and 0.0 otherwise instead of NaN / -inf; fewer than two rows
  give None (scikit-learn warns and returns NaN).
* ``bias`` — ``mean(y_pred - y_true)``: positive when the model over-predicts.

One deliberate difference: scikit-learn decides that ``y_true`` is constant by
testing ``SS_tot == 0`` after subtracting a floating-point mean, so a column
such as ``[0.1, 0.1, 0.1]`` (whose computed mean is not exactly 0.1) gets an
R² of about -1.7e31 there. Here a window whose ``y_true`` values are all equal
is constant, whatever their value; every other window gets scikit-learn's
number.

Nothing here imports scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sustain.indicators.metrics._common import FloatArray
from sustain.indicators.stats._validate import as_float_vector

__all__ = ["MAPE_EPS", "regression_metrics"]

MAPE_EPS = float(np.finfo(np.float64).eps)
"""Floor on ``|y_true|`` in the MAPE denominator, as in scikit-learn."""

_KEYS = ("n", "mae", "rmse", "mape", "r2", "bias")


def _as_values(name: str, values: npt.ArrayLike) -> FloatArray:
    arr = as_float_vector(name, values)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; drop those rows first.")
    return arr


def _r2(y_true: FloatArray, y_pred: FloatArray) -> float | None:
    """scikit-learn's ``r2_score`` (``force_finite=True``) with an exact test for a constant ``y_true``."""
    if y_true.size < 2:
        return None
    numerator = float(np.sum((y_true - y_pred) ** 2))
    if numerator == 0.0:
        return 1.0
    if np.all(y_true == y_true[0]):
        return 0.0
    denominator = float(np.sum((y_true - np.mean(y_true)) ** 2))
    if denominator == 0.0:  # distinct values whose squared spread underflows: as constant, like scikit-learn
        return 0.0
    return 1.0 - numerator / denominator


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, Any]:
    """Count, MAE, RMSE, MAPE, R² and bias of one window, equal to scikit-learn's to 1e-9.

    Both arguments are 1-D arrays of finite numbers of the same length. Returns
    a dict with the keys ``n``, ``mae``, ``rmse``, ``mape``, ``r2`` and ``bias``
    (see the module docstring for the definitions); an empty window has
    ``n == 0`` and every metric None, and a one-row window has ``r2`` None.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> y = rng.normal(100.0, 15.0, size=500)
    >>> pred = y + rng.normal(2.0, 5.0, size=500)
    >>> m = regression_metrics(y, pred)
    >>> m["n"], round(m["mae"], 2), round(m["rmse"], 2), round(m["r2"], 3), round(m["bias"], 2)
    (500, 4.39, 5.48, 0.867, 2.11)
    """
    truth = _as_values("y_true", y_true)
    pred = _as_values("y_pred", y_pred)
    if truth.size != pred.size:
        raise ValueError(f"y_pred has {pred.size} values but y_true has {truth.size}.")
    n = int(truth.size)
    if n == 0:
        result: dict[str, Any] = dict.fromkeys(_KEYS)
        result["n"] = 0
        return result
    error = pred - truth
    absolute = np.abs(error)
    return {
        "n": n,
        "mae": float(np.mean(absolute)),
        "rmse": float(np.sqrt(np.mean((truth - pred) ** 2))),
        "mape": float(np.mean(absolute / np.maximum(np.abs(truth), MAPE_EPS))),
        "r2": _r2(truth, pred),
        "bias": float(np.mean(error)),
    }
