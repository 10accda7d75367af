"""The Elasticsearch backend without a cluster: every body it sends passes Elastic's TypeScript API types,
and its pure parts (URI parsing, ids, bulk outcomes, joins, Arrow tables) behave.

Canned responses are shaped as the Elasticsearch API documents them; they are checked against the
response types of the same TypeScript definitions, in the same ``tsc`` run as the request bodies.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from sustain.backends import open_store
from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.elasticsearch.bodies import (
    all_specs_search,
    complete_events_body,
    done_from_source,
    done_operations,
    event_search,
    events_mapping_update,
    forget_done_query,
    label_id,
    label_lookup,
    label_operations,
    labels_index_body,
    pending_delete_operations,
    pending_id,
    pending_index_body,
    pending_operations,
    pending_search,
    reference_index_body,
    reference_info_document,
    reference_info_id,
    reference_info_search,
    reference_operations,
    reference_rows_search,
    references_index_body,
    specs_index_body,
    stale_reference_rows,
)
from sustain.backends.elasticsearch.client import Operation, error_summary, operations
from sustain.backends.elasticsearch.config import IndexNames, parse_elasticsearch_uri
from sustain.backends.elasticsearch.documents import (
    doc_from_source,
    doc_id,
    indicator_document,
    indicator_operations,
    indicator_search,
    indicators_index_body,
    latest_all_search,
    latest_from_aggregation,
    latest_search,
    state_operations,
    states_index_body,
    states_search,
)
from sustain.backends.elasticsearch.responses import (
    bulk_failures,
    bulk_outcomes,
    columns_table,
    event_from_source,
    event_row,
    label_for,
    labels_by_id,
    parse_time,
    reference_table,
)
from sustain.backends.elasticsearch.sources import sample_search, source_fields, window_events_search, window_filters
from sustain.backends.elasticsearch.store import bulk_events, new_event_id
from sustain.backends.elasticsearch.transforms import (
    backfill_buckets_body,
    bulk_lines,
    dest_index_body,
    event_doc_id,
    events_index_template,
    ilm_policy,
    ingest_pipeline,
    transform_body,
    transform_id,
)
from sustain.backends.elasticsearch.windows_bodies import (
    changed_windows_search,
    events_by_key_search,
    labels_since_search,
    profile_document,
    profile_id,
    profiles_index_body,
    profiles_search,
    stale_transforms,
    transform_state,
    updated_pipeline_body,
    windows_search,
)
from sustain.collector.events import parse_events
from sustain.errors import StoreError
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery
from sustain.loopback import free_port
from sustain.spec import ModelSpec
from sustain.store.base import DoneExchange, EventBatch, EventQuery, LabelBatch, PendingHalf, ReferenceInfo
from sustain.store.layout import Layout
from sustain.transforms.plan import plan_for
from sustain.transforms.profile import build_profile
from tests.es_canned import BULK_RESPONSE, EVENT_HITS, LABEL_DOCS, SHARDS, TRANSFORM_STATS, search_response
from tests.es_types.check import check_bodies, tsc_available
from tests.test_transforms_es import FULL, LONG_NAME, NOW, REGRESSION_ONLY, WEIRD, make_items, reference_profile

LABELLED: dict[str, Any] = {**FULL, "name": "labelled", "label": {"kind": "class_label", "classes": ["stay", "churn"]}}
PRICED: dict[str, Any] = {**REGRESSION_ONLY, "name": "priced", "label": {"kind": "regression"}, "windows": ["1m", "1d"]}
SPECS = [LABELLED, WEIRD, LONG_NAME, PRICED]
PREFIX = "acme_2"
START = datetime(2026, 1, 5, 10, tzinfo=UTC)
SEARCH = "T.SearchRequest"
ACTION = "T.BulkOperationContainer"
CREATE_INDEX = "Omit<T.IndicesCreateRequest, 'index'>"
PUT_MAPPING = "Omit<T.IndicesPutMappingRequest, 'index'>"
PIPELINE = "Omit<T.IngestPutPipelineRequest, 'id'>"
TRANSFORM = "Omit<T.TransformPutTransformRequest, 'transform_id'>"


def spec_of(raw: dict[str, Any]) -> ModelSpec:
    return ModelSpec.model_validate(raw)


def indicator(**changes: Any) -> IndicatorDoc:
    base: dict[str, Any] = {
        "model": "labelled",
        "version": "1",
        "indicator": "drift",
        "type": "drift",
        "feature": "age",
        "window": "1h",
        "window_start": START,
        "window_end": START + timedelta(hours=1),
        "value": 0.25,
        "status": "alert",
        "p_value": 0.001,
        "details": {"test": "ks", "bins": [1, 2]},
        "metric": "psi",
        "computed_at": START + timedelta(hours=1, seconds=3),
    }
    return IndicatorDoc(**{**base, **changes})


def action_lines(ops: list[Operation]) -> list[tuple[str, dict[str, Any]]]:
    return [(ACTION, orjson.loads(op[0])) for op in ops]


# -- canned responses (the rest are in tests/es_canned.py) ------------------------------------------------


def transform_listing(spec: ModelSpec) -> dict[str, Any]:
    """``GET _transform/acme_2-*``: the current plan's transform, an older one, and neighbours that must stay."""
    plan = plan_for(spec, "1h", None)
    older = plan_for(spec, "1h", reference_profile(spec))
    other_window = plan_for(spec, spec.windows[0], None)
    summaries = []
    for p, prefix in ((plan, PREFIX), (older, PREFIX), (other_window, PREFIX), (older, "acme")):
        body = transform_body(p, prefix=prefix)
        summaries.append({"id": transform_id(p, prefix), **{k: body[k] for k in ("source", "dest", "pivot", "_meta")}})
    return {"count": len(summaries), "transforms": summaries}


# -- every body in one tsc run --------------------------------------------------------------------------


def all_bodies() -> list[tuple[str, dict[str, Any]]]:
    names = IndexNames(PREFIX)
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("Omit<T.IlmPutLifecycleRequest, 'name'>", ilm_policy("90d")),
        (PIPELINE, ingest_pipeline()),
        (PIPELINE, updated_pipeline_body()),
        (CREATE_INDEX, specs_index_body()),
        (CREATE_INDEX, references_index_body()),
        (CREATE_INDEX, pending_index_body()),
        (CREATE_INDEX, profiles_index_body()),
        (CREATE_INDEX, indicators_index_body()),
        (CREATE_INDEX, states_index_body()),
        (CREATE_INDEX, reference_index_body()),
        (SEARCH, all_specs_search(None)),
        (SEARCH, all_specs_search(["churn"])),
        (SEARCH, pending_search(None)),
        (SEARCH, pending_search(["2026-01-05T10:00:00.000Z", "m", "k", "request"])),
        (SEARCH, reference_rows_search("1", "abc", None)),
        (SEARCH, reference_rows_search("1", "abc", [4999])),
        (SEARCH, reference_info_search("m", None)),
        (SEARCH, profiles_search("m", ["2026-01-05T10:00:00.000Z", "1"])),
        (SEARCH, changed_windows_search(1767610800000 - 30_000, None)),
        (SEARCH, changed_windows_search(0, [1767610800000, "2"])),
        (SEARCH, windows_search(None)),
        (SEARCH, windows_search([1, "1"], version="1", since=START, until=START + timedelta(days=1))),
        (SEARCH, windows_search(None, since=START, fields=["version", "bucket"])),
        (SEARCH, event_search(EventQuery(), None)),
        (SEARCH, event_search(EventQuery(START, START + timedelta(hours=1), "2", "r1", 50), [1767609000250, "e1"])),
        (SEARCH, states_search("m", None)),
        (SEARCH, labels_since_search(1767610800000, None)),
        (SEARCH, labels_since_search(0, [1767610800000, "request_id", "r1"])),
        (SEARCH, events_by_key_search(["r1", "r2"], ["e1"], "1h", None)),
        (SEARCH, events_by_key_search([], ["e1"], "1.5s", [1767610800000, "e1"])),
        (SEARCH, latest_all_search(None)),
        (SEARCH, latest_all_search({"series": "m\x1f1\x1fdrift\x1fage\x1fpsi\x1f1h"})),
        ("Omit<T.DeleteByQueryRequest, 'index'>", stale_reference_rows("1", "abc")),
        ("Omit<T.MgetRequest, 'index'>", label_lookup(["request_id:r1", "event_id:e1"])),
    ]
    for q in (
        IndicatorQuery("m"),
        IndicatorQuery("m", START, START + timedelta(days=1), "drift", "age", "1", "1h", "alert", "psi", 20),
        IndicatorQuery("m", limit=5, latest=True, status="ok"),
    ):
        bodies.append((SEARCH, latest_search(q) if q.latest else indicator_search(q, None)))
    bodies.append((SEARCH, indicator_search(IndicatorQuery("m"), [1767610800000, "drift", None, "psi", "x"])))
    received = datetime(2026, 1, 5, 11, tzinfo=UTC)
    halves = [PendingHalf("k1", "m", "request", received, {"rows": 1, "payload": {"a.b": [1]}})]
    bodies += action_lines(pending_operations(names.pending, halves))
    bodies += action_lines(pending_delete_operations(names.pending, halves))
    done = [DoneExchange("m", "k1", received), DoneExchange("m", "k2", received, "response", halves[0])]
    bodies += action_lines(done_operations(names.pending, done))
    bodies.append(("Omit<T.DeleteByQueryRequest, 'index'>", forget_done_query(received)))
    bodies += action_lines(state_operations("acme_2-indicator-states", "m", {"change": {"n": 3}}, received))
    bodies += action_lines(indicator_operations(names.indicators, [indicator(), indicator(feature=None, metric=None)]))
    for raw in SPECS:
        spec = spec_of(raw)
        layout = Layout.of(spec)
        template = events_index_template(spec, prefix=PREFIX)
        bodies += [
            ("Omit<T.IndicesPutIndexTemplateRequest, 'name'>", template),
            (PUT_MAPPING, events_mapping_update(spec, PREFIX)),
            ("Omit<T.UpdateByQueryRequest, 'index'>", backfill_buckets_body(spec.windows)),
        ]
        label_body = labels_index_body(spec.label.kind if spec.label else None)
        bodies += [(CREATE_INDEX, label_body), (PUT_MAPPING, {"properties": label_body["mappings"]["properties"]})]
        parsed = parse_events(spec, make_items(spec, 6, seed=1), NOW)
        events = bulk_events(layout, parsed.table)
        bodies += action_lines(operations(bulk_lines(spec, events, prefix=PREFIX)))
        documents = {orjson.loads(a)["create"]["_id"]: orjson.loads(d) for a, d in operations(bulk_lines(spec, events))}
        bodies.append(("Omit<T.UpdateByQueryRequest, 'index'>", complete_events_body(documents)))
        label_rows = [{"key_kind": "request_id", "key": "r" * 300, "label": "stay", "ts": START}]
        bodies += action_lines(label_operations(names.labels(spec.name), label_rows, received))
        bodies += action_lines(reference_operations(names.reference(spec.name), "1", "u", 0, [{"f:x": 1.0}]))
        columns = [c.name for c in layout.value_columns]
        for window in spec.windows:
            filters = window_filters(
                spec, "2", START, START + timedelta(seconds=plan_for(spec, window, None).window_seconds)
            )
            bodies.append((SEARCH, sample_search(filters, source_fields(layout, columns), 1000, 123456789012)))
            bodies.append((SEARCH, window_events_search(filters, source_fields(layout, columns), ["x", "e1"])))
            for plan in (plan_for(spec, window, None), plan_for(spec, window, reference_profile(spec))):
                body = transform_body(plan, prefix=PREFIX, dest_pipeline=names.windows_pipeline, delay="5s")
                bodies += [(TRANSFORM, body), (CREATE_INDEX, dest_index_body(plan))]
        odd = window_filters(spec, "2", START, START + timedelta(minutes=7))  # not a window of the spec
        bodies.append((SEARCH, sample_search(odd, [], 5, 1)))
    return bodies


def canned_responses() -> list[tuple[str, dict[str, Any]]]:
    indicator_hit = {"_index": "sustain-indicators", "_id": doc_id(indicator()), "_score": None}
    top = {
        "hits": {
            "total": {"value": 3, "relation": "eq"},
            "max_score": None,
            "hits": [{**indicator_hit, "_source": indicator_document(indicator()), "sort": [1767607200000]}],
        }
    }
    composite = {
        "series": {"after_key": {"series": "x"}, "buckets": [{"key": {"series": "x"}, "doc_count": 3, "latest": top}]}
    }
    return [
        ("T.BulkResponse", BULK_RESPONSE),
        ("T.SearchResponse", search_response(EVENT_HITS)),
        ("T.SearchResponse", search_response([], composite)),
        ("T.MgetResponse", LABEL_DOCS),
        ("T.TransformGetTransformStatsResponse", TRANSFORM_STATS),
        ("T.TransformGetTransformResponse", transform_listing(spec_of(LABELLED))),
        ("T.CountResponse", {"count": 3, "_shards": SHARDS}),
    ]


needs_tsc = pytest.mark.skipif(not tsc_available(), reason="node and npm are needed to run tsc on Elastic's types")


@needs_tsc
def test_every_body_and_canned_response_passes_elastic_typescript_types() -> None:
    bodies = all_bodies() + canned_responses()
    assert len(bodies) > 150
    errors = check_bodies(bodies)
    assert errors == [], "\n".join(errors[:20])


def test_bodies_carry_the_prefix_and_no_default_names() -> None:
    text = orjson.dumps([body for _, body in all_bodies()]).decode()
    assert "sustain-events" not in text and "sustain-windows" not in text
    assert "acme_2-events-labelled" in text and "acme_2-windows-updated" in text


# -- URIs ------------------------------------------------------------------------------------------------


def test_uri_with_credentials_and_options() -> None:
    config = parse_elasticsearch_uri("elasticsearch+https://user:pass@host:9200?verify_certs=false")
    assert config.hosts == ("https://host:9200",) and config.basic_auth == ("user", "pass")
    assert config.verify_certs is False and config.prefix == "sustain" and config.api_key is None
    options = config.client_options()
    assert options == {"request_timeout": 30.0, "basic_auth": ("user", "pass"), "verify_certs": False}
    assert "pass" not in config.redacted and config.redacted == "elasticsearch+https://user:***@host:9200"


def test_uri_hosts_keys_and_paths() -> None:
    config = parse_elasticsearch_uri(
        "elasticsearch+http://[::1]:9201,es2/proxy/?api_key=id:secret&prefix=acme&request_timeout=5&retention=2w"
    )
    assert config.hosts == ("http://[::1]:9201/proxy", "http://es2:9200/proxy")
    assert config.client_options() == {"request_timeout": 5.0, "api_key": ("id", "secret")}
    assert (config.prefix, config.retention, config.basic_auth) == ("acme", "2w", None)
    encoded = parse_elasticsearch_uri("elasticsearch+http://h?api_key=Zm9vOmJhcg%3D%3D")
    assert encoded.client_options()["api_key"] == "Zm9vOmJhcg=="


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("elasticsearch://h:9200", "not an Elasticsearch store scheme"),
        ("elasticsearch+http://", "names no host"),
        ("elasticsearch+http://h:port", "is not host\\[:port\\]"),
        ("elasticsearch+http://h?verify_certs=maybe", "must be true or false"),
        ("elasticsearch+http://h?prefix=Big", "prefix 'Big'"),
        ("elasticsearch+http://h?retention=soon", "bad option"),
        ("elasticsearch+http://h?request_timeout=0", "must be positive"),
        ("elasticsearch+http://h?pool=3", "unknown option 'pool'"),
    ],
)
def test_uri_errors_name_the_problem(uri: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_elasticsearch_uri(uri)


def test_open_store_reaches_the_backend_and_translates_connection_errors() -> None:
    pytest.importorskip("elasticsearch")
    uri = f"elasticsearch+http://127.0.0.1:{free_port()}?request_timeout=2"
    with pytest.raises(StoreError, match="loading the specs: cannot reach Elasticsearch at elasticsearch\\+http://"):
        open_store(uri)
    with pytest.raises(StoreError, match="not an Elasticsearch store scheme"):
        open_store("elasticsearch+ftp://127.0.0.1")


def test_the_backend_imports_without_the_client() -> None:
    """Nothing imports ``elasticsearch`` until a store is opened; without it, opening says what to install."""
    code = (
        "import sys; sys.modules['elasticsearch'] = None\n"
        "import sustain.backends.elasticsearch.engine, sustain.backends.elasticsearch.sources\n"
        "import sustain.backends.elasticsearch.documents\n"
        "from sustain.errors import StoreError\n"
        "from sustain.backends import open_store\n"
        "try:\n    open_store('elasticsearch+http://localhost:9200')\n"
        "except StoreError as exc:\n    print(exc.message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "needs the elasticsearch package: pip install 'sustain[elasticsearch]'" in done.stdout, done.stderr


# -- ids ---------------------------------------------------------------------------------------------------


def test_ids_are_stable_bounded_and_distinct() -> None:
    assert event_doc_id("e1") == "e1" and label_id("event_id", "e1") == "event_id:e1"
    long_key = "ü" * 256  # the collector's longest id: 512 bytes of UTF-8, plus the prefix
    assert len(label_id("request_id", long_key).encode()) <= 512
    assert label_id("request_id", long_key) != label_id("event_id", long_key)
    assert pending_id("m", "request", "k") != pending_id("m", "response", "k")
    when = datetime(2026, 1, 5, 11, 0, 0, 250000, tzinfo=UTC)
    lone = PendingHalf("k", "m", "request", when, {"rows": 1})
    for record in (DoneExchange("m", "k", when, "response", lone), DoneExchange("m", "k", when)):
        ((action, source),) = done_operations("p", [record])
        assert orjson.loads(action)["index"]["_id"] == pending_id("m", "done", "k")
        assert done_from_source(orjson.loads(source)) == record
    assert reference_info_id("m", "1") == "m/1" and profile_id("m", "1") == "m/1"
    first = doc_id(indicator())
    assert first == doc_id(indicator(value=0.9, status="ok", computed_at=NOW))  # recomputing replaces
    for change in ({"metric": None}, {"feature": None}, {"window_start": NOW}, {"version": "2"}, {"window": "1m"}):
        assert doc_id(indicator(**change)) != first, change
    ids = {new_event_id() for _ in range(100)}
    assert len(ids) == 100 and all(i[14] == "7" for i in ids)  # UUIDv7


# -- bulk outcomes -------------------------------------------------------------------------------------


def test_bulk_items_split_into_inserted_duplicates_and_failures() -> None:
    first, second = bulk_outcomes(BULK_RESPONSE["items"], [3, 1])
    assert (first.inserted, first.duplicates, second.inserted, second.duplicates) == (1, 1, 1, 0)
    assert first.failures == [
        "create e3: 400 document_parsing_exception: [1:42] failed to parse field [features.age] of type [double]"
    ]
    with pytest.raises(ValueError, match="4 bulk items for 5 operations"):
        bulk_outcomes(BULK_RESPONSE["items"], [5])
    deletes = [
        {"delete": {"_index": "p", "_id": "a", "status": 200, "result": "deleted"}},
        {"delete": {"_index": "p", "_id": "b", "status": 404, "result": "not_found"}},
    ]
    assert bulk_failures(deletes, missing_ok=True) == [] and len(bulk_failures(deletes)) == 1
    assert error_summary({"error": {"type": "x", "reason": "y", "root_cause": [{"type": "a", "reason": "b"}]}}) == (
        "a",
        "b",
    )


def test_bulk_lines_become_operations_with_ids() -> None:
    spec = spec_of(LABELLED)
    parsed = parse_events(spec, make_items(spec, 4, seed=2), NOW)
    events = bulk_events(Layout.of(spec), parsed.table)
    ops = operations(bulk_lines(spec, events))
    assert [orjson.loads(op[0])["create"]["_id"] for op in ops] == [e["event_id"] for e in events]
    unnamed = parsed.table.set_column(0, "event_id", pa.nulls(4, pa.string()))
    generated = [e["event_id"] for e in bulk_events(Layout.of(spec), unnamed)]
    assert len(set(generated)) == 4 and all(len(i) == 36 for i in generated)


# -- joins and documents ---------------------------------------------------------------------------------


def test_events_join_their_label_by_request_id_first() -> None:
    layout = Layout.of(spec_of(LABELLED))
    labels = labels_by_id(LABEL_DOCS)
    assert set(labels) == {"request_id:r1", "event_id:e1", "event_id:e2"}
    events = [event_from_source(layout, h["_source"], label_for(h["_source"], labels)) for h in EVENT_HITS]
    first, second, third = events
    assert first["label"] == {"value": "churn", "timestamp": "2026-01-06T00:00:00Z"}  # request id wins
    assert second["label"] == {"value": "stay", "timestamp": "2026-01-05T13:00:00Z"}  # then the event id
    assert third["label"] is None and third["request_id"] is None and third["received_at"] is None
    assert first["features"]["age"] == 41.0 and first["features"]["vec"] == [1.0, 2.0, 2.0, 0.0]
    assert first["features"]["income"] is None and first["invalid"] == ["income"]
    assert first["outputs"]["proba"] == {"stay": 0.2, "churn": 0.8, "maybe": None}
    assert first["tags"] == {"region": "eu"} and second["error"] == "timeout"
    assert parse_time(first["received_at"]) == datetime(2026, 1, 5, 10, 30, 1, 123456, tzinfo=UTC)


@pytest.fixture
def duck(tmp_path: Path) -> Any:
    store = DuckDBStore(f"duckdb:///{tmp_path / 'read.duckdb'}")
    yield store
    store.close()


def test_read_events_matches_the_embedded_store(duck: DuckDBStore) -> None:
    """The documents sent for a batch, read back, equal what the embedded store returns for it."""
    spec = spec_of(LABELLED)
    duck.put_spec(spec)
    parsed = parse_events(spec, make_items(spec, 120, seed=7), NOW)
    duck.append_events([EventBatch(spec.name, parsed.table)])
    keys = [("request_id", f"rq-{i}") for i in range(1, 40, 3)] + [("event_id", f"ev-{i}") for i in range(0, 40, 4)]
    label_rows = {
        "key_kind": [k for k, _ in keys],
        "key": [v for _, v in keys],
        "label": ["churn" if i % 2 else "stay" for i in range(len(keys))],
        "ts": [NOW + timedelta(seconds=i) for i in range(len(keys))],
    }
    labels_table = pa.table(label_rows).cast(
        pa.schema(
            [("key_kind", pa.string()), ("key", pa.string()), ("label", pa.string()), ("ts", pa.timestamp("us", "UTC"))]
        )
    )
    duck.append_labels([LabelBatch(spec.name, labels_table)])
    want = duck.read_events(spec.name, EventQuery(limit=1000))

    layout = Layout.of(spec)
    documents = [orjson.loads(op[1]) for op in operations(bulk_lines(spec, bulk_events(layout, parsed.table)))]
    label_docs = {
        orjson.loads(action)["index"]["_id"]: orjson.loads(doc)
        for action, doc in label_operations("l", labels_table.to_pylist(), NOW)
    }
    by_id = {doc["event"]["id"]: event_from_source(layout, doc, label_for(doc, label_docs)) for doc in documents}
    assert sum(e["label"] is not None for e in want) > 10
    for expected in want:
        got = by_id[expected["event_id"]]
        for key in ("event_id", "request_id", "version", "timestamp", "latency_ms", "error", "label"):
            assert got[key] == expected[key], (key, expected["event_id"])
        assert got["features"] == expected["features"] and got["outputs"] == expected["outputs"]
        assert got.get("tags") == expected["tags"] and got.get("invalid") == expected.get("invalid")
        assert got.get("extra") == expected.get("extra")


def test_window_rows_become_typed_tables() -> None:
    spec = spec_of(LABELLED)
    layout = Layout.of(spec)
    columns = ["f:age", "f:vec", "f:active", "o:proba:churn", "f:nope"]
    assert source_fields(layout, columns) == ["features.age", "features.vec", "features.active", "outputs.proba.churn"]
    rows = [event_row(layout, h["_source"], [*columns, "ts"]) for h in EVENT_HITS]
    table = columns_table(layout, [*columns, "ts"], rows)
    assert table.schema.field("f:vec").type == pa.list_(pa.float32(), 4)
    assert table.column("f:age").to_pylist() == [41.0, 30.0, None]
    assert table.column("f:active").to_pylist() == [True, None, None]
    assert table.column("f:nope").null_count == 3
    assert table.column("ts").to_pylist()[1] == datetime(2026, 1, 5, 10, 29, tzinfo=UTC)
    reference = reference_table(layout, "class_label", [{"f:age": 3.0, "label": "stay"}, {"o:proba:churn": 0.5}])
    assert reference.column_names == [c.name for c in layout.value_columns] + ["label"]
    assert reference.column("label").to_pylist() == ["stay", None]


def test_window_filters_select_the_transforms_bucket() -> None:
    spec = spec_of(PRICED)
    assert window_filters(spec, "1", START, START + timedelta(days=1))[1] == {
        "term": {"buckets.1d": {"value": "2026-01-05T00:00:00.000Z"}}
    }
    assert window_filters(spec, "1", START, START + timedelta(hours=2))[1] == {
        "range": {"@timestamp": {"gte": "2026-01-05T10:00:00Z", "lt": "2026-01-05T12:00:00Z"}}
    }
    assert sample_search([], [], 50_000, 2**40 + 5)["size"] == 10_000


def test_indicator_documents_round_trip_and_latest_pages() -> None:
    doc = indicator()
    source = indicator_document(doc)
    assert source["series"] == "labelled\x1f1\x1fdrift\x1fage\x1fpsi\x1f1h"
    assert doc_from_source(source) == doc
    bare = indicator(feature=None, metric=None, details={})
    assert doc_from_source(indicator_document(bare)) == bare
    top = {"hits": {"hits": [{"_index": "i", "_id": "x", "_source": source}]}}
    page = {
        "aggregations": {"series": {"after_key": {"series": "s"}, "buckets": [{"key": {"series": "s"}, "latest": top}]}}
    }
    docs, after = latest_from_aggregation(page)
    assert docs == [doc] and after == {"series": "s"}
    assert latest_from_aggregation({"aggregations": {"series": {"after_key": {"series": "s"}, "buckets": []}}}) == (
        [],
        None,
    )
    assert latest_from_aggregation(None) == ([], None)
    q = IndicatorQuery("m", since=START, feature="age", metric="psi", limit=3)
    filters = indicator_search(q, None)["query"]["bool"]["filter"]
    assert {"range": {"window_end": {"gt": "2026-01-05T10:00:00Z"}}} in filters
    assert {"term": {"metric": {"value": "psi"}}} in filters
    assert latest_search(IndicatorQuery("m", latest=True, limit=20_000))["size"] == 10_000


# -- transforms ----------------------------------------------------------------------------------------


def test_transform_state_and_stale_transforms() -> None:
    state = transform_state(TRANSFORM_STATS)
    assert state is not None
    assert (state.state, state.checkpoint, state.checkpoint_ms, state.processed) == ("started", 3, 1767610800000, 400)
    assert transform_state({"count": 0, "transforms": []}) is None and transform_state(None) is None
    spec = spec_of(LABELLED)
    plan = plan_for(spec, "1h", None)
    older = plan_for(spec, "1h", reference_profile(spec))
    listing = transform_listing(spec)
    assert stale_transforms(listing, plan, transform_id(plan, PREFIX), PREFIX) == [transform_id(older, PREFIX)]
    assert stale_transforms(None, plan, "x", PREFIX) == []


def test_label_and_event_lookups_for_labelled_windows() -> None:
    query = events_by_key_search(["r1"], [], "1d", None)
    assert query["query"] == {"bool": {"should": [{"terms": {"request.id": ["r1"]}}], "minimum_should_match": 1}}
    assert query["_source"] == ["model.version", "buckets.1d"]
    since = labels_since_search(5, None)
    assert since["query"] == {"range": {"received_at": {"gte": "5", "format": "epoch_millis"}}}
    assert [next(iter(s)) for s in since["sort"]] == ["received_at", "key_kind", "key"]  # unique: search_after pages


def test_profiles_are_stored_as_json() -> None:
    spec = spec_of(LABELLED)
    parsed = parse_events(spec, make_items(spec, 50, seed=4), NOW)
    profile = build_profile(spec.name, "1", parsed.table, {"f:age": "numeric", "f:plan": "categorical"}, bins=4)
    document = profile_document(profile)
    assert document["created_at"].endswith("Z") and document["profile"]["columns"]["f:age"]["edges"]
    restored = type(profile).from_json(orjson.dumps(document["profile"]))
    assert restored == profile


def test_reference_info_document() -> None:
    info = ReferenceInfo("m", "1", 10, ["f:x", "label"], START)
    assert reference_info_document(info, "u1") == {
        "model": "m",
        "version": "1",
        "upload": "u1",
        "rows": 10,
        "columns": ["f:x", "label"],
        "uploaded_at": "2026-01-05T10:00:00Z",
    }
