"""1-Wasserstein (earth mover's) distance between two histograms over the same bins.

Binning model
-------------
``edges`` are the ``k - 1`` interior edges of ``k`` right-closed bins
``(-inf, e0], (e0, e1], ..., (e_last, +inf)``. Inside every *interior* bin the
mass is spread uniformly, so each CDF is piecewise linear there and the integral
``W1 = integral |F_ref(x) - F_cur(x)| dx`` is computed exactly (including the
points where the two CDFs cross).

The two *outer* bins are the hard part: they are unbounded and, with quantile
bins, hold the tails, where the mass of a scaled or shifted current sample
piles up. Two tail models are offered:

``tail="exponential"`` (default)
    The mass of an outer bin decays exponentially away from the edge, with the
    scale chosen so that the density at the edge continues the density of the
    adjacent interior bin (scale = outer mass / adjacent density, capped at the
    interior span ``e_last - e0``; the cap is also used when the adjacent bin is
    empty). If ``lo``/``hi`` are given the exponential is truncated there. This
    reproduces normal-like tails closely: with 100 quantile bins of a 100,000-row
    reference the distance is within about 1.5 % of the raw-data value for
    shifted and for rescaled normals, and it barely depends on ``lo``/``hi``, so
    a single outlier in the observed min/max does not move it.

``tail="uniform"``
    The mass of an outer bin is spread uniformly over ``[lo, e0]`` and
    ``[e_last, hi]``; ``lo``/``hi`` default to one inner-bin width beyond the
    outermost edge. Simple, but when ``lo``/``hi`` are the observed extremes the
    tails are smeared far too wide (a 1.5x scale change is overestimated by
    about 45 %), and with the default one-width extrapolation they are too
    narrow (underestimated by about 15 %); use it only when the outer bins are
    known to be narrow.

With exactly two bins there is no interior bin to borrow a density from, so
both outer bins are uniform and ``lo`` and ``hi`` are required.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from sustain.indicators.stats._validate import FloatArray, as_float_vector, check_count_pair

TailModel = Literal["exponential", "uniform"]

_GRID = np.linspace(0.0, 40.0, 1025)  # tail grid in units of the tail scale; exp(-40) is negligible


def abs_integral(x: npt.ArrayLike, d: npt.ArrayLike, exact: npt.ArrayLike | None = None) -> FloatArray:
    """Integral of ``|d|`` given its values at the points ``x``, along the last axis (one value per row).

    Between two points ``d`` is taken as linear, which is exact for the interior
    bins; where the two end values have the same sign, ``exact`` (the signed
    integral of each segment, when known) replaces the linear approximation.
    """
    x, d = np.asarray(x, dtype=float), np.asarray(d, dtype=float)
    width = np.diff(x, axis=-1)
    a, b = d[..., :-1], d[..., 1:]
    s = np.abs(a) + np.abs(b)
    crossing = a * b < 0
    crossing_part = np.divide(a * a + b * b, 2.0 * s, out=np.zeros_like(s), where=crossing)
    same_sign = width * s / 2.0 if exact is None else np.abs(np.asarray(exact, dtype=float))
    result: FloatArray = np.sum(np.where(crossing, width * crossing_part, same_sign), axis=-1)
    return result


def tail_scale(
    mass: npt.ArrayLike, adjacent_mass: npt.ArrayLike, adjacent_width: npt.ArrayLike, cap: float
) -> FloatArray:
    """The exponential scale of an outer bin, element-wise: its density at the edge continues the adjacent
    bin's (``mass * adjacent_width / adjacent_mass``), at most ``cap``; the adjacent width when the outer bin is
    empty, ``cap`` when the adjacent one is."""
    m, adjacent = np.asarray(mass, dtype=float), np.asarray(adjacent_mass, dtype=float)
    width = np.asarray(adjacent_width, dtype=float)
    ratio = np.divide(m * width, adjacent, out=np.full_like(m, cap), where=adjacent > 0)
    result: FloatArray = np.where(m == 0, width, np.minimum(ratio, cap))
    return result


class _Tail:
    """Distribution of the distance ``t >= 0`` beyond an outer edge, for one sample."""

    def __init__(self, mass: float, scale: float, length: float, kind: TailModel) -> None:
        self.mass = mass  # proportion of the sample in the outer bin
        self.scale = scale  # exponential scale (unused for the uniform model)
        self.length = length  # support is [0, length]; may be inf for the exponential model
        # an exponential truncated far inside its scale is uniform to double precision (and the
        # closed forms below would cancel catastrophically)
        self.kind: TailModel = "uniform" if length / scale < 1e-6 else kind

    def survival(self, t: FloatArray) -> FloatArray:
        """P(T > t) for t in [0, length]."""
        if self.length == 0.0:
            return np.zeros_like(t)
        if self.kind == "uniform":
            result: FloatArray = 1.0 - t / self.length
            return result
        if math.isinf(self.length):
            result = np.exp(-t / self.scale)
            return result
        result = np.exp(-t / self.scale) * -np.expm1(-(self.length - t) / self.scale)
        result /= -math.expm1(-self.length / self.scale)
        return result

    def integrated_survival(self, t: FloatArray) -> FloatArray:
        """``integral_0^t P(T > u) du`` (the antiderivative of :meth:`survival`)."""
        if self.length == 0.0:
            return np.zeros_like(t)
        if self.kind == "uniform":
            result: FloatArray = t - t * t / (2.0 * self.length)
            return result
        decay = -self.scale * np.expm1(-t / self.scale)
        if math.isinf(self.length):
            return decay
        floor = math.exp(-self.length / self.scale)
        result = (decay - t * floor) / -math.expm1(-self.length / self.scale)
        return result

    def moments(self) -> tuple[float, float]:
        """``E[T]`` and ``E[T**2]``."""
        length, s = self.length, self.scale
        if self.kind == "uniform":
            return length / 2.0, length * length / 3.0
        if math.isinf(length):
            return s, 2.0 * s * s
        e = math.expm1(min(length / s, 700.0))
        return s - length / e, 2.0 * s * s - (length * length + 2.0 * s * length) / e

    def grid(self) -> FloatArray:
        if self.length == 0.0:
            return np.zeros(1)
        if self.kind == "uniform":
            return np.array([0.0, self.length])
        pts = _GRID * self.scale
        return pts if math.isinf(self.length) else np.append(pts[pts < self.length], self.length)


def _check_edges(edges: npt.ArrayLike, n_bins: int) -> FloatArray:
    e = as_float_vector("edges", edges)
    if e.size != n_bins - 1:
        raise ValueError(f"edges must hold the {n_bins - 1} interior edges of {n_bins} bins, got {e.size} values.")
    if not np.all(np.isfinite(e)):
        raise ValueError("edges contains NaN or infinite values.")
    if np.any(np.diff(e) <= 0):
        raise ValueError("edges must be strictly increasing.")
    return e


def _default_extent(adjacent_edges: FloatArray, tail: TailModel) -> float:
    """Extent of an outer bin without an observed bound: unbounded, or one inner-bin width."""
    return math.inf if tail == "exponential" else float(adjacent_edges[1] - adjacent_edges[0])


def _outer_lengths(e: FloatArray, lo: float | None, hi: float | None, tail: TailModel) -> tuple[float, float]:
    """Extent of the lower and upper outer bins (``inf`` = unbounded exponential tail)."""
    if lo is not None and not (math.isfinite(lo) and lo <= e[0]):
        raise ValueError(f"lo must be finite and at most the first edge {e[0]!r}, got {lo!r}.")
    if hi is not None and not (math.isfinite(hi) and hi >= e[-1]):
        raise ValueError(f"hi must be finite and at least the last edge {e[-1]!r}, got {hi!r}.")
    if e.size == 1 and (lo is None or hi is None):
        raise ValueError("lo and hi are required with only two bins (there is no inner bin width to extrapolate).")
    low = float(e[0] - lo) if lo is not None else _default_extent(e[:2], tail)
    high = float(hi - e[-1]) if hi is not None else _default_extent(e[-2:], tail)
    return low, high


def _tails(p: FloatArray, e: FloatArray, low: float, high: float, tail: TailModel) -> tuple[_Tail, _Tail]:
    """Lower and upper tail models for one sample with proportions ``p``."""
    if e.size == 1 or tail == "uniform":
        return _Tail(float(p[0]), 1.0, low, "uniform"), _Tail(float(p[-1]), 1.0, high, "uniform")
    outer, adjacent = p[[0, -1]], p[[1, -2]]
    low_scale, high_scale = tail_scale(outer, adjacent, [e[1] - e[0], e[-1] - e[-2]], float(e[-1] - e[0])).tolist()
    lower = _Tail(float(p[0]), low_scale, low, "exponential")
    upper = _Tail(float(p[-1]), high_scale, high, "exponential")
    return lower, upper


def exponential_gap(a: npt.ArrayLike, s: npt.ArrayLike, b: npt.ArrayLike, u: npt.ArrayLike) -> FloatArray:
    """``integral_0^inf |a exp(-t/s) - b exp(-t/u)| dt`` for masses ``a, b >= 0`` and scales ``s, u > 0``.

    In closed form, element-wise: the difference of two exponentials changes sign at most once, at
    ``t* = log(b/a) / (1/u - 1/s)``, so the integral is ``|F(t*)| + |F(inf) - F(t*)|`` with ``F`` the
    antiderivative (or ``|F(inf)|`` when there is no sign change).

    >>> float(exponential_gap(1.0, 1.0, 0.0, 1.0)), float(exponential_gap(1.0, 2.0, 1.0, 1.0))
    (1.0, 1.0)
    """
    a, s, b, u = (np.asarray(v, dtype=float) for v in (a, s, b, u))
    total = a * s - b * u
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        root = np.log(b / a) / (1.0 / u - 1.0 / s)
    crosses = (a > 0) & (b > 0) & np.isfinite(root) & (root > 0)
    t = np.where(crosses, root, 0.0)
    before = a * s * -np.expm1(-t / s) - b * u * -np.expm1(-t / u)
    result: FloatArray = np.where(crosses, np.abs(before) + np.abs(total - before), np.abs(total))
    return result


def _exponential_gap_one(a: float, s: float, b: float, u: float) -> float:
    """:func:`exponential_gap` of one pair of tails: the same floating-point operations (NumPy's own ``log`` and
    ``expm1``) on floats instead of 0-d arrays, the same number in a fifth of the time."""
    total = a * s - b * u
    t = 0.0
    try:
        if a > 0 and b > 0:
            root = float(np.log(b / a)) / (1.0 / u - 1.0 / s)
            t = root if math.isfinite(root) and root > 0 else 0.0
    except ZeroDivisionError:  # NumPy would give an infinity or NaN there: no crossing
        t = 0.0
    if t == 0.0:
        return abs(total)
    before = a * s * -float(np.expm1(-t / s)) - b * u * -float(np.expm1(-t / u))
    return abs(before) + abs(total - before)


def _tail_distance(ref: _Tail, cur: _Tail) -> float:
    """``integral |m_ref S_ref(t) - m_cur S_cur(t)| dt`` over one outer bin."""
    if (ref.mass == 0.0 and cur.mass == 0.0) or ref.length == 0.0:
        return 0.0
    unbounded = math.isinf(ref.length) and math.isinf(cur.length)
    if unbounded and ref.kind == "exponential" and cur.kind == "exponential":
        return _exponential_gap_one(ref.mass, ref.scale, cur.mass, cur.scale)
    t = np.union1d(ref.grid(), cur.grid())
    d = ref.mass * ref.survival(t) - cur.mass * cur.survival(t)
    signed = ref.mass * np.diff(ref.integrated_survival(t)) - cur.mass * np.diff(cur.integrated_survival(t))
    return float(abs_integral(t, d, signed))


def _prepare(
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    edges: npt.ArrayLike,
    lo: float | None,
    hi: float | None,
    tail: TailModel,
) -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
    if tail not in ("exponential", "uniform"):
        raise ValueError(f"tail must be 'exponential' or 'uniform', got {tail!r}.")
    ref, cur = check_count_pair(ref_counts, cur_counts)
    e = _check_edges(edges, ref.size)
    low, high = _outer_lengths(e, lo, hi, tail)
    return ref / ref.sum(), cur / cur.sum(), e, low, high


def wasserstein_binned(
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    edges: npt.ArrayLike,
    lo: float | None = None,
    hi: float | None = None,
    *,
    tail: TailModel = "exponential",
) -> float:
    """1-Wasserstein distance between two histograms, in the units of the data.

    ``edges`` are the ``len(counts) - 1`` interior edges of right-closed bins;
    ``lo``/``hi`` (optional) are the observed minimum and maximum, which close
    the outer bins. Mass is uniform within interior bins; see the module
    docstring for the ``tail`` models of the two outer bins. Symmetric in
    ``ref``/``cur`` and 0 for identical proportions.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref, cur = rng.normal(0.0, 1.0, 20_000), rng.normal(0.5, 1.0, 20_000)
    >>> edges = np.quantile(ref, np.linspace(0, 1, 21)[1:-1])
    >>> ref_counts = np.bincount(np.searchsorted(edges, ref), minlength=20)
    >>> cur_counts = np.bincount(np.searchsorted(edges, cur), minlength=20)
    >>> round(wasserstein_binned(ref_counts, cur_counts, edges), 2)
    0.5
    """
    return _w1(*_prepare(ref_counts, cur_counts, edges, lo, hi, tail), tail)


def _w1(
    p: FloatArray,
    q: FloatArray,
    e: FloatArray,
    low: float,
    high: float,
    tail: TailModel,
    ref_tails: tuple[_Tail, _Tail] | None = None,
) -> float:
    """W1 between proportions ``p`` and ``q`` over checked edges and outer-bin extents (``ref_tails``: ``p``'s,
    when already known)."""
    interior = float(abs_integral(e, np.cumsum(p - q)[:-1]))
    ref_lower, ref_upper = _tails(p, e, low, high, tail) if ref_tails is None else ref_tails
    cur_lower, cur_upper = _tails(q, e, low, high, tail)
    return interior + _tail_distance(ref_lower, cur_lower) + _tail_distance(ref_upper, cur_upper)


def _binned_std(p: FloatArray, e: FloatArray, low: float, high: float, tail: TailModel) -> float:
    """Standard deviation (ddof=0) of the distribution the binning model assigns to ``p``."""
    center = float(e[0] + e[-1]) / 2.0
    x = e - center
    lower, upper = _tails(p, e, low, high, tail)
    lo_t1, lo_t2 = lower.moments()
    hi_t1, hi_t2 = upper.moments()
    mid, width, inner = (x[1:] + x[:-1]) / 2.0, np.diff(x), p[1:-1]
    mean = float(np.sum(inner * mid)) + lower.mass * (x[0] - lo_t1) + upper.mass * (x[-1] + hi_t1)
    second = float(np.sum(inner * (mid * mid + width * width / 12.0)))
    second += lower.mass * (x[0] ** 2 - 2.0 * x[0] * lo_t1 + lo_t2)
    second += upper.mass * (x[-1] ** 2 + 2.0 * x[-1] * hi_t1 + hi_t2)
    return math.sqrt(max(second - mean * mean, 0.0))


def wasserstein_normed(
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    edges: npt.ArrayLike,
    lo: float | None = None,
    hi: float | None = None,
    ref_std: float | None = None,
    *,
    tail: TailModel = "exponential",
) -> float:
    """:func:`wasserstein_binned` divided by the reference standard deviation (unit-free).

    Mirrors Evidently's "normed Wasserstein" (``W1(ref, cur) / std(ref)``, with
    the population standard deviation). Pass ``ref_std`` when the exact value is
    known (e.g. from streaming moments); otherwise it is estimated from the
    reference bins with the same binning model as the distance. A value of 0.1
    means the current distribution moved by about a tenth of a reference
    standard deviation.

    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> ref, cur = rng.normal(0.0, 2.0, 20_000), rng.normal(1.0, 2.0, 20_000)
    >>> edges = np.quantile(ref, np.linspace(0, 1, 21)[1:-1])
    >>> ref_counts = np.bincount(np.searchsorted(edges, ref), minlength=20)
    >>> cur_counts = np.bincount(np.searchsorted(edges, cur), minlength=20)
    >>> round(wasserstein_normed(ref_counts, cur_counts, edges), 2)
    0.5
    """
    p, q, e, low, high = _prepare(ref_counts, cur_counts, edges, lo, hi, tail)
    if ref_std is None:
        std = _binned_std(p, e, low, high, tail)
        if not std > 0:
            raise ValueError("ref_counts has zero estimated standard deviation; pass ref_std explicitly.")
    else:
        std = float(ref_std)
        if not (math.isfinite(std) and std > 0):
            raise ValueError(f"ref_std must be positive and finite, got {ref_std!r}.")
    return _w1(p, q, e, low, high, tail) / std
