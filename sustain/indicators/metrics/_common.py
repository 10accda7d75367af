"""Argument checks and kernels shared by the label-metric modules (private).

Every check raises :class:`ValueError` with one sentence that names the offending
argument, in the style of :mod:`sustain.indicators.stats._validate`.

The kernels work on stacks: :func:`label_metric_rows` takes per-class counts of
shape ``(..., k)``, so :mod:`.classification` (one window, shape ``(k,)``) and
:mod:`.estimation` (one row per Monte Carlo draw, shape ``(draws, k)``) share a
single definition of precision, recall and F1 — including scikit-learn's
``zero_division=0`` convention — and cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

ROW_SUM_ATOL = 1e-3
"""How far a row of class scores may sum from 1 (absolute): enough for probabilities logged with four decimals."""


def check_classes(classes: Sequence[str]) -> list[str]:
    """Return ``classes`` as a list after checking there are at least two and no repeats.

    >>> check_classes(("no", "yes"))
    ['no', 'yes']
    """
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of class names, not the single string {classes!r}.")
    result = list(classes)
    if len(result) < 2:
        raise ValueError(f"classes must name at least two classes, got {result!r}.")
    if len(set(result)) != len(result):
        raise ValueError(f"classes must not repeat a class, got {result!r}.")
    return result


def positive_index(classes: Sequence[str], positive: str | None) -> int:
    """Column of the positive class: ``positive`` if given, otherwise the last class.

    >>> positive_index(["no", "yes"], None), positive_index(["no", "yes"], "no")
    (1, 0)
    """
    if positive is None:
        return len(classes) - 1
    for i, c in enumerate(classes):
        if c == positive:
            return i
    raise ValueError(f"positive is {positive!r}, which is not one of classes {list(classes)!r}.")


def encode(name: str, values: Sequence[str], classes: Sequence[str]) -> IntArray:
    """Map labels to their column in ``classes``; an unknown label is an error.

    >>> encode("y_true", ["b", "a", "b"], ["a", "b"]).tolist()
    [1, 0, 1]
    """
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of labels, not the single string {values!r}.")
    index = {c: i for i, c in enumerate(classes)}
    try:
        codes = [index[v] for v in values]
    except KeyError as exc:
        raise ValueError(f"{name} contains {exc.args[0]!r}, which is not one of classes {list(classes)!r}.") from None
    except TypeError as exc:
        raise ValueError(f"{name} must hold hashable labels ({exc}).") from None
    return np.asarray(codes, dtype=np.intp)


def check_scores(scores: npt.ArrayLike, classes: Sequence[str], pos: int, n: int | None) -> FloatArray:
    """Validate class scores and return them as an ``n × k`` matrix in ``classes`` order.

    A binary problem may pass a 1-D array (or an ``n × 1`` matrix) of the positive
    class's probability; the other column is ``1 - p``. Scores must be finite and
    in [0, 1], and an ``n × k`` matrix must have rows summing to 1 within
    :data:`ROW_SUM_ATOL` (rows are *not* renormalised: log loss and Brier score use
    them as given, as scikit-learn does). ``n``, when given, is the required number
    of rows.

    >>> check_scores([0.25, 0.5], ["no", "yes"], 1, 2).tolist()
    [[0.75, 0.25], [0.5, 0.5]]
    """
    k = len(classes)
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be an array of numbers ({exc}).") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 1 and arr.size == 0:
        arr = np.zeros((0, k), dtype=np.float64)
    if arr.ndim == 1 and k != 2:
        raise ValueError(f"scores is one-dimensional, which only a binary problem allows; pass an n × {k} matrix.")
    if arr.ndim == 2 and arr.shape[1] != k:
        raise ValueError(f"scores has {arr.shape[1]} columns but classes names {k} classes.")
    if arr.ndim not in (1, 2):
        raise ValueError(f"scores must be an n × k matrix, got an array of shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"scores has {arr.shape[0]} rows but y_true has {n} labels.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("scores contains NaN or infinite values.")
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError("scores must all lie in [0, 1]; pass probabilities, not raw decision values.")
    if arr.ndim == 1:
        full = np.empty((arr.size, 2), dtype=np.float64)
        full[:, pos] = arr
        full[:, 1 - pos] = 1.0 - arr
        return full
    worst = float(np.max(np.abs(arr.sum(axis=1) - 1.0))) if arr.shape[0] else 0.0
    if worst > ROW_SUM_ATOL:
        raise ValueError(f"scores rows must each sum to 1 (within {ROW_SUM_ATOL}); one is off by {worst:.3g}.")
    return arr


def check_level(level: float) -> float:
    """Validate a confidence level: finite and strictly inside (0, 1).

    >>> check_level(0.95)
    0.95
    """
    v = float(level)
    if not (math.isfinite(v) and 0 < v < 1):
        raise ValueError(f"level must lie in (0, 1), got {level!r}.")
    return v


def average_ranks(x: FloatArray) -> FloatArray:
    """1-based ranks of ``x`` with ties sharing their mean rank (``scipy.stats.rankdata`` in NumPy).

    >>> average_ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    n = x.size
    ranks = np.empty(n, dtype=np.float64)
    if n == 0:
        return ranks
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts_group = np.empty(n, dtype=bool)
    starts_group[0] = True
    starts_group[1:] = xs[1:] != xs[:-1]
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], n)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(starts_group) - 1]
    return ranks


def auc_from_rank_sums(rank_sum: FloatArray, n_pos: FloatArray, n: int) -> FloatArray:
    """ROC AUC from the rank sum of the positives (Mann–Whitney U over ``n_pos * n_neg``), NaN if one class is empty.

    Equals the trapezoidal area under scikit-learn's ROC curve: tied scores count
    one half.

    >>> auc_from_rank_sums(np.array([7.0]), np.array([2.0]), 4).tolist()
    [1.0]
    """
    n_neg = n - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    denominator = np.where(defined, n_pos * n_neg, 1.0)
    auc: FloatArray = np.where(defined, (rank_sum - n_pos * (n_pos + 1) / 2.0) / denominator, np.nan)
    return auc


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator`` with 0 where the denominator is 0 (scikit-learn's ``zero_division=0``)."""
    safe = np.where(denominator == 0, 1.0, denominator)
    result: FloatArray = np.where(denominator == 0, 0.0, numerator / safe)
    return result


def label_metric_rows(
    tp: FloatArray, true_sum: FloatArray, pred_sum: FloatArray, pos: int, binary: bool
) -> dict[str, FloatArray | None]:
    """Precision, recall and F1 (positive class, macro, weighted) from per-class counts of shape ``(..., k)``.

    F1 is ``2 tp / (true + predicted)`` as in scikit-learn, not the harmonic mean
    of the rounded precision and recall; every 0/0 is 0. The binary entries
    (``precision``, ``recall``, ``f1``) are None for more than two classes.

    >>> rows = label_metric_rows(np.array([3.0, 1.0]), np.array([4.0, 1.0]), np.array([3.0, 2.0]), 1, True)
    >>> [round(float(rows[key]), 4) for key in ("precision", "recall", "f1", "f1_macro")]
    [0.5, 1.0, 0.6667, 0.7619]
    """
    precision = _divide(tp, pred_sum)
    recall = _divide(tp, true_sum)
    f1 = _divide(2.0 * tp, true_sum + pred_sum)
    total = np.sum(true_sum, axis=-1)
    safe_total = np.where(total == 0, 1.0, total)
    result: dict[str, FloatArray | None] = {
        "precision": precision[..., pos] if binary else None,
        "recall": recall[..., pos] if binary else None,
        "f1": f1[..., pos] if binary else None,
    }
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        result[f"{name}_macro"] = np.mean(values, axis=-1)
        result[f"{name}_weighted"] = np.sum(values * true_sum, axis=-1) / safe_total
    return result
