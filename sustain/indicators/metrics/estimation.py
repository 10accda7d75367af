"""Label-free performance estimation from calibrated class probabilities (the idea of NannyML's CBPE).

When the labels of a window arrive late or never, a classifier whose scores are
*calibrated* probabilities still says what its performance should be: row
``i``'s true label is distributed as ``Categorical(scores[i])``. Under that
model the realised value of any label metric is a random variable whose
distribution depends on the scores only, and :func:`estimate_classification`
returns its mean and a central interval:

1. draw every row's label ``draws`` times — one ``rng.random((draws, n))``
   compared against the cumulative scores of each row (generated in blocks of
   draws for large windows; the stream, and so the answer, is the same);
2. reduce every draw to per-class sufficient statistics (true counts, true
   positives, and the sums of score ranks, ``-log p`` and ``p`` over the rows
   drawn as each class) with array reductions over a ``(draws, n)`` block — a
   loop over classes, none over rows or draws;
3. compute every metric for every draw from those statistics with the same
   kernel :func:`~sustain.indicators.metrics.classification.classification_metrics`
   uses, and summarise: the mean is the estimate, the ``level`` percentile
   interval the range the realised metric should fall in.

Accuracy's expectation is exact (the mean probability of the predicted class)
and is used as its value; its ``std`` is exact too (``sqrt(sum q(1 - q)) / n``
for ``q`` that probability). ROC AUC is computed exactly
for every draw (the scores, hence their ranks, are fixed; a draw only decides
which rows are positive, so its AUC is a rank sum — no expected-AUC
approximation).

The estimate is only as good as the calibration: scores pushed towards 0/1
make it optimistic. :func:`fit_calibrator` learns an isotonic recalibration on a
labelled reference (scikit-learn, imported when called) to apply before
estimating.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sustain.indicators.metrics._common import (
    FloatArray,
    IntArray,
    auc_from_rank_sums,
    average_ranks,
    check_classes,
    check_level,
    check_scores,
    encode,
    label_metric_rows,
    positive_index,
)
from sustain.indicators.metrics.classification import LOG_LOSS_EPS, SCALAR_KEYS

__all__ = ["DEFAULT_ESTIMATED", "ESTIMABLE", "Estimate", "estimate_classification", "fit_calibrator"]

DEFAULT_ESTIMATED = ("accuracy", "precision", "recall", "f1", "f1_macro", "roc_auc")
"""Metrics :func:`estimate_classification` estimates unless told otherwise."""

ESTIMABLE = tuple(k for k in SCALAR_KEYS if k != "n")
"""Every metric name :func:`estimate_classification` accepts (the scalar keys of ``classification_metrics``)."""

_BLOCK = 2_000_000
"""Labels drawn per block (draws × rows): bounds memory at a few tens of MB whatever the window size."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate of a metric and the central ``level`` interval its realised value should fall in.

    >>> Estimate(value=0.8, low=0.76, high=0.84, std=0.02)
    Estimate(value=0.8, low=0.76, high=0.84, std=0.02)
    """

    value: float
    low: float
    high: float
    std: float


def _check_draws(draws: int) -> int:
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}.")
    return int(draws)


def _check_metrics(metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str):
        raise ValueError(f"metrics must be a sequence of metric names, not the single string {metrics!r}.")
    names = list(metrics)
    for name in names:
        if name not in ESTIMABLE:
            raise ValueError(f"metrics contains {name!r}, which is not one of {list(ESTIMABLE)!r}.")
    return names


def _draw_statistics(
    probs: FloatArray, pred: IntArray, extras: dict[str, FloatArray], draws: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
    """Draw every row's label ``draws`` times and reduce each draw to per-class sums.

    Returns the true counts and true positives per draw and class, shape
    ``(draws, k)``, and for every ``(k, n)`` array in ``extras`` the ``(draws, k)``
    sums of ``extras[name][c]`` over the rows drawn as class ``c``. The sums are
    ``einsum`` loops, not BLAS products: a multi-threaded OpenBLAS spends up to 50
    times longer starting threads than multiplying matrices this thin.
    """
    n, k = probs.shape
    cumulative = np.ascontiguousarray(np.cumsum(probs, axis=1)[:, :-1].T)
    predicted = [pred == c for c in range(k)]
    true_sum = np.empty((draws, k), dtype=np.float64)
    tp = np.empty((draws, k), dtype=np.float64)
    sums = {name: np.empty((draws, k), dtype=np.float64) for name in extras}
    block = max(1, _BLOCK // max(n, 1))
    for start in range(0, draws, block):
        stop = min(draws, start + block)
        u = rng.random((stop - start, n))
        labels = np.zeros(u.shape, dtype=np.int16 if k < 2**15 else np.int32)
        for c in range(k - 1):
            labels += u >= cumulative[c]
        for c in range(k):
            hit = labels == c
            true_sum[start:stop, c] = np.count_nonzero(hit, axis=1)
            tp[start:stop, c] = np.count_nonzero(hit & predicted[c], axis=1)
            for name, values in extras.items():
                sums[name][start:stop, c] = np.einsum("dn,n->d", hit, values[c])
    return true_sum, tp, sums


def _summarise(samples: FloatArray, level: float) -> Estimate | None:
    defined = samples[~np.isnan(samples)]
    if defined.size == 0 or 2 * defined.size < samples.size:
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    std = float(np.std(defined, ddof=1)) if defined.size > 1 else 0.0
    return Estimate(value=float(np.mean(defined)), low=float(low), high=float(high), std=std)


def estimate_classification(
    scores: npt.NDArray[np.float64],
    classes: Sequence[str],
    y_pred: Sequence[str] | None = None,
    positive: str | None = None,
    metrics: Sequence[str] = DEFAULT_ESTIMATED,
    draws: int = 400,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate | None]:
    """Estimate label metrics of a window from calibrated class probabilities alone.

    ``scores``, ``classes``, ``y_pred`` and ``positive`` mean what they mean for
    :func:`~sustain.indicators.metrics.classification.classification_metrics`
    (rows are renormalised to sum to exactly 1 before drawing labels). Returns
    ``{metric: Estimate}`` in the order of ``metrics`` (any of :data:`ESTIMABLE`):
    the mean of ``draws`` Monte Carlo realisations of the metric under
    ``label ~ Categorical(scores row)`` and their central ``level`` percentile
    interval. An entry is None when the metric does not apply (``precision``,
    ``recall`` and ``f1`` of a multiclass problem), for an empty window, or when
    it is undefined in more than half the draws (ROC AUC of a window that almost
    surely lacks a class). Accuracy's ``value`` and ``std`` are exact, not Monte
    Carlo. ROC AUC is the exact AUC of every draw (rank sums), not the
    expected-AUC formula. Deterministic for a given ``seed``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(11)
    >>> p = 1.0 / (1.0 + np.exp(-rng.normal(0.0, 2.0, size=500)))
    >>> est = estimate_classification(p, ["no", "yes"], seed=1)
    >>> acc = est["accuracy"]
    >>> round(acc.value, 3), round(acc.low, 3), round(acc.high, 3)
    (0.771, 0.74, 0.802)
    >>> round(est["roc_auc"].value, 3)
    0.854
    """
    names = check_classes(classes)
    k = len(names)
    binary = k == 2
    pos = positive_index(names, positive)
    wanted = _check_metrics(metrics)
    n_draws = _check_draws(draws)
    level = check_level(level)
    probs = check_scores(scores, names, pos, None)
    n = probs.shape[0]
    if y_pred is not None:
        pred = encode("y_pred", y_pred, names)
        if pred.size != n:
            raise ValueError(f"y_pred has {pred.size} labels but scores has {n} rows.")
    else:
        pred = np.argmax(probs, axis=1).astype(np.intp)
    if n == 0:
        return dict.fromkeys(wanted)
    sampling = probs / probs.sum(axis=1, keepdims=True)

    # Row statistics summed per draw over the rows drawn as each class: score ranks (ROC AUC), -log p (log loss), p.
    extras: dict[str, FloatArray] = {}
    if "roc_auc" in wanted:
        extras["rank"] = np.stack([average_ranks(probs[:, c]) for c in range(k)])
    if "log_loss" in wanted:
        extras["neglog"] = np.ascontiguousarray(-np.log(np.clip(probs, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)).T)
    if "brier" in wanted:
        extras["prob"] = np.ascontiguousarray(probs.T)
    true_sum, tp, sums = _draw_statistics(sampling, pred, extras, n_draws, np.random.default_rng(seed))
    pred_sum = np.broadcast_to(np.bincount(pred, minlength=k).astype(np.float64), true_sum.shape)

    samples: dict[str, FloatArray | None] = dict(label_metric_rows(tp, true_sum, pred_sum, pos, binary))
    samples["accuracy"] = tp.sum(axis=1) / n
    if "rank" in sums:
        aucs = auc_from_rank_sums(sums["rank"], true_sum, n)
        samples["roc_auc"] = aucs[:, pos] if binary else np.mean(aucs, axis=1)
    if "neglog" in sums:
        samples["log_loss"] = sums["neglog"].sum(axis=1) / n
    if "prob" in sums and binary:
        p = probs[:, pos]
        samples["brier"] = (float(np.sum(p * p)) - 2.0 * sums["prob"][:, pos] + true_sum[:, pos]) / n
    elif "prob" in sums:
        samples["brier"] = (float(np.sum(probs * probs)) - 2.0 * sums["prob"].sum(axis=1) + n) / n

    result: dict[str, Estimate | None] = {}
    for name in wanted:
        draws_of_metric = samples[name]
        result[name] = None if draws_of_metric is None else _summarise(draws_of_metric, level)
    accuracy = result.get("accuracy")
    if accuracy is not None:
        hit = sampling[np.arange(n), pred]
        value = float(np.mean(hit))
        std = math.sqrt(float(np.sum(hit * (1.0 - hit)))) / n
        result["accuracy"] = Estimate(
            value=value, low=min(accuracy.low, value), high=max(accuracy.high, value), std=std
        )
    return result


def fit_calibrator(
    scores: npt.NDArray[np.float64], labels: Sequence[str], classes: Sequence[str]
) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """Learn an isotonic recalibration of class scores on a labelled reference; returns the mapping.

    Binary problems fit one increasing isotonic regression of "label is the last
    class" on the last class's score, and map new scores to ``[1 - q, q]``.
    Multiclass problems fit one per class (one-vs-rest) and renormalise every
    output row to sum to 1 (a row whose calibrated scores are all 0 keeps its
    input scores). Scores outside the reference's range are clipped to it
    (``IsotonicRegression(out_of_bounds="clip")``). The returned function takes
    scores in any form :func:`estimate_classification` accepts and returns an
    ``n × k`` matrix in ``classes`` order. Imports scikit-learn when called.

    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> truth = rng.uniform(size=2000)
    >>> y = np.where(rng.uniform(size=2000) < truth, "yes", "no")
    >>> overconfident = 1.0 / (1.0 + np.exp(-4.0 * np.log(truth / (1.0 - truth))))
    >>> calibrate = fit_calibrator(overconfident, y, ["no", "yes"])
    >>> fixed = calibrate(np.array([0.01, 0.5, 0.99]))
    >>> fixed.shape, [round(float(v), 1) for v in fixed[:, 1]]
    ((3, 2), [0.2, 0.5, 0.8])
    """
    from sklearn.isotonic import IsotonicRegression

    names = check_classes(classes)
    k = len(names)
    pos = k - 1
    codes = encode("labels", labels, names)
    if codes.size == 0:
        raise ValueError("labels is empty; a calibrator needs a labelled reference.")
    probs = check_scores(scores, names, pos, int(codes.size))
    fitted = [c for c in range(k) if k > 2 or c == pos]
    models = {
        c: IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
            probs[:, c], (codes == c).astype(np.float64)
        )
        for c in fitted
    }

    def calibrate(new_scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        current = check_scores(new_scores, names, pos, None)
        if current.shape[0] == 0:
            return current
        out = np.empty_like(current)
        for c in fitted:
            out[:, c] = np.asarray(models[c].predict(current[:, c]), dtype=np.float64)
        if k == 2:
            out[:, 1 - pos] = 1.0 - out[:, pos]
            return out
        totals = out.sum(axis=1, keepdims=True)
        usable = totals[:, 0] > 0
        out[usable] /= totals[usable]
        out[~usable] = current[~usable]
        return out

    return calibrate
