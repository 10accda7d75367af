"""The result record shared by every statistical test and distance in this package.

Tests (KS, chi-square, Cramér–von Mises, Anderson–Darling, proportion tests) fill
``p_value``; pure distances that are wrapped into a :class:`TestResult` leave it
``None``. ``n_ref`` and ``n_cur`` are the sample sizes the statistic was computed
from (for histograms: the total counts), so a reader can judge how much evidence
a value carries without access to the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TestResult:
    """Outcome of one two-sample comparison.

    Attributes:
        method: name of the function that produced the result (e.g. ``"ks_2samp"``).
        statistic: the test statistic or distance; its meaning depends on ``method``.
        p_value: the p-value in [0, 1], or ``None`` for a pure distance.
        n_ref: number of reference observations used.
        n_cur: number of current observations used.

    >>> r = TestResult(method="ks_2samp", statistic=0.12, p_value=0.03, n_ref=200, n_cur=150)
    >>> r.p_value < 0.05
    True
    >>> TestResult(method="psi", statistic=0.01, p_value=None, n_ref=10, n_cur=10).p_value is None
    True
    """

    __test__ = False  # the class name starts with "Test"; keep pytest from collecting it

    method: str
    statistic: float
    p_value: float | None
    n_ref: int
    n_cur: int

    def __post_init__(self) -> None:
        if not self.method:
            raise ValueError("method must be a non-empty name.")
        if self.p_value is not None and not (0.0 <= self.p_value <= 1.0):
            raise ValueError(f"p_value must be None or lie in [0, 1], got {self.p_value!r}.")
        if self.n_ref < 0 or self.n_cur < 0:
            raise ValueError(f"n_ref and n_cur must be non-negative, got {self.n_ref} and {self.n_cur}.")
        if math.isnan(self.statistic):
            raise ValueError("statistic must not be NaN.")
