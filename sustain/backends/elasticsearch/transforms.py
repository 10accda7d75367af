"""Compile a :class:`TransformPlan` to an Elasticsearch continuous pivot transform, and read its output back.

The transform keeps, per (version, time bucket) over all events of the model,
the same partials as :func:`sustain.backends.duckdb.sql.delta_sql`: rows,
errors, latency and, per column, count, missing (null and not a type error),
invalid, sum and sum of squares of ``x - shift``, min, max, values outside the
spec's range, counts in the right-closed bins and counts per category. Only
aggregations that pivots support are used (no ``range``, ``histogram`` or
``extended_stats``):

* bins, missing values, type errors and values out of range are ``filter``
  aggregations (a value of the wrong type is left out of the document like a
  null; the ``invalid`` list tells them apart);
* shifted sums and sums of squares are ``sum`` aggregations over runtime fields
  defined in the transform ``source`` (painless, guarded for missing values);
* categories are a ``terms`` aggregation, which a pivot writes as an object
  ``{category: count}`` (mapped ``flattened`` in the destination index).

Aggregation names are ``<prefix>__<stat>``, with prefix ``c<i>`` for the i-th
plan column and ``lat`` for latency (``c3__bin_7``); they carry no dots, which a
pivot would turn into nested objects. :func:`windows_from_docs` turns the
destination documents into the same :class:`WindowAggregates` the embedded
engine builds.

The events side (document shape, field names, index template, ILM policy,
ingest pipeline, bulk body) lives in :mod:`sustain.backends.elasticsearch.mappings` and is
re-exported here.

>>> from sustain.spec import ModelSpec
>>> from sustain.transforms.plan import plan_for
>>> plan = plan_for(ModelSpec.model_validate({"name": "churn", "features": {"age": "numeric"}}), "1h", None)
>>> transform_id(plan) == "sustain-churn-1h-" + plan.fingerprint[:8]
True
>>> body = transform_body(plan)
>>> body["pivot"]["group_by"]["bucket"], body["frequency"]
({'date_histogram': {'field': 'buckets.1h', 'fixed_interval': '3600s'}}, '1m')
>>> body["pivot"]["aggregations"]["c0__min"]
{'min': {'field': 'features.age'}}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson

from sustain.backends.elasticsearch.mappings import (
    DEFAULT_PREFIX,
    ILM_POLICY,
    INGEST_PIPELINE,
    KEYWORD_MAX_CHARS,
    backfill_buckets_body,
    bucket_field,
    bulk_lines,
    es_duration,
    es_field,
    event_doc_id,
    event_document,
    events_data_stream,
    events_index_template,
    ilm_policy,
    ilm_policy_name,
    ingest_pipeline,
    ingest_pipeline_name,
    safe_name,
)
from sustain.durations import parse_duration
from sustain.errors import ConfigError
from sustain.transforms.bins import OTHER
from sustain.transforms.plan import ColumnPlan, TransformPlan
from sustain.transforms.window import CategorySummary, NumericSummary, Summary, WindowAggregates

__all__ = [
    "DEFAULT_PREFIX",
    "ILM_POLICY",
    "INGEST_PIPELINE",
    "KEYWORD_MAX_CHARS",
    "PIVOT_AGGREGATIONS",
    "UPDATED_FIELD",
    "aggregation_names",
    "backfill_buckets_body",
    "body_digest",
    "bucket_field",
    "bulk_lines",
    "dest_index",
    "dest_index_body",
    "es_duration",
    "es_field",
    "event_doc_id",
    "event_document",
    "events_data_stream",
    "events_index_template",
    "ilm_policy",
    "ilm_policy_name",
    "ingest_pipeline",
    "ingest_pipeline_name",
    "page_search_size",
    "safe_name",
    "transform_body",
    "transform_id",
    "windows_alias",
    "windows_from_docs",
]

# What a pivot accepts (elastic/elasticsearch TransformAggregations.java); the compiler emits a subset.
PIVOT_AGGREGATIONS = frozenset(
    {
        "avg",
        "median_absolute_deviation",
        "cardinality",
        "value_count",
        "max",
        "min",
        "sum",
        "geo_bounds",
        "geo_centroid",
        "geo_line",
        "scripted_metric",
        "weighted_avg",
        "bucket_selector",
        "bucket_script",
        "percentiles",
        "filter",
        "terms",
        "rare_terms",
        "missing",
        "top_metrics",
        "stats",
    }
)
MAX_PAGE_SEARCH_SIZE = 500  # the pivot default
MIN_PAGE_SEARCH_SIZE = 10
SEARCH_MAX_BUCKETS = 65_536  # the cluster default of search.max_buckets
_ID_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_ID_MAX = 64
# Set on every destination document by the transform's ``dest.pipeline`` (see sustain.backends.elasticsearch.windows).
UPDATED_FIELD = "updated_at"

# Painless for the runtime fields behind shifted sums; ``containsKey`` guards backing indices created
# before a column was added to the spec (``doc[...]`` throws on a field the index does not map).
SHIFTED_SCRIPT = (
    "if (doc.containsKey(params.field) && doc[params.field].size() > 0)"
    " { double v = doc[params.field].value - params.shift; emit(v); }"
)
SHIFTED_SQUARE_SCRIPT = (
    "if (doc.containsKey(params.field) && doc[params.field].size() > 0)"
    " { double v = doc[params.field].value - params.shift; emit(v * v); }"
)


# -- names ----------------------------------------------------------------------------------------


def _id_part(text: str) -> str:
    return _ID_UNSAFE.sub("-", text.lower()).strip("-_")


def body_digest(body: Mapping[str, Any]) -> str:
    """Eight hex digits naming a transform body: its plan (whose fingerprint it carries) and every setting."""
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=4).hexdigest()


def transform_id(plan: TransformPlan, prefix: str = DEFAULT_PREFIX, body: Mapping[str, Any] | None = None) -> str:
    """``<prefix>-<model>-<window>-<digest>``, cut to the 64 characters transform ids allow.

    The digest is :func:`body_digest` of the transform's ``body`` when given (the engine always gives it), else
    the plan's fingerprint: a transform whose delay, frequency, page size or retention changed is another
    transform, and replaces the old one, instead of the old settings running on unnoticed. Replicas with the
    same settings name the same transform. The model part is shortened when needed; the digest, which
    covers the model too, keeps ids apart.

    >>> from sustain.transforms.plan import TransformPlan
    >>> plan = TransformPlan("m" * 63, "1d", 86400.0, ())
    >>> tid = transform_id(plan)
    >>> len(tid), tid.startswith("sustain-mmm"), tid.endswith("-1d-" + plan.fingerprint[:8])
    (64, True, True)
    >>> transform_id(plan, body={"delay": "60s"}) != transform_id(plan, body={"delay": "90s"})
    True
    """
    window = _id_part(plan.window) or "w"
    digest = plan.fingerprint[:8] if body is None else body_digest(body)
    room = _ID_MAX - len(f"{prefix}--{window}-{digest}")
    model = _id_part(plan.model)[: max(room, 1)].rstrip("-_") or "m"
    return f"{prefix}-{model}-{window}-{digest}"[-_ID_MAX:].lstrip("-_")


def windows_alias(model: str, window: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The alias naming the current destination index of a model's window (Kibana's windows data view reads it).

    A transform of a new plan writes to a new index; the alias moves with it, so views never see stale plans'
    windows, nor other models whose names share a prefix (``churn`` and ``churn-eu``).

    >>> windows_alias("churn", "1h")
    'sustain-windows-churn-1h'
    """
    return f"{prefix}-windows-{model}-{_id_part(window) or 'w'}"


def dest_index(plan: TransformPlan, prefix: str = DEFAULT_PREFIX) -> str:
    """The plain index a transform writes its windows to (a data stream cannot be a transform's ``dest``).

    >>> from sustain.transforms.plan import TransformPlan
    >>> plan = TransformPlan("churn", "1h", 3600.0, ())
    >>> dest_index(plan) == "sustain-windows-churn-1h-" + plan.fingerprint[:8]
    True
    """
    return f"{prefix}-windows-{plan.model}-{_id_part(plan.window) or 'w'}-{plan.fingerprint[:8]}"


# -- what each plan column compiles to ------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """One aggregated quantity: a plan column, or latency."""

    prefix: str  # aggregation-name prefix: c<i> or lat
    column: ColumnPlan
    field: str  # the document field aggregated: the value, or the measure of a text/embedding

    def name(self, stat: str) -> str:
        return f"{self.prefix}__{stat}"

    @property
    def numeric(self) -> bool:
        return self.column.kind not in ("categorical", "boolean")

    @property
    def has_invalid(self) -> bool:
        return self.prefix != "lat"


_LATENCY = "latency_ms"


def _targets(plan: TransformPlan) -> list[_Target]:
    latency = ColumnPlan(_LATENCY, "numeric", edges=plan.latency_edges, shift=0.0)
    targets = [_Target("lat", latency, _LATENCY)]
    for i, col in enumerate(plan.columns):
        measured = col.kind in ("text", "embedding")
        targets.append(_Target(f"c{i}", col, es_field(col.column, measure=measured)))
    return targets


def _numeric_stats(target: _Target) -> list[str]:
    stats = ["count", "missing", "sum", "sumsq", "min", "max"]
    if target.has_invalid:
        stats.insert(2, "invalid")
    if target.column.range is not None:
        stats.append("oor")
    edges = target.column.edges
    bins = len(edges) + 1 if edges else 0  # no edges: the single bin is the count
    return stats + [f"bin_{k}" for k in range(bins)]


def aggregation_names(plan: TransformPlan) -> dict[str, dict[str, str]]:
    """Storage column (``*`` for rows and errors, ``latency_ms``) → partial → aggregation (output field) name.

    >>> from sustain.transforms.plan import ColumnPlan, TransformPlan
    >>> plan = TransformPlan("m", "1h", 3600.0, (ColumnPlan("f:c", "categorical"),), latency_edges=(1.0,))
    >>> names = aggregation_names(plan)
    >>> names["*"], names["f:c"]
    ({'rows': 'rows', 'errors': 'errors'}, {'cat': 'c0__cat', 'missing': 'c0__missing', 'invalid': 'c0__invalid'})
    >>> sorted(names["latency_ms"])
    ['bin_0', 'bin_1', 'count', 'max', 'min', 'missing', 'sum', 'sumsq']
    """
    names: dict[str, dict[str, str]] = {"*": {"rows": "rows", "errors": "errors"}}
    for target in _targets(plan):
        kind = target.column.kind
        if kind == "categorical":
            stats = ["cat", "missing", "invalid"]
        elif kind == "boolean":
            stats = ["true", "false", "missing", "invalid"]
        else:
            stats = _numeric_stats(target)
        names[target.column.column] = {stat: target.name(stat) for stat in stats}
    return names


def _bin_queries(field: str, edges: tuple[float, ...]) -> list[dict[str, Any]]:
    """Right-closed bins ``(-inf, e0], (e0, e1], ..., (e_last, +inf)`` as range queries."""
    bounds: list[dict[str, float]] = [{"lte": float(edges[0])}]
    bounds += [{"gt": float(lo), "lte": float(hi)} for lo, hi in pairwise(edges)]
    bounds.append({"gt": float(edges[-1])})
    return [{"range": {field: bound}} for bound in bounds]


def _terms_size(col: ColumnPlan) -> int:
    """The terms aggregation's size: the plan's category limit, which the embedded engine keeps too."""
    limit = col.category_limit
    assert limit is not None, col
    return limit


def _runtime_field(field: str, shift: float, script: str) -> dict[str, Any]:
    return {"type": "double", "script": {"source": script, "params": {"field": field, "shift": float(shift)}}}


def _compile_target(target: _Target, aggs: dict[str, Any], runtime: dict[str, Any]) -> None:
    col, field = target.column, target.field
    if target.has_invalid:
        # A value of the wrong type is left out of the document like a null, but it is a type error, not missing.
        invalid = {"term": {"invalid": {"value": col.invalid_key}}}
        aggs[target.name("invalid")] = {"filter": invalid}
        aggs[target.name("missing")] = {"filter": {"bool": {"must_not": [{"exists": {"field": field}}, invalid]}}}
    else:
        aggs[target.name("missing")] = {"missing": {"field": field}}
    if col.kind == "categorical":
        aggs[target.name("cat")] = {"terms": {"field": field, "size": _terms_size(col)}}
        return
    if col.kind == "boolean":
        aggs[target.name("true")] = {"filter": {"term": {field: {"value": True}}}}
        aggs[target.name("false")] = {"filter": {"term": {field: {"value": False}}}}
        return
    aggs[target.name("count")] = {"value_count": {"field": field}}
    shifted, squared = f"sustain_rt__{target.prefix}__shifted", f"sustain_rt__{target.prefix}__shifted_sq"
    if col.shift == 0.0:
        aggs[target.name("sum")] = {"sum": {"field": field}}
    else:
        runtime[shifted] = _runtime_field(field, col.shift, SHIFTED_SCRIPT)
        aggs[target.name("sum")] = {"sum": {"field": shifted}}
    runtime[squared] = _runtime_field(field, col.shift, SHIFTED_SQUARE_SCRIPT)
    aggs[target.name("sumsq")] = {"sum": {"field": squared}}
    aggs[target.name("min")] = {"min": {"field": field}}
    aggs[target.name("max")] = {"max": {"field": field}}
    if col.range is not None:
        low, high = col.range
        outside = [{"range": {field: {"lt": float(low)}}}, {"range": {field: {"gt": float(high)}}}]
        aggs[target.name("oor")] = {"filter": {"bool": {"should": outside, "minimum_should_match": 1}}}
    if col.edges:
        for k, query in enumerate(_bin_queries(field, col.edges)):
            aggs[target.name(f"bin_{k}")] = {"filter": query}


def page_search_size(plan: TransformPlan, max_buckets: int = SEARCH_MAX_BUCKETS) -> int:
    """Composite buckets per search page: 500, fewer when a page's buckets could pass ``search.max_buckets``.

    Composite and terms buckets count towards the cluster's limit (filters do not), and a transform fails on
    ``too_many_buckets_exception`` on every retry of the same page rather than shrinking it, as it does on
    circuit breakers. So the page is sized for the worst case: every terms aggregation full (its size, the
    column's category limit, whatever categories the spec declares). Raises ConfigError when not even the
    smallest page (10) fits, naming the columns.

    >>> from sustain.transforms.plan import ColumnPlan, TransformPlan
    >>> page_search_size(TransformPlan("m", "1h", 3600.0, (ColumnPlan("f:c", "categorical", categories=("a",)),)))
    500
    >>> page_search_size(TransformPlan("m", "1h", 3600.0, (ColumnPlan("f:c", "categorical"),) * 20))
    32
    >>> page_search_size(TransformPlan("m", "1h", 3600.0, (ColumnPlan("f:c", "categorical"),) * 2), max_buckets=2000)
    Traceback (most recent call last):
    ...
    sustain.errors.ConfigError: a transform page of model 'm' needs 2010 buckets ... but search.max_buckets is 2000; ...
    """
    per_bucket = 1 + sum(_terms_size(c) for c in plan.columns if c.kind == "categorical")
    page = max_buckets // per_bucket
    if page < MIN_PAGE_SEARCH_SIZE:
        need = MIN_PAGE_SEARCH_SIZE * per_bucket
        raise ConfigError(
            f"a transform page of model {plan.model!r} needs {need} buckets ({MIN_PAGE_SEARCH_SIZE} windows of 1 + "
            f"{per_bucket - 1} terms buckets) but search.max_buckets is {max_buckets}; raise search.max_buckets "
            "or declare fewer categorical columns"
        )
    return min(MAX_PAGE_SEARCH_SIZE, page)


def _frequency(window_seconds: float) -> str:
    return es_duration(min(3600.0, max(1.0, min(window_seconds, 60.0))))


def _fixed_interval(window_seconds: float) -> str:
    if float(window_seconds).is_integer():
        return f"{int(window_seconds)}s"
    return f"{round(window_seconds * 1000)}ms"


# Why the pivot groups on ``buckets.<window>`` rather than on ``@timestamp``.
#
# The transform syncs on ``event.ingested`` (so late events are seen) while time buckets come from the
# event time. In elastic/elasticsearch x-pack/plugin/transform/.../pivot/CompositeBucketsChangeCollector.java,
# createFieldCollectors gives a ``date_histogram`` group the DateHistogramFieldCollectorSynchronized only when
# its field is the sync field; otherwise DateHistogramFieldCollector reads min and max of the histogram field
# over the documents that changed since the last checkpoint and re-aggregates the documents with that field
# in ``[round(min), max]``: the lower bound is rounded to a bucket start, the upper bound is not ("the
# checkpoint will not contain new data for the upper bound", true only for the sync field). Grouped on
# ``@timestamp``, a late event at 10:05 alone in its checkpoint makes the 10:00 bucket be rewritten from the
# events of 10:00-10:05 only (tests/test_transforms_es.py::test_late_event_rewrites_its_whole_bucket).
#
# Every event therefore carries the start of its bucket per window (``buckets.1h`` = floor(ts / 1h) * 1h,
# written by event_document). Grouping ``date_histogram`` on that field with the same ``fixed_interval``
# keeps the keys unchanged, and now min and max of the changed documents are exact bucket starts, so
# ``[round(min), max]`` = ``[first changed bucket, last changed bucket]`` selects every document of every
# changed bucket: each bucket is recomputed from all of its documents. Buckets between the first and the
# last changed one are recomputed too (a late event and a fresh one span the gap), which costs work but
# never correctness. A ``terms`` group on the same field would recompute exactly the changed buckets, but
# its TermsFieldCollector adds the field to the composite aggregation the collector already pages over for
# ``version``: a page per (version, bucket) pairs and terms queries built from each page, instead of two
# metric aggregations and one range query. Late events are rare and mostly recent, so the range is small,
# and the date histogram keeps the destination ``bucket`` exactly as it was.
def transform_body(
    plan: TransformPlan,
    *,
    source_index: str | None = None,
    frequency: str | None = None,
    delay: str = "60s",
    prefix: str = DEFAULT_PREFIX,
    dest_pipeline: str | None = None,
    max_buckets: int = SEARCH_MAX_BUCKETS,
    retention: str | None = None,
) -> dict[str, Any]:
    """The body of ``PUT _transform/<transform_id(plan)>``: a continuous pivot per (version, bucket).

    ``source_index`` defaults to the model's events data stream; ``frequency`` to the
    window, at least 1s and at most 1m. The transform syncs on ``event.ingested``, so
    late events are counted as long as they arrive (not happen) after the last
    checkpoint minus ``delay``; buckets group on ``buckets.<window>`` so that a
    changed bucket is always recomputed whole (see the comment above).
    ``dest_pipeline`` names an ingest pipeline the destination documents go through;
    ``max_buckets`` is the cluster's ``search.max_buckets`` (see :func:`page_search_size`); with
    ``retention``, windows whose bucket is older are deleted (``retention_policy``).

    >>> from sustain.transforms.plan import ColumnPlan, TransformPlan
    >>> col = ColumnPlan("f:x", "numeric", edges=(1.0, 2.0), shift=1.5)
    >>> body = transform_body(TransformPlan("m", "30s", 30.0, (col,), latency_edges=(1.0,)))
    >>> aggs = body["pivot"]["aggregations"]
    >>> [aggs[f"c0__bin_{k}"]["filter"]["range"]["features.x"] for k in range(3)]
    [{'lte': 1.0}, {'gt': 1.0, 'lte': 2.0}, {'gt': 2.0}]
    >>> aggs["c0__sum"], body["frequency"], body["sync"]
    ({'sum': {'field': 'sustain_rt__c0__shifted'}}, '30s', {'time': {'field': 'event.ingested', 'delay': '60s'}})
    """
    if frequency is not None:
        seconds = parse_duration(frequency)
        if not 1.0 <= seconds <= 3600.0:
            raise ValueError(f"transform frequency must be between 1s and 1h, got {frequency!r}")
    aggs: dict[str, Any] = {
        "rows": {"value_count": {"field": "event.id"}},
        "errors": {"value_count": {"field": "error"}},
    }
    runtime: dict[str, Any] = {}
    for target in _targets(plan):
        _compile_target(target, aggs, runtime)
    source: dict[str, Any] = {
        "index": [source_index or events_data_stream(plan.model, prefix)],
        "query": {"bool": {"filter": [{"term": {"model.id": {"value": plan.model}}}]}},
    }
    if runtime:
        source["runtime_mappings"] = runtime
    dest: dict[str, Any] = {"index": dest_index(plan, prefix)}
    if dest_pipeline is not None:
        dest["pipeline"] = dest_pipeline
    interval = _fixed_interval(plan.window_seconds)
    body: dict[str, Any] = {
        "description": f"sustain: {plan.model} per {plan.window} (plan {plan.fingerprint})",
        "source": source,
        "dest": dest,
        "frequency": frequency or _frequency(plan.window_seconds),
        "sync": {"time": {"field": "event.ingested", "delay": delay}},
        "settings": {"max_page_search_size": page_search_size(plan, max_buckets)},
        "pivot": {
            "group_by": {
                "version": {"terms": {"field": "model.version"}},
                "bucket": {"date_histogram": {"field": bucket_field(plan.window), "fixed_interval": interval}},
            },
            "aggregations": aggs,
        },
        "_meta": _meta(plan),
    }
    if retention is not None:
        body["retention_policy"] = {"time": {"field": "bucket", "max_age": es_duration(parse_duration(retention))}}
    return body


def _meta(plan: TransformPlan) -> dict[str, Any]:
    return {
        "managed_by": "sustain",
        "model": plan.model,
        "window": plan.window,
        "plan_fingerprint": plan.fingerprint,
        "binning_version": plan.binning_version,
        "aggregations": aggregation_names(plan),
    }


def _output_type(stat: str) -> str:
    if stat in ("sum", "sumsq", "min", "max"):
        return "double"
    return "flattened" if stat == "cat" else "long"


def dest_index_body(plan: TransformPlan) -> dict[str, Any]:
    """The body of ``PUT <dest_index(plan)>``, created before the transform, with every output field mapped.

    >>> from sustain.transforms.plan import ColumnPlan, TransformPlan
    >>> plan = TransformPlan("m", "1h", 3600.0, (ColumnPlan("f:c", "categorical"),), latency_edges=(1.0,))
    >>> props = dest_index_body(plan)["mappings"]["properties"]
    >>> props["bucket"], props["rows"], props["c0__cat"], props["lat__sumsq"]
    ({'type': 'date'}, {'type': 'long'}, {'type': 'flattened'}, {'type': 'double'})
    """
    properties: dict[str, Any] = {
        "version": {"type": "keyword"},
        "bucket": {"type": "date"},
        UPDATED_FIELD: {"type": "date"},
    }
    for names in aggregation_names(plan).values():
        for stat, name in names.items():
            properties[name] = {"type": _output_type("bin" if stat.startswith("bin_") else stat)}
    return {
        "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
        "mappings": {"dynamic": False, "_meta": _meta(plan), "properties": properties},
    }


# -- reading transform output ---------------------------------------------------------------------


def _bucket_start(value: Any) -> datetime:
    """A date_histogram key as written by a pivot: ISO string (default) or epoch millis."""
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a bucket key: {value!r}")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))


def _count(doc: Mapping[str, Any], name: str) -> int:
    value = doc.get(name)
    return 0 if value is None else int(value)


def _real(doc: Mapping[str, Any], name: str) -> float | None:
    value = doc.get(name)
    return None if value is None else float(value)


def _numeric(doc: Mapping[str, Any], target: _Target) -> NumericSummary:
    col = target.column
    count = _count(doc, target.name("count"))
    summary = NumericSummary(
        count=count,
        missing=_count(doc, target.name("missing")),
        invalid=_count(doc, target.name("invalid")) if target.has_invalid else 0,
        sum=_real(doc, target.name("sum")) or 0.0,
        sumsq=_real(doc, target.name("sumsq")) or 0.0,
        shift=col.shift,
        min=_real(doc, target.name("min")) if count else None,
        max=_real(doc, target.name("max")) if count else None,
        out_of_range=_count(doc, target.name("oor")) if col.range is not None else 0,
    )
    if col.edges:
        summary.bins = [_count(doc, target.name(f"bin_{k}")) for k in range(len(col.edges) + 1)]
    elif col.edges is not None:
        summary.bins = [count]  # no edges: a single bin holding every value
    return summary


def _categories(doc: Mapping[str, Any], target: _Target) -> CategorySummary:
    """A window's categories; past the terms size, the remainder (the terms aggregation's ``sum_other_doc_count``,
    which a pivot does not write) is counted under ``OTHER``: the events with a value less the ones counted."""
    missing, invalid = _count(doc, target.name("missing")), _count(doc, target.name("invalid"))
    if target.column.kind == "boolean":
        counts = {key: _count(doc, target.name(key)) for key in ("true", "false")}
    else:
        terms = doc.get(target.name("cat")) or {}
        counts = {str(key): int(value) for key, value in terms.items()}
        other = _count(doc, "rows") - missing - invalid - sum(counts.values())
        if other > 0:
            counts[OTHER] = counts.get(OTHER, 0) + other
    return CategorySummary(
        counts={key: value for key, value in counts.items() if value}, missing=missing, invalid=invalid
    ).capped(target.column.category_limit)


def windows_from_docs(plan: TransformPlan, docs: list[dict[str, Any]]) -> list[WindowAggregates]:
    """The windows in transform destination documents (their ``_source``, or search hits holding one).

    Matches what :func:`sustain.transforms.window.from_long_rows` builds from the embedded
    engine's partials for the same events: empty ``min``/``max`` (null in the pivot output)
    stay None and zero category counts are left out.

    >>> from sustain.transforms.plan import ColumnPlan, TransformPlan
    >>> plan = TransformPlan("m", "1h", 3600.0, (ColumnPlan("f:c", "categorical"),), latency_edges=(1.0,))
    >>> doc = {"version": "1", "bucket": "2026-01-01T00:00:00.000Z", "rows": 3, "errors": 1,
    ...        "lat__count": 2, "lat__sum": 5.0, "lat__min": 2.0, "lat__max": 3.0, "lat__bin_1": 2,
    ...        "c0__cat": {"a": 2, "b": 1}, "c0__missing": 0}
    >>> [w] = windows_from_docs(plan, [doc])
    >>> w.start.isoformat(), w.rows, w.latency.mean, w.latency.bins, w.columns["f:c"].counts
    ('2026-01-01T00:00:00+00:00', 3, 2.5, [0, 2], {'a': 2, 'b': 1})
    """
    targets = _targets(plan)
    windows = []
    for raw in docs:
        doc = raw["_source"] if "_source" in raw and "bucket" not in raw else raw
        start = _bucket_start(doc["bucket"])
        window = WindowAggregates(
            plan.model,
            str(doc["version"]),
            plan.window,
            start,
            start + timedelta(seconds=plan.window_seconds),
            rows=_count(doc, "rows"),
            errors=_count(doc, "errors"),
        )
        for target in targets:
            summary: Summary = _numeric(doc, target) if target.numeric else _categories(doc, target)
            if target.prefix == "lat":
                assert isinstance(summary, NumericSummary)
                window.latency = summary
            else:
                window.columns[target.column.column] = summary
        windows.append(window)
    return windows
