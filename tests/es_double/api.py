"""The REST handlers of the Elasticsearch double: each takes (cluster, path parts, query parameters, parsed body).

Response bodies follow the shapes Elastic documents and ``tests/es_canned.py`` holds (checked against the
8.19 TypeScript response types by ``tests/test_es_double.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.es_canned import SHARDS
from tests.es_double.fields import parse_date
from tests.es_double.search import (
    MAX_RESULT_WINDOW,
    BucketCounter,
    Doc,
    RequestError,
    Unsupported,
    after,
    aggregate,
    hit,
    matches,
    score,
    sort_docs,
)

if TYPE_CHECKING:
    from tests.es_double.cluster import Cluster

Parts = dict[str, str]
Params = dict[str, str]
ACK = {"acknowledged": True}


def _flag(params: Params, name: str) -> bool:
    return params.get(name, "false") in ("", "true")


def info(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return {
        "name": "double",
        "cluster_name": "double",
        "cluster_uuid": "ZG91YmxlLWNsdXN0ZXI",
        "version": {
            "number": cluster.version,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "0" * 40,
            "build_date": "2025-08-01T00:00:00.000Z",
            "build_snapshot": False,
            "lucene_version": "9.12.2",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


# -- cluster-level objects ---------------------------------------------------------------------------------------------


def put_lifecycle(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    if "policy" not in (body or {}):
        raise RequestError(400, "x_content_parse_exception", "[put_lifecycle_request] policy is required")
    cluster.policies[parts["name"]] = body["policy"]
    return ACK


def put_pipeline(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.pipelines[parts["name"]] = body
    return ACK


def put_template(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    for name, other in cluster.templates.items():
        if name == parts["name"] or other.get("priority", 0) != body.get("priority", 0):
            continue
        overlap = set(other.get("index_patterns", [])) & set(body.get("index_patterns", []))
        if overlap:
            raise RequestError(
                400,
                "illegal_argument_exception",
                f"index template [{parts['name']}] has index patterns {sorted(overlap)} matching patterns from "
                f"existing templates [{name}] with the same priority",
            )
    cluster.templates[parts["name"]] = body
    return ACK


def create_data_stream(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.create_data_stream(parts["name"])
    return ACK


def get_data_stream(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    names = [n for n in parts["name"].split(",") if n]
    streams = []
    for name in names:
        if name not in cluster.data_streams:
            raise RequestError(404, "index_not_found_exception", f"no such index [{name}]", index=name)
        stream = cluster.data_streams[name]
        streams.append(
            {
                "name": stream.name,
                "timestamp_field": {"name": "@timestamp"},
                "indices": [
                    {
                        "index_name": i,
                        "index_uuid": i[-22:],
                        "ilm_policy": _policy(cluster, i),
                        "managed_by": "Index Lifecycle Management",
                        "prefer_ilm": True,
                    }
                    for i in stream.indices
                ],
                "generation": stream.generation,
                "next_generation_managed_by": "Index Lifecycle Management",
                "prefer_ilm": True,
                "settings": {},
                "status": "GREEN",
                "template": stream.template,
                "hidden": False,
                "system": False,
                "allow_custom_routing": False,
                "replicated": False,
                "rollover_on_write": False,
            }
        )
    return {"data_streams": streams}


def _policy(cluster: Cluster, index: str) -> str:
    return str(cluster.indices[index].setting("index.lifecycle.name") or "")


def rollover(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    name = parts["target"]
    if name not in cluster.data_streams:
        raise RequestError(400, "illegal_argument_exception", f"rollover target [{name}] does not exist")
    old = cluster.data_streams[name].indices[-1]
    new = cluster.rollover(name)
    return {
        "acknowledged": True,
        "shards_acknowledged": True,
        "old_index": old,
        "new_index": new,
        "rolled_over": True,
        "dry_run": False,
        "conditions": {},
    }


def get_cluster_settings(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    values = {k: str(v) for k, v in cluster.settings.items()}
    found: dict[str, Any] = {"persistent": {}, "transient": {}}
    if _flag(params, "include_defaults"):
        found["defaults"] = values if _flag(params, "flat_settings") else _nest(values)
    return found


def put_cluster_settings(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    for scope in ("persistent", "transient"):
        for key, value in _flatten(body.get(scope, {})).items():
            cluster.settings[key] = value
    return {"acknowledged": True, "persistent": body.get("persistent", {}), "transient": body.get("transient", {})}


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def update_aliases(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.update_aliases(body["actions"])
    return ACK


# -- indices -------------------------------------------------------------------------------------------------------


def create_index(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.create_index(parts["target"], body)
    return {"acknowledged": True, "shards_acknowledged": True, "index": parts["target"]}


def delete_index(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.delete_index(parts["target"])
    return ACK


def get_index(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return {
        index.name: {
            "aliases": {alias: {} for alias in sorted(index.aliases)},
            "mappings": index.mappings,
            "settings": {"index": {k.removeprefix("index."): v for k, v in index.settings.items()}},
        }
        for index in cluster.resolve(parts["target"])
    }


def put_mapping(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.put_mapping(parts["target"], body)
    return ACK


def refresh(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    cluster.resolve(parts["target"], allow_missing=_flag(params, "ignore_unavailable"))
    return {"_shards": SHARDS}


# -- documents -----------------------------------------------------------------------------------------------------


def _item(cluster: Cluster, op: str, target: str, doc_id: str | None, source: Any, meta: Mapping[str, Any]) -> Any:
    try:
        if op == "delete":
            assert doc_id is not None
            result = cluster.delete(target, doc_id)
        else:
            result = cluster.write(
                target,
                doc_id,
                source,
                op_type="create" if op == "create" else "index",
                pipeline=meta.get("pipeline"),
                if_seq_no=meta.get("if_seq_no"),
                if_primary_term=meta.get("if_primary_term"),
            )
    except RequestError as exc:
        index = exc.extra.get("index", target)
        error = {"type": exc.kind, "reason": exc.reason, "index_uuid": "ZG91YmxlLWluZGV4", "shard": "0", "index": index}
        return {"_index": index, "_id": doc_id, "status": exc.status, "error": error}
    return result


def bulk(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    if not isinstance(body, str):
        raise RequestError(400, "illegal_argument_exception", "the bulk body must be NDJSON")
    if not body.endswith("\n"):
        raise RequestError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
    lines = body.split("\n")[:-1]
    items = []
    i = 0
    while i < len(lines):
        action = json.loads(lines[i])
        [(op, meta)] = action.items()
        if op not in ("index", "create", "delete"):
            raise Unsupported(f"bulk op {op!r}")
        target = meta.get("_index") or parts.get("target")
        if target is None:
            raise RequestError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        source = None
        if op != "delete":
            i += 1
            source = json.loads(lines[i])
        meta = {**meta, "pipeline": meta.get("pipeline", params.get("pipeline"))}
        items.append({op: _item(cluster, op, target, meta.get("_id"), source, meta)})
        i += 1
    errors = any(next(iter(item.values())).get("error") for item in items)
    return {"took": 1, "errors": errors, "items": items}


def index_doc(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    meta: dict[str, Any] = {"pipeline": params.get("pipeline")}
    if "if_seq_no" in params:
        meta.update(if_seq_no=int(params["if_seq_no"]), if_primary_term=int(params.get("if_primary_term", "1")))
    op = "create" if params.get("op_type") == "create" else "index"
    result = _item(cluster, op, parts["target"], parts.get("id"), body, meta)
    if "error" in result:
        raise RequestError(result["status"], result["error"]["type"], result["error"]["reason"])
    status = result.pop("status")
    return status, result


def create_doc(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return index_doc(cluster, parts, {**params, "op_type": "create"}, body)


def get_doc(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    found = cluster.get(parts["target"], parts["id"])
    return (200 if found["found"] else 404), found


def delete_doc(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    result = cluster.delete(parts["target"], parts["id"])
    return result.pop("status"), result


def mget(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    indices = cluster.resolve(parts["target"])
    docs = []
    for doc_id in body["ids"]:
        found = next((cluster.get(i.name, doc_id) for i in indices if doc_id in i.docs), None)
        docs.append(found or {"_index": parts["target"], "_id": doc_id, "found": False})
    return {"docs": docs}


# -- search --------------------------------------------------------------------------------------------------------

_SEARCH_KEYS = frozenset(
    {"query", "size", "from", "sort", "search_after", "_source", "track_total_hits", "collapse", "aggs", "aggregations"}
)
_SEARCH_KEYS |= {"runtime_mappings", "track_scores"}


def _searched(cluster: Cluster, target: str, params: Params, body: Mapping[str, Any]) -> list[Doc]:
    allow = _flag(params, "ignore_unavailable") or _flag(params, "allow_no_indices")
    runtime = body.get("runtime_mappings", {})
    query = body.get("query", {"match_all": {}})
    found = []
    for doc in cluster.docs(target, allow_missing=allow):
        view = doc.with_runtime(runtime)
        if matches(query, view):
            view.score = score(query, view)
            found.append(view)
    return found


def search(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    body = dict(body or {})
    for key in ("size", "from"):
        if key in params:
            body[key] = int(params[key])
    unknown = set(body) - _SEARCH_KEYS
    if unknown:
        raise Unsupported(f"search options {sorted(unknown)}")
    docs = _searched(cluster, parts.get("target", "*"), params, body)
    size, start = int(body.get("size", 10)), int(body.get("from", 0))
    if size + start > MAX_RESULT_WINDOW:
        raise RequestError(
            400,
            "illegal_argument_exception",
            f"Result window is too large, from + size must be less than or equal to: [{MAX_RESULT_WINDOW}] but was "
            f"[{size + start}].",
        )
    sort = body.get("sort")
    rows = sort_docs(docs, sort) if sort is not None else sort_docs(docs, [{"_score": "desc"}, {"_doc": "asc"}])
    if "search_after" in body:
        if sort is None:
            raise RequestError(400, "illegal_argument_exception", "Sort must contain at least one field.")
        rows = after(rows, body["search_after"], sort)
    collapse = body.get("collapse")
    if collapse is not None:
        seen: set[Any] = set()
        kept = []
        for doc, values in rows:
            group = tuple(doc.values(collapse["field"]))
            if group not in seen:
                seen.add(group)
                kept.append((doc, values))
        rows = kept
    with_score = sort is None or bool(body.get("track_scores"))
    hits = []
    for doc, values in rows[start : start + size]:
        found = hit(doc, body.get("_source"), values if sort is not None else None, with_score)
        if collapse is not None:
            found["fields"] = {collapse["field"]: doc.values(collapse["field"])}
        hits.append(found)
    scores = [d.score for d, _ in rows if d.score is not None]
    metadata: dict[str, Any] = {"max_score": max(scores) if with_score and scores else None, "hits": hits}
    if body.get("track_total_hits", True) is not False:
        metadata["total"] = {"value": len(docs), "relation": "eq"}
    response: dict[str, Any] = {"took": 1, "timed_out": False, "_shards": SHARDS, "hits": metadata}
    aggs = body.get("aggs", body.get("aggregations"))
    if aggs:
        response["aggregations"] = aggregate(aggs, docs, BucketCounter(cluster.max_buckets))
    return response


def count(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    docs = _searched(cluster, parts["target"], params, body or {})
    return {"count": len(docs), "_shards": SHARDS}


# -- by query ------------------------------------------------------------------------------------------------------

# Painless sources of update_by_query scripts sustain sends, and what each does to ``ctx._source``.
BACKFILL_PREFIX = "def ts = ctx._source['@timestamp'];"


def _backfill(source: dict[str, Any], params: Mapping[str, Any]) -> None:
    stamp = parse_date(source["@timestamp"])
    buckets = source.setdefault("buckets", {})
    for name, width in params["windows"].items():
        buckets[name] = stamp // int(width) * int(width)


def update_by_query(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    script = body.get("script", {})
    if not script.get("source", "").startswith(BACKFILL_PREFIX):
        raise Unsupported(f"update_by_query script {script.get('source')!r}")
    docs = _searched(cluster, parts["target"], params, body)
    for doc in docs:
        source = json.loads(json.dumps(doc.source))
        _backfill(source, script.get("params", {}))
        cluster.replace(doc.index, doc.id, source)
    if params.get("wait_for_completion") == "false":
        return {"task": "double:1"}
    return {"took": 1, "timed_out": False, "total": len(docs), "updated": len(docs), "deleted": 0, "failures": []}


def delete_by_query(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    docs = _searched(cluster, parts["target"], params, body)
    for doc in docs:
        cluster.indices[doc.index].docs.pop(doc.id, None)
    return {
        "took": 1,
        "timed_out": False,
        "total": len(docs),
        "deleted": len(docs),
        "batches": 1,
        "version_conflicts": 0,
        "noops": 0,
        "failures": [],
    }


# -- transforms ----------------------------------------------------------------------------------------------------


def put_transform(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return cluster.transforms.put(parts["name"], body, defer_validation=_flag(params, "defer_validation"))


def get_transform(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return cluster.transforms.get(parts["name"], int(params.get("size", "100")))


def transform_stats(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return cluster.transforms.get_stats(parts["name"])


def start_transform(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return cluster.transforms.start(parts["name"])


def stop_transform(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return cluster.transforms.stop(parts["name"], force=_flag(params, "force"))


def delete_transform(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    return cluster.transforms.delete(parts["name"], force=_flag(params, "force"))


def schedule_now(cluster: Cluster, parts: Parts, params: Params, body: Any) -> Any:
    transform = cluster.transforms.find(parts["name"])
    transform.next_due_ms = cluster.now_ms
    return ACK
