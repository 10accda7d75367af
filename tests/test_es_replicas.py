"""Several sustain replicas over one Elasticsearch (the double): one writer per model, no duplicate documents.

Two engines, each with its own client (recorded as ``replica-1`` and ``replica-2``), step in turn over the same
cluster. Only the lease holder installs transforms and writes indicator documents; the documents equal the
embedded engine's; when the holder stops, the other replica takes the model over and carries on. Without
leases, both replicas compute, and idempotent document ids still leave one document per key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sustain.backends.elasticsearch.documents import doc_id
from sustain.backends.elasticsearch.engine import elasticsearch_engine
from sustain.backends.elasticsearch.windows import ESTransformer
from sustain.collector.events import parse_events
from sustain.store.base import EventBatch
from tests.es_double import Cluster
from tests.es_harness import (
    DELAY_SECONDS,
    Side,
    cluster_clock,
    differences,
    duck_side,
    es_store,
    events_for,
    load,
    spec_of,
)

HOURS = [(0, None), (1, {"income": 1.0})]


def replica(cluster: Cluster, name: str, **engine: Any) -> Side:
    store = es_store(cluster, client=name)
    return Side(store, elasticsearch_engine(store, clock=lambda: cluster_clock(cluster), replica=name, **engine))


@pytest.fixture
def cluster() -> Cluster:
    cluster = Cluster()
    cluster.advance(2 * 3600)
    return cluster


@pytest.fixture
def duck(cluster: Cluster, tmp_path: Path) -> Iterator[Side]:
    side = duck_side(cluster, tmp_path / "duck.duckdb")
    yield side
    side.store.close()


def step_both(cluster: Cluster, sides: list[Side], rounds: int = 3) -> None:
    for _ in range(rounds):
        for side in sides:
            side.engine.step()
        cluster.advance(DELAY_SECONDS + 1)
    for side in sides:
        side.engine.step()


def indicator_writers(cluster: Cluster) -> set[str]:
    return {r.client for r in cluster.requests if r.api == "bulk" and "sustain-indicators" in str(r.body)}


def stored_indicator_ids(cluster: Cluster) -> list[str]:
    return [d.id for d in cluster.docs("sustain-indicators")]


def test_one_writer_per_model_and_the_embedded_engines_numbers(cluster: Cluster, duck: Side) -> None:
    spec = spec_of()
    start = cluster_clock(cluster) - timedelta(hours=2)
    first = replica(cluster, "replica-1")
    load([first, duck], spec, events_for(spec, start, HOURS, 200), cluster_clock(cluster))
    second = replica(cluster, "replica-2")  # opened later: it reads the specs the first one stored
    step_both(cluster, [first, second])
    duck.engine.step()
    assert indicator_writers(cluster) == {"replica-1"}
    transforms = {r.client for r in cluster.requests if r.api == "transform.put_transform"}
    assert transforms == {"replica-1"} and len(cluster.transforms.items) == 1
    assert differences(first.docs("churn"), duck.docs("churn")) == []
    ids = stored_indicator_ids(cluster)
    assert len(ids) == len(set(ids)) == len(duck.docs("churn"))
    assert second.docs("churn").keys() == first.docs("churn").keys()  # every replica reads the same documents


def test_the_other_replica_takes_over_when_the_holder_stops(cluster: Cluster, duck: Side) -> None:
    spec = spec_of()
    start = cluster_clock(cluster) - timedelta(hours=2)
    first, second = replica(cluster, "replica-1"), None
    load([first, duck], spec, events_for(spec, start, HOURS[:1], 200), cluster_clock(cluster))
    second = replica(cluster, "replica-2", transform_delay="90s")  # other settings: it must not fight over them
    step_both(cluster, [first, second])
    assert indicator_writers(cluster) == {"replica-1"}
    held = list(cluster.transforms.items)
    first.engine.stop()  # a clean stop releases the lease
    later = events_for(spec, start, HOURS[1:], 200)
    table = parse_events(spec, later, cluster_clock(cluster)).table
    for side in (second, duck):
        side.store.append_events([EventBatch("churn", table)])
    cluster.advance(DELAY_SECONDS + 1)
    step_both(cluster, [second], rounds=4)
    duck.engine.step()
    assert indicator_writers(cluster) == {"replica-1", "replica-2"}
    assert list(cluster.transforms.items) != held and len(cluster.transforms.items) == 1  # replaced, not doubled
    runner = second.engine.runner
    assert isinstance(runner, ESTransformer)
    [plan] = runner.plans(spec)
    assert list(cluster.transforms.items) == [runner.transform_id(plan)]
    assert differences(second.docs("churn"), duck.docs("churn")) == []
    ids = stored_indicator_ids(cluster)
    assert len(ids) == len(set(ids)) == len(duck.docs("churn"))


def test_a_dead_holder_is_replaced_once_its_lease_expires(cluster: Cluster) -> None:
    spec = spec_of()
    first = replica(cluster, "replica-1", lease_seconds=120)
    load(
        [first],
        spec,
        events_for(spec, cluster_clock(cluster) - timedelta(hours=2), HOURS[:1], 50),
        cluster_clock(cluster),
    )
    second = replica(cluster, "replica-2", lease_seconds=120)
    first.engine.step()
    second.engine.step()
    assert first.engine._owned == {"churn"} and second.engine._owned == set()
    cluster.advance(119)  # replica-1 died without releasing: not yet
    second.engine.step()
    assert second.engine._owned == set()
    cluster.advance(2)
    second.engine.step()
    assert second.engine._owned == {"churn"}
    first.engine.step()  # back from the dead: it finds the lease taken and stops computing
    assert first.engine._owned == set()


def test_without_leases_two_writers_still_leave_one_document_per_key(cluster: Cluster, duck: Side) -> None:
    spec = spec_of()
    start = cluster_clock(cluster) - timedelta(hours=2)
    first = replica(cluster, "replica-1", leases=False)
    load([first, duck], spec, events_for(spec, start, HOURS, 200), cluster_clock(cluster))
    second = replica(cluster, "replica-2", leases=False)
    step_both(cluster, [first, second])
    duck.engine.step()
    assert indicator_writers(cluster) == {"replica-1", "replica-2"}
    ids = stored_indicator_ids(cluster)
    assert len(ids) == len(set(ids)) == len(duck.docs("churn"))
    assert set(ids) == {doc_id(d) for d in duck.docs("churn").values()}
