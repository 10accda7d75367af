"""Quantile bin edges that are always strictly increasing: one definition for the profile, the engine and the
one-shot report.

The edges are NumPy's default (linear) quantiles of the values, but computed as ``a + (b - a) * w`` between the
two order statistics ``a <= b`` around each quantile and clipped into ``[a, b]``: with ``a == b`` that is
exactly ``a``, whereas ``a * (1 - w) + b * w`` can land a hair below it (``0.01`` became
``0.009999999999999998``), which left edges out of order and bin counts negative. Clipped that way the edges
never decrease; equal edges (ties in the data) are then merged, so a value repeated across several quantiles
becomes one bin. With at most ``bins`` distinct values every value gets its own bin; a constant gets its own
bin between one below it and one above it, so a change either way shows. Pure NumPy.

>>> scores = np.r_[0.0, np.full(20, 0.01), np.round(np.arange(2, 101) * 0.01, 2)]  # rounded model scores
>>> edges = quantile_edges(scores, 20)
>>> edges[:2].tolist(), len(edges), bool(np.all(np.diff(edges) > 0))  # the tied 0.01 quantiles: one edge
([0.01, 0.048...], 17, True)
>>> quantile_edges(np.array([3.0, 1.0, 2.0, 2.0]), 5).tolist()
[1.0, 2.0]
>>> quantile_edges(np.full(10, 4.0), 5).tolist()
[3.9999999999999996, 4.0]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def distinct_sorted(ordered: FloatArray) -> FloatArray:
    """The distinct values of a sorted array (``np.unique`` would sort again, and imports ``numpy.ma``)."""
    if ordered.size == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def quantile_edges(values: FloatArray, bins: int) -> FloatArray:
    """The interior edges of at most ``bins`` right-closed quantile bins of ``values`` (no NaN), strictly
    increasing and finite (empty only without a finite value); one bin per value when there are at most
    ``bins`` distinct values."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    ordered = ordered[np.isfinite(ordered)]
    if ordered.size == 0:
        return np.empty(0, dtype=np.float64)
    distinct = distinct_sorted(ordered)
    if distinct.size == 1:  # a constant: its own bin, with one below and one above it
        return np.array([np.nextafter(distinct[0], -np.inf), distinct[0]])
    if distinct.size <= bins:
        return distinct[:-1].copy()
    positions = np.arange(1, bins) / bins * (ordered.size - 1)
    below = np.floor(positions).astype(np.intp)
    above = np.minimum(below + 1, ordered.size - 1)
    low, high = ordered[below], ordered[above]
    edges = np.clip(low + (high - low) * (positions - below), low, high)
    return distinct_sorted(edges)
