"""The embedded transforms give the same aggregates as a from-scratch recomputation, across restarts and late events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from sustain.backends.duckdb.runner import TransformRunner
from sustain.backends.duckdb.sql import delta_sql, long_rows
from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch
from sustain.synthetic import SyntheticModel
from sustain.transforms.plan import TransformPlan
from sustain.transforms.references import profile_reference
from sustain.transforms.window import CategorySummary, NumericSummary, WindowAggregates, from_long_rows

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

SPEC = {
    "name": "shop",
    "features": {
        "amount": {"kind": "numeric", "range": [0, 1000]},
        "items": "numeric",
        "channel": {"kind": "categorical", "categories": ["web", "app", "store"]},
        "member": "boolean",
        "comment": "text",
        "vec": {"kind": "embedding", "dim": 3},
    },
    "outputs": {"score": {"kind": "class_scores", "classes": ["no", "yes"]}, "decision": {"kind": "class_label"}},
    "windows": ["5m", "1h"],
}


def spec() -> ModelSpec:
    return parse_model_spec(SPEC)


def make_events(model: SyntheticModel, n: int, start: datetime, spread: timedelta, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    events = model.events(n)
    for i, e in enumerate(events):
        e["timestamp"] = (start + spread * float(rng.random())).isoformat()
        e["latency_ms"] = float(rng.lognormal(2, 0.5)) if i % 7 else None
        e["outputs"]["decision"] = "yes" if e["outputs"]["score"][1] > 0.5 else "no"
        if i % 11 == 0:
            e["features"]["amount"] = "n/a"  # a type error: stored as null, counted as invalid
        if i % 13 == 0:
            e["features"].pop("channel")
        if i % 17 == 0:
            e["error"] = "boom"
    return events


def ingest(store: DuckDBStore, s: ModelSpec, events: list[dict]) -> None:
    parsed = parse_events(s, events, T0 + timedelta(days=2))
    assert not parsed.errors
    store.append_events([EventBatch(s.name, parsed.table)])


def from_scratch(store: DuckDBStore, plan: TransformPlan) -> dict[tuple[str, datetime], WindowAggregates]:
    delta = store.sql(delta_sql(plan, '"ev:shop"'), [0, 10**12])
    grouped: dict[tuple[str, datetime], list] = {}
    for version, bucket, column, stat, key, value in long_rows(plan, delta):
        grouped.setdefault((version, bucket), []).append((column, stat, key, value))
    return {k: from_long_rows(plan, k[0], k[1], rows) for k, rows in grouped.items()}


def assert_same(a: WindowAggregates, b: WindowAggregates) -> None:
    assert (a.rows, a.errors) == (b.rows, b.errors)
    assert set(a.columns) == set(b.columns)
    for name in a.columns:
        x, y = a.columns[name], b.columns[name]
        if isinstance(x, NumericSummary):
            assert isinstance(y, NumericSummary)
            shape = (x.count, x.missing, x.invalid, x.bins, x.min, x.max)
            assert shape == (y.count, y.missing, y.invalid, y.bins, y.min, y.max), name
            assert x.sum == pytest.approx(y.sum, rel=1e-9, abs=1e-9), name
            assert x.sumsq == pytest.approx(y.sumsq, rel=1e-9), name
        else:
            assert isinstance(y, CategorySummary)
            assert (x.counts, x.missing, x.invalid) == (y.counts, y.missing, y.invalid), name
    assert a.latency.bins == b.latency.bins and a.latency.count == b.latency.count


@pytest.fixture
def setup(tmp_path):
    s = spec()
    store = DuckDBStore(f"duckdb:///{tmp_path / 'w.duckdb'}")
    store.put_spec(s)
    model = SyntheticModel(s, seed=3)
    ref = model.reference(3000)
    ref["decision"] = ["yes" if x > 0.5 else "no" for x in ref["score.yes"]]
    store.put_reference("shop", "1", to_layout(s, pa.table(ref)).table)
    windows = DuckDBWindows(store)
    profile_reference(store, windows, s, "1")
    return s, store, windows, model


def test_incremental_equals_from_scratch_across_restarts_and_late_events(setup, tmp_path) -> None:
    s, store, windows, model = setup
    runner = TransformRunner(store, windows, chunk_seq=700)
    ingest(store, s, make_events(model, 1500, T0, timedelta(hours=3), 1))
    runner.run()
    ingest(store, s, make_events(model, 900, T0 + timedelta(hours=3), timedelta(hours=1), 2))
    ingest(store, s, make_events(model, 400, T0, timedelta(minutes=30), 3))  # late: buckets already aggregated
    runner.run()
    uri = store.uri
    store.close()  # restart
    store = DuckDBStore(uri)
    windows = DuckDBWindows(store)
    runner = TransformRunner(store, windows, chunk_seq=500)
    ingest(store, s, make_events(model, 700, T0 + timedelta(minutes=10), timedelta(hours=4), 4))
    reports = runner.run()
    assert all(not r.rebuilt for r in reports)
    runner.run()  # nothing new: no change
    for plan in runner.plans(s):
        stored = {(w.version, w.start): w for w in windows.read_windows(plan)}
        expected = from_scratch(store, plan)
        assert stored.keys() == expected.keys()
        for key, window in expected.items():
            assert_same(stored[key], window)
        assert sum(w.rows for w in stored.values()) == 3500
    store.close()


def test_partials_match_an_independent_oracle(setup) -> None:
    s, store, windows, model = setup
    events = make_events(model, 2000, T0, timedelta(hours=2), 5)
    ingest(store, s, events)
    runner = TransformRunner(store, windows)
    runner.run()
    plan = next(p for p in runner.plans(s) if p.window == "1h")
    stored = {w.start: w for w in windows.read_windows(plan)}
    profile = windows.get_profile("shop", "1")
    assert profile is not None
    edges = profile.columns["f:items"].edges
    assert edges and plan.column("f:items").edges == tuple(edges)
    for hour in range(2):
        start = T0 + timedelta(hours=hour)
        mine = [e for e in events if start <= datetime.fromisoformat(e["timestamp"]) < start + timedelta(hours=1)]
        w = stored[start]
        assert w.rows == len(mine)
        assert w.errors == sum(1 for e in mine if e.get("error"))
        items = np.array([e["features"]["items"] for e in mine], dtype=float)
        num = w.numeric("f:items")
        assert num is not None
        assert num.count == len(items) and num.min == items.min() and num.max == items.max()
        assert num.mean == pytest.approx(items.mean(), rel=1e-12)
        assert num.std == pytest.approx(items.std(ddof=1), rel=1e-9)
        assert num.bins == list(np.bincount(np.searchsorted(edges, items, side="left"), minlength=len(edges) + 1))
        amount = w.numeric("f:amount")
        assert amount is not None and amount.invalid == sum(1 for e in mine if e["features"]["amount"] == "n/a")
        channel = w.categories("f:channel")
        assert channel is not None
        assert channel.counts == dict(Counter(e["features"]["channel"] for e in mine if "channel" in e["features"]))
        assert channel.missing == sum(1 for e in mine if "channel" not in e["features"])
        member = w.categories("f:member")
        assert member is not None and member.counts.get("true", 0) == sum(1 for e in mine if e["features"]["member"])
        text = w.numeric("f:comment")
        assert text is not None and text.max == max(len(e["features"]["comment"]) for e in mine)
        vec = w.numeric("f:vec")
        norms = [float(np.linalg.norm(e["features"]["vec"])) for e in mine]
        assert vec is not None and vec.max == pytest.approx(max(norms), rel=1e-6)
        lat = [e["latency_ms"] for e in mine if e["latency_ms"] is not None]
        assert w.latency.count == len(lat) and w.latency.sum == pytest.approx(sum(lat))
        p95 = w.latency.quantile(0.95, plan.latency_edges)
        assert p95 is not None and abs(p95 - np.quantile(lat, 0.95)) / np.quantile(lat, 0.95) < 0.3


def test_new_bins_rebuild_the_windows(setup) -> None:
    s, store, windows, model = setup
    ingest(store, s, make_events(model, 600, T0, timedelta(hours=1), 6))
    runner = TransformRunner(store, windows)
    runner.run()
    before = {p.window: p.fingerprint for p in runner.plans(s)}
    ref = model.reference(500)
    ref["decision"] = ["no"] * 500
    store.put_reference("shop", "1", to_layout(s, pa.table(ref)).table)  # replace the binning reference
    profile_reference(store, windows, s, "1")
    reports = runner.run()
    assert all(r.rebuilt for r in reports)
    assert {p.window: p.fingerprint for p in runner.plans(s)} != before
    for plan in runner.plans(s):
        stored = {(w.version, w.start): w for w in windows.read_windows(plan)}
        for key, window in from_scratch(store, plan).items():
            assert_same(stored[key], window)


def test_windows_merge_across_buckets(setup) -> None:
    s, store, windows, model = setup
    ingest(store, s, make_events(model, 1000, T0, timedelta(hours=1), 7))
    runner = TransformRunner(store, windows)
    runner.run()
    plans = {p.window: p for p in runner.plans(s)}
    small = windows.read_windows(plans["5m"])
    (hour,) = windows.read_windows(plans["1h"])
    merged = small[0]
    for w in small[1:]:
        merged += w
    assert_same(merged, hour)
