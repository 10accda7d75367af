"""The Elasticsearch compilation: bodies valid against Elastic's API types, pivot-safe, and equal to DuckDB.

The parity tests evaluate the generated transform in Python (a small evaluator for
exactly the aggregation, query and script forms the compiler emits) over the
documents :func:`bulk_lines` would send, and compare the windows read back with
:func:`windows_from_docs` against the embedded engine's windows for the same events.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from sustain.backends.duckdb import sql as duckdb_sql
from sustain.backends.duckdb.store import DuckDBStore, events_table
from sustain.backends.elasticsearch.transforms import (
    PIVOT_AGGREGATIONS,
    bucket_field,
    bulk_lines,
    dest_index,
    dest_index_body,
    es_field,
    event_document,
    events_index_template,
    ilm_policy,
    ingest_pipeline,
    transform_body,
    transform_id,
    windows_from_docs,
)
from sustain.collector.events import parse_events
from sustain.spec import ModelSpec
from sustain.store.base import EventBatch, EventQuery
from sustain.synthetic import SyntheticModel
from sustain.transforms.plan import TransformPlan, column_kinds, plan_for
from sustain.transforms.profile import ReferenceProfile, build_profile
from sustain.transforms.window import CategorySummary, NumericSummary, Summary, WindowAggregates, from_long_rows
from tests.es_types.check import check_bodies, tsc_available

FULL: dict[str, Any] = {
    "name": "full",
    "features": {
        "age": {"kind": "numeric", "range": [18, 100]},
        "income": "numeric",
        "plan": {"kind": "categorical", "categories": ["basic", "pro", "enterprise"]},
        "city": "categorical",
        "active": "boolean",
        "note": "text",
        "vec": {"kind": "embedding", "dim": 4},
    },
    "outputs": {
        "prediction": {"kind": "class_label", "classes": ["stay", "churn"]},
        "proba": {"kind": "class_scores", "classes": ["stay", "churn", "maybe"]},
        "p": {"kind": "probability"},
        "value": {"kind": "regression"},
    },
    "windows": ["1m", "1h"],
}
# Spaces, dots, colons, brackets, upper case, a leading underscore, names that clean to the same
# text ("a.b", "a b" and the already-safe "a_b"), and unicode where the spec allows it (class names).
WEIRD: dict[str, Any] = {
    "name": "weird_names-2",
    "features": {
        "account age": "numeric",
        "a.b": "numeric",
        "a b": "numeric",
        "a_b": "numeric",
        "a-b": "numeric",
        "ratio:x": "numeric",
        "UPPER": "categorical",
        "_private": "boolean",
        "x(1)/y": "text",
        "tags[0]": {"kind": "embedding", "dim": 2},
    },
    "outputs": {
        "score v2": {"kind": "class_scores", "classes": ["yes.no", "no way", "größe", "_x"]},
        "Label.Out": {"kind": "class_label", "classes": ["a.b", "c"]},
    },
    "windows": ["30s", "1d"],
}
LONG_NAME: dict[str, Any] = {"name": "m" * 63, "features": {"x": "numeric"}, "windows": ["1h", "7d"]}
REGRESSION_ONLY: dict[str, Any] = {"name": "price", "features": {"size": "numeric"}, "outputs": {"value": "regression"}}
SPECS = [FULL, WEIRD, LONG_NAME, REGRESSION_ONLY]

GRID = (20.0, 40.0, 60.0, 80.0)
BASE = datetime(2026, 1, 5, tzinfo=UTC)
NOW = BASE + timedelta(days=1)
BAD_VALUES: dict[str, Any] = {"numeric": "high", "categorical": {"x": 1}, "boolean": "perhaps", "text": 42}
UNSUPPORTED = {"range", "date_range", "histogram", "date_histogram", "extended_stats", "percentile_ranks", "top_hits"}
TRANSFORM = "Omit<T.TransformPutTransformRequest, 'transform_id'>"
TRANSFORM_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")


def spec_of(raw: dict[str, Any]) -> ModelSpec:
    return ModelSpec.model_validate(raw)


def make_items(spec: ModelSpec, n: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic events over three hours and three versions, with nulls, type errors, errors and odd values."""
    rng = np.random.default_rng(seed)
    items = SyntheticModel(spec, seed=seed).events(n)
    for i, item in enumerate(items):
        offset = float(rng.uniform(0, 3 * 3600))
        if i % 50 == 0:
            offset = float(round(offset / 3600) * 3600)  # exactly on a bucket boundary
        elif i % 50 == 1:
            offset = 3600 - 1e-6  # a microsecond before one: ES keeps milliseconds
        item["event_id"] = f"ev-{i}"
        item["request_id"] = f"rq-{i}" if i % 5 else None
        item["version"] = ("1", "2", "canary")[i % 3]
        item["timestamp"] = (BASE + timedelta(seconds=offset)).isoformat()
        item["latency_ms"] = None if i % 11 == 0 else float(np.round(rng.lognormal(3, 1), 3))
        if i % 43 == 0:
            item["latency_ms"] = (1.0, 10.0, 100.0)[i % 3]  # exactly on a bin edge: bins are right-closed
        if i % 13 == 0:
            item["error"] = "timeout" if i % 2 else "model raised: ValueError('x.y')"
        if i % 29 == 0:
            item["tags"] = {"region": "eu", "a.b": 1}
        for j, feature in enumerate(spec.features):
            if (i + j) % 9 == 0:
                item["features"][feature.name] = None
            elif (i + j) % 23 == 0:
                item["features"][feature.name] = BAD_VALUES.get(feature.kind, [1.0])  # embeddings: wrong length
            elif feature.kind == "numeric" and i % 41 == 0:
                item["features"][feature.name] = float(GRID[i % len(GRID)])  # exactly on a GRID edge
            elif feature.kind == "numeric" and feature.range is not None and i % 47 in (0, 1, 2):
                low, high = feature.range  # below, exactly on the upper end of, and above the declared range
                item["features"][feature.name] = (float(low) - 1.0, float(high), float(high) + 5.0)[i % 47]
            elif feature.kind == "categorical" and i % 17 == 0:
                item["features"][feature.name] = ("St. Gallen", "Zürich", "a.b.c")[i % 3]
            elif feature.kind == "text" and i % 19 == 0:
                item["features"][feature.name] = "héllo 👍🏽 wörld"
        for output in spec.outputs:
            if i % 31 == 0:
                item["outputs"][output.name] = None
            elif i % 37 == 0:
                item["outputs"][output.name] = {"x": 1} if output.kind == "class_label" else [0.5]
    return items


def reference_profile(spec: ModelSpec) -> ReferenceProfile:
    parsed = parse_events(spec, make_items(spec, 300, seed=99), NOW)
    return build_profile(spec.name, "ref", parsed.table, column_kinds(spec), bins=8)


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    """The FULL and WEIRD models with 500 events each in a DuckDB store."""
    path = tmp_path_factory.mktemp("es") / "parity.duckdb"
    store = DuckDBStore(f"duckdb:///{path}")
    for raw in (FULL, WEIRD):
        spec = spec_of(raw)
        store.put_spec(spec)
        parsed = parse_events(spec, make_items(spec, 500, seed=3), NOW)
        assert not parsed.errors
        assert parsed.invalid_values > 0
        store.append_events([EventBatch(spec.name, parsed.table)])
    yield store
    store.close()


def duckdb_windows(store: DuckDBStore, plan: TransformPlan) -> list[WindowAggregates]:
    delta = store.sql(duckdb_sql.delta_sql(plan, events_table(plan.model)), [0, 10**12])
    groups: dict[tuple[str, datetime], list[tuple[str, str, str, float]]] = defaultdict(list)
    for version, bucket, column, stat, key, value in duckdb_sql.long_rows(plan, delta):
        groups[(version, bucket)].append((column, stat, key, value))
    return [from_long_rows(plan, version, bucket, rows) for (version, bucket), rows in sorted(groups.items())]


# -- a Python evaluator for the transforms the compiler emits --------------------------------------

# The painless sources the compiler may emit, and what each emits for a present value v = x - shift.
SCRIPTS: dict[str, Callable[[float], float]] = {
    "if (doc.containsKey(params.field) && doc[params.field].size() > 0)"
    " { double v = doc[params.field].value - params.shift; emit(v); }": lambda v: v,
    "if (doc.containsKey(params.field) && doc[params.field].size() > 0)"
    " { double v = doc[params.field].value - params.shift; emit(v * v); }": lambda v: v * v,
}


def field_values(doc: dict[str, Any], field: str, runtime: dict[str, Any]) -> list[Any]:
    if field in runtime:
        definition = runtime[field]
        assert definition["type"] == "double"
        script = definition["script"]
        emit = SCRIPTS.get(script["source"])
        assert emit is not None, f"the evaluator does not know the script {script['source']!r}"
        values = field_values(doc, script["params"]["field"], {})
        return [emit(float(values[0]) - script["params"]["shift"])] if values else []
    node: Any = doc
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    if node is None:
        return []
    return list(node) if isinstance(node, list) else [node]


def matches(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    [(kind, params)] = query.items()
    if kind == "bool":
        assert set(params) <= {"filter", "must_not", "should", "minimum_should_match"}
        assert "should" not in params or params.get("minimum_should_match") == 1
        return (
            all(matches(q, doc) for q in params.get("filter", []))
            and not any(matches(q, doc) for q in params.get("must_not", []))
            and (not params.get("should") or any(matches(q, doc) for q in params["should"]))
        )
    if kind == "exists":
        return bool(field_values(doc, params["field"], {}))
    [(field, condition)] = params.items()
    values = field_values(doc, field, {})
    if kind == "term":
        wanted = condition["value"]
        return any(type(v) is type(wanted) and v == wanted for v in values)
    if kind == "range":
        tests = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}
        assert set(condition) <= set(tests)
        return any(all(tests[op](float(v), float(bound)) for op, bound in condition.items()) for v in values)
    raise AssertionError(f"the evaluator does not know the query {kind!r}")


def evaluate(container: dict[str, Any], docs: list[dict[str, Any]], runtime: dict[str, Any]) -> Any:
    """One aggregation's value as a pivot writes it into the destination document."""
    [(kind, params)] = container.items()
    if kind == "filter":
        return sum(matches(params, doc) for doc in docs)
    field = params["field"]
    values = [v for doc in docs for v in field_values(doc, field, runtime)]
    if kind == "value_count":
        return len(values)
    if kind == "missing":
        return sum(not field_values(doc, field, runtime) for doc in docs)
    if kind == "sum":
        return float(sum(values))
    if kind in ("min", "max"):
        return (min if kind == "min" else max)(values) if values else None  # a pivot writes null
    if kind == "terms":
        ranked = sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))
        return dict(ranked[: params["size"]])
    raise AssertionError(f"the evaluator does not know the aggregation {kind!r}")


def _millis(iso: str) -> int:
    stamp = datetime.fromisoformat(iso)
    return (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)  # ES keeps milliseconds


def _interval_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s)", text)
    assert match is not None, text
    return int(match[1]) * (1 if match[2] == "ms" else 1000)


def run_pivot(body: dict[str, Any], docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The destination documents of ``body`` over ``docs``; bucket keys alternate ISO strings and epoch millis."""
    runtime = body["source"].get("runtime_mappings", {})
    group_by = body["pivot"]["group_by"]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        if not matches(body["source"]["query"], doc):
            continue
        group_key = []
        for source in group_by.values():
            [(kind, params)] = source.items()
            [value] = field_values(doc, params["field"], {})
            if kind == "date_histogram":
                interval = _interval_ms(params["fixed_interval"])
                value = _millis(value) // interval * interval
            else:
                assert kind == "terms"
            group_key.append(value)
        groups[tuple(group_key)].append(doc)
    out = []
    for n, (key, members) in enumerate(sorted(groups.items())):
        result: dict[str, Any] = {}
        for (name, source), value in zip(group_by.items(), key, strict=True):
            if "date_histogram" in source and n % 2 == 0:
                value = datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            result[name] = value
        for name, container in body["pivot"]["aggregations"].items():
            result[name] = evaluate(container, members, runtime)
        out.append(orjson.loads(orjson.dumps(result)))
    return out


def sent_documents(spec: ModelSpec, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = bulk_lines(spec, events).split(b"\n")
    assert lines[-1] == b""
    return [orjson.loads(line) for line in lines[1:-1:2]]


def assert_same_summary(got: Summary, want: Summary, rel: float, where: str) -> None:
    assert type(got) is type(want), where
    if isinstance(want, CategorySummary):
        assert got == want, where
        return
    assert isinstance(got, NumericSummary)
    assert (got.count, got.missing, got.invalid, got.bins, got.shift, got.out_of_range) == (
        want.count,
        want.missing,
        want.invalid,
        want.bins,
        want.shift,
        want.out_of_range,
    ), where
    scale = math.sqrt(want.count * want.sumsq)  # bounds |sum| (Cauchy-Schwarz), so rounding is relative to it
    assert math.isclose(got.sum, want.sum, rel_tol=rel, abs_tol=rel * scale), (where, got.sum, want.sum)
    assert math.isclose(got.sumsq, want.sumsq, rel_tol=rel, abs_tol=1e-300), (where, got.sumsq, want.sumsq)
    for g, w in ((got.min, want.min), (got.max, want.max)):
        assert (g is None) == (w is None), where
        if g is not None and w is not None:
            assert math.isclose(g, w, rel_tol=rel), (where, g, w)


def assert_same_windows(got: list[WindowAggregates], want: list[WindowAggregates], loose: set[str]) -> None:
    """Equal windows; sums to 1e-9 relative, columns in ``loose`` to 1e-6 (DuckDB's float32 embedding norms)."""
    key = [(w.model, w.version, w.window, w.start, w.end) for w in want]
    assert [(w.model, w.version, w.window, w.start, w.end) for w in got] == key
    for g, w in zip(got, want, strict=True):
        where = f"{w.version} {w.start}"
        assert (g.rows, g.errors) == (w.rows, w.errors), where
        assert_same_summary(g.latency, w.latency, 1e-9, f"{where} latency")
        assert g.columns.keys() == w.columns.keys(), where
        for name, summary in w.columns.items():
            assert_same_summary(g.columns[name], summary, 1e-6 if name in loose else 1e-9, f"{where} {name}")


def plans_for_parity(spec: ModelSpec) -> list[TransformPlan]:
    profile = reference_profile(spec)
    binned = plan_for(spec, spec.windows[-1], profile)
    first_numeric = next(i for i, c in enumerate(binned.columns) if c.kind == "numeric")
    single_bin = list(binned.columns)
    single_bin[first_numeric] = dataclasses.replace(single_bin[first_numeric], edges=())  # a constant reference
    on_grid = tuple(dataclasses.replace(c, edges=GRID) if c.kind == "numeric" else c for c in binned.columns)
    return [
        plan_for(spec, spec.windows[0], None),
        binned,
        dataclasses.replace(binned, columns=tuple(single_bin)),
        dataclasses.replace(binned, columns=on_grid),
    ]


@pytest.mark.parametrize("raw", [FULL, WEIRD], ids=["full", "weird"])
def test_windows_from_transform_docs_equal_duckdb(full_store: DuckDBStore, raw: dict[str, Any]) -> None:
    spec = spec_of(raw)
    events = full_store.read_events(spec.name, EventQuery(limit=10**6))
    docs = sent_documents(spec, events)
    loose = {c.name for c in full_store.layout(spec.name).value_columns if c.kind == "embedding"}
    for plan in plans_for_parity(spec):
        want = duckdb_windows(full_store, plan)
        assert {w.version for w in want} == {"1", "2", "canary"}
        assert len(want) > 3 or plan.window == "1d"  # several buckets per version
        got = sorted(windows_from_docs(plan, run_pivot(transform_body(plan), docs)), key=lambda w: (w.version, w.start))
        assert_same_windows(got, want, loose)
        assert sum(w.rows for w in got) == len(events) == 500
        assert any(s.invalid for w in got for s in w.columns.values())
        assert any(isinstance(s, NumericSummary) and s.out_of_range for w in got for s in w.columns.values()) == (
            raw is FULL
        )
        assert any(isinstance(s, NumericSummary) and len(s.bins) > 2 for w in got for s in w.columns.values()) == (
            plan.binning_version is not None
        )


# -- validity of every body --------------------------------------------------------------------------


def all_bodies() -> list[tuple[str, dict[str, Any]]]:
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("Omit<T.IlmPutLifecycleRequest, 'name'>", ilm_policy()),
        ("Omit<T.IlmPutLifecycleRequest, 'name'>", ilm_policy("2w")),
        ("Omit<T.IngestPutPipelineRequest, 'id'>", ingest_pipeline()),
    ]
    for raw in SPECS:
        spec = spec_of(raw)
        bodies.append(("Omit<T.IndicesPutIndexTemplateRequest, 'name'>", events_index_template(spec)))
        profile = reference_profile(spec)
        for window in spec.windows:
            for plan in (plan_for(spec, window, None), plan_for(spec, window, profile)):
                bodies.append((TRANSFORM, transform_body(plan)))
                bodies.append((TRANSFORM, transform_body(plan, frequency="5m", delay="5s", source_index="events-x")))
                bodies.append(("Omit<T.IndicesCreateRequest, 'index'>", dest_index_body(plan)))
    return bodies


needs_tsc = pytest.mark.skipif(not tsc_available(), reason="node and npm are needed to run tsc on Elastic's types")


@needs_tsc
def test_every_body_passes_elastic_typescript_types() -> None:
    bodies = all_bodies()
    assert len(bodies) > 30
    errors = check_bodies(bodies)
    assert errors == [], "\n".join(errors[:20])


@needs_tsc
def test_type_check_catches_typos() -> None:
    plan = plan_for(spec_of(FULL), "1h", None)
    good = transform_body(plan)
    typo = {**good, "sync": {"tiem": {"field": "event.ingested"}}}
    unknown_agg = orjson.loads(orjson.dumps(good))
    unknown_agg["pivot"]["aggregations"]["c0__min"] = {"avgg": {"field": "features.age"}}
    wrong_type = {**ingest_pipeline(), "processors": {"set": {}}}
    errors = check_bodies(
        [
            (TRANSFORM, typo),
            (TRANSFORM, unknown_agg),
            (TRANSFORM, good),
            ("Omit<T.IngestPutPipelineRequest, 'id'>", wrong_type),
        ]
    )
    joined = "\n".join(errors)
    assert "'\"tiem\"' does not exist in type 'TransformSyncContainer'" in joined
    assert "'\"avgg\"' does not exist in type 'AggregationsAggregationContainer'" in joined
    assert [e.split(" ", 1)[0] for e in errors] == ["b0", "b1", "b3"]


def test_check_reports_bodies_that_are_not_json() -> None:
    from tests.es_types.check import _render

    _, spans, problems = _render([(TRANSFORM, {"x": math.nan}), (TRANSFORM, {"x": 1})])
    assert len(spans) == 1 and problems and problems[0].startswith("b0 ")


# -- pivot rules, names and ids ------------------------------------------------------------------------


def aggregation_types(aggs: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """(path, type) of every aggregation in ``aggs``, sub-aggregations included."""
    for name, container in aggs.items():
        kinds = [k for k in container if k not in ("aggs", "aggregations", "meta")]
        assert len(kinds) == 1, f"{path}{name} has {kinds}"
        yield f"{path}{name}", kinds[0]
        for sub in ("aggs", "aggregations"):
            if sub in container:
                yield from aggregation_types(container[sub], f"{path}{name}>")


def transform_bodies() -> list[dict[str, Any]]:
    return [body for type_expression, body in all_bodies() if type_expression == TRANSFORM]


def test_transforms_use_only_pivot_aggregations() -> None:
    used: set[str] = set()
    for body in transform_bodies():
        for path, kind in aggregation_types(body["pivot"]["aggregations"]):
            assert kind in PIVOT_AGGREGATIONS and kind not in UNSUPPORTED, path
            used.add(kind)
        assert set(body["pivot"]["group_by"]) == {"version", "bucket"}
        for group in body["pivot"]["group_by"].values():
            assert len(group) == 1 and set(group) <= {"terms", "histogram", "date_histogram", "geotile_grid"}
    assert used == {"value_count", "sum", "min", "max", "missing", "filter", "terms"}  # what the evaluator knows


def test_unsupported_aggregation_walker_sees_nested_ones() -> None:
    planted = {"a": {"filter": {"range": {"x": {"gt": 1}}}, "aggs": {"b": {"range": {"field": "x", "ranges": []}}}}}
    assert list(aggregation_types(planted)) == [("a", "filter"), ("a>b", "range")]


def test_names_ids_and_destination_mappings() -> None:
    for raw in SPECS:
        spec = spec_of(raw)
        for window in spec.windows:
            plan = plan_for(spec, window, reference_profile(spec))
            tid, index = transform_id(plan), dest_index(plan)
            assert TRANSFORM_ID.match(tid), tid
            assert tid.endswith(plan.fingerprint[:8]) and tid == transform_id(plan)
            assert index == index.lower() and not re.search(r'[\\/*?"<>| ,#:]', index) and index[0] not in "-_+"
            assert len(index.encode()) <= 255
            body = transform_body(plan)
            aggs = body["pivot"]["aggregations"]
            for name in aggs:
                assert re.fullmatch(r"[A-Za-z0-9_]+", name), name  # no dots, brackets or '>'
            mapped = dest_index_body(plan)["mappings"]["properties"]
            assert set(mapped) == set(aggs) | {"version", "bucket", "updated_at"}
            expected = {"value_count": "long", "missing": "long", "filter": "long", "terms": "flattened"}
            for name, container in aggs.items():
                [kind] = container
                assert mapped[name]["type"] == expected.get(kind, "double"), name
            assert body["_meta"]["plan_fingerprint"] == plan.fingerprint
            meta_names = {n for names in body["_meta"]["aggregations"].values() for n in names.values()}
            assert meta_names == set(aggs)
    long_plan = plan_for(spec_of(LONG_NAME), "7d", None)
    assert len(transform_id(long_plan)) == 64


def test_frequency_and_interval() -> None:
    spec = spec_of(WEIRD)
    assert transform_body(plan_for(spec, "30s", None))["frequency"] == "30s"
    day = transform_body(plan_for(spec, "1d", None))
    assert day["frequency"] == "1m"
    assert day["pivot"]["group_by"]["bucket"]["date_histogram"]["fixed_interval"] == "86400s"
    assert day["sync"] == {"time": {"field": "event.ingested", "delay": "60s"}}
    assert day["settings"]["max_page_search_size"] == 65_536 // (1 + 2 * 100)  # two categorical columns
    assert day["source"]["query"] == {"bool": {"filter": [{"term": {"model.id": {"value": "weird_names-2"}}}]}}
    with pytest.raises(ValueError, match="between 1s and 1h"):
        transform_body(plan_for(spec, "1d", None), frequency="2h")


def test_terms_size_covers_known_categories() -> None:
    spec = spec_of(
        {"name": "c", "features": {"few": {"kind": "categorical", "categories": ["a", "b"]}, "many": "categorical"}}
    )
    plan = plan_for(spec, "1h", None)
    plan = dataclasses.replace(
        plan, columns=(plan.columns[0], dataclasses.replace(plan.columns[1], categories=tuple(map(str, range(5000)))))
    )
    body = transform_body(plan)
    aggs = body["pivot"]["aggregations"]
    assert aggs["c0__cat"]["terms"]["size"] == 100
    assert aggs["c1__cat"]["terms"]["size"] == 1000
    # every terms aggregation full in every composite bucket of a page stays under search.max_buckets
    assert body["settings"]["max_page_search_size"] == 65_536 // (1 + 100 + 1000)


def test_page_size_keeps_terms_buckets_under_the_cluster_limit() -> None:
    features = {f"c{i}": "categorical" for i in range(60)}
    wide = plan_for(spec_of({"name": "wide", "features": features}), "1h", None)
    assert transform_body(wide)["settings"]["max_page_search_size"] == 10  # the smallest a transform accepts
    full = plan_for(spec_of(FULL), "1h", None)
    terms = sum(c.category_limit or 0 for c in full.columns)
    assert transform_body(full)["settings"]["max_page_search_size"] == 65_536 // (1 + terms) < 500


# -- field names and documents -------------------------------------------------------------------------

SEGMENT = re.compile(r"^[A-Za-z0-9-][A-Za-z0-9_-]*$")


def leaf_paths(properties: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, mapping in properties.items():
        if "properties" in mapping:
            yield from leaf_paths(mapping["properties"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_field_names_are_safe_distinct_and_stable() -> None:
    spec = spec_of(WEIRD)
    columns = [c.column for c in plan_for(spec, "1d", None).columns]
    paths = [es_field(c) for c in columns]
    assert len(set(paths)) == len(paths)
    for path in paths:
        root, *segments = path.split(".")
        assert root in ("features", "outputs") and all(SEGMENT.match(s) for s in segments), path
    assert es_field("f:a_b") == "features.a_b" and es_field("f:a-b") == "features.a-b"
    assert es_field("f:a.b") != es_field("f:a b") and es_field("f:a.b").startswith("features.a_b_")
    assert es_field("f:UPPER") == "features.UPPER"
    assert es_field("f:_private").startswith("features.x_private_")
    assert es_field("o:score v2:größe").split(".")[2].startswith("gr__e_")
    grown = spec_of({**WEIRD, "features": {**WEIRD["features"], "a__b": "numeric", "a_b_": "numeric"}})
    grown_paths = [es_field(c.column) for c in plan_for(grown, "1d", None).columns]
    assert set(paths) < set(grown_paths) and len(set(grown_paths)) == len(grown_paths)  # nothing moved
    template = events_index_template(spec)
    leaves = set(leaf_paths(template["template"]["mappings"]["properties"]))
    assert set(paths) <= leaves
    assert es_field("f:x(1)/y", measure=True) in leaves and es_field("f:tags[0]", measure=True) in leaves


def test_index_template_shape() -> None:
    spec = spec_of(FULL)
    body = events_index_template(spec)
    assert body["index_patterns"] == ["sustain-events-full"] and body["data_stream"] == {}
    assert body["priority"] == 200 and "composed_of" not in body
    assert body["template"]["settings"]["index.lifecycle.name"] == "sustain-events"
    mappings = body["template"]["mappings"]
    assert mappings["dynamic"] is False
    props = mappings["properties"]
    features, outputs = props["features"]["properties"], props["outputs"]["properties"]
    assert features["age"] == {"type": "double"} and features["plan"] == {"type": "keyword"}
    assert features["active"] == {"type": "boolean"} and features["note"] == {"type": "text"}
    assert features["vec"] == {"type": "dense_vector", "dims": 4, "index": False}
    assert props["measures"]["properties"] == {"note": {"type": "double"}, "vec": {"type": "double"}}
    assert outputs["prediction"] == {"type": "keyword"} and outputs["p"] == {"type": "double"}
    assert outputs["proba"]["properties"] == {c: {"type": "double"} for c in ("stay", "churn", "maybe")}
    assert props["tags"] == {"type": "flattened"} and props["event"]["properties"]["ingested"] == {"type": "date"}


def test_template_refuses_outputs_whose_paths_clash() -> None:
    spec = spec_of({"name": "c", "features": {"x": "numeric"}, "outputs": {"p": "probability", "p:1": "probability"}})
    with pytest.raises(ValueError, match=re.escape("'outputs.p' to be an object")):
        events_index_template(spec)


def test_event_document_and_bulk_lines() -> None:
    spec = spec_of(WEIRD)
    event = {
        "event_id": "e1",
        "request_id": "r1",
        "version": "3",
        "timestamp": datetime(2026, 1, 5, 1, 2, 3, 456789, tzinfo=UTC),
        "features": {"account age": 41, "a.b": None, "x(1)/y": "héllo", "tags[0]": [3.0, 4.0], "_private": True},
        "outputs": {"score v2": [0.1, 0.2, 0.3, 0.4], "Label.Out": "a.b"},
        "latency_ms": 12.5,
        "error": "e" * 10_000,
        "tags": {"k": "v"},
        "invalid": ["UPPER"],
        "extra": {"features": {"undeclared": 1}},
    }
    doc = event_document(spec, event)
    assert doc["@timestamp"] == "2026-01-05T01:02:03.456789Z"
    assert doc["event"] == {"id": "e1"} and doc["request"] == {"id": "r1"}
    assert doc["model"] == {"id": "weird_names-2", "version": "3"}
    features = doc["features"]
    assert features["account_age_" + es_field("f:account age").rsplit("_", 1)[1]] == 41.0
    assert es_field("f:a.b").split(".")[1] not in features  # nulls are left out
    measures = doc["measures"]
    assert sorted(measures.values()) == [5.0, 5.0]  # len("héllo"), |(3, 4)|
    scores = doc["outputs"][es_field("o:score v2").split(".")[1]]
    assert scores == {
        es_field(f"o:score v2:{c}").split(".")[2]: s
        for c, s in zip(["yes.no", "no way", "größe", "_x"], [0.1, 0.2, 0.3, 0.4], strict=True)
    }
    assert len(doc["error"]) == 8191 and doc["invalid"] == ["UPPER"] and doc["tags"] == {"k": "v"}
    body = bulk_lines(spec, [event, {**event, "event_id": "e2"}])
    lines = body.split(b"\n")
    assert body.endswith(b"\n") and len(lines) == 5 and lines[-1] == b""
    assert orjson.loads(lines[0]) == {"create": {"_index": "sustain-events-weird_names-2", "_id": "e1"}}
    assert orjson.loads(lines[2]) == {"create": {"_index": "sustain-events-weird_names-2", "_id": "e2"}}
    assert orjson.loads(lines[3])["event"]["id"] == "e2"
    assert doc["buckets"] == {"30s": "2026-01-05T01:02:00.000Z", "1d": "2026-01-05T00:00:00.000Z"}
    long_id = bulk_lines(spec, [{**event, "event_id": "é" * 300}], prefix="acme").split(b"\n")[0]
    action = orjson.loads(long_id)["create"]
    assert action["_index"] == "acme-events-weird_names-2" and action["_id"].startswith("sha256:")


def test_ilm_policy_and_pipeline() -> None:
    phases = ilm_policy()["policy"]["phases"]
    assert phases["hot"]["actions"]["rollover"]["max_age"] == "7d"
    assert phases["delete"] == {"min_age": "30d", "actions": {"delete": {}}}
    processors = ingest_pipeline()["processors"]
    assert processors == [{"set": {"field": "event.ingested", "value": "{{{_ingest.timestamp}}}"}}]


def checkpoint_docs(body: dict[str, Any], stored: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[Any]:
    """What one continuous checkpoint rewrites, modelled on the change collector of a pivot transform.

    For a ``date_histogram`` group on a field other than the sync field, Elasticsearch
    (CompositeBucketsChangeCollector.DateHistogramFieldCollector) takes min and max of that field over
    the changed documents and re-aggregates every document with the field in ``[round(min), max]``;
    ``terms`` groups are narrowed to the changed terms. The buckets found replace the stored ones.
    """
    group_by = body["pivot"]["group_by"]
    field = group_by["bucket"]["date_histogram"]["field"]
    interval = _interval_ms(group_by["bucket"]["date_histogram"]["fixed_interval"])
    stamps = [_millis(v) for doc in changed for v in field_values(doc, field, {})]
    low, high = min(stamps) // interval * interval, max(stamps)
    versions = {v for doc in changed for v in field_values(doc, group_by["version"]["terms"]["field"], {})}
    chosen = [
        doc
        for doc in stored + changed
        if low <= _millis(field_values(doc, field, {})[0]) <= high
        and field_values(doc, group_by["version"]["terms"]["field"], {})[0] in versions
    ]
    plan = plan_for(spec_of(REGRESSION_ONLY), "1h", None)
    return windows_from_docs(plan, run_pivot(body, chosen))


def test_late_event_rewrites_its_whole_bucket() -> None:
    spec = spec_of(REGRESSION_ONLY)
    plan = plan_for(spec, "1h", None)
    hour = datetime(2026, 1, 5, 10, tzinfo=UTC)
    on_time = [
        {"event_id": f"e{i}", "version": "1", "timestamp": hour + timedelta(minutes=5 * i), "features": {"size": i}}
        for i in range(12)
    ]
    late = {"event_id": "late", "version": "1", "timestamp": hour + timedelta(minutes=5, seconds=30), "features": {}}
    stored = [event_document(spec, e) for e in on_time]
    fixed = transform_body(plan)
    assert fixed["pivot"]["group_by"]["bucket"]["date_histogram"]["field"] == "buckets.1h"
    assert fixed["sync"]["time"]["field"] == "event.ingested"
    [window] = checkpoint_docs(fixed, stored, [event_document(spec, late)])
    assert (window.start, window.rows) == (hour, 13)  # the whole hour, with the late event
    # The shape before the fix, grouped on the event time: the hour is rewritten from 10:00-10:05:30 only.
    on_timestamp = orjson.loads(orjson.dumps(fixed))
    on_timestamp["pivot"]["group_by"]["bucket"]["date_histogram"]["field"] = "@timestamp"
    [broken] = checkpoint_docs(on_timestamp, stored, [event_document(spec, late)])
    assert (broken.start, broken.rows) == (hour, 3)


def test_bucket_starts_follow_the_embedded_engine(full_store: DuckDBStore) -> None:
    spec = spec_of(FULL)
    events = full_store.read_events(spec.name, EventQuery(limit=10**6))
    for window in spec.windows:
        plan = plan_for(spec, window, None)
        want = {(w.version, w.start) for w in duckdb_windows(full_store, plan)}
        segment = bucket_field(window).split(".")[1]
        got = {
            (doc["model"]["version"], datetime.fromisoformat(doc["buckets"][segment]))
            for doc in sent_documents(spec, events)
        }
        assert got == want


def test_bucket_keys_in_both_formats() -> None:
    plan = plan_for(spec_of(REGRESSION_ONLY), "1h", None)
    docs: list[dict[str, Any]] = [
        {"version": "1", "bucket": 1767574800000, "rows": 1},
        {"version": "1", "bucket": "2026-01-05T01:00:00.000Z"},
    ]
    first, second = windows_from_docs(plan, [docs[0], {"_source": docs[1], "_id": "x"}])
    assert first.start == second.start == datetime(2026, 1, 5, 1, tzinfo=UTC)
    assert first.end - first.start == timedelta(hours=1)
    assert second.rows == 0 and second.latency.min is None


def test_harness_files_are_in_place() -> None:
    here = Path(__file__).parent / "es_types"
    package = orjson.loads((here / "package.json").read_bytes())
    assert re.fullmatch(r"8\.19\.\d+", package["dependencies"]["@elastic/elasticsearch"])
    assert package["dependencies"]["typescript"].startswith("5.")
    assert (here / "package-lock.json").is_file()
