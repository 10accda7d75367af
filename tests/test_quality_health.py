"""Data quality and health indicators, through the embedded engine, against counts known by construction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.indicators.documents import IndicatorQuery
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch

T0 = datetime(2026, 7, 1, tzinfo=UTC)
SPEC = {
    "name": "q",
    "features": {
        "age": {"kind": "numeric", "range": [0, 120]},
        "plan": {"kind": "categorical", "categories": ["basic", "pro"]},
        "city": "categorical",
    },
    "outputs": {"score": "probability"},
    "windows": ["1h"],
}


@pytest.fixture
def engine(tmp_path):
    spec = parse_model_spec(SPEC)
    store = DuckDBStore(f"duckdb:///{tmp_path / 'q.duckdb'}")
    store.put_spec(spec)
    rng = np.random.default_rng(0)
    ref = {
        "age": rng.normal(40, 10, 2000),
        "plan": rng.choice(["basic", "pro"], 2000),
        "city": rng.choice(["oslo", "rome"], 2000),
        "score": rng.random(2000),
    }
    ref["age"][:200] = np.nan  # the reference itself is 10% missing on age
    store.put_reference("q", "1", to_layout(spec, pa.table(ref)).table)
    eng = embedded_engine(store, clock=lambda: T0 + timedelta(days=1))
    eng.on_reference("q", "1")
    return spec, store, eng


def test_quality_shares_match_what_was_sent(engine) -> None:
    spec, store, eng = engine
    rng = np.random.default_rng(1)
    events = []
    for i in range(1000):
        features = {"age": float(rng.normal(40, 10)), "plan": "basic", "city": "oslo"}
        if i < 170:
            features.pop("age")  # 17% missing
        elif i < 190:
            features["age"] = "forty"  # 2% type errors
        elif i < 250:
            features["age"] = 150.0  # 6% of the values present out of range
        if i % 10 == 0:
            features["plan"] = "enterprise"  # unseen by the spec
        if i % 25 == 0:
            features["city"] = "lima"  # unseen by the reference
        events.append(
            {
                "features": features,
                "outputs": {"score": 0.5},
                "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
                "latency_ms": float(10 + i % 90),
                "error": "boom" if i % 50 == 0 else None,
            }
        )
    store.append_events([EventBatch("q", parse_events(spec, events, T0 + timedelta(days=1)).table)])
    eng.step()
    docs = eng.documents.query(IndicatorQuery("q", limit=1000))
    by = {(d.indicator, d.feature, d.metric): d for d in docs}
    missing = by[("missing", "age", None)]
    assert missing.value == pytest.approx(0.17) and missing.status == "alert"
    assert missing.threshold == pytest.approx(0.1 + 0.05)  # the reference's 10% plus the tolerance
    assert by[("missing", "plan", None)].value == 0 and by[("missing", "plan", None)].status == "ok"
    assert (
        by[("type_errors", "age", None)].value == pytest.approx(0.02)
        and by[("type_errors", "age", None)].status == "alert"
    )
    oor = by[("out_of_range", "age", None)]
    assert oor.value == pytest.approx(60 / 810) and oor.details["max"] == 150.0
    assert ("out_of_range", "plan", None) not in by
    assert by[("unseen_categories", "plan", None)].value == pytest.approx(0.1)
    assert by[("unseen_categories", "plan", None)].details["unseen"] == {"enterprise": 100}
    assert by[("unseen_categories", "city", None)].value == pytest.approx(0.04)
    assert by[("traffic", None, None)].value == 1000
    assert by[("error_rate", None, None)].value == pytest.approx(0.02)
    latencies = np.array([10 + i % 90 for i in range(1000)], float)
    for metric, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        got = by[("latency", None, metric)].value
        assert got is not None and abs(got - np.quantile(latencies, q)) / np.quantile(latencies, q) < 0.3
    assert by[("latency", None, "mean")].value == pytest.approx(latencies.mean())


def test_health_limits_are_configurable(tmp_path) -> None:
    spec = parse_model_spec(
        {
            **SPEC,
            "indicators": [
                {"type": "latency", "params": {"p95_ms": 50}},
                {"type": "traffic", "params": {"min_events": 500}},
                {"type": "error_rate", "params": {"max_rate": 0.5}},
            ],
        }
    )
    store = DuckDBStore(f"duckdb:///{tmp_path / 'h.duckdb'}")
    store.put_spec(spec)
    events = [
        {"features": {"age": 1.0}, "timestamp": (T0 + timedelta(seconds=i)).isoformat(), "latency_ms": 100.0}
        for i in range(100)
    ]
    store.append_events([EventBatch("q", parse_events(spec, events, T0 + timedelta(days=1)).table)])
    eng = embedded_engine(store, clock=lambda: T0 + timedelta(days=1))
    by = {(d.indicator, d.metric): d for d in eng.step()}
    assert by[("latency", "p95")].status == "alert" and by[("latency", "p50")].status == "ok"  # no limit on p50
    assert by[("traffic", None)].status == "alert" and by[("traffic", None)].threshold == 500
    assert by[("error_rate", None)].status == "ok"
