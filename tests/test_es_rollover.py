"""Events repeated across a rollover of their data stream, on the Elasticsearch double.

The double stores a repeated ``_id`` again once the data stream has rolled over, as a cluster does
(elastic/elasticsearch#44794); the store must still count every repeat as a duplicate, and the transforms
must see each event once: the same window rows as the embedded engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.collector.events import parse_events
from sustain.store.base import EventBatch
from tests.es_double import Cluster
from tests.es_harness import Side, cluster_clock, duck_side, es_side, es_store, events_for, load, settle, spec_of

STREAM = "sustain-events-churn"


@pytest.fixture
def cluster() -> Cluster:
    cluster = Cluster()
    cluster.advance(3600)
    return cluster


@pytest.fixture
def sides(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    es, duck = es_side(cluster), duck_side(cluster, tmp_path / "duck.duckdb")
    yield es, duck
    es.store.close()
    duck.store.close()


def batch(cluster: Cluster, n: int = 60) -> EventBatch:
    """``n`` events of the hour before the cluster's clock (ids ``h0-<i>``)."""
    spec = spec_of()
    items = events_for(spec, cluster_clock(cluster) - timedelta(hours=1), [(0, None)], n)
    return EventBatch("churn", parse_events(spec, items, cluster_clock(cluster)).table)


def test_the_double_stores_a_repeat_after_a_rollover_like_a_cluster(cluster: Cluster) -> None:
    """The behaviour the store has to work around: ``create`` checks the write index only."""
    store = es_store(cluster)
    store.put_spec(spec_of())
    doc = {"@timestamp": "2026-01-05T00:00:00Z", "event": {"id": "e1"}, "model": {"id": "churn", "version": "1"}}
    raw = store.client.raw
    assert raw.create(index=STREAM, id="e1", document=doc).meta.status == 201
    with pytest.raises(Exception, match="version_conflict_engine_exception"):
        raw.create(index=STREAM, id="e1", document=doc)
    cluster.rollover(STREAM)
    assert raw.create(index=STREAM, id="e1", document=doc).meta.status == 201
    assert raw.count(index=STREAM)["count"] == 2
    store.close()


def test_a_replay_after_a_rollover_is_a_duplicate(cluster: Cluster, sides: tuple[Side, Side]) -> None:
    es, duck = sides
    spec = spec_of()
    events = batch(cluster)
    load([es, duck], spec, [], cluster_clock(cluster))
    assert [(r.inserted, r.duplicates) for r in es.store.append_events([events])] == [(60, 0)]
    duck.store.append_events([events])
    cluster.rollover(STREAM)
    assert [(r.inserted, r.duplicates) for r in es.store.append_events([events])] == [(0, 60)]
    half = EventBatch("churn", events.table.slice(30))
    cluster.rollover(STREAM)
    assert [(r.inserted, r.duplicates) for r in es.store.append_events([half])] == [(0, 30)]
    assert es.store.count_events("churn") == 60
    settle(cluster, es)
    duck.engine.step()
    [plan] = es.engine.runner.plans(spec)
    assert [w.rows for w in es.engine.windows.read_windows(plan)] == [60]
    assert [w.rows for w in duck.engine.windows.read_windows(plan)] == [60]


def test_a_rollover_during_the_write_is_undone(cluster: Cluster, sides: tuple[Side, Side]) -> None:
    """The lookup runs while the stream has one backing index; the bulk then lands in a new one."""
    es, _ = sides
    assert isinstance(es.store, ElasticsearchStore)
    load([es], spec_of(), [], cluster_clock(cluster))
    events = batch(cluster)
    es.store.append_events([events])

    def roll_before_bulk(method: str, path: str) -> None:
        if path.endswith("/_bulk"):
            cluster.before_request.remove(roll_before_bulk)
            cluster.rollover(STREAM)

    cluster.before_request.append(roll_before_bulk)
    assert [(r.inserted, r.duplicates) for r in es.store.append_events([events])] == [(0, 60)]
    assert not cluster.before_request  # the hook ran
    assert es.store.count_events("churn") == 60
    assert len(cluster.data_streams[STREAM].indices) == 2
    fresh = batch(cluster, 80)  # ids h0-60 .. h0-79 are new; the first 60 repeat
    assert [(r.inserted, r.duplicates) for r in es.store.append_events([fresh])] == [(20, 60)]
    deleted = [r for r in cluster.requests if r.api == "bulk" and "delete" in str(r.body)]
    assert len(deleted) == 1  # the 60 created in the new backing index were deleted again, in one request


def test_one_backing_index_costs_no_lookup(cluster: Cluster, sides: tuple[Side, Side]) -> None:
    es, _ = sides
    load([es], spec_of(), [], cluster_clock(cluster))
    before = len(cluster.requests)
    es.store.append_events([batch(cluster)])
    apis = [r.api for r in cluster.requests[before:]]
    assert apis == ["bulk"]
