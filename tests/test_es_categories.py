"""Category keys on the Elasticsearch double: hostile values, and counts past the terms size.

A transform writes each window's category counts into a ``flattened`` field. The double refuses what a cluster
refuses there (a key with NUL, a ``key\\0count`` term over 32,766 bytes), and a refused document fails the
transform for good, so hostile categories must be made safe at ingest: then the transform keeps running and
both engines count the same keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.collector.categories import EMPTY, MAX_BYTES, REPLACEMENT
from sustain.collector.events import parse_events
from sustain.store.base import EventBatch
from sustain.transforms.window import CategorySummary
from tests.es_double import Cluster
from tests.es_harness import Side, cluster_clock, duck_side, es_side, events_for, load, settle, spec_of
from tests.test_transforms_es import assert_same_windows

LONG = "é" * 20_000  # 40,000 UTF-8 bytes
HOSTILE = ["a\x00b", "", LONG, "x" * 32_760]


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


def hostile_items(cluster: Cluster, n: int = 80) -> list[dict[str, Any]]:
    items = events_for(spec_of(), cluster_clock(cluster) - timedelta(hours=1), [(0, None)], n)
    for i, item in enumerate(items[: 4 * len(HOSTILE)]):
        item["features"]["city"] = HOSTILE[i % len(HOSTILE)]
    return items


def city_counts(side: Side) -> CategorySummary:
    [plan] = side.engine.runner.plans(spec_of())
    [window] = side.engine.windows.read_windows(plan)
    summary = window.columns["f:city"]
    assert isinstance(summary, CategorySummary)
    return summary


def transform_states(cluster: Cluster) -> list[tuple[str, str | None]]:
    return [(t["state"], t.get("reason")) for t in cluster.transforms.get_stats("*")["transforms"]]


def test_the_double_refuses_what_a_flattened_field_refuses(cluster: Cluster) -> None:
    from elasticsearch import BadRequestError, Elasticsearch

    es = Elasticsearch("http://double:9200", **cluster.client_options())
    es.indices.create(index="flat", mappings={"properties": {"cat": {"type": "flattened"}}})
    es.index(index="flat", id="ok", document={"cat": {"basic": 3, "": 1}})  # empty keys are fine since 8.6
    with pytest.raises(BadRequestError, match="cannot contain the reserved character"):
        es.index(index="flat", id="nul", document={"cat": {"a\x00b": 3}})
    with pytest.raises(BadRequestError, match="immense field"):
        es.index(index="flat", id="long", document={"cat": {"x" * 32_760: 123_456}})
    es.index(index="flat", id="fits", document={"cat": {"x" * MAX_BYTES: 10**19}})


def test_hostile_categories_are_safe_keys_in_both_engines(cluster: Cluster, sides: tuple[Side, Side]) -> None:
    es, duck = sides
    load([es, duck], spec_of(), hostile_items(cluster), cluster_clock(cluster))
    settle(cluster, es)
    duck.engine.step()
    assert transform_states(cluster) == [("started", None)]
    got, want = city_counts(es), city_counts(duck)
    assert got == want
    assert got.counts["a" + REPLACEMENT + "b"] == 4 and got.counts[EMPTY] == 4
    assert all(len(key.encode()) <= MAX_BYTES for key in got.counts)
    [plan] = es.engine.runner.plans(spec_of())
    assert_same_windows(es.engine.windows.read_windows(plan), duck.engine.windows.read_windows(plan), set())


def test_rows_that_bypass_the_collector_are_made_safe_by_the_store(cluster: Cluster, sides: tuple[Side, Side]) -> None:
    es, _ = sides
    spec = spec_of()
    load([es], spec, [], cluster_clock(cluster))
    table = parse_events(spec, hostile_items(cluster), cluster_clock(cluster)).table
    raw = pa.array([HOSTILE[i % len(HOSTILE)] if i < 16 else v for i, v in enumerate(table["f:city"].to_pylist())])
    table = table.set_column(table.schema.get_field_index("f:city"), "f:city", raw)
    assert table["f:city"][0].as_py() == "a\x00b"  # not sanitised: as a plugin or a migration might write it
    es.store.append_events([EventBatch("churn", table)])
    settle(cluster, es)
    assert transform_states(cluster) == [("started", None)]
    assert city_counts(es).counts[EMPTY] == 4


def test_an_unsafe_key_fails_the_transform_for_good(cluster: Cluster, sides: tuple[Side, Side]) -> None:
    """What the sanitising prevents: one event written around sustain with a NUL category."""
    es, _ = sides
    assert isinstance(es.store, ElasticsearchStore)
    load([es], spec_of(), hostile_items(cluster)[20:], cluster_clock(cluster))
    settle(cluster, es)
    doc = {
        "@timestamp": (cluster_clock(cluster) - timedelta(minutes=30)).isoformat(),
        "event": {"id": "around"},
        "model": {"id": "churn", "version": "1"},
        "buckets": {"1h": (cluster_clock(cluster) - timedelta(hours=1)).replace(minute=0, second=0).isoformat()},
        "features": {"city": "a\x00b"},
    }
    es.store.client.raw.create(index="sustain-events-churn", id="around", document=doc)
    settle(cluster, es)
    [(state, reason)] = transform_states(cluster)
    assert state == "failed" and reason is not None and "reserved character" in reason


def test_references_and_labels_get_the_same_keys_as_events(cluster: Cluster) -> None:
    from sustain.collector.labels import parse_labels
    from sustain.collector.reference import to_layout

    spec = spec_of()
    reference = to_layout(spec, pa.table({"age": [30.0, 40.0], "city": ["a\x00b", ""], "prediction": ["", "stay"]}))
    assert reference.table["f:city"].to_pylist() == ["a" + REPLACEMENT + "b", EMPTY]
    assert reference.table["o:prediction"].to_pylist() == [EMPTY, "stay"]
    open_spec = spec.model_copy(update={"label": spec.label.model_copy(update={"classes": None})} if spec.label else {})
    batch, errors = parse_labels(open_spec, [{"request_id": "r1", "label": "x\x00y"}], cluster_clock(cluster))
    assert not errors and batch.table["label"].to_pylist() == ["x" + REPLACEMENT + "y"]
