"""What the transforms are told, checked by running them on the Elasticsearch double.

* the page size holds the worst case of terms buckets under the cluster's ``search.max_buckets`` (read from
  the cluster), where the old estimate (declared categories + 1) fails the transform on every retry;
* past a column's category limit, both engines keep the same top categories and count the rest under OTHER;
* windows older than the store's retention are deleted by the transform's ``retention_policy``;
* the windows data view reads per-window aliases that follow the current plan's index, so it matches neither
  stale plans' indices nor another model whose name starts alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sustain.backends.elasticsearch.engine import elasticsearch_engine
from sustain.backends.elasticsearch.kibana import windows_title
from sustain.backends.elasticsearch.transforms import dest_index
from sustain.backends.elasticsearch.windows import ESTransformer
from sustain.errors import ConfigError
from sustain.transforms.bins import OTHER
from sustain.transforms.window import CategorySummary
from tests.es_double import Cluster
from tests.es_harness import Side, cluster_clock, duck_side, es_side, es_store, events_for, load, settle, spec_of
from tests.test_transforms_es import assert_same_windows

WIDE: dict[str, Any] = {
    "name": "wide",
    "features": {f"c{i}": {"kind": "categorical", "categories": ["a", "b"]} for i in range(3)},
    "windows": ["1m"],
}


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Cluster, Side, Side]]:
    cluster = Cluster(max_buckets=4000)
    cluster.advance(3600)
    es, duck = es_side(cluster), duck_side(cluster, tmp_path / "duck.duckdb")
    yield cluster, es, duck
    es.store.close()
    duck.store.close()


def runner(side: Side) -> ESTransformer:
    assert isinstance(side.engine.runner, ESTransformer)
    return side.engine.runner


def many_categories(cluster: Cluster, minutes: int, per_minute: int, distinct: int) -> list[dict[str, Any]]:
    """``per_minute`` events a minute, each column cycling through ``distinct`` undeclared categories."""
    spec = spec_of(WIDE)
    start = cluster_clock(cluster) - timedelta(minutes=minutes + 5)
    items = events_for(spec, start, [(0, None)], minutes * per_minute)
    for i, item in enumerate(items):
        item["timestamp"] = (start + timedelta(seconds=i * 60 / per_minute)).isoformat()
        item["features"] = {f"c{c}": f"v{(i * (c + 1)) % distinct}" for c in range(3)}
    return items


def test_the_page_holds_the_worst_case_of_terms_buckets(sides: tuple[Cluster, Side, Side]) -> None:
    cluster, es, duck = sides
    spec = spec_of(WIDE)
    load([es, duck], spec, many_categories(cluster, minutes=40, per_minute=40, distinct=40), cluster_clock(cluster))
    [plan] = runner(es).plans(spec)
    assert runner(es).max_buckets() == 4000  # read from the cluster
    body = runner(es).body(plan)
    assert body["settings"]["max_page_search_size"] == 4000 // (1 + 3 * 100)
    # The old estimate, known categories plus one per column: 400 windows a page, each with 3 x 40 terms buckets.
    old = {**body, "settings": {"max_page_search_size": min(500, 4000 // (1 + 3 * 3))}}
    es.es_store.client.raw.transform.put_transform(transform_id="old-estimate", **old)
    es.es_store.client.raw.transform.start_transform(transform_id="old-estimate")
    settle(cluster, es)
    duck.engine.step()
    states = {t["id"]: (t["state"], t.get("reason", "")) for t in cluster.transforms.get_stats("*")["transforms"]}
    assert states["old-estimate"][0] == "failed" and "too_many_buckets_exception" in states["old-estimate"][1]
    assert states[runner(es).transform_id(plan)] == ("started", "")
    assert_same_windows(es.engine.windows.read_windows(plan), duck.engine.windows.read_windows(plan), set())


def test_an_impossible_page_is_a_sentence(sides: tuple[Cluster, Side, Side]) -> None:
    cluster, es, _ = sides
    cluster.settings["search.max_buckets"] = 2000
    spec = spec_of(WIDE)
    es.store.put_spec(spec)
    fresh = es_side(cluster, client="replica-2")
    [plan] = runner(fresh).plans(spec)
    with pytest.raises(ConfigError, match=r"search.max_buckets is 2000; raise search.max_buckets"):
        runner(fresh).body(plan)
    fresh.store.close()


def test_categories_past_the_limit_are_counted_alike(sides: tuple[Cluster, Side, Side]) -> None:
    cluster, es, duck = sides
    spec = spec_of(WIDE)
    load([es, duck], spec, many_categories(cluster, minutes=2, per_minute=600, distinct=150), cluster_clock(cluster))
    settle(cluster, es)
    duck.engine.step()
    [plan] = runner(es).plans(spec)
    got, want = es.engine.windows.read_windows(plan), duck.engine.windows.read_windows(plan)
    assert_same_windows(got, want, set())
    summary = got[0].columns["f:c0"]
    assert isinstance(summary, CategorySummary)
    assert len(summary.counts) == 101 and summary.counts[OTHER] > 0 and summary.count == got[0].rows


def test_windows_older_than_the_retention_are_deleted() -> None:
    cluster = Cluster()
    cluster.advance(6 * 3600)
    store = es_store(cluster, retention="2h")
    short = Side(store, elasticsearch_engine(store, clock=lambda: cluster_clock(cluster)))
    spec = spec_of()
    start = cluster_clock(cluster) - timedelta(hours=5)
    load([short], spec, events_for(spec, start, [(h, None) for h in range(5)], 30), cluster_clock(cluster))
    [plan] = runner(short).plans(spec)
    assert runner(short).body(plan)["retention_policy"] == {"time": {"field": "bucket", "max_age": "2h"}}
    settle(cluster, short)
    kept = [w.start for w in short.engine.windows.read_windows(plan)]
    assert kept and all(start >= cluster_clock(cluster) - timedelta(hours=2) for start in kept)
    [stats] = cluster.transforms.get_stats("*")["transforms"]
    assert stats["stats"]["documents_deleted"] >= 2
    store.close()


def test_the_windows_view_follows_the_current_plan_only(sides: tuple[Cluster, Side, Side]) -> None:
    cluster, es, _ = sides
    spec = spec_of()
    other = spec_of({**spec_of().model_dump(mode="json"), "name": "churn-eu"})
    start = cluster_clock(cluster) - timedelta(hours=1)
    load([es], spec, events_for(spec, start, [(0, None)], 30), cluster_clock(cluster))
    load([es], other, events_for(other, start, [(0, None)], 30), cluster_clock(cluster))
    settle(cluster, es)
    [before] = runner(es).plans(spec)
    es.store.put_reference("churn", "2", es.store.read_reference("churn", "1"))  # a second reference ...
    spec2 = spec_of({**spec.model_dump(mode="json"), "reference": {"version": "2"}})
    es.store.put_spec(spec2)
    es.engine.on_reference("churn", "2")
    settle(cluster, es)
    [after] = runner(es).plans(spec2)
    assert after.fingerprint != before.fingerprint  # ... bins from it: a new plan, a new destination index
    title = windows_title(spec2)
    indices = sorted(i.name for i in cluster.resolve(title))
    assert indices == [dest_index(after, "sustain")]
    assert dest_index(before, "sustain") in cluster.indices  # the stale plan's index stays, outside the view
    assert not any("churn-eu" in name for name in indices)
