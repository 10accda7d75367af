"""Pure label metrics and label-free performance estimation (NumPy only, no I/O).

* :mod:`.classification` — :func:`classification_metrics`: accuracy,
  precision / recall / F1 (positive class, macro, weighted), ROC AUC, log loss,
  Brier score, confusion matrix and support of one window, equal to
  scikit-learn's to 1e-9.
* :mod:`.regression` — :func:`regression_metrics`: MAE, RMSE, MAPE, R² and
  bias of one window, equal to scikit-learn's to 1e-9.
* :mod:`.estimation` — :func:`estimate_classification`: the expected value and
  a percentile interval of those classification metrics computed from
  calibrated class probabilities alone (confidence-based performance
  estimation, for windows whose labels have not arrived), and
  :func:`fit_calibrator` to recalibrate scores on a labelled reference first.

scikit-learn is an oracle in the tests only; :func:`fit_calibrator` imports it
when called (it is in the ``ml`` extra). Nothing here imports SciPy.

Labels are class names (strings); ``classes`` fixes their set and order
everywhere (the columns of ``scores``, the rows and columns of the confusion
matrix). An argument that cannot be used raises :class:`ValueError` with a
sentence naming it. A metric that a window cannot define (ROC AUC without
both classes, R² of one row) is None, never NaN, so results serialise to JSON
as they are.

Estimation is only as good as the calibration of the scores: check it on a
labelled reference, and recalibrate with :func:`fit_calibrator` when the
model is over- or under-confident.

>>> import numpy as np
>>> from sustain.indicators.metrics import classification_metrics, estimate_classification
>>> rng = np.random.default_rng(2024)
>>> logits = rng.normal(size=(1000, 3)) * 2.0
>>> scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
>>> classes = ["cat", "dog", "fox"]
>>> truth = [classes[int(np.searchsorted(np.cumsum(row), rng.uniform()))] for row in scores]
>>> estimated = estimate_classification(scores, classes)["accuracy"]
>>> realised = classification_metrics(truth, None, scores, classes)["accuracy"]
>>> bool(estimated.low <= realised <= estimated.high)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustain._lazy import lazy_attributes

if TYPE_CHECKING:
    from sustain.indicators.metrics._common import ROW_SUM_ATOL
    from sustain.indicators.metrics.classification import LOG_LOSS_EPS, classification_metrics, confusion_matrix
    from sustain.indicators.metrics.estimation import (
        DEFAULT_ESTIMATED,
        ESTIMABLE,
        Estimate,
        calibration_variants,
        estimate_classification,
        fit_calibrator,
        fit_calibrators,
    )
    from sustain.indicators.metrics.regression import MAPE_EPS, regression_metrics

# Names load on first use, as in :mod:`sustain.indicators.stats`: importing the package costs nothing until a
# metric is needed, and scikit-learn is never imported here (only :func:`fit_calibrator` imports it, when called).
_HOME = {
    "ROW_SUM_ATOL": "_common",
    "LOG_LOSS_EPS": "classification",
    "classification_metrics": "classification",
    "confusion_matrix": "classification",
    "DEFAULT_ESTIMATED": "estimation",
    "ESTIMABLE": "estimation",
    "Estimate": "estimation",
    "calibration_variants": "estimation",
    "estimate_classification": "estimation",
    "fit_calibrator": "estimation",
    "fit_calibrators": "estimation",
    "MAPE_EPS": "regression",
    "regression_metrics": "regression",
}


__all__ = [
    "DEFAULT_ESTIMATED",
    "ESTIMABLE",
    "LOG_LOSS_EPS",
    "MAPE_EPS",
    "ROW_SUM_ATOL",
    "Estimate",
    "calibration_variants",
    "classification_metrics",
    "confusion_matrix",
    "estimate_classification",
    "fit_calibrator",
    "fit_calibrators",
    "regression_metrics",
]

__getattr__, __dir__ = lazy_attributes(__name__, _HOME, __all__, globals())
