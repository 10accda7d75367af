"""Label-free performance estimation: it must track the realised metric of simulated calibrated classifiers.

The simulations: a calibrated binary classifier (label ~ Bernoulli(score)) and a calibrated 3-class one
(label ~ Categorical(scores)), each over 300 windows of 500 rows. Between windows the feature distribution
moves (covariate shift: its mean and spread change), so the scores, and with them the true performance,
change from window to window — from near chance to over 0.9 accuracy. The estimate sees the scores only;
the labels are released afterwards to compute the realised metric.

Measured with these seeds (the asserted bounds in brackets; interval widths are about 0.06 for accuracy):

========  ==========  ===============  ===============  =================================
problem   metric      coverage [≥0.90] MAE              corr(estimate, realised) [>0.9]
========  ==========  ===============  ===============  =================================
binary    accuracy    0.947            0.0125 [0.02]    0.973
binary    f1          0.933            0.0146 [0.025]   0.994
binary    roc_auc     0.950            0.0119 [0.02]    0.985
3-class   accuracy    0.963            0.0125 [0.02]    0.974
3-class   f1_macro    0.940            0.0153 [0.025]   0.991
3-class   roc_auc     0.943            0.0073 [0.02]    0.989
========  ==========  ===============  ===============  =================================

Overconfident scores (logits tripled) break it: accuracy coverage 0.000 and MAE 0.111 (binary) / 0.119
(3-class), all of it optimism. Isotonic recalibration on a 20,000-row labelled reference restores it:
coverage 0.937 / 0.947, MAE 0.0117 / 0.0131.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import pytest

from sustain.indicators.metrics import (
    ESTIMABLE,
    Estimate,
    classification_metrics,
    estimate_classification,
    fit_calibrator,
)
from sustain.indicators.metrics import estimation as estimation_module

N_WINDOWS = 300
N_ROWS = 500
COVERAGE_BOUND = 0.90
MAE_BOUND = {"accuracy": 0.02, "f1": 0.025, "f1_macro": 0.025, "roc_auc": 0.02}
CORRELATION_BOUND = 0.9
BINARY = ["no", "yes"]
THREE = ["red", "green", "blue"]
WEIGHTS = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    u = rng.random(int(probs.shape[0]))
    return np.minimum((u[:, None] >= np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def _true_probs(kind: str, rng: np.random.Generator, n: int, spread: tuple[float, float]) -> tuple[np.ndarray, float]:
    """True class probabilities of one window under covariate shift, and the window's feature spread."""
    sd = rng.uniform(*spread)
    if kind == "binary":
        x = rng.normal(rng.uniform(-1.5, 1.5), sd, n)
        p = _sigmoid(1.5 * x)
        return np.column_stack([1.0 - p, p]), sd
    x = rng.normal(rng.uniform(-1.0, 1.0, 2), sd, (n, 2))
    return _softmax(x @ WEIGHTS.T), sd


def _overconfident(probs: np.ndarray) -> np.ndarray:
    """What a miscalibrated model reports: the true logits tripled (scores pushed towards 0 and 1)."""
    return _softmax(3.0 * np.log(np.clip(probs, 1e-300, None)))


@functools.cache
def simulate(kind: str, miscalibrated: bool, calibrated: bool, windows: int = N_WINDOWS) -> dict[str, Any]:
    """Estimate (from scores only) and realised value (from the released labels) of each metric per window."""
    classes = BINARY if kind == "binary" else THREE
    metrics = ("accuracy", "f1", "roc_auc") if kind == "binary" else ("accuracy", "f1_macro", "roc_auc")
    spread = (0.2, 3.0) if kind == "binary" else (0.2, 2.0)
    rng = np.random.default_rng(2024 if kind == "binary" else 7)
    calibrator = None
    if calibrated:
        reference, _ = _true_probs(kind, rng, 20_000, (2.5, 2.5))
        labels = [classes[c] for c in _draw(rng, reference)]
        calibrator = fit_calibrator(_overconfident(reference), labels, classes)
    out: dict[str, Any] = {m: {"value": [], "low": [], "high": [], "realised": []} for m in metrics}
    out["spread"] = []
    for w in range(windows):
        truth, sd = _true_probs(kind, rng, N_ROWS, spread)
        labels = [classes[c] for c in _draw(rng, truth)]  # held back until the estimate is made
        scores = _overconfident(truth) if miscalibrated else truth
        y_pred = [classes[c] for c in np.argmax(scores, axis=1)]  # the deployed model's decisions
        estimated = estimate_classification(
            calibrator(scores) if calibrator else scores, classes, y_pred=y_pred, metrics=metrics, seed=w
        )
        realised = classification_metrics(labels, y_pred, scores, classes)
        out["spread"].append(sd)
        for m in metrics:  # NaN for None: a window (or every draw of it) lacking a class has no ROC AUC
            est = estimated[m]
            for field in ("value", "low", "high"):
                out[m][field].append(math.nan if est is None else getattr(est, field))
            out[m]["realised"].append(math.nan if realised[m] is None else realised[m])
    for m in metrics:
        out[m] = {key: np.asarray(values) for key, values in out[m].items()}
    return out


def coverage(result: dict[str, np.ndarray]) -> float:
    """Share of the windows with a realised value whose interval holds it (no estimate counts as a miss)."""
    defined = ~np.isnan(result["realised"])
    inside = (result["low"] <= result["realised"]) & (result["realised"] <= result["high"])
    return float(np.mean(inside[defined]))


def mae(result: dict[str, np.ndarray]) -> float:
    errors = np.abs(result["value"] - result["realised"])
    assert np.count_nonzero(np.isnan(errors)) <= 0.02 * errors.size
    return float(np.nanmean(errors))


# --------------------------------------------------------------------------- tracking the realised metric

CALIBRATED = [
    ("binary", "accuracy"),
    ("binary", "f1"),
    ("binary", "roc_auc"),
    ("three", "accuracy"),
    ("three", "f1_macro"),
    ("three", "roc_auc"),
]


@pytest.mark.parametrize(("kind", "metric"), CALIBRATED)
def test_realised_metric_lies_in_the_95_percent_interval_in_90_percent_of_windows(kind: str, metric: str) -> None:
    """(a) Bound: coverage >= 0.90 over 300 windows; observed 0.933-0.963 (see the module docstring)."""
    observed = coverage(simulate(kind, False, False)[metric])
    assert observed >= COVERAGE_BOUND, f"{kind} {metric}: coverage {observed:.3f} < {COVERAGE_BOUND}"


@pytest.mark.parametrize(("kind", "metric"), CALIBRATED)
def test_estimate_error_is_small(kind: str, metric: str) -> None:
    """(b) Bound: MAE < 0.02 (accuracy, ROC AUC) or 0.025 (F1) at n = 500; observed 0.0073-0.0153.

    For accuracy the estimate's own standard deviation is at most 0.5/sqrt(500) = 0.022, so the mean absolute
    error of even a perfect estimator is at most sqrt(2/pi) * 0.022 = 0.018.
    """
    observed = mae(simulate(kind, False, False)[metric])
    assert observed < MAE_BOUND[metric], f"{kind} {metric}: MAE {observed:.4f} >= {MAE_BOUND[metric]}"


@pytest.mark.parametrize("kind", ["binary", "three"])
def test_estimate_follows_the_performance_drop_under_shift(kind: str) -> None:
    """(c) Bound: corr(estimated, realised accuracy) > 0.9 across windows; observed 0.973 / 0.974. And the
    windows whose features collapse towards the decision boundary (smallest spread) are estimated worse:
    the realised accuracy of the hardest quarter is 0.133 / 0.142 lower than the easiest, the estimate
    0.135 / 0.141 lower."""
    sim = simulate(kind, False, False)
    acc = sim["accuracy"]
    observed = float(np.corrcoef(acc["value"], acc["realised"])[0, 1])
    assert observed > CORRELATION_BOUND, f"{kind}: correlation {observed:.3f}"
    order = np.argsort(sim["spread"])
    hard, easy = order[: N_WINDOWS // 4], order[-N_WINDOWS // 4 :]
    drop_realised = acc["realised"][easy].mean() - acc["realised"][hard].mean()
    drop_estimated = acc["value"][easy].mean() - acc["value"][hard].mean()
    assert drop_realised > 0.1
    assert drop_estimated == pytest.approx(drop_realised, abs=0.01)


@pytest.mark.parametrize(("kind", "windows"), [("binary", N_WINDOWS), ("three", 150)])
def test_miscalibrated_scores_are_fixed_by_fit_calibrator(kind: str, windows: int) -> None:
    """Overconfident scores: accuracy coverage collapses (observed 0.000) and the estimate is optimistic by
    about 0.11; after isotonic recalibration on a labelled reference coverage is back above 0.9 (observed
    0.937 binary, 0.947 three-class) and the MAE below 0.02 (0.0117, 0.0131)."""
    broken = simulate(kind, True, False, windows)["accuracy"]
    assert coverage(broken) < 0.5 and mae(broken) > 0.05
    assert np.mean(broken["value"] - broken["realised"]) > 0.05  # optimistic
    fixed = simulate(kind, True, True, windows)["accuracy"]
    assert coverage(fixed) >= COVERAGE_BOUND, f"coverage after recalibration {coverage(fixed):.3f}"
    assert mae(fixed) < MAE_BOUND["accuracy"]


# --------------------------------------------------------------------------- exactness and conventions


def _scores(seed: int, n: int, k: int) -> np.ndarray:
    return _softmax(np.random.default_rng(seed).normal(size=(n, k)) * 1.5)


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_single_draw_equals_classification_metrics_on_the_drawn_labels(k: int, seed: int) -> None:
    """The vectorised per-draw kernel agrees with the oracle-tested classification_metrics on the same labels."""
    classes = ["w", "x", "y", "z"][:k]
    scores = _scores(seed, 60, k)
    rng = np.random.default_rng(seed + 100)
    y_pred = [classes[c] for c in rng.integers(0, k, 60)]
    u = np.random.default_rng(seed).random((1, 60))[0]
    drawn = [classes[c] for c in (u[:, None] >= np.cumsum(scores, axis=1)[:, :-1]).sum(axis=1)]
    realised = classification_metrics(drawn, y_pred, scores, classes)
    estimated = estimate_classification(scores, classes, y_pred=y_pred, metrics=ESTIMABLE, draws=1, seed=seed)
    for name in ESTIMABLE:
        est = estimated[name]
        if realised[name] is None:
            assert est is None, name
            continue
        assert est is not None, name
        if name == "accuracy":
            assert realised[name] in (est.low, est.high)
        else:
            assert est.value == est.low == est.high == pytest.approx(realised[name], rel=1e-12), name


@pytest.mark.parametrize("k", [2, 3])
def test_expectations_with_closed_forms(k: int) -> None:
    """Accuracy is exact; log loss and Brier converge to the entropy and to 1 - sum p² (Monte Carlo error)."""
    classes = ["a", "b", "c"][:k]
    scores = _scores(5, 400, k)
    est = estimate_classification(scores, classes, metrics=("accuracy", "log_loss", "brier"), draws=2000)
    top = scores.max(axis=1)
    acc = est["accuracy"]
    assert acc is not None
    assert acc.value == pytest.approx(top.mean(), rel=1e-12)
    assert acc.std == pytest.approx(math.sqrt(np.sum(top * (1 - top))) / 400, rel=1e-12)
    log_loss, brier = est["log_loss"], est["brier"]
    assert log_loss is not None and brier is not None
    assert log_loss.value == pytest.approx(np.mean(-np.sum(scores * np.log(scores), axis=1)), abs=4 * log_loss.std / 40)
    expected_brier = np.mean(scores[:, 1] * scores[:, 0]) if k == 2 else np.mean(1 - np.sum(scores**2, axis=1))
    assert brier.value == pytest.approx(expected_brier, abs=4 * brier.std / 40)
    assert brier.low < brier.value < brier.high


def test_deterministic_per_seed_and_independent_of_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    scores = _scores(3, 300, 3)
    first = estimate_classification(scores, THREE, metrics=ESTIMABLE, seed=9)
    assert estimate_classification(scores, THREE, metrics=ESTIMABLE, seed=9) == first
    assert estimate_classification(scores, THREE, metrics=ESTIMABLE, seed=10) != first
    monkeypatch.setattr(estimation_module, "_BLOCK", 7 * 300 + 5)  # seven draws per block, last block shorter
    assert estimate_classification(scores, THREE, metrics=ESTIMABLE, seed=9) == first


def test_what_is_none() -> None:
    scores = _scores(1, 100, 3)
    est = estimate_classification(scores, THREE, metrics=("precision", "recall", "f1", "f1_macro"))
    assert est["precision"] is None and est["recall"] is None and est["f1"] is None and est["f1_macro"] is not None
    never_blue = np.column_stack([scores[:, 0] + scores[:, 2], scores[:, 1], np.zeros(100)])
    assert estimate_classification(never_blue, THREE, metrics=("roc_auc",))["roc_auc"] is None
    assert estimate_classification(np.zeros((0, 3)), THREE) == dict.fromkeys(
        ("accuracy", "precision", "recall", "f1", "f1_macro", "roc_auc")
    )


def test_binary_forms_and_positive_class() -> None:
    p = _scores(4, 200, 2)
    full = estimate_classification(p, BINARY)
    assert estimate_classification(p[:, 1], BINARY) == full
    flipped = estimate_classification(p[:, ::-1], ["yes", "no"], positive="yes")  # other draws, same distribution
    a_acc, b_acc = flipped["accuracy"], full["accuracy"]
    assert a_acc is not None and b_acc is not None
    assert (a_acc.value, a_acc.std) == (b_acc.value, b_acc.std)  # exact; the interval comes from the draws
    for name in ("f1", "roc_auc"):
        a, b = flipped[name], full[name]
        assert a is not None and b is not None
        assert a.value == pytest.approx(b.value, abs=4 * b.std / math.sqrt(400) * math.sqrt(2))
    assert estimate_classification(p[:, 1], BINARY, positive="no")["f1"] != full["f1"]
    nearly = p * 1.0005  # rows summing to 1.0005 are accepted and renormalised before drawing
    renormalised, exact = estimate_classification(nearly, BINARY)["accuracy"], full["accuracy"]
    assert renormalised is not None and exact is not None
    assert renormalised.value == pytest.approx(exact.value, rel=1e-12)


def test_estimate_is_a_frozen_dataclass() -> None:
    est = Estimate(value=0.5, low=0.4, high=0.6, std=0.05)
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.value = 0.7  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("accuracy", "auc")}, "metrics contains 'auc'"),
        ({"metrics": "accuracy"}, "metrics must be a sequence"),
        ({"draws": 0}, "draws must be a positive integer"),
        ({"draws": 2.5}, "draws must be a positive integer"),
        ({"level": 1.0}, r"level must lie in \(0, 1\)"),
        ({"y_pred": ["no"]}, "y_pred has 1 labels but scores has 3 rows"),
        ({"y_pred": ["no", "yes", "maybe"]}, "y_pred contains 'maybe'"),
        ({"scores": np.array([0.2, 1.5, 0.3])}, r"scores must all lie in \[0, 1\]"),
        ({"positive": "maybe"}, "positive is 'maybe'"),
    ],
)
def test_bad_input_raises_a_sentence_naming_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"scores": np.array([0.2, 0.7, 0.4]), "classes": BINARY}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        estimate_classification(**args)


# --------------------------------------------------------------------------- calibrator


def test_calibrator_outputs_probability_rows() -> None:
    rng = np.random.default_rng(0)
    truth, _ = _true_probs("three", rng, 3000, (1.5, 1.5))
    labels = [THREE[c] for c in _draw(rng, truth)]
    calibrate = fit_calibrator(_overconfident(truth), labels, THREE)
    out = calibrate(_overconfident(_scores(1, 50, 3)))
    assert out.shape == (50, 3)
    assert np.allclose(out.sum(axis=1), 1.0) and np.all((out >= 0) & (out <= 1))
    assert calibrate(np.zeros((0, 3))).shape == (0, 3)


def test_binary_calibrator_is_monotone_and_accepts_one_dimensional_scores() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(size=4000)
    labels = [BINARY[int(u < t)] for u, t in zip(rng.uniform(size=4000), truth, strict=True)]
    calibrate = fit_calibrator(_sigmoid(3.0 * np.log(truth / (1 - truth))), labels, BINARY)
    grid = np.linspace(0.0, 1.0, 101)
    out = calibrate(grid)
    assert out.shape == (101, 2)
    assert np.all(np.diff(out[:, 1]) >= 0) and np.allclose(out.sum(axis=1), 1.0)
    assert out[50, 1] == pytest.approx(0.5, abs=0.05)
    assert np.array_equal(calibrate(grid[:, None]), out)


@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        (np.zeros((0, 2)), [], "labels is empty"),
        (np.array([0.2, 0.8]), ["no", "maybe"], "labels contains 'maybe'"),
        (np.array([0.2, 0.8, 0.5]), ["no", "yes"], "scores has 3 rows but y_true has 2"),
    ],
)
def test_calibrator_bad_input(scores: np.ndarray, labels: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_calibrator(scores, labels, BINARY)
