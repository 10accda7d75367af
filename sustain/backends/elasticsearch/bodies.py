"""Every request body the Elasticsearch store sends, built by small pure functions.

The store only moves these bodies over the wire, so tests can build all of them
and check them against Elastic's TypeScript API types. Documents that are not
searched (specs, reference rows, pending halves) keep their content in an
``object`` field with ``enabled: false``: stored in ``_source``, never parsed,
so any key is allowed and nothing can clash with a mapping.

>>> label_id("request_id", "r1"), pending_id("churn", "request", "k1")
('request_id:r1', 'churn/request/k1')
>>> event_search(EventQuery(version="2", limit=5), None)["query"]
{'bool': {'filter': [{'term': {'model.version': {'value': '2'}}}]}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from sustain.backends.elasticsearch.client import PAGE_SIZE, Operation
from sustain.backends.elasticsearch.mappings import DEFAULT_PREFIX, event_doc_id, events_index_template
from sustain.spec import LabelKind, ModelSpec
from sustain.store.base import DoneExchange, EventQuery, PendingHalf, ReferenceInfo
from sustain.timestamps import iso

KEYWORD: dict[str, Any] = {"type": "keyword"}
DATE: dict[str, Any] = {"type": "date"}
OPAQUE: dict[str, Any] = {"type": "object", "enabled": False}
# Small system indices: one shard, a replica wherever there is a second node.
SMALL_INDEX_SETTINGS: dict[str, Any] = {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}}


def small_index_body(properties: dict[str, Any], meta_kind: str) -> dict[str, Any]:
    """A one-shard index of sustain's own documents: only ``properties`` are mapped, the rest is stored."""
    return {
        "settings": SMALL_INDEX_SETTINGS,
        "mappings": {"dynamic": False, "_meta": {"managed_by": "sustain", "kind": meta_kind}, "properties": properties},
    }


def _line(value: Mapping[str, Any]) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _term(field: str, value: Any) -> dict[str, Any]:
    return {"term": {field: {"value": value}}}


# -- specs --------------------------------------------------------------------------------------------


def specs_index_body() -> dict[str, Any]:
    """``PUT <prefix>-specs``: one document per model, ``_id`` = the model name."""
    return small_index_body({"model": KEYWORD, "updated_at": DATE, "spec": OPAQUE}, "specs")


def spec_document(spec: ModelSpec, updated_at: datetime) -> dict[str, Any]:
    return {"model": spec.name, "updated_at": iso(updated_at), "spec": spec.model_dump(mode="json")}


def all_specs_search(after: list[Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"query": {"match_all": {}}, "size": PAGE_SIZE, "sort": [{"model": {"order": "asc"}}]}
    if after is not None:
        body["search_after"] = after
    return body


# -- events ---------------------------------------------------------------------------------------------


def events_mapping_update(spec: ModelSpec, prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """``PUT <prefix>-events-<model>/_mapping``: the template's fields, for the backing indices that exist.

    A changed template only applies to backing indices created after it; new features and
    windows must be mapped in the current ones too, or their values stay unindexed until the
    next rollover. A field whose type would change makes Elasticsearch refuse the request.
    """
    mappings = events_index_template(spec, prefix=prefix)["template"]["mappings"]
    return {"properties": mappings["properties"]}


def event_search(query: EventQuery, after: list[Any] | None, size: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of stored events, newest first (``read_events``)."""
    filters: list[dict[str, Any]] = []
    if query.since is not None or query.until is not None:
        bounds: dict[str, Any] = {}
        if query.since is not None:
            bounds["gte"] = iso(query.since)
        if query.until is not None:
            bounds["lt"] = iso(query.until)
        filters.append({"range": {"@timestamp": bounds}})
    if query.version is not None:
        filters.append(_term("model.version", query.version))
    if query.request_id is not None:
        filters.append(_term("request.id", query.request_id))
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "size": size,
        "sort": [{"@timestamp": {"order": "desc"}}, {"event.id": {"order": "desc"}}],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = after
    return body


# -- labels -----------------------------------------------------------------------------------------------


def labels_index_body(kind: LabelKind | None) -> dict[str, Any]:
    """``PUT <prefix>-labels-<model>``: ``_id`` = ``<key_kind>:<key>``, so a repeated key replaces its label."""
    label = {"type": "double"} if kind == "regression" else KEYWORD
    return small_index_body(
        {"key_kind": KEYWORD, "key": KEYWORD, "label": label, "ts": DATE, "received_at": DATE}, "labels"
    )


def label_id(key_kind: str, key: str) -> str:
    return event_doc_id(f"{key_kind}:{key}")


def label_operations(index: str, rows: Iterable[Mapping[str, Any]], received_at: datetime) -> list[Operation]:
    """Bulk ``index`` operations for label rows (``key_kind``, ``key``, ``label``, ``ts``)."""
    ops: list[Operation] = []
    for row in rows:
        action = {"index": {"_index": index, "_id": label_id(row["key_kind"], row["key"])}}
        doc = {
            "key_kind": row["key_kind"],
            "key": row["key"],
            "label": row["label"],
            "ts": iso(row["ts"]),
            "received_at": iso(received_at),
        }
        ops.append((_line(action), _line(doc)))
    return ops


def label_lookup(ids: Sequence[str]) -> dict[str, Any]:
    """``POST <prefix>-labels-<model>/_mget``: labels by ``_id``."""
    return {"ids": list(ids)}


def label_ids_for(hits: Iterable[Mapping[str, Any]]) -> list[str]:
    """The label ids that may hold the label of each event hit: by request id, then by event id."""
    ids: dict[str, None] = {}
    for hit in hits:
        source = hit["_source"]
        request = (source.get("request") or {}).get("id")
        if request is not None:
            ids[label_id("request_id", str(request))] = None
        ids[label_id("event_id", str(source["event"]["id"]))] = None
    return list(ids)


# -- references -------------------------------------------------------------------------------------------


def reference_index_body() -> dict[str, Any]:
    """``PUT <prefix>-reference-<model>``: reference rows, each upload of a version under its own ``upload`` id."""
    return small_index_body(
        {"version": KEYWORD, "upload": KEYWORD, "row": {"type": "long"}, "values": OPAQUE}, "reference"
    )


def reference_operations(
    index: str, version: str, upload: str, first_row: int, rows: Iterable[Mapping[str, Any]]
) -> list[Operation]:
    """Bulk ``index`` operations for reference rows (values keyed by storage column)."""
    action = _line({"index": {"_index": index}})
    return [
        (action, _line({"version": version, "upload": upload, "row": first_row + n, "values": dict(row)}))
        for n, row in enumerate(rows)
    ]


def reference_rows_search(version: str, upload: str, after: list[Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [_term("version", version), _term("upload", upload)]}},
        "size": PAGE_SIZE,
        "sort": [{"row": {"order": "asc"}}],
        "_source": ["values"],
    }
    if after is not None:
        body["search_after"] = after
    return body


def stale_reference_rows(version: str, keep_upload: str) -> dict[str, Any]:
    """``POST <prefix>-reference-<model>/_delete_by_query``: rows of ``version`` from other uploads."""
    return {"query": {"bool": {"filter": [_term("version", version)], "must_not": [_term("upload", keep_upload)]}}}


def references_index_body() -> dict[str, Any]:
    """``PUT <prefix>-references``: which upload of each (model, version) is current, and what it holds."""
    return small_index_body(
        {
            "model": KEYWORD,
            "version": KEYWORD,
            "upload": KEYWORD,
            "rows": {"type": "long"},
            "columns": {"type": "keyword", "index": False},
            "uploaded_at": DATE,
        },
        "references",
    )


def reference_info_document(info: ReferenceInfo, upload: str) -> dict[str, Any]:
    return {
        "model": info.model,
        "version": info.version,
        "upload": upload,
        "rows": info.rows,
        "columns": list(info.columns),
        "uploaded_at": iso(info.uploaded_at),
    }


def reference_info_id(model: str, version: str) -> str:
    return event_doc_id(f"{model}/{version}")


def reference_info_search(model: str, after: list[Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [_term("model", model)]}},
        "size": PAGE_SIZE,
        "sort": [{"version": {"order": "asc"}}],
    }
    if after is not None:
        body["search_after"] = after
    return body


# -- pending CloudEvents halves ------------------------------------------------------------------------------


def pending_index_body() -> dict[str, Any]:
    """``PUT <prefix>-pending``: request or response halves waiting for their partner."""
    return small_index_body(
        {"model": KEYWORD, "key": KEYWORD, "kind": KEYWORD, "received_at": DATE, "body": OPAQUE}, "pending"
    )


def pending_id(model: str, kind: str, key: str) -> str:
    return event_doc_id(f"{model}/{kind}/{key}")


def pending_operations(index: str, halves: Iterable[PendingHalf]) -> list[Operation]:
    """``create`` operations: a half already pending is refused with a 409, so the first one logged wins."""
    return [
        (
            _line({"create": {"_index": index, "_id": pending_id(h.model, h.kind, h.key)}}),
            _line({"model": h.model, "key": h.key, "kind": h.kind, "received_at": iso(h.received_at), "body": h.body}),
        )
        for h in halves
    ]


def pending_search(after: list[Any] | None) -> dict[str, Any]:
    """Every pending half (records of done exchanges share the index under kind ``done`` and are left out)."""
    body: dict[str, Any] = {
        "query": {"bool": {"must_not": [{"term": {"kind": DONE}}]}},
        "size": PAGE_SIZE,
        "sort": [
            {"received_at": {"order": "asc"}},
            {"model": {"order": "asc"}},
            {"key": {"order": "asc"}},
            {"kind": {"order": "asc"}},
        ],
    }
    if after is not None:
        body["search_after"] = after
    return body


def pending_delete_operations(index: str, halves: Iterable[PendingHalf]) -> list[Operation]:
    """Bulk ``delete`` operations for exactly these halves (a partner stashed meanwhile stays)."""
    return [(_line({"delete": {"_index": index, "_id": pending_id(h.model, h.kind, h.key)}}),) for h in halves]


DONE = "done"


def done_operations(index: str, done: Iterable[DoneExchange]) -> list[Operation]:
    """``index`` operations remembering done exchanges (``_id`` ``<model>/done/<key>``, replacing older records)."""
    ops: list[Operation] = []
    for d in done:
        half = None
        if d.half is not None:
            half = {"kind": d.half.kind, "received_at": iso(d.half.received_at), "body": d.half.body}
        source: dict[str, Any] = {"model": d.model, "key": d.key, "kind": DONE, "received_at": iso(d.done_at)}
        source["body"] = {"missing": d.missing, "half": half}
        ops.append((_line({"index": {"_index": index, "_id": pending_id(d.model, DONE, d.key)}}), _line(source)))
    return ops


def done_from_source(source: Mapping[str, Any]) -> DoneExchange:
    body = source.get("body") or {}
    half = body.get("half")
    lone = None
    if half is not None:
        received = datetime.fromisoformat(str(half["received_at"]).replace("Z", "+00:00"))
        lone = PendingHalf(source["key"], source["model"], half["kind"], received, half["body"])
    done_at = datetime.fromisoformat(str(source["received_at"]).replace("Z", "+00:00"))
    return DoneExchange(source["model"], source["key"], done_at, body.get("missing"), lone)


def forget_done_query(before: datetime) -> dict[str, Any]:
    """``POST <prefix>-pending/_delete_by_query``: done exchanges older than ``before``."""
    return {"query": {"bool": {"filter": [{"term": {"kind": DONE}}, {"range": {"received_at": {"lt": iso(before)}}}]}}}


COMPLETE_SCRIPT = (
    "Map d = params.docs[ctx._id]; if (d == null) { ctx.op = 'noop'; } else { ctx._source.clear(); "
    "ctx._source.putAll(d); }"
)


def complete_events_body(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``POST <events>/_update_by_query``: replace each event document by its completed version (by ``_id``)."""
    return {
        "query": {"ids": {"values": list(documents)}},
        "script": {"lang": "painless", "source": COMPLETE_SCRIPT, "params": {"docs": dict(documents)}},
    }
