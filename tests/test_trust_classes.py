"""The spec's class order drives every number: ``label.positive_class`` picks the positive class of binary metrics
and of estimation and says what a single ``probability`` output is; class scores map to classes by name. Checked
through the engine against scikit-learn (the oracle), with both class orders and with string and integer classes.

Issue 10, defect 3: with classes ``[yes, no]``, positive class ``yes`` and P(yes) sent as the probability,
label_metrics reported ROC AUC 0.167 where scikit-learn says 0.833, and the estimated accuracy was 0.242 against
a realised 0.755: the probability was always read as the last class's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.labels import parse_labels
from sustain.collector.reference import to_layout
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch

T0 = datetime(2026, 10, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=30)


def _spec(classes: list[Any], positive: Any, output: str, score_classes: list[Any] | None = None) -> ModelSpec:
    outputs: dict[str, Any] = {"prediction": {"kind": "class_label", "classes": classes}}
    if output == "probability":
        outputs["p"] = {"kind": "probability"}
    else:
        outputs["p"] = {"kind": "class_scores", "classes": score_classes or classes}
    label: dict[str, Any] = {"kind": "class_label", "classes": classes}
    if positive is not None:
        label["positive_class"] = positive
    return parse_model_spec(
        {
            "name": "c",
            "features": {"x": "numeric", "z": "numeric"},
            "outputs": outputs,
            "label": label,
            "windows": ["1h"],
            "indicators": [
                {"type": "label_metrics"},
                {"type": "estimated_performance", "params": {"metrics": ["accuracy", "f1", "roc_auc"]}},
            ],
        }
    )


class Binary:
    """A calibrated binary classifier: P(positive | x) = sigmoid(1.5 x), labels drawn from it."""

    def __init__(self, spec: ModelSpec, positive: Any, negative: Any, seed: int) -> None:
        self.spec = spec
        self.positive, self.negative = positive, negative
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = self.rng.normal(shift, 1.0, n)
        z = self.rng.normal(0.0, 1.0, n)
        p = np.round(1.0 / (1.0 + np.exp(-1.5 * x)), 6)
        truth = self.rng.random(n) < p
        return np.column_stack([x, z]), p, truth

    def outputs(self, p: float) -> dict[str, Any]:
        out: dict[str, Any] = {"prediction": self.positive if p >= 0.5 else self.negative}
        scores = self.spec.output("p")
        assert scores is not None
        if scores.kind == "probability":
            out["p"] = p
        else:
            by_name = {str(self.positive): p, str(self.negative): round(1.0 - p, 6)}
            out["p"] = [by_name[c] for c in scores.classes or []]  # a list, in the output's own class order
        return out

    def reference(self, n: int) -> pa.Table:
        xz, p, truth = self.draw(n)
        body: dict[str, Any] = {"x": xz[:, 0], "z": xz[:, 1], "prediction": [], "label": []}
        scores = self.spec.output("p")
        assert scores is not None
        for pi, t in zip(p, truth, strict=True):
            o = self.outputs(float(pi))
            body["prediction"].append(str(o["prediction"]))
            body["label"].append(str(self.positive if t else self.negative))
            if scores.kind == "probability":
                body.setdefault("p", []).append(o["p"])
            else:
                for c, v in zip(scores.classes or [], o["p"], strict=True):
                    body.setdefault(f"p.{c}", []).append(v)
        return pa.table(body)


@dataclass
class Outcome:
    metrics: dict[str | None, IndicatorDoc]
    estimates: dict[str | None, IndicatorDoc]
    y_true: list[str]
    y_pred: list[str]
    p_positive: np.ndarray


def _run(tmp_path: Path, spec: ModelSpec, model: Binary, n: int = 1500) -> Outcome:
    store = DuckDBStore(f"duckdb:///{tmp_path / 'c.duckdb'}")
    store.put_spec(spec)
    store.put_reference("c", "1", to_layout(spec, model.reference(20_000)).table)
    engine = embedded_engine(store, clock=lambda: LATER)
    engine.on_reference("c", "1")
    xz, p, truth = model.draw(n)
    events: list[dict[str, Any]] = [
        {
            "request_id": f"r{i}",
            "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
            "features": {"x": float(xz[i, 0]), "z": float(xz[i, 1])},
            "outputs": model.outputs(float(p[i])),
        }
        for i in range(n)
    ]
    store.append_events([EventBatch("c", parse_events(spec, events, LATER).table)])
    labels = [{"request_id": f"r{i}", "label": model.positive if truth[i] else model.negative} for i in range(n)]
    batch, errors = parse_labels(spec, labels, LATER)
    assert not errors
    store.append_labels([batch])
    engine.step()
    docs = engine.documents.query(IndicatorQuery("c", limit=10_000))
    metrics = {d.metric: d for d in docs if d.indicator == "label_metrics"}
    estimates = {d.metric: d for d in docs if d.indicator == "estimated_performance"}
    return Outcome(
        metrics,
        estimates,
        [str(model.positive if t else model.negative) for t in truth],
        [str(e["outputs"]["prediction"]) for e in events],
        p,
    )


CASES = [
    # classes, positive_class, positive, negative, output, score classes
    (["yes", "no"], "yes", "yes", "no", "probability", None),  # the case
    (["no", "yes"], "yes", "yes", "no", "probability", None),
    (["no", "yes"], None, "yes", "no", "probability", None),  # no positive_class: the last class
    (["yes", "no"], "yes", "yes", "no", "class_scores", None),
    (["no", "yes"], "no", "no", "yes", "class_scores", ["yes", "no"]),  # scores listed in another order
    ([1, 0], 1, 1, 0, "probability", None),  # integer classes
    ([0, 1], 1, 1, 0, "class_scores", [1, 0]),
]


@pytest.mark.parametrize(("classes", "positive_class", "positive", "negative", "output", "score_classes"), CASES)
def test_binary_metrics_and_estimates_follow_the_spec(
    tmp_path, classes, positive_class, positive, negative, output, score_classes
) -> None:
    spec = _spec(classes, positive_class, output, score_classes)
    model = Binary(spec, positive, negative, seed=len(str(classes)) + len(output))
    outcome = _run(tmp_path, spec, model)
    metrics, estimates = outcome.metrics, outcome.estimates
    y_true, y_pred, p = outcome.y_true, outcome.y_pred, outcome.p_positive
    pos, names = str(positive), [str(c) for c in classes]
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, pos_label=pos, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, pos_label=pos, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, pos_label=pos, zero_division=0),
        "roc_auc": skm.roc_auc_score([y == pos for y in y_true], p),
        "brier": skm.brier_score_loss([y == pos for y in y_true], p),
    }
    ordered = sorted(names)  # scikit-learn wants the columns of y_prob in sorted label order
    proba = np.column_stack([p if c == pos else 1 - p for c in ordered])
    expected["log_loss"] = skm.log_loss(y_true, proba, labels=ordered)
    for metric, value in expected.items():
        assert metrics[metric].value == pytest.approx(value, rel=1e-9, abs=1e-12), metric
    assert (
        metrics["accuracy"].details["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=names).tolist()
    )
    # The estimates read the scores the same way: close to what the labels then say.
    for metric in ("accuracy", "f1", "roc_auc"):
        estimate, realised = estimates[metric], expected[metric]
        assert estimate.details["realised"] == pytest.approx(realised, rel=1e-9), metric
        assert abs(estimate.value - realised) < 0.05, (metric, estimate.value, realised)


def test_multiclass_scores_map_by_class_name(tmp_path) -> None:
    classes, listed = ["ant", "bee", "cat"], ["cat", "ant", "bee"]  # scores sent in another order than the label's
    spec = parse_model_spec(
        {
            "name": "c",
            "features": {"x": "numeric"},
            "outputs": {
                "prediction": {"kind": "class_label", "classes": classes},
                "p": {"kind": "class_scores", "classes": listed},
            },
            "label": {"kind": "class_label", "classes": classes},
            "windows": ["1h"],
            "indicators": [{"type": "label_metrics"}],
        }
    )
    rng = np.random.default_rng(5)
    n = 1200
    logits = rng.normal(size=(n, 3)) * 1.5
    proba = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 6)
    proba[:, 2] = 1.0 - proba[:, 0] - proba[:, 1]
    truth = [classes[int(np.searchsorted(np.cumsum(row), rng.uniform()))] for row in proba]
    events: list[dict[str, Any]] = [
        {
            "request_id": f"r{i}",
            "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
            "features": {"x": float(rng.normal())},
            "outputs": {
                "prediction": classes[int(np.argmax(proba[i]))],
                "p": {c: float(proba[i, classes.index(c)]) for c in listed},
            },
        }
        for i in range(n)
    ]
    store = DuckDBStore(f"duckdb:///{tmp_path / 'm.duckdb'}")
    store.put_spec(spec)
    engine = embedded_engine(store, clock=lambda: LATER)
    store.append_events([EventBatch("c", parse_events(spec, events, LATER).table)])
    batch, _ = parse_labels(spec, [{"request_id": f"r{i}", "label": truth[i]} for i in range(n)], LATER)
    store.append_labels([batch])
    engine.step()
    docs = {d.metric: d for d in engine.documents.query(IndicatorQuery("c", indicator="label_metrics"))}
    stored = np.array([[e["outputs"]["p"][c] for c in classes] for e in events])
    assert docs["log_loss"].value == pytest.approx(skm.log_loss(truth, stored, labels=classes), rel=1e-9)
    auc = skm.roc_auc_score(truth, stored, labels=classes, multi_class="ovr", average="macro")
    assert docs["roc_auc"].value == pytest.approx(auc, rel=1e-9)
