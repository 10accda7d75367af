"""Multiple-comparison corrections for a family of drift tests.

A model with 50 monitored features tested at ``alpha = 0.05`` raises about 2.5
false drift alarms per window even when nothing changed. The corrections here
take the p-values of one window (one per feature, or per feature and test) and
return, for each, whether it is rejected at family level ``alpha`` and its
adjusted p-value (reject iff ``adjusted <= alpha``):

* :func:`benjamini_hochberg` — controls the false discovery rate (the expected
  share of false alarms among the alarms) for independent or positively
  dependent tests; the usual choice for drift dashboards.
* :func:`holm` — controls the family-wise error rate (probability of any false
  alarm) under any dependence; uniformly more powerful than Bonferroni.
* :func:`bonferroni` — FWER control, simplest and most conservative.

All functions accept any sequence of floats in [0, 1] (``None`` is rejected:
drop distance-only results first), keep the input order, and return two arrays
of the input's length (empty in, empty out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from sustain.indicators.stats._validate import FloatArray, check_p_values, check_probability

BoolArray = npt.NDArray[np.bool_]
Method = Literal["bh", "bonferroni", "holm", "none"]


def _finish(adjusted: FloatArray, alpha: float) -> tuple[BoolArray, FloatArray]:
    adjusted = np.minimum(adjusted, 1.0)
    return adjusted <= alpha, adjusted


def _in_rank_order(p: FloatArray, adjust_sorted: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """``adjust_sorted`` applied to ``p`` in ascending order (ties kept stable), returned in ``p``'s order."""
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(p.size, dtype=np.float64)
    adjusted[order] = adjust_sorted(p[order])
    return adjusted


def benjamini_hochberg(p_values: Sequence[float] | FloatArray, alpha: float) -> tuple[BoolArray, FloatArray]:
    """Benjamini–Hochberg step-up procedure.

    The adjusted p-value of the ``i``-th smallest of ``m`` p-values is
    ``min_{j >= i} p_(j) * m / j`` (capped at 1), identical to
    ``scipy.stats.false_discovery_control(p, method="bh")``. Rejecting
    ``adjusted <= alpha`` is the BH procedure at FDR level ``alpha``.

    >>> rejected, adjusted = benjamini_hochberg([0.001, 0.008, 0.039, 0.041, 0.6], alpha=0.05)
    >>> rejected.tolist()
    [True, True, False, False, False]
    >>> adjusted.round(5).tolist()
    [0.005, 0.02, 0.05125, 0.05125, 0.6]
    """
    p = check_p_values(p_values)
    a = check_probability("alpha", alpha, closed_right=True)
    m = p.size

    def step_up(ranked: FloatArray) -> FloatArray:
        scaled = ranked * (m / np.arange(1, m + 1))  # m / i >= 1, so adjusted >= p exactly (as SciPy)
        stepped: FloatArray = np.minimum.accumulate(scaled[::-1])[::-1]
        return stepped

    return _finish(_in_rank_order(p, step_up), a)


def bonferroni(p_values: Sequence[float] | FloatArray, alpha: float) -> tuple[BoolArray, FloatArray]:
    """Bonferroni correction: adjusted ``min(1, p * m)``; controls the family-wise error rate.

    >>> rejected, adjusted = bonferroni([0.001, 0.008, 0.039, 0.041, 0.6], alpha=0.05)
    >>> rejected.tolist()
    [True, True, False, False, False]
    >>> adjusted.round(4).tolist()
    [0.005, 0.04, 0.195, 0.205, 1.0]
    """
    p = check_p_values(p_values)
    a = check_probability("alpha", alpha, closed_right=True)
    return _finish(p * p.size, a)


def holm(p_values: Sequence[float] | FloatArray, alpha: float) -> tuple[BoolArray, FloatArray]:
    """Holm–Bonferroni step-down procedure; controls the family-wise error rate.

    The adjusted p-value of the ``i``-th smallest is
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``. Never rejects less than
    :func:`bonferroni`.

    >>> rejected, adjusted = holm([0.001, 0.008, 0.039, 0.041, 0.6], alpha=0.05)
    >>> rejected.tolist()
    [True, True, False, False, False]
    >>> adjusted.round(4).tolist()
    [0.005, 0.032, 0.117, 0.117, 0.6]
    """
    p = check_p_values(p_values)
    a = check_probability("alpha", alpha, closed_right=True)
    m = p.size

    def step_down(ranked: FloatArray) -> FloatArray:
        stepped: FloatArray = np.maximum.accumulate(np.minimum(ranked * (m - np.arange(m)), 1.0))
        return stepped

    return _finish(_in_rank_order(p, step_down), a)


def adjust(p_values: Sequence[float] | FloatArray, alpha: float, method: Method = "bh") -> tuple[BoolArray, FloatArray]:
    """Dispatch to :func:`benjamini_hochberg` (``"bh"``), :func:`bonferroni`, :func:`holm` or ``"none"``.

    ``"none"`` returns the p-values unchanged and rejects ``p <= alpha``.

    >>> rejected, adjusted = adjust([0.01, 0.02, 0.5], alpha=0.05, method="none")
    >>> rejected.tolist(), adjusted.tolist()
    ([True, True, False], [0.01, 0.02, 0.5])
    >>> adjust([0.01, 0.02, 0.5], alpha=0.05, method="holm")[0].tolist()
    [True, True, False]
    """
    if method == "bh":
        return benjamini_hochberg(p_values, alpha)
    if method == "bonferroni":
        return bonferroni(p_values, alpha)
    if method == "holm":
        return holm(p_values, alpha)
    if method == "none":
        p = check_p_values(p_values)
        return _finish(p.copy(), check_probability("alpha", alpha, closed_right=True))
    raise ValueError(f"method must be one of 'bh', 'bonferroni', 'holm', 'none', got {method!r}.")
