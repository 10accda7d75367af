"""Argument checks shared by the statistics modules (private).

Every check raises :class:`ValueError` with one sentence that names the offending
argument and says what is wrong with it, so that a message surfacing in an API
response or a log line is actionable without a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def as_float_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    """Return ``values`` as a 1-D float64 array, rejecting other shapes and non-numbers.

    >>> as_float_vector("ref", [1, 2]).dtype
    dtype('float64')
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers ({exc}).") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got an array of shape {arr.shape}.")
    return arr


def check_counts(name: str, counts: npt.ArrayLike) -> FloatArray:
    """Validate one histogram: 1-D, finite, non-negative, with a positive total.

    >>> check_counts("ref_counts", [0, 3, 1]).tolist()
    [0.0, 3.0, 1.0]
    """
    arr = as_float_vector(name, counts)
    if arr.size == 0:
        raise ValueError(f"{name} is empty; a histogram needs at least one bin.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite counts.")
    if np.any(arr < 0):
        raise ValueError(f"{name} contains negative counts.")
    if not arr.sum() > 0:
        raise ValueError(f"{name} sums to zero; a histogram needs at least one observation.")
    return arr


def check_count_pair(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate two histograms over the same bins (same length, at least two bins).

    >>> r, c = check_count_pair([1, 2], [3, 4])
    >>> r.tolist(), c.tolist()
    ([1.0, 2.0], [3.0, 4.0])
    """
    ref = check_counts("ref_counts", ref_counts)
    cur = check_counts("cur_counts", cur_counts)
    if ref.size != cur.size:
        raise ValueError(f"ref_counts and cur_counts must have the same number of bins, got {ref.size} and {cur.size}.")
    if ref.size < 2:
        raise ValueError(f"ref_counts and cur_counts need at least two bins, got {ref.size}.")
    return ref, cur


def check_sample(name: str, sample: npt.ArrayLike) -> FloatArray:
    """Validate one raw sample: 1-D, non-empty, finite (NaNs must be removed by the caller).

    >>> check_sample("cur", [0.5, 1.5]).tolist()
    [0.5, 1.5]
    """
    arr = as_float_vector(name, sample)
    if arr.size == 0:
        raise ValueError(f"{name} is empty; a two-sample test needs at least one observation per sample.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove them before testing.")
    return arr


def check_nonneg_int(name: str, value: object, *, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` if it is an integral number ``>= minimum``.

    >>> check_nonneg_int("ref_n", 10.0, minimum=1)
    10
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got a bool.")
    if isinstance(value, int | np.integer):
        result = int(value)
    elif isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        result = int(value)
    else:
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if result < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {result}.")
    return int(result)


def check_probability(name: str, value: float, *, open_left: bool = True, closed_right: bool = False) -> float:
    """Validate a level such as ``alpha``: finite and inside (0, 1) (or (0, 1] when ``closed_right``).

    >>> check_probability("alpha", 0.05)
    0.05
    """
    v = float(value)
    low_ok = v > 0 if open_left else v >= 0
    high_ok = v <= 1 if closed_right else v < 1
    if not (math.isfinite(v) and low_ok and high_ok):
        bounds = ("(0" if open_left else "[0") + (", 1]" if closed_right else ", 1)")
        raise ValueError(f"{name} must lie in {bounds}, got {value!r}.")
    return v


def check_p_values(p_values: Sequence[float] | FloatArray) -> FloatArray:
    """Validate a family of p-values: no ``None``, no NaN, each in [0, 1]; may be empty.

    >>> check_p_values([0.01, 0.5]).tolist()
    [0.01, 0.5]
    """
    items = list(p_values)
    for i, p in enumerate(items):
        if p is None:
            raise ValueError(f"p_values[{i}] is None; drop tests without a p-value before adjusting.")
    arr = as_float_vector("p_values", items) if items else np.zeros(0, dtype=np.float64)
    if np.any(np.isnan(arr)):
        raise ValueError("p_values contains NaN.")
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError("p_values must all lie in [0, 1].")
    return arr
