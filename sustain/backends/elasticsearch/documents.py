"""Indicator documents in Elasticsearch: the index ``<prefix>-indicators``.

One document per (model, version, indicator, feature, metric, window, window start),
with ``_id`` a hash of those seven, so recomputing a window replaces its documents. A
``series`` keyword joins the key without the window start; the newest document of
each series is found by collapsing on it (``latest``), or, over every model, by a
composite aggregation on it with a ``top_hits`` of one document per bucket. The
saved state of stateful indicators lives in ``<prefix>-indicator-states``, one
document per (model, indicator).

>>> import dataclasses
>>> doc = IndicatorDoc("m", "1", "drift", "drift", "age", "1h", START, START, 0.1, "ok")
>>> doc_id(doc) == doc_id(dataclasses.replace(doc, value=0.9)) != doc_id(dataclasses.replace(doc, metric="psi"))
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from sustain.backends.elasticsearch.bodies import DATE, KEYWORD, OPAQUE, small_index_body
from sustain.backends.elasticsearch.client import MAX_RESULT_WINDOW, NOT_FOUND, PAGE_SIZE, Operation
from sustain.backends.elasticsearch.responses import bulk_failures, parse_time
from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.errors import StoreError
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery
from sustain.timestamps import iso

START = datetime(2026, 1, 1, tzinfo=UTC)
_KEY_SEPARATOR = "\x1f"


def series_key(doc: IndicatorDoc) -> str:
    """Model, version, indicator, feature, metric and window: what identifies one series of documents."""
    return _KEY_SEPARATOR.join((doc.model, doc.version, doc.indicator, doc.feature or "", doc.metric or "", doc.window))


def doc_id(doc: IndicatorDoc) -> str:
    """A stable ``_id`` for the document's seven key fields (32 hex digits)."""
    key = series_key(doc) + _KEY_SEPARATOR + iso(doc.window_start)
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def state_id(model: str, indicator: str) -> str:
    return hashlib.blake2b(f"{model}{_KEY_SEPARATOR}{indicator}".encode(), digest_size=16).hexdigest()


def indicators_index_body() -> dict[str, Any]:
    """``PUT <prefix>-indicators``: every field of :class:`IndicatorDoc` mapped, ``details`` stored only."""
    double = {"type": "double"}
    properties = {
        "model": KEYWORD,
        "version": KEYWORD,
        "indicator": KEYWORD,
        "type": KEYWORD,
        "feature": KEYWORD,
        "metric": KEYWORD,
        "window": KEYWORD,
        "series": KEYWORD,
        "window_start": DATE,
        "window_end": DATE,
        "value": double,
        "status": KEYWORD,
        "p_value": double,
        "threshold": double,
        "n": {"type": "long"},
        "method": KEYWORD,
        "details": OPAQUE,
        "partial": {"type": "boolean"},
        "computed_at": DATE,
        "freshness": double,
    }
    return small_index_body(properties, "indicators")


def indicator_document(doc: IndicatorDoc) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(orjson.dumps(doc.to_json(), option=orjson.OPT_SERIALIZE_NUMPY))
    body["series"] = series_key(doc)
    return body


def indicator_operations(index: str, docs: Sequence[IndicatorDoc]) -> list[Operation]:
    return [
        (
            orjson.dumps({"index": {"_index": index, "_id": doc_id(d)}}) + b"\n",
            orjson.dumps(indicator_document(d)) + b"\n",
        )
        for d in docs
    ]


def _filters(q: IndicatorQuery) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"term": {"model": {"value": q.model}}}]
    if q.since is not None:
        filters.append({"range": {"window_end": {"gt": iso(q.since)}}})
    if q.until is not None:
        filters.append({"range": {"window_start": {"lt": iso(q.until)}}})
    if q.computed_since is not None:
        filters.append({"range": {"computed_at": {"gt": iso(q.computed_since)}}})
    if q.final:
        filters.append({"term": {"partial": {"value": False}}})
    for field, value in (
        ("indicator", q.indicator),
        ("feature", q.feature),
        ("version", q.version),
        ("window", q.window),
        ("status", q.status),
        ("metric", q.metric),
    ):
        if value is not None:
            filters.append({"term": {field: {"value": value}}})
    return filters


def indicator_search(q: IndicatorQuery, after: list[Any] | None) -> dict[str, Any]:
    """Documents matching ``q``, newest window first (one page; the series breaks ties)."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": _filters(q)}},
        "size": min(PAGE_SIZE, max(q.limit, 1)),
        "sort": [
            {"window_start": {"order": "desc"}},
            {"indicator": {"order": "asc"}},
            {"feature": {"order": "asc", "missing": "_first"}},
            {"metric": {"order": "asc", "missing": "_first"}},
            {"series": {"order": "asc"}},
        ],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = after
    return body


def latest_search(q: IndicatorQuery) -> dict[str, Any]:
    """The newest document of each series matching ``q``: collapse on ``series``, newest window first."""
    return {
        "query": {"bool": {"filter": _filters(q)}},
        "size": min(max(q.limit, 1), MAX_RESULT_WINDOW),
        "collapse": {"field": "series"},
        "sort": [{"window_start": {"order": "desc"}}],
        "track_total_hits": False,
    }


def latest_all_search(after: Mapping[str, Any] | None) -> dict[str, Any]:
    """One page of the newest document of every series of every model (composite buckets with ``top_hits``)."""
    composite: dict[str, Any] = {"size": PAGE_SIZE, "sources": [{"series": {"terms": {"field": "series"}}}]}
    if after is not None:
        composite["after"] = dict(after)
    return {
        "size": 0,
        "query": {"match_all": {}},
        "aggs": {
            "series": {
                "composite": composite,
                "aggs": {"latest": {"top_hits": {"size": 1, "sort": [{"window_start": {"order": "desc"}}]}}},
            }
        },
    }


def states_index_body() -> dict[str, Any]:
    """``PUT <prefix>-indicator-states``: the saved state of each stateful indicator, stored only."""
    properties = {"model": KEYWORD, "indicator": KEYWORD, "updated_at": DATE, "state": OPAQUE}
    return small_index_body(properties, "indicator-states")


def state_operations(index: str, model: str, states: Mapping[str, Any], updated_at: datetime) -> list[Operation]:
    return [
        (
            orjson.dumps({"index": {"_index": index, "_id": state_id(model, indicator)}}) + b"\n",
            orjson.dumps(
                {"model": model, "indicator": indicator, "updated_at": iso(updated_at), "state": state},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            + b"\n",
        )
        for indicator, state in states.items()
    ]


def states_search(model: str, after: list[Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [{"term": {"model": {"value": model}}}]}},
        "size": PAGE_SIZE,
        "sort": [{"indicator": {"order": "asc"}}],
    }
    if after is not None:
        body["search_after"] = after
    return body


def doc_from_source(source: Mapping[str, Any]) -> IndicatorDoc:
    """An indicator document as :class:`IndicatorDoc`."""
    start, end, computed = (parse_time(source[k]) for k in ("window_start", "window_end", "computed_at"))
    assert start is not None and end is not None and computed is not None
    return IndicatorDoc(
        model=source["model"],
        version=source["version"],
        indicator=source["indicator"],
        type=source["type"],
        feature=source.get("feature") or None,
        window=source["window"],
        window_start=start,
        window_end=end,
        value=source.get("value"),
        status=source["status"],
        p_value=source.get("p_value"),
        threshold=source.get("threshold"),
        n=source.get("n"),
        method=source.get("method"),
        details=dict(source.get("details") or {}),
        partial=bool(source.get("partial")),
        computed_at=computed,
        metric=source.get("metric") or None,
        freshness=source.get("freshness"),
    )


def latest_from_aggregation(response: Mapping[str, Any] | None) -> tuple[list[IndicatorDoc], Mapping[str, Any] | None]:
    """The documents of one composite page, and the ``after_key`` of the next (None when done)."""
    agg = (response or {}).get("aggregations", {}).get("series")
    if agg is None:
        return [], None
    docs = [doc_from_source(b["latest"]["hits"]["hits"][0]["_source"]) for b in agg["buckets"]]
    return docs, agg.get("after_key") if agg["buckets"] else None


class ESIndicators:
    """Indicator documents in ``<prefix>-indicators`` (an :class:`~sustain.indicators.documents.IndicatorStore`)."""

    def __init__(self, store: ElasticsearchStore) -> None:
        self.client = store.client
        self.index = store.names.indicators
        self.states_index = f"{store.prefix}-indicator-states"
        self._ready: set[str] = set()

    def _ensure(self, index: str, body: dict[str, Any]) -> None:
        if index not in self._ready:
            self.client.ensure_index(f"creating {index}", index, body)
            self._ready.add(index)

    def put(self, docs: Sequence[IndicatorDoc]) -> None:
        if not docs:
            return
        self._ensure(self.index, indicators_index_body())
        items = self.client.bulk(
            "storing indicator documents", indicator_operations(self.index, docs), refresh="wait_for"
        )
        failed = bulk_failures(items)
        if failed:
            raise StoreError(f"storing indicator documents: {len(failed)} failed, e.g. {failed[0]}")

    def query(self, q: IndicatorQuery) -> list[IndicatorDoc]:
        if q.latest:
            body = latest_search(q)
            response = self.client.call(
                "reading the latest indicators", lambda es: es.search(index=self.index, body=body), allow=[NOT_FOUND]
            )
            hits = [] if response is None else response["hits"]["hits"]
            docs = [doc_from_source(h["_source"]) for h in hits]
            return sorted(docs, key=lambda d: (d.indicator, d.feature or "", d.metric or ""))
        hits = self.client.search_all(
            "reading indicators", self.index, lambda after: indicator_search(q, after), limit=max(q.limit, 0)
        )
        return [doc_from_source(h["_source"]) for h in hits]

    def latest_all(self) -> list[IndicatorDoc]:
        """The newest document of every series of every model (for /metrics)."""
        docs: list[IndicatorDoc] = []
        after: Mapping[str, Any] | None = None
        while True:
            body = latest_all_search(after)
            response = self.client.request(
                "reading the latest indicators", "search", index=self.index, body=body, allow=[NOT_FOUND]
            )
            page, after = latest_from_aggregation(response)
            docs.extend(page)
            if after is None:
                return docs

    def get_states(self, model: str) -> dict[str, dict[str, Any]]:
        """Saved state of the stateful indicators of ``model``, by indicator id."""
        hits = self.client.search_all(
            f"reading indicator states of {model!r}", self.states_index, lambda after: states_search(model, after)
        )
        return {h["_source"]["indicator"]: dict(h["_source"]["state"]) for h in hits}

    def put_states(self, model: str, states: dict[str, dict[str, Any]]) -> None:
        if not states:
            return
        self._ensure(self.states_index, states_index_body())
        ops = state_operations(self.states_index, model, states, datetime.now(UTC))
        failed = bulk_failures(self.client.bulk("storing indicator states", ops, refresh="wait_for"))
        if failed:
            raise StoreError(f"storing indicator states: {len(failed)} failed, e.g. {failed[0]}")
