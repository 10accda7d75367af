"""``estimated_performance``: the realised metric falls inside the 95% interval in at least 90% of windows, with
and without covariate shift, through the engine.

Issue 10, defect 7: the isotonic calibrator was fitted on the profile's 5,000-row general sample, whose accuracy
differed from the reference's, so every window's estimate shifted the same way; and the interval left out the
calibrator's own uncertainty: the realised accuracy fell inside it in 5 of 10 windows. Now the profile keeps a
larger labelled sample (outputs and label only, 50,000 rows by default), calibrators are fitted on bootstrap
resamples of it, and the Monte Carlo draws are split among them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn import metrics as skm

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.labels import parse_labels
from sustain.collector.reference import to_layout
from sustain.indicators.documents import IndicatorQuery
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch

T0 = datetime(2026, 10, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=30)
SHIFTS = [0.0, 0.5, -0.5, 1.0, 0.0, 0.3, -1.0, 0.0]  # covariate shift of the main feature, window by window
SPEC = {
    "name": "est",
    "features": {"x": "numeric", "z": "numeric"},
    "outputs": {
        "prediction": {"kind": "class_label", "classes": ["no", "yes"]},
        "proba": {"kind": "class_scores", "classes": ["no", "yes"]},
    },
    "label": {"kind": "class_label", "classes": ["no", "yes"], "positive_class": "yes"},
    "windows": ["1h"],
    "indicators": [
        {"type": "label_metrics"},
        {"type": "estimated_performance", "params": {"metrics": ["accuracy", "f1", "roc_auc"]}},
    ],
}


def _draw(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """An overconfident model: P(yes | x, z) = sigmoid(1.5 x + 0.5 z), score = sigmoid(2.5 logit P)."""
    x, z = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    p = 1.0 / (1.0 + np.exp(-(1.5 * x + 0.5 * z)))
    score = np.round(1.0 / (1.0 + np.exp(-2.5 * np.log(p / (1.0 - p)))), 6)
    truth = ["yes" if u < q else "no" for u, q in zip(rng.random(n), p, strict=True)]
    return x, z, score, truth


def _coverage(tmp_path: Any, seed: int) -> tuple[dict[str, int], set[int]]:
    rng = np.random.default_rng(seed)
    spec = parse_model_spec(SPEC)
    store = DuckDBStore(f"duckdb:///{tmp_path / f'e{seed}.duckdb'}")
    store.put_spec(spec)
    x, z, score, truth = _draw(rng, 60_000, 0.0)
    reference = pa.table(
        {
            "x": x,
            "z": z,
            "prediction": ["yes" if s >= 0.5 else "no" for s in score],
            "proba.no": np.round(1.0 - score, 6),
            "proba.yes": score,
            "label": truth,
        }
    )
    store.put_reference("est", "1", to_layout(spec, reference).table)
    engine = embedded_engine(store, clock=lambda: LATER)
    engine.on_reference("est", "1")
    realised: dict[tuple[datetime, str], float] = {}
    for hour, shift in enumerate(SHIFTS):
        x, z, score, truth = _draw(rng, 5000, shift)
        start = T0 + timedelta(hours=hour)
        predicted = ["yes" if s >= 0.5 else "no" for s in score]
        events = [
            {
                "request_id": f"{hour}-{i}",
                "timestamp": (start + timedelta(seconds=i * 0.5)).isoformat(),
                "features": {"x": float(x[i]), "z": float(z[i])},
                "outputs": {"prediction": predicted[i], "proba": [round(1.0 - float(score[i]), 6), float(score[i])]},
            }
            for i in range(len(score))
        ]
        store.append_events([EventBatch("est", parse_events(spec, events, LATER).table)])
        labels, errors = parse_labels(
            spec, [{"request_id": f"{hour}-{i}", "label": y} for i, y in enumerate(truth)], LATER
        )
        assert not errors
        store.append_labels([labels])
        realised[(start, "accuracy")] = skm.accuracy_score(truth, predicted)
        realised[(start, "f1")] = skm.f1_score(truth, predicted, pos_label="yes")
        realised[(start, "roc_auc")] = skm.roc_auc_score([y == "yes" for y in truth], score)
    engine.step()
    inside = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    rows = set()
    for doc in engine.documents.query(IndicatorQuery("est", indicator="estimated_performance", limit=1000)):
        assert doc.metric is not None and doc.value is not None
        truth_value = realised[(doc.window_start, doc.metric)]
        assert doc.details["realised"] == truth_value or abs(doc.details["realised"] - truth_value) < 1e-9
        inside[doc.metric] += doc.details["low"] <= truth_value <= doc.details["high"]
        rows.add(doc.details.get("calibration_rows", 0))
    return inside, rows


def test_the_realised_value_is_inside_the_interval_in_nine_windows_of_ten(tmp_path) -> None:
    references = 5
    totals = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    for seed in range(references):
        inside, rows = _coverage(tmp_path, seed)
        for metric, count in inside.items():
            totals[metric] += count
        assert rows == {50_000}  # the labelled sample, not the 5,000-row general sample
    windows = references * len(SHIFTS)
    for metric, count in totals.items():
        assert count >= 0.9 * windows, (metric, count, windows, totals)
