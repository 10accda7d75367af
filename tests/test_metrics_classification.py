"""Classification label metrics: scikit-learn as the oracle (to 1e-9), edge windows, errors and properties."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from sustain.indicators.metrics import LOG_LOSS_EPS, classification_metrics

REL = 1e-9
CLASSES = {2: ["neg", "pos"], 3: ["zebra", "apple", "mango"], 4: ["d", "c", "b", "a"]}
SCALARS = (
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
)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One label code per row from Categorical(row)."""
    u = rng.random(int(probs.shape[0]))
    return np.minimum((u[:, None] >= np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def make_case(
    seed: int, k: int, n: int, *, absent: tuple[int, ...] = (), ties: bool = False, pred: str = "argmax"
) -> tuple[list[str], list[str], list[str] | None, np.ndarray]:
    """Classes, true labels, predicted labels (None: argmax of the scores) and n × k scores.

    ``absent`` class codes never occur among the true labels; ``ties`` makes many scores equal;
    ``pred="random"`` predicts uniformly at random over all classes (so also classes never true).
    """
    rng = np.random.default_rng(seed)
    classes = CLASSES[k]
    if ties:  # every row is one of six score vectors
        scores = rng.dirichlet(np.ones(k), size=6)[rng.integers(0, 6, n)]
    else:
        scores = _softmax(rng.normal(size=(n, k)) * rng.uniform(0.5, 3))
    truth_probs = scores.copy()
    truth_probs[:, list(absent)] = 0.0
    truth_probs /= truth_probs.sum(axis=1, keepdims=True)
    truth = [classes[c] for c in _draw(rng, truth_probs)]
    y_pred = [classes[c] for c in rng.integers(0, k, n)] if pred == "random" else None
    return classes, truth, y_pred, scores


def sklearn_metrics(
    y_true: list[str], y_pred: list[str], scores: np.ndarray | None, classes: list[str], positive: str
) -> dict[str, Any]:
    """Every metric from scikit-learn; NaN where scikit-learn warns that it is undefined."""
    binary = len(classes) == 2
    out: dict[str, Any] = {"accuracy": skm.accuracy_score(y_true, y_pred)}
    if binary:
        kw: dict[str, Any] = {"pos_label": positive, "average": "binary", "zero_division": 0}
        out["precision"] = skm.precision_score(y_true, y_pred, **kw)
        out["recall"] = skm.recall_score(y_true, y_pred, **kw)
        out["f1"] = skm.f1_score(y_true, y_pred, **kw)
    else:
        out["precision"] = out["recall"] = out["f1"] = None
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=classes, average=average, zero_division=0
        )
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = p, r, f
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=classes).tolist()
    if scores is None:
        out["roc_auc"] = out["log_loss"] = out["brier"] = None
        return out
    order = np.argsort(classes)
    ordered = [classes[i] for i in order]
    out["log_loss"] = skm.log_loss(y_true, scores[:, order], labels=ordered)
    pos = classes.index(positive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # a class absent from y_true: NaN, asserted None
        if binary:
            out["brier"] = skm.brier_score_loss(y_true, scores[:, pos], pos_label=positive, labels=classes)
            is_pos = np.asarray(y_true) == positive
            out["roc_auc"] = skm.roc_auc_score(is_pos, scores[:, pos]) if 0 < is_pos.sum() < len(y_true) else math.nan
        else:
            out["brier"] = skm.brier_score_loss(y_true, scores[:, order], labels=ordered, scale_by_half=False)
            out["roc_auc"] = skm.roc_auc_score(
                y_true, scores[:, order], multi_class="ovr", average="macro", labels=ordered
            )
    return out


def assert_matches(ours: dict[str, Any], expected: dict[str, Any]) -> None:
    for key in SCALARS:
        want = expected[key]
        if want is None or (isinstance(want, float) and math.isnan(want)):
            assert ours[key] is None, key
        else:
            assert ours[key] == pytest.approx(want, rel=REL, abs=1e-12), key
    assert ours["confusion_matrix"] == expected["confusion_matrix"]


def check_case(
    classes: list[str], truth: list[str], y_pred: list[str] | None, scores: np.ndarray, positive: str
) -> None:
    ours = classification_metrics(truth, y_pred, scores, classes, positive=positive)
    predicted = y_pred if y_pred is not None else [classes[c] for c in np.argmax(scores, axis=1)]
    assert_matches(ours, sklearn_metrics(truth, predicted, scores, classes, positive))
    assert ours["n"] == len(truth)
    assert ours["support"] == {c: truth.count(c) for c in classes}


# --------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 3, 40, 600])
@pytest.mark.parametrize("pred", ["argmax", "random"])
def test_matches_sklearn(seed: int, k: int, n: int, pred: str) -> None:
    classes, truth, y_pred, scores = make_case(seed, k, n, pred=pred)
    check_case(classes, truth, y_pred, scores, classes[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_matches_sklearn_with_tied_scores(seed: int, k: int) -> None:
    classes, truth, y_pred, scores = make_case(seed, k, 300, ties=True)
    assert len(np.unique(scores[:, 0])) <= 6
    check_case(classes, truth, y_pred, scores, classes[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("pred", ["argmax", "random"])
def test_labels_absent_from_the_window_and_predictions_never_true(seed: int, pred: str) -> None:
    """Class "a" never occurs as a true label; random predictions use it (precision 0, recall 0/0 = 0)."""
    classes, truth, y_pred, scores = make_case(seed, 4, 200, absent=(3,), pred=pred)
    assert "a" not in truth
    check_case(classes, truth, y_pred, scores, classes[-1])
    ours = classification_metrics(truth, y_pred, scores, classes)
    assert ours["roc_auc"] is None and ours["support"]["a"] == 0
    with pytest.warns(UndefinedMetricWarning):
        order = np.argsort(classes)
        ordered = [classes[i] for i in order]
        assert math.isnan(skm.roc_auc_score(truth, scores[:, order], multi_class="ovr", labels=ordered))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("which", [0, 1])
def test_all_one_class_window_has_no_roc_auc(k: int, which: int) -> None:
    classes, _, _, scores = make_case(7, k, 30)
    truth = [classes[which]] * 30
    check_case(classes, truth, None, scores, classes[-1])
    ours = classification_metrics(truth, None, scores, classes)
    assert ours["roc_auc"] is None
    assert ours["log_loss"] is not None and ours["brier"] is not None
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(skm.roc_auc_score([c == classes[-1] for c in truth], scores[:, -1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_positive_first_class_and_one_dimensional_scores(seed: int) -> None:
    classes, truth, _, scores = make_case(seed, 2, 250)
    check_case(classes, truth, None, scores, "neg")
    full = classification_metrics(truth, None, scores, classes, positive="neg")
    one_d = classification_metrics(truth, None, scores[:, 0], classes, positive="neg")
    column = classification_metrics(truth, None, scores[:, :1], classes, positive="neg")
    for key in SCALARS:
        assert one_d[key] == pytest.approx(full[key], rel=REL, abs=1e-12), key
        assert column[key] == one_d[key], key
    default = classification_metrics(truth, None, scores[:, 1], classes)
    assert default["f1"] == pytest.approx(skm.f1_score(truth, [classes[c] for c in scores.argmax(1)], pos_label="pos"))


def test_log_loss_clips_like_sklearn() -> None:
    """Confident mistakes (probability exactly 0 for the truth) cost -log(eps), not infinity."""
    classes = ["x", "y", "z"]
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])
    truth = ["x", "z", "z", "y"]
    ours = classification_metrics(truth, None, scores, classes)
    assert ours["log_loss"] == pytest.approx(skm.log_loss(truth, scores, labels=classes), rel=REL)
    expected = (-math.log(1 - LOG_LOSS_EPS) * 2 - math.log(LOG_LOSS_EPS) - math.log(0.3)) / 4
    assert ours["log_loss"] == pytest.approx(expected, rel=REL)


def test_labels_only_and_empty_windows() -> None:
    classes = ["a", "b", "c"]
    only_labels = classification_metrics(["a", "b", "c", "c"], ["a", "c", "c", "c"], None, classes)
    assert only_labels["roc_auc"] is None and only_labels["log_loss"] is None and only_labels["brier"] is None
    assert only_labels["accuracy"] == 0.75 and only_labels["f1"] is None
    assert only_labels["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    empty = classification_metrics([], [], None, classes)
    assert empty["n"] == 0 and all(empty[key] is None for key in SCALARS)
    assert empty["confusion_matrix"] == [[0] * 3] * 3 and empty["support"] == {"a": 0, "b": 0, "c": 0}
    assert classification_metrics([], None, np.zeros((0, 3)), classes)["n"] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y_true": ["a", "b"], "y_pred": ["a"]}, "y_pred has 1 labels"),
        ({"y_pred": None, "scores": np.array([[0.5, 0.5]])}, "scores has 1 rows"),
        ({"y_true": ["a", "q"]}, "y_true contains 'q'"),
        ({"y_pred": ["a", "q"]}, "y_pred contains 'q'"),
        ({"scores": np.array([[1.2, -0.2], [0.5, 0.5]])}, r"scores must all lie in \[0, 1\]"),
        ({"scores": np.array([[0.7, 0.5], [0.5, 0.5]])}, "scores rows must each sum to 1"),
        ({"scores": np.array([[0.5, np.nan], [0.5, 0.5]])}, "scores contains NaN"),
        ({"scores": np.ones((2, 3)) / 3}, "scores has 3 columns"),
        ({"y_pred": None, "scores": None}, "y_pred and scores are both None"),
        ({"classes": ["a"]}, "classes must name at least two"),
        ({"classes": ["a", "a", "b"]}, "classes must not repeat"),
        ({"classes": "ab"}, "classes must be a sequence"),
        ({"positive": "zzz"}, "positive is 'zzz'"),
        ({"y_true": "ab"}, "y_true must be a sequence"),
    ],
)
def test_bad_input_raises_a_sentence_naming_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"y_true": ["a", "b"], "y_pred": ["a", "b"], "scores": None, "classes": ["a", "b"]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        classification_metrics(**args)


def test_one_dimensional_scores_need_a_binary_problem() -> None:
    with pytest.raises(ValueError, match="scores is one-dimensional"):
        classification_metrics(["a", "b"], None, np.array([0.2, 0.3]), ["a", "b", "c"])


# --------------------------------------------------------------------------- properties

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def windows(draw: st.DrawFn) -> tuple[list[str], list[str], list[str], np.ndarray]:
    k = draw(st.integers(2, 4))
    n = draw(st.integers(1, 40))
    classes = CLASSES[k]
    truth = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    pred = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**32 - 1))
    scores = np.random.default_rng(seed).dirichlet(np.ones(k), size=n)
    return classes, truth, pred, scores


@PROPERTY_SETTINGS
@given(windows())
def test_every_rate_lies_in_the_unit_interval(case: tuple[list[str], list[str], list[str], np.ndarray]) -> None:
    classes, truth, pred, scores = case
    m = classification_metrics(truth, pred, scores, classes)
    for key in SCALARS:
        if m[key] is not None and key not in ("log_loss", "brier"):
            assert 0.0 <= m[key] <= 1.0, key
    assert m["log_loss"] >= 0.0 and 0.0 <= m["brier"] <= 2.0
    assert sum(map(sum, m["confusion_matrix"])) == len(truth) == sum(m["support"].values())


@PROPERTY_SETTINGS
@given(windows(), st.randoms(use_true_random=False))
def test_metrics_do_not_depend_on_row_order(case: tuple[list[str], list[str], list[str], np.ndarray], rnd: Any) -> None:
    classes, truth, pred, scores = case
    order = list(range(len(truth)))
    rnd.shuffle(order)
    base = classification_metrics(truth, pred, scores, classes)
    shuffled = classification_metrics([truth[i] for i in order], [pred[i] for i in order], scores[order], classes)
    for key in SCALARS:
        if base[key] is None:
            assert shuffled[key] is None
        else:
            assert shuffled[key] == pytest.approx(base[key], rel=1e-12, abs=1e-12), key
    assert shuffled["confusion_matrix"] == base["confusion_matrix"]


@PROPERTY_SETTINGS
@given(windows())
def test_perfect_predictions_score_one(case: tuple[list[str], list[str], list[str], np.ndarray]) -> None:
    classes, truth, _, _ = case
    onehot = np.eye(len(classes))[[classes.index(t) for t in truth]]
    m = classification_metrics(truth, None, onehot, classes)
    assert m["accuracy"] == 1.0 and m["recall_weighted"] == 1.0 and m["f1_weighted"] == 1.0
    present = set(truth)
    assert m["f1_macro"] == pytest.approx(len(present) / len(classes))  # absent classes count as 0 in the macro mean
    assert m["log_loss"] < 1e-12 and m["brier"] == 0.0
    if len(present) == len(classes):
        assert m["roc_auc"] == 1.0 and m["f1_macro"] == 1.0
