"""Label metrics of a classifier over one window: the numbers scikit-learn would give, in NumPy.

:func:`classification_metrics` takes the true labels, the predicted labels
and/or the class scores of one window and returns every metric at once; each
value equals scikit-learn's on the same data to 1e-9 (the tests use it as the
oracle). The conventions, all scikit-learn's:

* ``classes`` fixes the class set and its order: the columns of ``scores``,
  the rows and columns of the confusion matrix, and the classes averaged over
  by the macro and weighted means — a class absent from the window still
  counts in the macro mean (with precision, recall and F1 of 0).
* Every 0/0 in precision, recall and F1 is 0 (``zero_division=0``).
* ``log_loss`` clips probabilities to ``[eps, 1 - eps]`` with ``eps`` the
  float64 machine epsilon and does not renormalise rows (scikit-learn >= 1.5).
* ``brier`` of a binary problem is the mean squared error of the positive
  probability; of a multiclass problem, the mean over rows of the summed
  squared differences to the one-hot truth (``scale_by_half=False``).
* ``roc_auc`` is None when a class it needs is absent from the window's true
  labels (scikit-learn warns and returns NaN there): the positive or the
  negative class of a binary problem, any class of a multiclass one-vs-rest
  macro average.

Nothing here imports scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sustain.indicators.metrics._common import (
    FloatArray,
    IntArray,
    auc_from_rank_sums,
    average_ranks,
    check_classes,
    check_scores,
    encode,
    label_metric_rows,
    positive_index,
)

__all__ = ["LOG_LOSS_EPS", "classification_metrics", "confusion_matrix"]

LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
"""Probabilities are clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` before the logarithm, as in scikit-learn."""


def confusion_matrix(true_codes: IntArray, pred_codes: IntArray, k: int) -> npt.NDArray[np.int64]:
    """``k × k`` counts of (true, predicted) class codes: rows are true classes, columns predicted ones.

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    counts = np.bincount(true_codes * k + pred_codes, minlength=k * k)
    return counts.astype(np.int64).reshape(k, k)


def _roc_auc(true_codes: IntArray, probs: FloatArray, pos: int, binary: bool) -> float | None:
    n = true_codes.size
    columns = [pos] if binary else list(range(probs.shape[1]))
    aucs = []
    for c in columns:
        is_c = true_codes == c
        n_c = np.array([float(np.count_nonzero(is_c))])
        rank_sum = np.array([float(np.sum(average_ranks(probs[:, c])[is_c]))])
        aucs.append(float(auc_from_rank_sums(rank_sum, n_c, n)[0]))
    value = float(np.mean(aucs))
    return None if np.isnan(value) else value


def _log_loss(true_codes: IntArray, probs: FloatArray) -> float:
    clipped = np.clip(probs[np.arange(true_codes.size), true_codes], LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(np.mean(-np.log(clipped)))


def _brier(true_codes: IntArray, probs: FloatArray, pos: int, binary: bool) -> float:
    if binary:
        return float(np.mean(((true_codes == pos).astype(np.float64) - probs[:, pos]) ** 2))
    onehot = np.zeros_like(probs)
    onehot[np.arange(true_codes.size), true_codes] = 1.0
    return float(np.mean(np.sum((onehot - probs) ** 2, axis=1)))


def _empty(classes: list[str]) -> dict[str, Any]:
    k = len(classes)
    result: dict[str, Any] = dict.fromkeys(_KEYS)
    result["n"] = 0
    result["confusion_matrix"] = [[0] * k for _ in range(k)]
    result["support"] = dict.fromkeys(classes, 0)
    return result


_KEYS = (
    "n",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
    "brier",
    "confusion_matrix",
    "support",
)
# The keys that are single numbers (the rest are the confusion matrix and the support).
SCALAR_KEYS = tuple(k for k in _KEYS if k not in ("confusion_matrix", "support"))


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str] | None,
    scores: npt.NDArray[np.float64] | None,
    classes: Sequence[str],
    positive: str | None = None,
) -> dict[str, Any]:
    """Every label metric of one window of a classifier, equal to scikit-learn's to 1e-9.

    ``scores`` is an ``n × k`` matrix of class probabilities in ``classes`` order;
    a binary problem may pass an ``n × 1`` matrix or a 1-D array of the positive
    class's probability instead. When ``y_pred`` is None the prediction is the
    class of highest score (the first in ``classes`` order on ties, so a binary
    score of exactly 0.5 predicts the first class). ``positive`` (default: the
    last class) is the class of the binary ``precision``, ``recall``, ``f1``,
    ``roc_auc`` and ``brier``.

    Returns a dict with the keys ``n``, ``accuracy``, ``precision``, ``recall``,
    ``f1`` (binary problems only, else None), ``precision_macro``,
    ``recall_macro``, ``f1_macro``, ``precision_weighted``, ``recall_weighted``,
    ``f1_weighted``, ``roc_auc`` (binary: of the positive score; multiclass:
    one-vs-rest macro mean), ``log_loss``, ``brier`` (None without ``scores``),
    ``confusion_matrix`` (list of lists, rows true, columns predicted) and
    ``support`` (``{class: count of true labels}``). A value that cannot be
    computed is None; an empty window has ``n == 0`` and every metric None.

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> p = rng.uniform(size=200)
    >>> y = np.where(rng.uniform(size=200) < p, "churn", "stay")
    >>> m = classification_metrics(y, None, p, classes=["stay", "churn"], positive="churn")
    >>> m["n"], round(m["accuracy"], 3), round(m["roc_auc"], 3), m["support"]
    (200, 0.75, 0.838, {'stay': 98, 'churn': 102})
    >>> m["confusion_matrix"]
    [[71, 27], [23, 79]]
    """
    names = check_classes(classes)
    k = len(names)
    binary = k == 2
    pos = positive_index(names, positive)
    true_codes = encode("y_true", y_true, names)
    n = int(true_codes.size)
    probs = None if scores is None else check_scores(scores, names, pos, n)
    if y_pred is not None:
        pred_codes = encode("y_pred", y_pred, names)
        if pred_codes.size != n:
            raise ValueError(f"y_pred has {pred_codes.size} labels but y_true has {n}.")
    elif probs is not None:
        pred_codes = np.argmax(probs, axis=1).astype(np.intp)
    else:
        raise ValueError("y_pred and scores are both None; pass the predicted labels, the class scores, or both.")
    if n == 0:
        return _empty(names)

    cm = confusion_matrix(true_codes, pred_codes, k)
    tp = np.diag(cm).astype(np.float64)
    true_sum = cm.sum(axis=1).astype(np.float64)
    pred_sum = cm.sum(axis=0).astype(np.float64)
    rows = label_metric_rows(tp, true_sum, pred_sum, pos, binary)

    result: dict[str, Any] = {"n": n, "accuracy": float(np.sum(tp)) / n}
    for key in _KEYS[2:11]:
        value = rows[key]
        result[key] = None if value is None else float(value)
    result["roc_auc"] = None if probs is None else _roc_auc(true_codes, probs, pos, binary)
    result["log_loss"] = None if probs is None else _log_loss(true_codes, probs)
    result["brier"] = None if probs is None else _brier(true_codes, probs, pos, binary)
    result["confusion_matrix"] = cm.tolist()
    result["support"] = {c: int(s) for c, s in zip(names, cm.sum(axis=1), strict=True)}
    return result
