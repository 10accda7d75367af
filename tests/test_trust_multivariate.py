"""``multivariate_drift`` keeps its false-alarm budget over reference draws, not only for one lucky reference.

Issue 10, defect 6: the window's mean reconstruction error was z-tested against the held-out reference rows'
mean as if that mean were known exactly; undrifted windows alerted 3% of the time at alpha 1%, between 0 and 6%
depending on the reference drawn.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sustain.indicators.multivariate import reconstruction_drift

COV = np.array(
    [
        [1.0, 0.8, 0.3, 0.0],
        [0.8, 1.0, 0.2, 0.1],
        [0.3, 0.2, 1.0, 0.5],
        [0.0, 0.1, 0.5, 1.0],
    ]
)


def _draw(rng: np.random.Generator, n: int, cov: np.ndarray = COV) -> np.ndarray:
    return rng.multivariate_normal(np.zeros(4), cov, size=n)


@pytest.mark.parametrize("window", [200, 2000])
def test_undrifted_windows_alert_at_most_alpha_over_reference_draws(window: int) -> None:
    rng = np.random.default_rng(window)
    alpha, references, windows, alerts = 0.01, 40, 25, 0
    for _ in range(references):
        reference = _draw(rng, 5000)  # the profile's bounded sample
        for _ in range(windows):
            found = reconstruction_drift(reference, _draw(rng, window), 0.65, alpha, 0.0, rng)
            alerts += found.p_value < alpha
    trials = references * windows
    assert stats.binom.sf(alerts - 1, trials, alpha) > 0.001, f"{alerts} of {trials}"


def test_a_broken_correlation_is_still_found() -> None:
    rng = np.random.default_rng(3)
    flipped = COV.copy()
    flipped[0, 1] = flipped[1, 0] = -0.8
    found = reconstruction_drift(_draw(rng, 5000), _draw(rng, 1000, flipped), 0.65, 0.01, 0.05, rng)
    assert found.p_value < 1e-6 and found.value > 0.3
