"""Pure statistics for drift detection (numpy/scipy only, no I/O).

* :mod:`.binned` — distances and tests between two histograms over the same
  bins (PSI, KL, Jensen–Shannon, Hellinger, total variation, Wasserstein,
  binned KS, chi-square).
* :mod:`.twosample` — exact tests on raw samples and proportions (KS,
  Cramér–von Mises, Anderson–Darling, z-test, Fisher, categorical chi-square).
* :mod:`.calibration` — bootstrap null distributions, calibrated thresholds and
  empirical p-values for histogram distances.
* :mod:`.multiple` — Benjamini–Hochberg, Holm and Bonferroni corrections.

Every test returns a :class:`TestResult`; every distance returns a ``float``.

>>> import numpy as np
>>> from sustain.indicators.stats import calibrate, psi
>>> rng = np.random.default_rng(12345)
>>> ref = rng.multinomial(4000, np.full(8, 0.125))
>>> cur = rng.multinomial(4000, np.full(8, 0.125))
>>> value, cal = calibrate(ref, cur, psi, alpha=0.01)
>>> bool(value > cal.threshold)
False
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustain._lazy import lazy_attributes

if TYPE_CHECKING:
    from sustain.indicators.stats.binned import (
        DEFAULT_EPS,
        binned_ks,
        chi_square,
        hellinger,
        js_distance,
        kl_divergence,
        psi,
        total_variation,
    )
    from sustain.indicators.stats.calibration import (
        Calibration,
        Statistic,
        calibrate,
        calibrated_threshold,
        empirical_p_value,
        null_distribution,
    )
    from sustain.indicators.stats.multiple import adjust, benjamini_hochberg, bonferroni, holm
    from sustain.indicators.stats.results import TestResult
    from sustain.indicators.stats.twosample import (
        anderson_darling,
        chi_square_categories,
        cramer_von_mises,
        fisher_exact,
        ks_2samp,
        z_test_proportions,
    )
    from sustain.indicators.stats.wasserstein import TailModel, wasserstein_binned, wasserstein_normed

# Names load on first use: SciPy (behind the raw-sample tests) costs most of a second to import, and the
# one-shot ``sustain drift`` report needs only the NumPy parts.
_HOME = {
    "DEFAULT_EPS": "binned",
    "binned_ks": "binned",
    "chi_square": "binned",
    "hellinger": "binned",
    "js_distance": "binned",
    "kl_divergence": "binned",
    "psi": "binned",
    "total_variation": "binned",
    "Calibration": "calibration",
    "Statistic": "calibration",
    "calibrate": "calibration",
    "calibrated_threshold": "calibration",
    "empirical_p_value": "calibration",
    "null_distribution": "calibration",
    "adjust": "multiple",
    "benjamini_hochberg": "multiple",
    "bonferroni": "multiple",
    "holm": "multiple",
    "TestResult": "results",
    "anderson_darling": "twosample",
    "chi_square_categories": "twosample",
    "cramer_von_mises": "twosample",
    "fisher_exact": "twosample",
    "ks_2samp": "twosample",
    "z_test_proportions": "twosample",
    "TailModel": "wasserstein",
    "wasserstein_binned": "wasserstein",
    "wasserstein_normed": "wasserstein",
}


__all__ = [
    "DEFAULT_EPS",
    "Calibration",
    "Statistic",
    "TailModel",
    "TestResult",
    "adjust",
    "anderson_darling",
    "benjamini_hochberg",
    "binned_ks",
    "bonferroni",
    "calibrate",
    "calibrated_threshold",
    "chi_square",
    "chi_square_categories",
    "cramer_von_mises",
    "empirical_p_value",
    "fisher_exact",
    "hellinger",
    "holm",
    "js_distance",
    "kl_divergence",
    "ks_2samp",
    "null_distribution",
    "psi",
    "total_variation",
    "wasserstein_binned",
    "wasserstein_normed",
    "z_test_proportions",
]

__getattr__, __dir__ = lazy_attributes(__name__, _HOME, __all__, globals())
