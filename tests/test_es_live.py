"""Against a live Elasticsearch 8.x (``ES_URL``): the generated bodies install, the transform runs, and its
windows equal the embedded engine's for the same events; and the whole Elasticsearch backend (store, continuous
transforms, indicator documents) flags an injected drift end to end.

Run with ``ES_URL=http://localhost:9200 pytest -m live_es tests/test_es_live.py``; ``ES_API_KEY`` is used if set
(``ES_VERIFY_CERTS=false`` for a self-signed https cluster). Everything the tests create is named after a random
model or prefix and removed afterwards, except the shared ``sustain-events`` ILM policy and ingest pipeline, which
the first test (re)puts with the bodies sustain always uses.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import pyarrow as pa
import pytest

from sustain.backends import open_store
from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.elasticsearch.engine import elasticsearch_engine
from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.backends.elasticsearch.transforms import (
    ILM_POLICY,
    INGEST_PIPELINE,
    bulk_lines,
    dest_index,
    dest_index_body,
    events_data_stream,
    events_index_template,
    ilm_policy,
    ingest_pipeline,
    transform_body,
    transform_id,
    windows_from_docs,
)
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.indicators.documents import IndicatorQuery
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch, EventQuery, LabelBatch
from sustain.synthetic import SyntheticModel
from sustain.transforms.plan import plan_for
from tests.test_transforms_es import (
    FULL,
    NOW,
    assert_same_windows,
    duckdb_windows,
    make_items,
    reference_profile,
    spec_of,
)

ES_URL = os.environ.get("ES_URL")

pytestmark = [
    pytest.mark.live_es,
    pytest.mark.skipif(not ES_URL, reason="set ES_URL to the Elasticsearch 8.x to test against"),
]

CHECKPOINT_TIMEOUT = 180.0


@pytest.fixture
def es() -> Iterator[Any]:
    elasticsearch = pytest.importorskip("elasticsearch")
    api_key = os.environ.get("ES_API_KEY")
    client = elasticsearch.Elasticsearch(ES_URL, api_key=api_key, request_timeout=60)
    yield client
    client.close()


def wait_for_checkpoint(es: Any, tid: str, documents: int) -> None:
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = es.transform.get_transform_stats(transform_id=tid)["transforms"][0]
        if state["state"] == "failed":
            pytest.fail(f"transform {tid} failed: {state.get('reason')}")
        checkpoint = state.get("checkpointing", {}).get("last", {}).get("checkpoint", 0)
        if checkpoint >= 1 and state["stats"]["documents_processed"] >= documents:
            return
        time.sleep(1.0)
    pytest.fail(f"transform {tid} made no checkpoint with {documents} documents in {CHECKPOINT_TIMEOUT}s: {state}")


def test_live_transform_windows_equal_duckdb(es: Any, tmp_path: Path) -> None:
    spec = spec_of({**FULL, "name": f"live-{uuid.uuid4().hex[:10]}"})
    plan = plan_for(spec, "1h", reference_profile(spec))
    store = DuckDBStore(f"duckdb:///{tmp_path / 'live.duckdb'}")
    stream, tid, dest = events_data_stream(spec.name), transform_id(plan), dest_index(plan)
    try:
        store.put_spec(spec)
        parsed = parse_events(spec, make_items(spec, 400, seed=5), NOW)
        store.append_events([EventBatch(spec.name, parsed.table)])
        events = store.read_events(spec.name, EventQuery(limit=10**6))
        want = duckdb_windows(store, plan)

        es.ilm.put_lifecycle(name=ILM_POLICY, body=ilm_policy())
        es.ingest.put_pipeline(id=INGEST_PIPELINE, body=ingest_pipeline())
        es.indices.put_index_template(name=stream, body=events_index_template(spec))
        result = es.bulk(operations=cast(Any, bulk_lines(spec, events)), refresh=True)
        failed = [item for item in result["items"] if item["create"]["status"] >= 300]
        assert not result["errors"], failed[:3]
        assert es.count(index=stream)["count"] == len(events)

        es.indices.create(index=dest, body=dest_index_body(plan))
        es.transform.put_transform(transform_id=tid, body=transform_body(plan, delay="1s", frequency="1s"))
        time.sleep(2.0)  # let event.ingested fall behind now - delay
        es.transform.start_transform(transform_id=tid)
        wait_for_checkpoint(es, tid, len(events))

        es.indices.refresh(index=dest)
        hits = es.search(index=dest, size=10_000, query={"match_all": {}})["hits"]["hits"]
        got = sorted(windows_from_docs(plan, hits), key=lambda w: (w.version, w.start))
        loose = {c.name for c in store.layout(spec.name).value_columns if c.kind == "embedding"}
        assert_same_windows(got, want, loose)
    finally:
        store.close()
        cleanups = (
            lambda: es.transform.stop_transform(transform_id=tid, force=True, wait_for_completion=True),
            lambda: es.transform.delete_transform(transform_id=tid, force=True),
            lambda: es.indices.delete(index=dest),
            lambda: es.indices.delete_data_stream(name=stream),
            lambda: es.indices.delete_index_template(name=stream),
        )
        for cleanup in cleanups:
            with contextlib.suppress(Exception):  # remove what exists, whatever failed before
                cleanup()


# -- the Elasticsearch backend end to end ------------------------------------------------------------------

ENGINE_TIMEOUT = 240.0


def store_uri(prefix: str) -> str:
    """``ES_URL`` as a store URI with the options the test needs."""
    assert ES_URL is not None
    url = urlsplit(ES_URL)
    options = {"prefix": prefix, "request_timeout": "60"}
    if os.environ.get("ES_API_KEY"):
        options["api_key"] = os.environ["ES_API_KEY"]
    if os.environ.get("ES_VERIFY_CERTS"):
        options["verify_certs"] = os.environ["ES_VERIFY_CERTS"]
    return f"elasticsearch+{url.scheme}://{url.netloc}{url.path}?{urlencode(options)}"


def remove_deployment(es: Any, prefix: str, models: list[str]) -> None:
    """Delete every transform, index, data stream, template, pipeline and policy named with ``prefix``."""
    listing = es.transform.get_transform(transform_id=f"{prefix}-*", size=1000)
    steps: list[Any] = []
    for config in listing["transforms"]:
        tid = config["id"]
        steps.append(
            lambda tid=tid: es.transform.stop_transform(transform_id=tid, force=True, wait_for_completion=True)
        )
        steps.append(lambda tid=tid: es.transform.delete_transform(transform_id=tid, force=True))
    for model in models:
        stream = f"{prefix}-events-{model}"
        steps.append(lambda stream=stream: es.indices.delete_data_stream(name=stream))
        steps.append(lambda stream=stream: es.indices.delete_index_template(name=stream))
    for step in steps:
        with contextlib.suppress(Exception):
            step()
    with contextlib.suppress(Exception):
        for index in es.indices.get(index=f"{prefix}-*"):
            es.indices.delete(index=index)
    for pipeline in (f"{prefix}-events-ingested", f"{prefix}-windows-updated"):
        with contextlib.suppress(Exception):
            es.ingest.delete_pipeline(id=pipeline)
    with contextlib.suppress(Exception):
        es.ilm.delete_lifecycle(name=f"{prefix}-events")


def test_live_engine_flags_injected_drift(es: Any) -> None:
    prefix = f"st{uuid.uuid4().hex[:10]}"
    spec = parse_model_spec(
        {
            "name": "live",
            "features": {
                "x0": "numeric",
                "x1": "numeric",
                "plan": {"kind": "categorical", "categories": ["a", "b", "c"]},
            },
            "outputs": {"p": {"kind": "probability"}},
            "label": {"kind": "class_label", "classes": ["0", "1"]},
            "windows": ["1h"],
            "indicators": [{"type": "drift"}],
        }
    )
    t0 = NOW - timedelta(hours=6)
    store = open_store(store_uri(prefix))
    assert isinstance(store, ElasticsearchStore)
    try:
        store.put_spec(spec)
        store.put_spec(spec)  # idempotent
        reopened = open_store(store_uri(prefix))
        assert reopened.get_spec("live") == spec
        reopened.close()

        model = SyntheticModel(spec, seed=11)
        reference = to_layout(spec, pa.table(model.reference(5000))).table
        info = store.put_reference("live", "1", reference)
        store.put_reference("live", "1", reference)  # a replaced version keeps one copy of its rows
        assert [(i.version, i.rows) for i in store.reference_info("live")] == [("1", 5000)]
        stored = store.read_reference("live", "1")
        assert stored is not None and stored.num_rows == 5000 and info.rows == 5000
        assert stored.column("f:x0").to_pylist() == reference.column("f:x0").to_pylist()

        engine = elasticsearch_engine(
            store, transform_delay="1s", transform_frequency="1s", clock=lambda: t0 + timedelta(hours=3)
        )
        engine.on_reference("live", "1")

        batches = []
        for hour, drift in ((0, None), (1, {"x1": 0.8})):
            events = model.events(3000, drift)
            for i, event in enumerate(events):
                event["event_id"] = f"h{hour}-{i}"
                event["request_id"] = f"r{hour}-{i}"
                event["timestamp"] = (t0 + timedelta(hours=hour, seconds=i)).isoformat()
            batches.append(EventBatch("live", parse_events(spec, events, NOW).table))
        results = store.append_events(batches)
        assert [(r.inserted, r.duplicates) for r in results] == [(3000, 0), (3000, 0)]
        again = store.append_events(batches[:1])
        assert (again[0].inserted, again[0].duplicates) == (0, 3000)
        labels = pa.table(
            {
                "key_kind": ["request_id", "event_id"],
                "key": ["r0-1", "h0-2"],
                "label": ["1", "0"],
                "ts": pa.array([NOW, NOW], pa.timestamp("us", "UTC")),
            }
        )
        assert store.append_labels([LabelBatch("live", labels)]) == [2]
        store.refresh_events("live")
        es.indices.refresh(index=f"{prefix}-labels-live")
        assert store.count_events("live") == 6000
        newest = store.read_events("live", EventQuery(limit=3, version=None))
        assert [e["event_id"] for e in newest] == ["h1-2999", "h1-2998", "h1-2997"]
        labelled = store.read_events("live", EventQuery(request_id="r0-1"))
        assert labelled[0]["label"]["value"] == "1"

        time.sleep(2.0)  # let event.ingested fall behind now - delay
        deadline = time.monotonic() + ENGINE_TIMEOUT
        docs: list[Any] = []
        while time.monotonic() < deadline:
            engine.step()
            docs = engine.documents.query(IndicatorQuery("live", indicator="drift", limit=1000))
            if {d.window_start for d in docs} >= {t0, t0 + timedelta(hours=1)}:
                break
            time.sleep(2.0)
        else:
            pytest.fail(f"no drift documents for both windows in {ENGINE_TIMEOUT}s: {docs[:3]}")
        first = {d.feature for d in docs if d.window_start == t0 and d.status == "alert"}
        second = {d.feature for d in docs if d.window_start == t0 + timedelta(hours=1) and d.status == "alert"}
        assert "x1" in second and "x0" not in second and "x1" not in first
        windows = engine.windows.read_windows(engine.runner.plans(spec)[0])
        assert sorted(w.rows for w in windows) == [3000, 3000]  # the repeated batch was not counted again
        assert engine.documents.query(IndicatorQuery("live", indicator="drift", latest=True))
        assert any(d.model == "live" for d in engine.documents.latest_all())
        sample = engine.source.sample("live", windows[0].version, t0, t0 + timedelta(hours=1), ["f:x0"], 100, 7)
        assert sample.num_rows == 100
        assert sample == engine.source.sample("live", windows[0].version, t0, t0 + timedelta(hours=1), ["f:x0"], 100, 7)
        joined = engine.source.labelled("live", windows[0].version, t0, t0 + timedelta(hours=1), ["f:x0"])
        assert sorted(joined.column("label").to_pylist()) == ["0", "1"]
        drawn = engine.source.sample_labelled("live", windows[0].version, t0, t0 + timedelta(hours=1), ["f:x0"], 100, 7)
        assert drawn.select(["f:x0"]) == sample  # the same events, with the label joined where there is one
        assert drawn.column("label").null_count >= 98
    finally:
        store.close()
        remove_deployment(es, prefix, ["live"])
