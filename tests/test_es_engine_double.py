"""The Elasticsearch engine end to end, offline: the official client over the in-memory double.

Events go in through the store's bulk writes, the transformer installs its continuous pivot transforms, the
double checkpoints them from the stored documents, the engine reads the windows back and writes indicator
documents. The windows and the indicator documents must equal the embedded engine's for the same events and
reference (sample-order dependent estimates to Monte Carlo error, see :data:`tests.es_harness.SAMPLE_ORDER_DEPENDENT`).
Every request sustain sent and every answer the double gave are then checked against Elastic's 8.19
TypeScript API types, so the double answers in the shapes a cluster does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.backends.elasticsearch.transforms import body_digest, transform_id
from sustain.backends.elasticsearch.windows import ESTransformer
from tests.es_double import Cluster, Recorded
from tests.es_harness import Side, cluster_clock, differences, duck_side, es_side, events_for, load, settle, spec_of
from tests.es_types.check import check_bodies, tsc_available
from tests.test_transforms_es import assert_same_windows

HOURS = [(0, None), (1, {"income": 1.0, "city": 1.0}), (2, None)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Side, Side]]:
    cluster = Cluster()
    start = cluster_clock(cluster)
    cluster.advance(3 * 3600)
    es, duck = es_side(cluster), duck_side(cluster, tmp_path_factory.mktemp("parity") / "duck.duckdb")
    spec = spec_of()
    load([es, duck], spec, events_for(spec, start, HOURS, 400), cluster_clock(cluster))
    settle(cluster, es)
    duck.engine.step()
    yield cluster, es, duck
    es.store.close()
    duck.store.close()


def test_windows_equal_the_embedded_engines(run: tuple[Cluster, Side, Side]) -> None:
    _, es, duck = run
    spec = spec_of()
    for plan in es.engine.runner.plans(spec):
        got = es.engine.windows.read_windows(plan)
        want = duck.engine.windows.read_windows(plan)
        assert [w.rows for w in got] == [400, 400, 400]
        assert_same_windows(got, want, loose=set())


def test_transform_bodies_are_the_compiled_plans(run: tuple[Cluster, Side, Side]) -> None:
    cluster, es, _ = run
    spec = spec_of()
    sent = {r.path.rsplit("/", 1)[1]: r.body for r in cluster.requests if r.api == "transform.put_transform"}
    plans = es.engine.runner.plans(spec)
    runner = es.engine.runner
    assert isinstance(runner, ESTransformer)
    assert sent == {runner.transform_id(p): runner.body(p) for p in plans}
    assert all(
        tid.endswith(body_digest(body)) and tid != transform_id(plan)
        for tid, body, plan in zip(sent, sent.values(), plans, strict=True)
    )
    stats = cluster.transforms.get_stats("*")["transforms"]
    assert [(s["state"], s["stats"]["documents_processed"]) for s in stats] == [("started", 1200)]


def test_indicator_documents_equal_the_embedded_engines(run: tuple[Cluster, Side, Side]) -> None:
    _, es, duck = run
    got, want = es.docs("churn"), duck.docs("churn")
    assert len(got) > 100
    assert differences(got, want) == []
    drift = {(k[1], k[4].hour): d.status for k, d in got.items() if k[0] == "drift" and not k[2]}
    assert drift[("income", 0)] == "ok" and drift[("income", 1)] == "alert" and drift[("income", 2)] == "ok"
    assert drift[("city", 1)] == "alert"


def test_the_harness_sees_a_difference(run: tuple[Cluster, Side, Side]) -> None:
    _, es, duck = run
    got = es.docs("churn")
    key = next(k for k in got if k[0] == "drift")
    changed = dict(got)
    changed[key] = dataclasses.replace(got[key], status="warn" if got[key].status != "warn" else "ok")
    assert differences(changed, duck.docs("churn")) != []


# -- the exchanges against Elastic's TypeScript types ------------------------------------------------------------------

# API name -> (request body type or None when it has no JSON body, response type)
TYPES: dict[str, tuple[str | None, str]] = {
    "ilm.put_lifecycle": ("Omit<T.IlmPutLifecycleRequest, 'name'>", "T.IlmPutLifecycleResponse"),
    "ingest.put_pipeline": ("Omit<T.IngestPutPipelineRequest, 'id'>", "T.IngestPutPipelineResponse"),
    "indices.put_index_template": (
        "Omit<T.IndicesPutIndexTemplateRequest, 'name'>",
        "T.IndicesPutIndexTemplateResponse",
    ),
    "indices.create_data_stream": (None, "T.IndicesCreateDataStreamResponse"),
    "indices.get_data_stream": (None, "T.IndicesGetDataStreamResponse"),
    "indices.create": ("Omit<T.IndicesCreateRequest, 'index'>", "T.IndicesCreateResponse"),
    "indices.put_mapping": ("Omit<T.IndicesPutMappingRequest, 'index'>", "T.IndicesPutMappingResponse"),
    "indices.refresh": (None, "T.IndicesRefreshResponse"),
    "indices.rollover": (None, "T.IndicesRolloverResponse"),
    "indices.update_aliases": ("T.IndicesUpdateAliasesRequest", "T.IndicesUpdateAliasesResponse"),
    "cluster.get_settings": (None, "T.ClusterGetSettingsResponse"),
    "bulk": (None, "T.BulkResponse"),
    "index": (None, "T.IndexResponse"),
    "get": (None, "T.GetResponse<any>"),
    "mget": ("Omit<T.MgetRequest, 'index'>", "T.MgetResponse<any>"),
    "search": ("Omit<T.SearchRequest, 'index'>", "T.SearchResponse<any>"),
    "count": (None, "T.CountResponse"),
    "update_by_query": ("Omit<T.UpdateByQueryRequest, 'index'>", "T.UpdateByQueryResponse"),
    "delete_by_query": ("Omit<T.DeleteByQueryRequest, 'index'>", "T.DeleteByQueryResponse"),
    "transform.put_transform": (
        "Omit<T.TransformPutTransformRequest, 'transform_id'>",
        "T.TransformPutTransformResponse",
    ),
    "transform.get_transform": (None, "T.TransformGetTransformResponse"),
    "transform.get_transform_stats": (None, "T.TransformGetTransformStatsResponse"),
    "transform.start_transform": (None, "T.TransformStartTransformResponse"),
    "transform.stop_transform": (None, "T.TransformStopTransformResponse"),
    "transform.delete_transform": (None, "T.TransformDeleteTransformResponse"),
}
PER_API = 4  # distinct exchanges of each API checked (the first ones)


def exchanges(requests: list[Recorded]) -> list[tuple[str, Any]]:
    """(type, body) pairs of the recorded requests and answers, a few distinct ones per API."""
    found: list[tuple[str, Any]] = []
    seen: dict[str, set[str]] = {}
    for r in requests:
        assert r.api in TYPES, f"no TypeScript types listed for {r.api} ({r.method} {r.path})"
        request_type, response_type = TYPES[r.api]
        shape = json.dumps([r.body, r.response], sort_keys=True, default=str)
        done = seen.setdefault(r.api, set())
        if shape in done or len(done) >= PER_API:
            continue
        done.add(shape)
        if request_type is not None and isinstance(r.body, dict):
            found.append((request_type, r.body))
        failed = r.status >= 400 and "error" in r.response  # a GET of a missing document is a 404 GetResponse
        found.append(("T.ErrorResponseBase" if failed else response_type, r.response))
    return found


@pytest.mark.skipif(not tsc_available(), reason="node and npm are needed to run tsc on Elastic's types")
def test_every_exchange_passes_elastic_typescript_types(run: tuple[Cluster, Side, Side]) -> None:
    cluster, es, _ = run
    cluster.rollover("sustain-events-churn")  # a rollover and a data stream listing, answered like the rest
    assert isinstance(es.store, ElasticsearchStore)
    es.store.client.request("listing backing indices", "indices.get_data_stream", name="sustain-events-churn")
    cluster.advance(61)
    es.engine.step()
    bodies = exchanges(cluster.requests)
    apis = {r.api for r in cluster.requests}
    assert {"bulk", "search", "transform.put_transform", "transform.get_transform_stats", "mget"} <= apis
    assert any(r.status == 404 for r in cluster.requests)  # error answers are checked too
    errors = check_bodies(bodies)
    assert errors == [], "\n".join(errors)


def test_time_moves_only_with_the_test() -> None:
    cluster = Cluster()
    before = cluster_clock(cluster)
    cluster.advance(90)
    assert cluster_clock(cluster) - before == timedelta(seconds=90)
