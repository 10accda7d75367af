"""Gamma tails without SciPy: p-values for distances calibrated by a moment-matched gamma.

The bootstrap null of a binned distance is well described by a scaled
chi-square, i.e. a gamma distribution; matching its mean and variance gives
smooth p-values far into the tail (a multiple-comparison correction needs
them) from a few hundred draws. Importing ``scipy.stats`` costs most of a
second, too much for a command that should answer in well under one, so the
regularised incomplete gamma function is computed here (series and continued
fraction, as in Numerical Recipes §6.2), to about 1e-12.

>>> round(gamma_sf(2.0, 1.0, 3.0), 12) == round(math.exp(-3.0) * 4.0, 12)
True
>>> rng = np.random.default_rng(12345)
>>> null = rng.chisquare(9, 2000) / 1000
>>> round(moment_matched_sf(null, 0.009), 1)
0.4
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

_EPS = 1e-15
_TINY = 1e-300


def _lower_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def upper_regularized(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a)."""
    if a <= 0:
        raise ValueError(f"the shape a must be positive, not {a}")
    if x <= 0:
        return 1.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return min(1.0, _upper_fraction(a, x))


def gamma_sf(shape: float, scale: float, x: float) -> float:
    """P(X >= x) for X ~ Gamma(shape, scale)."""
    return upper_regularized(shape, x / scale)


def gamma_isf(shape: float, scale: float, p: float) -> float:
    """The x with P(X >= x) = p (bisection on :func:`gamma_sf`, relative precision 1e-10)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), not {p}")
    lo, hi = 0.0, shape * scale + 10 * math.sqrt(shape) * scale + scale
    while gamma_sf(shape, scale, hi) > p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if gamma_sf(shape, scale, mid) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-10 * hi:
            break
    return (lo + hi) / 2


def null_moments(null: npt.NDArray[np.float64]) -> tuple[float, float]:
    """The mean and the sample variance of null draws (what the moment-matched gamma is fitted to)."""
    mean = float(np.mean(null))
    var = float(np.var(null, ddof=1)) if len(null) > 1 else 0.0
    return mean, var


def _shape_scale(mean: float, var: float) -> tuple[float, float] | None:
    if mean <= 0 or var <= 0:
        return None
    return mean * mean / var, var / mean


def gamma_tail(mean: float, var: float, observed: float) -> float:
    """The tail probability of ``observed`` under the gamma with this mean and variance (a point mass at the
    mean when they do not fit one)."""
    fitted = _shape_scale(mean, var)
    if fitted is None:
        return 1.0 if observed <= mean else 0.0
    return gamma_sf(fitted[0], fitted[1], observed)


def gamma_quantile(mean: float, var: float, p: float) -> float:
    """The value exceeded with probability ``p`` under the gamma with this mean and variance."""
    fitted = _shape_scale(mean, var)
    if fitted is None:
        return mean
    return gamma_isf(fitted[0], fitted[1], p)


# How far below a threshold's floor the tail is read to skip the quantile (see threshold_above): many times the
# quantile's precision (1e-10) and the tail's rounding, a small fraction of the tail's fall over it.
FLOOR_MARGIN = 1e-6


def threshold_above(floor: float, mean: float, var: float, p: float) -> float:
    """``max(floor, gamma_quantile(mean, var, p))``, the same number, without the quantile's bisection (about
    40 tail evaluations) when the tail just below ``floor`` is already at most ``p``: the quantile is then below
    ``floor * (1 - 1e-6)``, and the bisection, which stops within 1e-10 of it, could only come out below ``floor``.

    >>> threshold_above(5.0, 1.0, 0.1, 0.01), threshold_above(0.5, 1.0, 0.1, 0.01) == gamma_quantile(1.0, 0.1, 0.01)
    (5.0, True)
    """
    if gamma_tail(mean, var, floor * (1.0 - FLOOR_MARGIN)) <= p:
        return floor
    return max(floor, gamma_quantile(mean, var, p))


def moment_matched_sf(null: npt.NDArray[np.float64], observed: float) -> float:
    """The tail probability of ``observed`` under a gamma fitted to the ``null`` draws by their moments."""
    return gamma_tail(*null_moments(null), observed)


def moment_matched_isf(null: npt.NDArray[np.float64], p: float) -> float:
    """The value exceeded with probability ``p`` under the fitted gamma."""
    return gamma_quantile(*null_moments(null), p)
