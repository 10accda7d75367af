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

__all__ = [
    "DEFAULT_ESTIMATED",
    "ESTIMABLE",
    "Estimate",
    "calibration_variants",
    "estimate_classification",
    "fit_calibrator",
    "fit_calibrators",
]

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
    probabilities: npt.NDArray[np.float64] | Sequence[npt.NDArray[np.float64]] | None = None,
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

    ``probabilities`` separates the two roles of the scores: labels are drawn from these calibrated
    probabilities, while every draw's metrics are computed on ``scores``, the model's own outputs, as the
    realised metrics will be (ranks for ROC AUC, log loss, Brier score, the argmax prediction). Give several
    matrices (:func:`calibration_variants` of :func:`fit_calibrators`: calibrators fitted on bootstrap
    resamples of the labelled reference) and the draws are split evenly among them, so the interval also
    covers the calibration's own uncertainty. Without it the scores are taken as calibrated.

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
    if isinstance(probabilities, np.ndarray):
        probabilities = [probabilities]
    variants = [probs] if not probabilities else [check_scores(v, names, pos, n) for v in probabilities]
    if y_pred is not None:
        pred = encode("y_pred", y_pred, names)
        if pred.size != n:
            raise ValueError(f"y_pred has {pred.size} labels but scores has {n} rows.")
    else:
        pred = np.argmax(probs, axis=1).astype(np.intp)
    if n == 0:
        return dict.fromkeys(wanted)

    # Row statistics summed per draw over the rows drawn as each class, on the scores the realised metrics will use:
    # score ranks (ROC AUC), -log p (log loss), p (Brier).
    extras: dict[str, FloatArray] = {}
    if "roc_auc" in wanted:
        extras["rank"] = np.stack([average_ranks(probs[:, c]) for c in range(k)])
    if "log_loss" in wanted:
        extras["neglog"] = np.ascontiguousarray(-np.log(np.clip(probs, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)).T)
    if "brier" in wanted:
        extras["prob"] = np.ascontiguousarray(probs.T)
    # The draws are split evenly among the variants (bootstrapped calibrations): their spread joins the interval.
    rng = np.random.default_rng(seed)
    shares = [n_draws // len(variants) + (i < n_draws % len(variants)) for i in range(len(variants))]
    parts = [
        _draw_statistics(v / v.sum(axis=1, keepdims=True), pred, extras, share, rng)
        for v, share in zip(variants, shares, strict=True)
        if share
    ]
    true_sum = np.concatenate([part[0] for part in parts])
    tp = np.concatenate([part[1] for part in parts])
    sums = {name: np.concatenate([part[2][name] for part in parts]) for name in extras}
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
        hits = [(v / v.sum(axis=1, keepdims=True))[np.arange(n), pred] for v in variants]
        value = float(np.mean([np.mean(hit) for hit in hits]))
        exact = math.sqrt(float(np.sum(hits[0] * (1.0 - hits[0])))) / n
        std = exact if len(variants) == 1 else accuracy.std  # with calibrators to vary, the draws' spread
        result["accuracy"] = Estimate(
            value=value, low=min(accuracy.low, value), high=max(accuracy.high, value), std=std
        )
    return result


def fit_calibrator(
    scores: npt.NDArray[np.float64], labels: Sequence[str], classes: Sequence[str]
) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """Learn an isotonic recalibration of class scores on a labelled reference; returns the mapping.

    Binary problems fit one increasing isotonic regression of "label is the last
    class" on the last class's score, and map new scores to ``[1 - q, q]``. The
    fitted steps are joined linearly between their centres, so the map keeps the
    order of scores within a step.
    Multiclass problems fit one per class (one-vs-rest) and renormalise every
    output row to sum to 1 (a row whose calibrated scores are all 0 keeps its
    input scores). Scores beyond the outermost step centres map to the outermost
    steps' values. The returned function takes
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
    curves = {c: _isotonic_curve(IsotonicRegression, probs[:, c], (codes == c).astype(np.float64)) for c in fitted}

    def calibrate(new_scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        current = check_scores(new_scores, names, pos, None)
        if current.shape[0] == 0:
            return current
        out = np.empty_like(current)
        for c in fitted:
            out[:, c] = np.interp(current[:, c], *curves[c])
        if k == 2:
            out[:, 1 - pos] = 1.0 - out[:, pos]
            return out
        totals = out.sum(axis=1, keepdims=True)
        usable = totals[:, 0] > 0
        out[usable] /= totals[usable]
        out[~usable] = current[~usable]
        return out

    return calibrate


def _isotonic_curve(isotonic: type, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The isotonic fit of ``y`` on ``x`` as a piecewise-linear curve through the centre (mean score) of each of
    its constant blocks: still monotone and as well calibrated, but scores inside a block keep their order. A
    step function would tie them, and the AUC of the labels drawn from it would understate the model's."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    fitted = np.asarray(isotonic(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x, y).predict(xs), dtype=np.float64)
    starts = np.flatnonzero(np.concatenate(([True], fitted[1:] != fitted[:-1])))
    sizes = np.diff(np.append(starts, xs.size))
    centres = np.add.reduceat(xs, starts) / sizes
    return centres, fitted[starts]


def fit_calibrators(
    scores: npt.NDArray[np.float64],
    labels: Sequence[str],
    classes: Sequence[str],
    bootstraps: int = 20,
    seed: int = 0,
) -> list[Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]:
    """:func:`fit_calibrator` on all the labelled rows, then on each of ``bootstraps`` resamples of them (with
    replacement): the spread of the resampled calibrators is the calibration's own uncertainty, which
    :func:`calibration_variants` turns into ``probabilities`` for :func:`estimate_classification`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> truth = rng.uniform(size=3000)
    >>> y = np.where(rng.uniform(size=3000) < truth, "yes", "no")
    >>> calibrators = fit_calibrators(truth, y, ["no", "yes"], bootstraps=5)
    >>> len(calibrators), calibrators[0](np.array([0.5])).shape
    (6, (1, 2))
    """
    rows = len(labels)
    matrix = np.asarray(scores, dtype=np.float64)
    out = [fit_calibrator(matrix, labels, classes)]
    rng = np.random.default_rng(seed)
    for _ in range(max(0, bootstraps)):
        take = rng.integers(0, rows, rows)
        out.append(fit_calibrator(matrix[take], [labels[i] for i in take], classes))
    return out


def calibration_variants(
    calibrators: Sequence[Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]],
    scores: npt.NDArray[np.float64],
) -> list[npt.NDArray[np.float64]]:
    """Calibrated probabilities of ``scores`` under each resampled calibrator of :func:`fit_calibrators`,
    re-centred on the calibrator fitted on all rows (rows clipped to [0, 1] and renormalised): the resamples'
    spread at the full fit's level. A calibrator fitted on a resample, with its repeated rows, is a little more
    confident than the full fit, which would bias the estimate. One calibrator alone gives its own output.
    """
    if len(calibrators) == 1:
        return [calibrators[0](scores)]
    full = calibrators[0](scores)
    resampled = [calibrate(scores) for calibrate in calibrators[1:]]
    centre = np.mean(resampled, axis=0)
    variants = []
    for matrix in resampled:
        shifted = np.clip(full + matrix - centre, 0.0, 1.0)
        totals = shifted.sum(axis=1, keepdims=True)
        variants.append(np.where(totals > 0, shifted / np.where(totals > 0, totals, 1.0), full))
    return variants
