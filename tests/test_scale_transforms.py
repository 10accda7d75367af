"""Transforms at scale: NumPy partials equal the SQL plan's on awkward values, idle plans are not read, a batch
merges in one transaction and one failing plan fails alone, another runner's progress is never counted twice."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from sustain.backends.duckdb.partials import partials, read_sql
from sustain.backends.duckdb.runner import TransformRunner
from sustain.backends.duckdb.sql import delta_sql, long_rows
from sustain.backends.duckdb.store import DuckDBStore, events_table
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.collector.events import parse_events
from sustain.spec import ModelSpec
from sustain.store.base import EventBatch
from sustain.transforms.plan import ColumnPlan, TransformPlan, plan_for
from sustain.transforms.profile import ReferenceProfile, build_profile

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SPEC = {
    "name": "odd",
    "features": {
        "x": {"kind": "numeric", "range": [0, 10]},
        "flag": "boolean",
        "colour": {"kind": "categorical", "categories": ["red", "green"]},
        "note": "text",
        "vec": {"kind": "embedding", "dim": 3},
    },
    "outputs": {"score": {"kind": "class_scores", "classes": ["no", "yes"]}},
    "windows": ["1m", "1h"],
}
EDGES = [1.0, 2.5, 5.0, 7.5]


def spec(name: str = "odd") -> ModelSpec:
    return ModelSpec.model_validate({**SPEC, "name": name})


def awkward_events(n: int, seed: int) -> list[dict[str, object]]:
    """Values on bin edges, outside the range, missing, of the wrong type, multi-byte text, several versions."""
    rng = np.random.default_rng(seed)
    on_edges = [*EDGES, 0.0, -3.0, 12.0, 1e300]
    events: list[dict[str, object]] = []
    for i in range(n):
        x: object = float(on_edges[i % len(on_edges)]) if i % 3 == 0 else float(rng.normal(5, 3))
        if i % 13 == 0:
            x = None
        if i % 17 == 0:
            x = "n/a"  # a type error: stored as null, counted as invalid
        features: dict[str, object] = {
            "x": x,
            "flag": bool(i % 4 == 0) if i % 11 else None,
            "colour": ["red", "green", "blue", "grün"][i % 4] if i % 7 else None,
            "note": ["", "héllo wörld", "🦆🦆 quack", "plain"][i % 4] if i % 5 else None,
            "vec": [float(v) for v in rng.normal(0, 1, 3)] if i % 9 else None,
        }
        p = float(rng.random())
        events.append(
            {
                "features": features,
                "outputs": {"score": [1 - p, p]},
                "timestamp": (T0 + timedelta(seconds=float(rng.uniform(0, 3 * 3600)))).isoformat(),
                "version": ["1", "2"][i % 2],
                "latency_ms": None if i % 8 == 0 else float(rng.lognormal(2, 1)),
                "error": "boom" if i % 19 == 0 else None,
            }
        )
    return events


def ingest(store: DuckDBStore, s: ModelSpec, events: list[dict[str, object]]) -> None:
    parsed = parse_events(s, events, T0 + timedelta(days=1))
    assert not parsed.errors, parsed.errors
    store.append_events([EventBatch(s.name, parsed.table)])


def binned_plans(s: ModelSpec) -> list[TransformPlan]:
    """Plans with bins on every numeric-like column (edges chosen to be hit exactly), one with a single bin."""
    reference = pa.table({"f:x": [0.5, 1.0, 2.5, 5.0, 7.5, 9.0] * 10})
    profile = build_profile(s.name, "1", reference, {"f:x": "numeric"}, bins=5)
    plans = [plan_for(s, w, profile) for w in s.windows]
    columns = []
    for col in plans[0].columns:
        if col.kind in ("numeric", "text", "embedding"):
            col = type(col)(col.column, col.kind, edges=tuple(EDGES), shift=2.0, range=col.range)
        columns.append(col)
    single = tuple(type(c)(c.column, c.kind, edges=(), shift=c.shift) if c.column == "f:x" else c for c in columns)
    return [
        *plans,
        TransformPlan(s.name, "1m", 60.0, tuple(columns)),
        TransformPlan(s.name, "5m", 300.0, single),
    ]


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(f"duckdb:///{tmp_path / 't.duckdb'}")
    s.put_spec(spec())
    return s


def assert_partials_equal_the_sql_plan(store: DuckDBStore) -> set[str]:
    """NumPy partials against the SQL plan's for every plan of the ``odd`` model; the stats seen."""
    stats: set[str] = set()
    for plan in binned_plans(spec()):
        want = {
            (v, b, c, st, k): val
            for v, b, c, st, k, val in long_rows(plan, store.sql(delta_sql(plan, events_table("odd")), [0, 10**9]))
        }
        table = partials(plan, store.sql(read_sql(plan, events_table("odd")), [0, 10**9]))
        got = {(r["version"], r["bucket"], r["column"], r["stat"], r["key"]): r["value"] for r in table.to_pylist()}
        assert got.keys() == want.keys(), plan.id
        differ = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        assert all(
            math.isclose(a, b, rel_tol=1e-12) or (math.isnan(a) and math.isnan(b)) for a, b in differ.values()
        ), (plan.id, differ)
        stats |= {k[3] for k in want}
        assert ("1", min(k[1] for k in want), "ts", "max", "") in want  # the time of each window's last event
    return stats


def test_numpy_partials_equal_the_sql_plan_value_for_value(store: DuckDBStore) -> None:
    ingest(store, spec(), awkward_events(3000, 1))
    stats = assert_partials_equal_the_sql_plan(store)
    assert stats >= {"rows", "errors", "count", "missing", "invalid", "sum", "sumsq", "min", "max", "bin", "cat", "oor"}


def test_numpy_partials_equal_the_sql_plan_on_nan_and_infinities(store: DuckDBStore) -> None:
    """Values JSON cannot carry but a store can hold: NaN, +inf and -inf among numbers and nulls, in every
    numeric-like column the partials stack together."""
    ingest(store, spec(), awkward_events(2000, 2))
    with store.transaction() as con:
        for column in ('"f:x"', "latency_ms"):
            con.execute(
                f"UPDATE {events_table('odd')} SET {column} = CASE seq % 7 WHEN 0 THEN 'nan'::DOUBLE"
                f" WHEN 1 THEN 'inf'::DOUBLE WHEN 2 THEN '-inf'::DOUBLE ELSE {column} END WHERE seq % 5 < 3"
            )
    nan = store.sql(f'SELECT count(*) AS n FROM {events_table("odd")} WHERE isnan("f:x")').column("n")[0].as_py()
    assert nan > 0
    assert_partials_equal_the_sql_plan(store)


def test_a_chunk_with_no_event_makes_no_partial(store: DuckDBStore) -> None:
    (plan, *_) = binned_plans(spec())
    empty = store.sql(read_sql(plan, events_table("odd")), [0, 0])
    assert partials(plan, empty).num_rows == 0


def test_idle_plans_are_not_read_and_a_batch_is_one_transaction(store: DuckDBStore) -> None:
    store.put_spec(spec("other"))
    windows = DuckDBWindows(store)
    runner = TransformRunner(store, windows)
    ingest(store, spec(), awkward_events(500, 2))
    ingest(store, spec("other"), awkward_events(300, 3))
    plans = runner.plans(spec()) + runner.plans(spec("other"))
    first = runner.run_plans(plans)
    assert not first.failures and sum(r.events for r in first.reports) == 2 * 800  # two windows per model

    reads: list[str] = []
    original = store.sql

    def counting(query: str, params: object = ()) -> pa.Table:
        reads.append(query)
        return original(query, params)  # type: ignore[arg-type]

    store.sql = counting  # type: ignore[method-assign]
    idle = runner.run_plans(plans)
    assert reads == [] and [r.events for r in idle.reports] == [0, 0, 0, 0]
    ingest(store, spec("other"), awkward_events(50, 4))
    busy = runner.run_plans(plans)
    assert len(reads) == 2 and all("other" in q for q in reads)  # only the busy model's two plans read events
    assert {r.transform: r.events for r in busy.reports if r.events} == {"other-1m": 50, "other-1h": 50}


def test_a_failing_plan_fails_alone(store: DuckDBStore) -> None:
    store.put_spec(spec("other"))
    runner = TransformRunner(store, DuckDBWindows(store))
    ingest(store, spec(), awkward_events(200, 5))
    ingest(store, spec("other"), awkward_events(200, 6))
    (good, *_) = runner.plans(spec())
    (other, *_) = runner.plans(spec("other"))
    broken = TransformPlan(
        other.model, other.window, other.window_seconds, (*other.columns, ColumnPlan("f:nowhere", "numeric"))
    )
    batch = runner.run_plans([good, broken])
    assert [f.plan.id for f in batch.failures] == ["other-1m"] and "nowhere" in str(batch.failures[0].error)
    assert [(r.transform, r.events) for r in batch.reports] == [("odd-1m", 200)]
    assert runner.windows.checkpoints()["odd-1m"].seq == store.committed_seq("odd")
    assert runner.windows.checkpoints()["other-1m"].seq == 0  # nothing of it folded in


def test_events_another_runner_folded_in_meanwhile_are_not_counted_twice(store: DuckDBStore) -> None:
    ours, theirs = TransformRunner(store, DuckDBWindows(store)), TransformRunner(store, DuckDBWindows(store))
    ingest(store, spec(), awkward_events(400, 7))
    (plan, *_) = ours.plans(spec())
    checkpoints = ours.windows.checkpoints()
    job = ours._start(plan, checkpoints)
    assert job is not None
    merge = ours._chunk(job)  # our read is done; before we merge, the other runner folds the same events in
    assert not theirs.run_plans([plan]).failures
    left = ours.windows.merge_many([merge], expected={plan.id: job.expected})
    assert left == {plan.id}
    assert sum(w.rows for w in ours.windows.read_windows(plan)) == 400
    assert not ours.run_plans([plan]).failures  # and the next run finds nothing new
    assert sum(w.rows for w in ours.windows.read_windows(plan)) == 400


def test_partials_of_a_store_from_before_move_into_the_one_table(tmp_path: Path) -> None:
    """Stores written before ``_partials`` kept one ``"agg:<model>"`` table per model: opening one moves them."""
    uri = f"duckdb:///{tmp_path / 'old.duckdb'}"
    store = DuckDBStore(uri)
    store.put_spec(spec())
    ingest(store, spec(), awkward_events(300, 8))
    runner = TransformRunner(store, DuckDBWindows(store))
    (plan, *_) = runner.plans(spec())
    runner.run_plan(plan)
    before = {(w.version, w.start): w.rows for w in runner.windows.read_windows(plan)}
    with store.transaction() as con:  # as the old layout had it
        con.execute(
            'CREATE TABLE "agg:odd" AS SELECT win, version, bucket, "column", stat, key, value FROM _partials'
            " WHERE model = 'odd'"
        )
        con.execute("DELETE FROM _partials")
    store.close()

    store = DuckDBStore(uri)
    windows = DuckDBWindows(store)
    assert {(w.version, w.start): w.rows for w in windows.read_windows(plan)} == before
    tables = store.sql("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'agg:%'")
    assert tables.num_rows == 0
    store.close()


def test_profiles_are_read_once_and_kept_per_model(store: DuckDBStore) -> None:
    """A cold cache reads every model's profiles in one query; a write through any DuckDBWindows of the store is
    seen by the others, for that model only; what a writer keeps is what a fresh read returns."""

    def profile(model: str, version: str, shift: float) -> ReferenceProfile:
        reference = pa.table({"f:x": [shift + v for v in (0.5, 1.0, 2.5, 5.0, 7.5, 9.0)] * 10})
        return build_profile(model, version, reference, {"f:x": "numeric"}, bins=5)

    writer = DuckDBWindows(store)
    for model in ("a", "b"):
        writer.put_profile(profile(model, "1", 0.0))
    reader = DuckDBWindows(store)
    queries: list[str] = []
    cursor = reader._cursor

    def counting() -> duckdb.DuckDBPyConnection:
        queries.append("cursor")
        return cursor()

    reader._cursor = counting  # type: ignore[method-assign]
    assert [p.version for p in reader.list_profiles("a")] == ["1"] and len(queries) == 1  # all models at once
    b_before = reader.list_profiles("b")
    assert len(queries) == 1
    writer.put_profile(profile("a", "2", 1.0))
    assert [p.version for p in reader.list_profiles("a")] == ["1", "2"] and len(queries) == 2  # "a" read again
    assert reader.list_profiles("b")[0] is b_before[0] and len(queries) == 2  # "b" kept
    fresh = DuckDBWindows(store).list_profiles("a")
    assert [p.to_json() for p in writer.list_profiles("a")] == [p.to_json() for p in fresh]
    assert reader.list_profiles("nobody") == [] and reader.list_profiles("nobody") == [] and len(queries) == 3
