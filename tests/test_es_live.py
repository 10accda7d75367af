"""Against a live Elasticsearch 8.x (``ES_URL``): the generated bodies install, the transform runs, and its
windows equal the embedded engine's for the same events.

Run with ``ES_URL=http://localhost:9200 pytest -m live_es tests/test_es_live.py``; ``ES_API_KEY`` is used if set.
Everything the test creates is named after a random model and removed afterwards, except the shared
``sustain-events`` ILM policy and ingest pipeline, which it (re)puts with the bodies sustain always uses.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from sustain.collector.events import parse_events
from sustain.store.base import EventBatch, EventQuery
from sustain.store.duckdb import DuckDBStore
from sustain.transforms.es import (
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
