"""Bounded memory over any history (issue 11, item 5): ids are deduplicated over a horizon, not by an index over
every event ever stored; raw events and labels past ``retention.events`` go once aggregated, and the aggregates,
indicator documents and a later rebuild of the windows stay right."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.labels import parse_labels
from sustain.collector.reference import to_layout
from sustain.engine import Engine
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch
from sustain.transforms.plan import plan_for

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def spec(retention: dict[str, str] | None = None) -> ModelSpec:
    body: dict = {"name": "m", "features": {"x": "numeric"}, "windows": ["1m", "5m"], "label": {"kind": "regression"}}
    if retention is not None:
        body["retention"] = retention
    return parse_model_spec(body)


def batch(s: ModelSpec, items: list[dict]) -> EventBatch:
    parsed = parse_events(s, items, datetime.now(UTC))
    assert not parsed.errors
    return EventBatch(s.name, parsed.table)


def events(n: int, at: datetime, prefix: str = "") -> list[dict]:
    return [
        {"event_id": f"{prefix}{uuid.uuid4()}", "timestamp": at.isoformat(), "features": {"x": float(i % 10)}}
        for i in range(n)
    ]


def index_bytes(store: DuckDBStore) -> int:
    rows = store.cursor().execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'ART_INDEX'").fetchall()
    return int(rows[0][0])


@pytest.fixture
def store(tmp_path: Path):
    s = DuckDBStore(f"duckdb:///{tmp_path / 'r.duckdb'}")
    yield s
    s.close()


def test_repeats_within_the_horizon_are_stored_once(store: DuckDBStore) -> None:
    s = spec()
    store.put_spec(s)
    first = events(50, T0)
    assert store.append_events([batch(s, first)])[0].inserted == 50
    again = first[:20] + events(5, T0) + [first[30], first[30]]  # retries, new ones, and one id twice in a batch
    (result,) = store.append_events([batch(s, again)])
    assert (result.inserted, result.duplicates) == (5, 22)
    assert store.count_events("m") == 55
    # Past the horizon an id is new again: that is the bounded guarantee (retention.dedup, 1h by default).
    assert store.forget_ids("m", datetime.now(UTC) + timedelta(seconds=1)) == 55
    assert store.append_events([batch(s, first[:3])])[0].inserted == 3


def test_the_dedup_index_holds_the_horizon_only(store: DuckDBStore) -> None:
    """The index memory stays flat while stored events pile up. Before, it grew with every event ever stored:
    5.5, 9.7, 14.9, 19.9 MB here after 100k, 200k, 300k, 400k events (now 5.5, 5.0, 5.0, 5.0)."""
    s = spec()
    store.put_spec(s)
    sizes = []
    for _ in range(4):
        for _ in range(5):
            store.append_events([batch(s, events(20_000, T0))])
        sizes.append(index_bytes(store))
        store.forget_ids("m", datetime.now(UTC) + timedelta(seconds=1))  # the horizon passed for all of them
    assert store.count_events("m") == 400_000
    assert sizes[-1] <= max(sizes[0], 1 << 20) * 1.5, sizes


def test_an_old_store_loses_its_index_over_every_event(tmp_path: Path) -> None:
    """A store made before the horizon had ``eid UUID PRIMARY KEY`` on the events table: opened now, the table
    is copied without it, nothing is lost, and the ids of the horizon seed the dedup index."""
    path = tmp_path / "old.duckdb"
    s = spec()
    store = DuckDBStore(f"duckdb:///{path}")
    store.put_spec(s)
    kept = events(30, T0)
    store.append_events([batch(s, kept)])
    with store.transaction() as con:  # the old layout
        con.execute('CREATE TABLE "ev:m:old" AS SELECT * FROM "ev:m"')
        con.execute('DROP TABLE "ev:m"')
        con.execute('DROP TABLE "dd:m"')
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'ev:m:old'"
            " ORDER BY ordinal_position"
        ).fetchall()
        body = ", ".join(f'"{n}" {t}{" PRIMARY KEY" if n == "eid" else ""}' for n, t in columns)
        con.execute(f'CREATE TABLE "ev:m" ({body})')
        con.execute('INSERT INTO "ev:m" SELECT * FROM "ev:m:old"')
        con.execute('DROP TABLE "ev:m:old"')
    store.close()

    store = DuckDBStore(f"duckdb:///{path}")
    try:
        store.put_spec(s)
        keys = store.cursor().execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'ev:m' AND constraint_type = 'PRIMARY KEY'"
        )
        assert keys.fetchall()[0][0] == 0
        assert store.count_events("m") == 30
        (result,) = store.append_events([batch(s, kept[:10] + events(2, T0))])
        assert (result.inserted, result.duplicates) == (2, 10)  # the horizon's ids still count as stored
    finally:
        store.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def engine_on(store: DuckDBStore, clock: Clock) -> Engine:
    return embedded_engine(store, clock=clock)


def rows_by_window(engine: Engine, s: ModelSpec, window: str) -> dict[datetime, int]:
    plan = plan_for(s, window, engine.windows.binning_profile(s))
    return {w.start: w.rows for w in engine.windows.read_windows(plan)}


def test_old_raw_events_go_once_aggregated_and_the_aggregates_stay(store: DuckDBStore) -> None:
    s = spec({"events": "10m", "dedup": "2m"})
    store.put_spec(s)
    clock = Clock(T0 + timedelta(hours=1))
    engine = engine_on(store, clock)
    old = events(100, T0)  # an hour old: past the 10 minutes of retention
    recent = events(40, clock.now - timedelta(minutes=2))
    store.append_events([batch(s, old), batch(s, recent)])
    labels, errors = parse_labels(
        s, [{"event_id": e["event_id"], "label": 1.0, "timestamp": T0.isoformat()} for e in old[:10]], T0
    )
    assert not errors
    store.append_labels([labels])

    late = events(7, T0 + timedelta(minutes=1))
    engine.run_retention()
    assert store.count_events("m") == 140  # nothing is deleted before the transforms folded it in

    engine.step()
    windows_before = rows_by_window(engine, s, "1m")
    docs_before = len(engine.documents.query(_query()))
    assert windows_before[T0] == 100 and docs_before > 0
    store.append_events([batch(s, late)])  # late events for an old window, not folded in yet

    (report,) = engine.run_retention()
    assert report.events == 100 and report.labels == 10
    assert store.count_events("m") == 47  # the recent ones, and the late ones still to be folded in
    assert report.kept_from == datetime(2026, 6, 1, 12, 50, tzinfo=UTC)  # 10 minutes back, whole 5m windows
    assert rows_by_window(engine, s, "1m")[T0] == 100  # the aggregates stay
    assert len(engine.documents.query(_query())) >= docs_before  # and so do the indicator documents

    engine.step()
    engine.run_retention()
    assert store.count_events("m") == 40
    assert rows_by_window(engine, s, "1m")[T0 + timedelta(minutes=1)] == 7


def test_a_rebuild_after_retention_keeps_the_windows_it_cannot_recompute(store: DuckDBStore) -> None:
    s = spec({"events": "10m", "dedup": "2m"})
    store.put_spec(s)
    clock = Clock(T0 + timedelta(hours=1))
    engine = engine_on(store, clock)
    store.put_reference("m", "1", to_layout(s, pa.table({"x": [float(i) for i in range(100)]})).table)
    engine.on_reference("m", "1")
    store.append_events([batch(s, events(100, T0)), batch(s, events(60, clock.now - timedelta(minutes=3)))])
    engine.step()
    engine.run_retention()
    before = rows_by_window(engine, s, "5m")
    # New bins for the binning reference: every transform of the model is rebuilt from its raw events.
    store.put_reference("m", "1", to_layout(s, pa.table({"x": [float(i % 7) for i in range(100)]})).table)
    engine.on_reference("m", "1")
    reports = engine.run_transforms()
    assert all(r.rebuilt for r in reports) and {r.rebuilt_from for r in reports} == {T0 + timedelta(minutes=50)}
    after = rows_by_window(engine, s, "5m")
    assert after == before  # the old window kept its 100 rows, the recent one was recomputed to its 60
    assert after[T0] == 100 and sum(after.values()) == 160


def _query():
    from sustain.indicators.documents import IndicatorQuery

    return IndicatorQuery(model="m", limit=100_000)
