from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from sustain.backends import open_store
from sustain.backends.duckdb.store import DuckDBStore, parse_duckdb_uri
from sustain.collector.events import parse_events
from sustain.collector.labels import parse_labels
from sustain.errors import Conflict, NotFound, StoreError
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.store.base import DoneExchange, EventBatch, EventQuery, PendingHalf

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def batch(spec: ModelSpec, items: list[dict]) -> EventBatch:
    parsed = parse_events(spec, items, NOW)
    assert not parsed.errors, parsed.errors
    return EventBatch(spec.name, parsed.table)


def test_unknown_scheme_lists_supported() -> None:
    with pytest.raises(StoreError, match="supported schemes: duckdb"):
        open_store("mysql://x")


def test_uri_forms() -> None:
    assert parse_duckdb_uri("duckdb:///:memory:")[0] == ":memory:"
    assert parse_duckdb_uri("duckdb:///rel/x.db")[0] == "rel/x.db"
    with pytest.raises(StoreError, match="names no database file"):
        parse_duckdb_uri("duckdb://")


def test_the_service_caps_the_store_memory_unless_the_uri_names_its_own(tmp_path) -> None:
    from sustain.api.app import build_context
    from sustain.settings import Settings

    def limit(settings: Settings) -> str:
        ctx = build_context(settings)
        assert isinstance(ctx.store, DuckDBStore)
        try:
            return str(ctx.store.cursor().execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        finally:
            ctx.backend.close()

    assert limit(Settings(store=f"duckdb:///{tmp_path / 'a.duckdb'}", store_memory="300MiB")) == "300.0 MiB"
    assert limit(Settings(store=f"duckdb:///{tmp_path / 'b.duckdb'}")) == "1.0 GiB"  # the default
    own = Settings(store=f"duckdb:///{tmp_path / 'c.duckdb'}?memory_limit=200MiB", store_memory="300MiB")
    assert limit(own) == "200.0 MiB"


def test_repeated_ids_are_stored_once_across_batches_and_restarts(store: DuckDBStore, churn_spec, tmp_path) -> None:
    items = [{"event_id": f"e{i}", "features": {"age": i}} for i in range(5)]
    first = store.append_events([batch(churn_spec, items)])[0]
    assert (first.inserted, first.duplicates) == (5, 0)
    again = store.append_events([batch(churn_spec, [*items[:3], {"event_id": "e9", "features": {}}])])[0]
    assert (again.inserted, again.duplicates) == (1, 3)
    store.close()
    reopened = DuckDBStore(store.uri)
    after = reopened.append_events([batch(churn_spec, items)])[0]
    assert after.inserted == 0 and reopened.count_events("churn") == 6
    # sequences keep growing after a restart, so transforms never miss new rows
    seqs = reopened.sql('SELECT max(seq) AS s FROM "ev:churn"').column("s").to_pylist()[0]
    assert seqs >= 6
    reopened.close()


def test_uuid_event_ids_round_trip_and_other_ids_keep_their_text(store: DuckDBStore, churn_spec) -> None:
    store.append_events(
        [
            batch(
                churn_spec,
                [
                    {"event_id": "0190a5d2-0000-7000-8000-000000000001", "features": {}},
                    {"event_id": "0190A5D2-0000-7000-8000-000000000002", "features": {}},
                    {"event_id": "order-17", "features": {}},
                    {"features": {}},
                ],
            )
        ]
    )
    ids = {e["event_id"] for e in store.read_events("churn", EventQuery(limit=10))}
    assert {"0190a5d2-0000-7000-8000-000000000001", "0190A5D2-0000-7000-8000-000000000002", "order-17"} <= ids
    assert len(ids) == 4


def test_labels_join_whenever_they_arrive(store: DuckDBStore, churn_spec) -> None:
    labels, errors = parse_labels(churn_spec, [{"request_id": "r1", "label": "churn"}], NOW)
    assert not errors
    store.append_labels([labels])  # before the event
    store.append_events(
        [
            batch(
                churn_spec,
                [
                    {"request_id": "r1", "features": {"age": 1}},
                    {"request_id": "r2", "event_id": "ev-2", "features": {"age": 2}},
                    {"request_id": "r3", "features": {"age": 3}},
                ],
            )
        ]
    )
    later, _ = parse_labels(churn_spec, [{"event_id": "ev-2", "label": "stay"}], NOW + timedelta(days=3))
    store.append_labels([later])  # after the event, by event id
    events = {e["request_id"]: e for e in store.read_events("churn", EventQuery())}
    assert events["r1"]["label"]["value"] == "churn"
    assert events["r2"]["label"]["value"] == "stay"
    assert events["r3"]["label"] is None
    corrected, _ = parse_labels(churn_spec, [{"request_id": "r1", "label": "stay"}], NOW)
    store.append_labels([corrected])
    assert store.read_events("churn", EventQuery(request_id="r1"))[0]["label"]["value"] == "stay"
    assert store.count_labels("churn") == 2


def test_query_filters_and_order(store: DuckDBStore, churn_spec) -> None:
    items = [
        {"features": {"age": i}, "timestamp": (NOW - timedelta(hours=i)).isoformat(), "version": "2" if i % 2 else "1"}
        for i in range(6)
    ]
    store.append_events([batch(churn_spec, items)])
    newest = store.read_events("churn", EventQuery(limit=2))
    assert [e["features"]["age"] for e in newest] == [0.0, 1.0]
    window = store.read_events("churn", EventQuery(since=NOW - timedelta(hours=3), until=NOW - timedelta(hours=1)))
    assert [e["features"]["age"] for e in window] == [2.0, 3.0]
    assert {e["version"] for e in store.read_events("churn", EventQuery(version="2"))} == {"2"}
    with pytest.raises(NotFound):
        store.read_events("nope", EventQuery())


def test_spec_changes_add_columns_but_never_change_types(store: DuckDBStore, churn_spec) -> None:
    grown = parse_model_spec(
        {
            **churn_spec.model_dump(),
            "features": [*churn_spec.model_dump()["features"], {"name": "city", "kind": "categorical"}],
        }
    )
    store.put_spec(grown)
    store.append_events([batch(grown, [{"features": {"city": "Oslo"}}])])
    assert store.read_events("churn", EventQuery())[0]["features"]["city"] == "Oslo"
    changed = parse_model_spec(
        {
            **grown.model_dump(),
            "features": [
                {"name": "age", "kind": "categorical"},
                *[f for f in grown.model_dump()["features"] if f["name"] != "age"],
            ],
        }
    )
    with pytest.raises(Conflict, match="'age' is stored as DOUBLE"):
        store.put_spec(changed)
    assert store.get_spec("churn") == grown


def test_reference_replaced_per_version(store: DuckDBStore) -> None:
    table = pa.table({"f:size": [1.0, 2.0], "f:rooms": [3.0, 4.0], "o:value": [5.0, 6.0], "label": [5.5, 6.5]})
    store.put_reference("price", "1", table)
    store.put_reference("price", "1", table.slice(0, 1))
    store.put_reference("price", "2", table)
    infos = {i.version: i.rows for i in store.reference_info("price")}
    assert infos == {"1": 1, "2": 2}
    stored = store.read_reference("price", "2")
    assert stored is not None and stored.column("label").to_pylist() == [5.5, 6.5]
    assert store.read_reference("price", "9") is None


def test_pending_halves_pair_up(store: DuckDBStore) -> None:
    old = NOW - timedelta(minutes=5)
    store.stash_halves(
        [
            PendingHalf("k1", "churn", "request", NOW, {"n": 1}),
            PendingHalf("k1", "churn", "response", NOW, {"n": 2}),
            PendingHalf("k2", "churn", "request", NOW, {"n": 3}),
            PendingHalf("k3", "churn", "request", old, {"n": 4}),
        ]
    )
    taken = store.take_pending(older_than=NOW - timedelta(minutes=1))
    assert {(h.key, h.kind) for h in taken} == {("k1", "request"), ("k1", "response"), ("k3", "request")}
    store.stash_halves([PendingHalf("k2", "churn", "request", NOW, {"n": 30})])  # a second request: the first stays
    store.stash_halves([PendingHalf("k3", "churn", "response", NOW, {"n": 5})])  # its partner, arriving meanwhile
    lone = next(h for h in taken if h.key == "k3")
    store.settle_pending(
        [h for h in taken if h.key in ("k1", "k3")],
        [DoneExchange("churn", "k1", NOW), DoneExchange("churn", "k3", NOW, missing="response", half=lone)],
    )
    left = store.take_pending(older_than=NOW + timedelta(seconds=1))
    assert {(h.key, h.kind, h.body["n"]) for h in left} == {("k2", "request", 3), ("k3", "response", 5)}
    assert store.done_exchange("churn", "k1") == DoneExchange("churn", "k1", NOW)
    remembered = store.done_exchange("churn", "k3")
    assert remembered is not None and remembered.missing == "response" and remembered.half == lone
    assert store.done_exchange("churn", "k2") is None
    store.forget_done(NOW + timedelta(seconds=1))
    assert store.done_exchange("churn", "k1") is None


def test_writes_after_close_fail_clearly(store: DuckDBStore, churn_spec) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append_events([batch(churn_spec, [{"features": {}}])])
