"""Continuous pivot transforms in the Elasticsearch double: the API, and checkpoints computed from the documents.

What a cluster does, reduced to what sustain's transforms rely on (elastic/elasticsearch
``x-plugin/transform``), run when the test moves the clock (:meth:`Cluster.advance`):

* ``PUT _transform/<id>`` validates like the server: the id's form, ``pivot`` xor ``latest``, one source per
  ``group_by`` key, only the aggregations ``TransformAggregations`` supports, ``max_page_search_size`` in
  10-65536, ``frequency`` in 1s-1h, the source index existing and the destination not a data stream;
* a checkpoint covers the documents whose ``sync.time.field`` is below ``now - delay``. The first one
  aggregates all of them; each later one only runs when documents arrived since the previous upper bound,
  and recomputes the buckets they touch as ``CompositeBucketsChangeCollector`` does: a ``terms`` group is
  narrowed to the changed terms, a ``date_histogram`` on another field than the sync field to
  ``[round_down(min), max]`` of the changed documents' values;
* composite pages of ``max_page_search_size`` buckets are checked against ``search.max_buckets`` (composite
  and terms buckets count, single-bucket aggregations do not): a page over the limit fails the transform,
  which does not shrink its page for this error;
* output documents (``_id`` a hash of the group key) go through ``dest.pipeline`` into ``dest.index``; a
  document the destination refuses (a ``flattened`` key with NUL, an immense term) fails the transform for
  good (``state: failed`` with the reason), as irrecoverable indexing errors do;
* ``retention_policy.time`` deletes destination documents older than ``max_age`` after each checkpoint;
  ``dest.aliases`` are set when the transform creates its destination index (``move_on_creation`` moves them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.es_double.fields import format_date, parse_date
from tests.es_double.search import BucketCounter, Doc, RequestError, aggregate, matches

if TYPE_CHECKING:
    from tests.es_double.cluster import Cluster

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
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def millis(duration: str) -> int:
    match = _DURATION.match(duration)
    if match is None:
        raise RequestError(400, "illegal_argument_exception", f"failed to parse setting [{duration}] as a time value")
    return int(match[1]) * _UNITS[match[2]]


def _invalid(reason: str) -> RequestError:
    return RequestError(400, "action_request_validation_exception", f"Validation Failed: 1: {reason};")


@dataclass
class Transform:
    id: str
    config: dict[str, Any]
    created_ms: int
    state: str = "stopped"
    reason: str | None = None
    checkpoint: int = 0
    checkpoint_ms: int = 0
    upper_ms: int | None = None
    next_due_ms: int | None = None
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "pages_processed",
                "documents_processed",
                "documents_indexed",
                "documents_deleted",
                "trigger_count",
                "index_time_in_ms",
                "index_total",
                "index_failures",
                "search_time_in_ms",
                "search_total",
                "search_failures",
                "processing_time_in_ms",
                "processing_total",
                "delete_time_in_ms",
            ),
            0,
        )
    )

    @property
    def frequency_ms(self) -> int:
        return millis(self.config.get("frequency", "1m"))

    @property
    def delay_ms(self) -> int:
        return millis(self.config["sync"]["time"].get("delay", "60s"))


def _check_aggregations(aggs: Mapping[str, Any], path: str = "") -> None:
    for name, container in aggs.items():
        kinds = [k for k in container if k not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise _invalid(f"aggregation [{path}{name}] must have exactly one type")
        if kinds[0] not in PIVOT_AGGREGATIONS:
            raise RequestError(
                400,
                "illegal_argument_exception",
                f"Unsupported aggregation type [{kinds[0]}] for aggregation [{path}{name}]",
            )
        _check_aggregations(container.get("aggs", container.get("aggregations", {})), f"{path}{name}.")


class Transforms:
    """The transforms of one :class:`Cluster`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.items: dict[str, Transform] = {}

    def find(self, transform_id: str) -> Transform:
        if transform_id not in self.items:
            raise RequestError(
                404, "resource_not_found_exception", f"Transform with id [{transform_id}] could not be found"
            )
        return self.items[transform_id]

    def matching(self, expression: str) -> list[Transform]:
        import fnmatch

        if expression in ("_all", "*"):
            return sorted(self.items.values(), key=lambda t: t.id)
        if "*" not in expression:
            return [self.find(part) for part in expression.split(",")]
        return sorted((t for t in self.items.values() if fnmatch.fnmatchcase(t.id, expression)), key=lambda t: t.id)

    # -- API -------------------------------------------------------------------------------------------------------
    def put(self, transform_id: str, body: dict[str, Any], *, defer_validation: bool = False) -> dict[str, Any]:
        if not _ID.match(transform_id):
            raise _invalid(
                f"transform id [{transform_id}] must consist of lowercase alphanumeric characters, hyphens and "
                "underscores, start and end with an alphanumeric character, and be at most 64 characters"
            )
        if transform_id in self.items:
            raise RequestError(
                409, "resource_already_exists_exception", f"Transform with id [{transform_id}] already exists"
            )
        source, dest = body.get("source", {}), body.get("dest", {})
        if not source.get("index") or not dest.get("index"):
            raise _invalid("source.index and dest.index are required")
        if ("pivot" in body) == ("latest" in body):
            raise _invalid("exactly one of pivot and latest must be given")
        if "pivot" not in body:
            raise RequestError(501, "unsupported", "the double runs pivot transforms only")
        for name, group in body["pivot"]["group_by"].items():
            if len(group) != 1 or next(iter(group)) not in ("terms", "histogram", "date_histogram", "geotile_grid"):
                raise _invalid(f"group_by [{name}] must have exactly one of terms, histogram, date_histogram")
        _check_aggregations(body["pivot"].get("aggregations", body["pivot"].get("aggs", {})))
        page = body.get("settings", {}).get("max_page_search_size")
        if page is not None and not 10 <= int(page) <= 65_536:
            raise _invalid(
                f"settings.max_page_search_size [{page}] is out of range. The minimum value is 10 and the maximum "
                "is 65536"
            )
        frequency = millis(body.get("frequency", "1m"))
        if not 1000 <= frequency <= 3_600_000:
            raise _invalid("frequency must be between 1s and 1h")
        if "sync" not in body or "time" not in body["sync"]:
            raise RequestError(501, "unsupported", "the double runs continuous transforms (sync.time) only")
        if dest["index"] in self.cluster.data_streams:
            raise _invalid(f"Destination index [{dest['index']}] should refer to a dest index, not a data stream")
        if not defer_validation:
            for expression in source["index"]:
                if not self.cluster.resolve(expression, allow_missing=True):
                    raise _invalid(f"Source index [{expression}] does not exist")
        config = json.loads(json.dumps(body))
        config.update(id=transform_id, version=self.cluster.version, create_time=self.cluster.now_ms)
        self.items[transform_id] = Transform(transform_id, config, self.cluster.now_ms)
        return {"acknowledged": True}

    def start(self, transform_id: str) -> dict[str, Any]:
        t = self.find(transform_id)
        if t.state == "failed":
            raise RequestError(
                409,
                "status_exception",
                f"Unable to start transform [{t.id}] as it is in a failed state. Use force stop and then restart "
                "the transform once error is resolved.",
            )
        if t.state != "stopped":
            raise RequestError(409, "status_exception", f"Cannot start transform [{t.id}] as it is already started.")
        dest = t.config["dest"]
        if dest["index"] not in self.cluster.indices:
            self._create_dest(t)
        t.state, t.next_due_ms = "started", self.cluster.now_ms
        return {"acknowledged": True}

    def stop(self, transform_id: str, *, force: bool = False) -> dict[str, Any]:
        for t in self.matching(transform_id):
            if t.state == "failed" and not force:
                raise RequestError(
                    409,
                    "status_exception",
                    f"Unable to stop transform [{t.id}] as it is in a failed state. Use force stop to stop the "
                    "transform.",
                )
            t.state, t.reason, t.next_due_ms = "stopped", None, None
        return {"acknowledged": True}

    def delete(self, transform_id: str, *, force: bool = False) -> dict[str, Any]:
        t = self.find(transform_id)
        if t.state != "stopped" and not force:
            raise RequestError(
                409, "status_exception", f"Cannot delete transform [{t.id}] as the task is running. Stop the task first"
            )
        del self.items[t.id]
        return {"acknowledged": True}

    def get(self, expression: str, size: int = 100) -> dict[str, Any]:
        found = self.matching(expression)
        return {"count": len(found), "transforms": [t.config for t in found[:size]]}

    def get_stats(self, expression: str) -> dict[str, Any]:
        entries = []
        for t in self.matching(expression):
            entry: dict[str, Any] = {
                "id": t.id,
                "state": t.state,
                "stats": {
                    **t.stats,
                    "exponential_avg_checkpoint_duration_ms": 0.0,
                    "exponential_avg_documents_indexed": 0.0,
                    "exponential_avg_documents_processed": 0.0,
                },
                "checkpointing": {"last": {"checkpoint": t.checkpoint}},
                "health": {"status": "red" if t.state == "failed" else "green"},
            }
            if t.checkpoint:
                entry["checkpointing"]["last"].update(
                    timestamp_millis=t.checkpoint_ms, time_upper_bound_millis=t.upper_ms
                )
                entry["checkpointing"]["changes_last_detected_at"] = t.checkpoint_ms
            if t.reason is not None:
                entry["reason"] = t.reason
            entries.append(entry)
        return {"count": len(entries), "transforms": entries}

    # -- the scheduler ---------------------------------------------------------------------------------------------
    def next_due(self) -> int | None:
        due = [t.next_due_ms for t in self.items.values() if t.state == "started" and t.next_due_ms is not None]
        return min(due) if due else None

    def run_due(self) -> None:
        now = self.cluster.now_ms
        for t in sorted(self.items.values(), key=lambda t: t.id):
            if t.state == "started" and t.next_due_ms is not None and t.next_due_ms <= now:
                t.next_due_ms = now + t.frequency_ms
                t.stats["trigger_count"] += 1
                try:
                    self._checkpoint(t)
                except RequestError as exc:
                    t.state = "failed"
                    t.reason = f"task encountered irrecoverable failure: {exc.kind}: {exc.reason}"
                    t.stats["index_failures" if exc.kind != "too_many_buckets_exception" else "search_failures"] += 1
                    t.next_due_ms = None

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def _source_docs(self, t: Transform) -> list[Doc]:
        source = t.config["source"]
        runtime = source.get("runtime_mappings", {})
        query = source.get("query", {"match_all": {}})
        docs = []
        for expression in source["index"]:
            for doc in self.cluster.docs(expression, allow_missing=True):
                view = doc.with_runtime(runtime)
                if matches(query, view):
                    docs.append(view)
        return docs

    def _checkpoint(self, t: Transform) -> None:
        now, sync_field = self.cluster.now_ms, t.config["sync"]["time"]["field"]
        upper = now - t.delay_ms

        def synced(doc: Doc) -> int | None:
            values = doc.values(sync_field)
            return int(values[0]) if values else None

        if t.checkpoint and not self._changes_since(t, upper):
            return
        docs = [(d, synced(d)) for d in self._source_docs(t)]
        visible = [d for d, s in docs if s is not None and s < upper]
        if t.checkpoint == 0:
            selected = visible
        else:
            lower = t.upper_ms or 0
            changed = [d for d, s in docs if s is not None and lower <= s < upper]
            if not changed:
                return
            selected = [d for d in visible if self._touched(t, changed, d)]
        groups = self._groups(t, selected)
        pages, written = self._write(t, groups)
        t.stats["documents_processed"] += len(selected)
        t.stats["documents_indexed"] += written
        t.stats["pages_processed"] += pages
        t.stats["search_total"] += pages
        t.stats["index_total"] += 1 if written else 0
        t.stats["processing_total"] += pages
        t.checkpoint += 1
        t.checkpoint_ms, t.upper_ms = now, upper
        self._retain(t)

    def _changes_since(self, t: Transform, upper: int) -> bool:
        """Whether any source document's sync time falls in ``[previous upper bound, upper)`` (cheap pre-check)."""
        sync_field, lower = t.config["sync"]["time"]["field"], t.upper_ms or 0
        for expression in t.config["source"]["index"]:
            for doc in self.cluster.docs(expression, allow_missing=True):
                if any(lower <= v < upper for v in doc.values(sync_field)):
                    return True
        return False

    def _touched(self, t: Transform, changed: list[Doc], doc: Doc) -> bool:
        """CompositeBucketsChangeCollector: keep ``doc`` when every group narrows it into the changed buckets."""
        sync_field = t.config["sync"]["time"]["field"]
        for group in t.config["pivot"]["group_by"].values():
            [(kind, params)] = group.items()
            name = params["field"]
            values = doc.values(name)
            if kind == "terms":
                wanted = {v for d in changed for v in d.values(name)}
                if not (set(values) & wanted or (not values and params.get("missing_bucket"))):
                    return False
            elif kind == "date_histogram" and name != sync_field:
                stamps = [v for d in changed for v in d.values(name)]
                if not stamps:
                    return False
                interval = millis(params["fixed_interval"])
                low, high = min(stamps) // interval * interval, max(stamps)
                if not any(low <= v <= high for v in values):
                    return False
        return True

    def _groups(self, t: Transform, docs: list[Doc]) -> dict[tuple[Any, ...], list[Doc]]:
        groups: dict[tuple[Any, ...], list[Doc]] = {}
        for doc in docs:
            key: list[Any] = []
            for group in t.config["pivot"]["group_by"].values():
                [(kind, params)] = group.items()
                values = doc.values(params["field"])
                if not values:
                    if kind == "terms" and params.get("missing_bucket"):
                        key.append(None)
                        continue
                    break
                value = min(values)
                if kind == "date_histogram":
                    if "fixed_interval" not in params:
                        raise RequestError(501, "unsupported", "the double runs fixed_interval date histograms only")
                    interval = millis(params["fixed_interval"])
                    value = int(value) // interval * interval
                elif kind == "histogram":
                    value = float(value) // float(params["interval"]) * float(params["interval"])
                key.append(value)
            else:
                groups.setdefault(tuple(key), []).append(doc)
        return groups

    def _write(self, t: Transform, groups: dict[tuple[Any, ...], list[Doc]]) -> tuple[int, int]:
        pivot = t.config["pivot"]
        names = list(pivot["group_by"])
        aggs = pivot.get("aggregations", pivot.get("aggs", {}))
        page_size = int(t.config.get("settings", {}).get("max_page_search_size", 500))
        keys = sorted(groups, key=lambda k: tuple((v is not None, v) for v in k))
        dest = t.config["dest"]
        pages = written = 0
        for start in range(0, len(keys), page_size):
            page = keys[start : start + page_size]
            counter = BucketCounter(self.cluster.max_buckets)
            counter.add(len(page))
            outputs = []
            for key in page:
                results = aggregate(aggs, groups[key], counter)
                document: dict[str, Any] = {}
                for name, value, group in zip(names, key, pivot["group_by"].values(), strict=True):
                    document[name] = format_date(int(value)) if "date_histogram" in group else value
                for name, container in aggs.items():
                    document[name] = _pivot_value(container, results[name])
                outputs.append((key, document))
            pages += 1
            for key, document in outputs:
                doc_id = _doc_id(t.id, key)
                self.cluster.write(dest["index"], doc_id, document, pipeline=dest.get("pipeline"))
                written += 1
        return pages, written

    def _retain(self, t: Transform) -> None:
        policy = t.config.get("retention_policy", {}).get("time")
        if policy is None:
            return
        cutoff = self.cluster.now_ms - millis(policy["max_age"])
        index = self.cluster.indices.get(t.config["dest"]["index"])
        if index is None:
            return
        old = [i for i, d in index.docs.items() if any(v < cutoff for v in d.values(policy["field"]))]
        for doc_id in old:
            del index.docs[doc_id]
        t.stats["documents_deleted"] += len(old)

    def _create_dest(self, t: Transform) -> None:
        """The destination index with deduced mappings and ``dest.aliases`` (only when the transform creates it)."""
        pivot = t.config["pivot"]
        properties: dict[str, Any] = {}
        for name, group in pivot["group_by"].items():
            kind = next(iter(group))
            properties[name] = {"type": "date" if kind == "date_histogram" else "keyword"}
        for name, container in pivot.get("aggregations", {}).items():
            kind = next(k for k in container if k not in ("aggs", "aggregations", "meta"))
            properties[name] = {
                "type": {"terms": "flattened", "value_count": "long", "filter": "long"}.get(kind, "double")
            }
        dest = t.config["dest"]
        self.cluster.create_index(dest["index"], {"mappings": {"properties": properties}})
        for alias in dest.get("aliases", []):
            if alias.get("move_on_creation", True):
                self.cluster.update_aliases([{"remove": {"index": "*", "alias": alias["alias"], "must_exist": False}}])
            self.cluster.update_aliases([{"add": {"index": dest["index"], "alias": alias["alias"]}}])


def _pivot_value(container: Mapping[str, Any], result: Mapping[str, Any]) -> Any:
    """How a pivot writes one aggregation's result into the destination document."""
    kind = next(k for k in container if k not in ("aggs", "aggregations", "meta"))
    sub = container.get("aggs", container.get("aggregations"))
    if kind in ("filter", "missing"):
        if not sub:
            return result["doc_count"]
        return {name: _pivot_value(c, result[name]) for name, c in sub.items()}
    if kind == "terms":
        out = {}
        for bucket in result["buckets"]:
            key = bucket.get("key_as_string", bucket["key"])
            out[str(key)] = (
                bucket["doc_count"] if not sub else {name: _pivot_value(c, bucket[name]) for name, c in sub.items()}
            )
        return out
    if kind in ("value_count", "cardinality", "sum", "min", "max", "avg"):
        return result["value"]
    raise RequestError(501, "unsupported", f"the double does not write {kind!r} pivot output")


def _doc_id(transform_id: str, key: tuple[Any, ...]) -> str:
    digest = hashlib.sha256(json.dumps([transform_id, *key], default=str).encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


__all__ = ["PIVOT_AGGREGATIONS", "Transform", "Transforms", "millis", "parse_date"]
