"""Label metrics through the engine equal scikit-learn's, whenever the labels arrive; estimates track them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.labels import parse_labels
from sustain.collector.reference import to_layout
from sustain.indicators.documents import IndicatorQuery
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch
from sustain.synthetic import SyntheticModel

T0 = datetime(2026, 10, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=30)

CLASSIFIER = {
    "name": "c",
    "features": {"a": "numeric", "b": "numeric", "c": {"kind": "categorical", "categories": ["x", "y", "z"]}},
    "outputs": {
        "prediction": {"kind": "class_label", "classes": ["no", "yes"]},
        "proba": {"kind": "class_scores", "classes": ["no", "yes"]},
    },
    "label": {"kind": "class_label", "classes": ["no", "yes"]},
    "windows": ["1h"],
    "indicators": [
        {"type": "label_metrics"},
        {"type": "estimated_performance", "params": {"metrics": ["accuracy", "f1", "roc_auc"]}},
    ],
}


def setup(tmp_path, body):
    spec = parse_model_spec(body)
    store = DuckDBStore(f"duckdb:///{tmp_path / 'l.duckdb'}")
    store.put_spec(spec)
    model = SyntheticModel(spec, seed=4)
    store.put_reference(spec.name, "1", to_layout(spec, pa.table(model.reference(5000))).table)
    engine = embedded_engine(store, clock=lambda: LATER)
    engine.on_reference(spec.name, "1")
    return spec, store, model, engine


def send(store, spec, events) -> None:
    store.append_events([EventBatch(spec.name, parse_events(spec, events, LATER).table)])


def label(store, spec, items, when) -> None:
    batch, errors = parse_labels(spec, items, LATER)
    assert not errors
    store.append_labels([batch])


def by_metric(engine, window_start, indicator="label_metrics"):
    docs = engine.documents.query(IndicatorQuery("c" if indicator != "reg" else "r", limit=10_000))
    return {d.metric: d for d in docs if d.indicator == indicator and d.window_start == window_start}


def test_classification_metrics_equal_sklearn_whenever_labels_arrive(tmp_path) -> None:
    spec, store, model, engine = setup(tmp_path, CLASSIFIER)
    events = model.events(1200)
    truth = model.labels_for(events)
    for i, e in enumerate(events):
        e["request_id"] = f"r{i}"
        e["timestamp"] = (T0 + timedelta(seconds=i * 2)).isoformat()
    # a third of the labels arrive before their events, a third right after, the rest a week later
    label(store, spec, [{"request_id": f"r{i}", "label": truth[i]} for i in range(400)], T0)
    send(store, spec, events)
    engine.step()
    early = by_metric(engine, T0)
    assert early["coverage"].value == pytest.approx(400 / 1200)
    label(store, spec, [{"request_id": f"r{i}", "label": truth[i]} for i in range(400, 800)], T0)
    engine.step()
    label(
        store,
        spec,
        [
            {"request_id": f"r{i}", "label": truth[i], "timestamp": (T0 + timedelta(days=7)).isoformat()}
            for i in range(800, 1200)
        ],
        T0,
    )
    engine.step()  # late labels mark their window dirty: the metrics are recomputed
    docs = by_metric(engine, T0)
    assert docs["coverage"].value == 1.0
    y_true = truth
    y_pred = [e["outputs"]["prediction"] for e in events]
    p_yes = [e["outputs"]["proba"][1] for e in events]
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, pos_label="yes", zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, pos_label="yes", zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, pos_label="yes", zero_division=0),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_weighted": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "roc_auc": skm.roc_auc_score([y == "yes" for y in y_true], p_yes),
        "log_loss": skm.log_loss(y_true, np.column_stack([1 - np.array(p_yes), p_yes]), labels=["no", "yes"]),
        "brier": skm.brier_score_loss([y == "yes" for y in y_true], p_yes),
    }
    for metric, value in expected.items():
        assert docs[metric].value == pytest.approx(value, rel=1e-9, abs=1e-12), metric
    cm = skm.confusion_matrix(y_true, y_pred, labels=["no", "yes"]).tolist()
    assert docs["accuracy"].details["confusion_matrix"] == cm
    assert docs["lag_p95_seconds"].value is not None and docs["lag_p95_seconds"].value > 5 * 86400


def test_regression_metrics_equal_sklearn(tmp_path) -> None:
    body = {
        "name": "r",
        "features": {"a": "numeric", "b": "numeric"},
        "outputs": {"y": "regression"},
        "label": {"kind": "regression"},
        "windows": ["1h"],
        "indicators": [{"type": "label_metrics"}],
    }
    spec, store, model, engine = setup(tmp_path, body)
    events = model.events(500)
    truth = model.labels_for(events)
    for i, e in enumerate(events):
        e["event_id"] = f"e{i}"
        e["timestamp"] = (T0 + timedelta(seconds=i)).isoformat()
    send(store, spec, events)
    label(store, spec, [{"event_id": f"e{i}", "label": truth[i]} for i in range(500)], T0)
    engine.step()
    docs = {d.metric: d for d in engine.documents.query(IndicatorQuery("r", indicator="label_metrics"))}
    y_pred = [e["outputs"]["y"] for e in events]
    assert docs["mae"].value == pytest.approx(skm.mean_absolute_error(truth, y_pred), rel=1e-9)
    assert docs["rmse"].value == pytest.approx(np.sqrt(skm.mean_squared_error(truth, y_pred)), rel=1e-9)
    assert docs["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(truth, y_pred), rel=1e-9)
    assert docs["r2"].value == pytest.approx(skm.r2_score(truth, y_pred), rel=1e-9)


def test_estimate_tracks_the_realised_accuracy_with_labels_held_back(tmp_path) -> None:
    """Twelve hourly windows whose difficulty changes: estimated from scores while the labels are held back, then
    compared with the realised accuracy once released. Stated bound: inside the 95% interval in at least 10 of 12
    windows, and the mean absolute error below 0.03."""
    body = {
        **CLASSIFIER,
        "indicators": [
            {"type": "label_metrics"},
            {"type": "estimated_performance", "params": {"metrics": ["accuracy"]}},
        ],
    }
    spec, store, model, engine = setup(tmp_path, body)
    truths = {}
    for hour in range(12):
        shift = {"a": (hour - 6) * 0.25, "b": -(hour - 6) * 0.25}
        events = model.events(800, shift)
        for i, e in enumerate(events):
            e["request_id"] = f"h{hour}-{i}"
            e["timestamp"] = (T0 + timedelta(hours=hour, seconds=i * 4)).isoformat()
        truths[hour] = (events, model.labels_for(events))
        send(store, spec, events)
    engine.step()  # no labels yet: only estimates
    estimates = {}
    for hour in range(12):
        doc = by_metric(engine, T0 + timedelta(hours=hour), "estimated_performance")["accuracy"]
        assert doc.details.get("realised") is None
        estimates[hour] = doc
    for events, truth in truths.values():
        labelled = [{"request_id": e["request_id"], "label": y} for e, y in zip(events, truth, strict=True)]
        label(store, spec, labelled, T0)
    engine.step()
    inside, errors = 0, []
    for hour, (events, truth) in truths.items():
        realised = skm.accuracy_score(truth, [e["outputs"]["prediction"] for e in events])
        est = estimates[hour]
        inside += est.details["low"] <= realised <= est.details["high"]
        errors.append(abs(est.value - realised))
        after = by_metric(engine, T0 + timedelta(hours=hour), "estimated_performance")["accuracy"]
        assert after.details["realised"] == pytest.approx(realised)
    assert inside >= 10, (inside, errors)
    assert float(np.mean(errors)) < 0.03
