"""Request bodies of the Elasticsearch engine's windows, and the readers of its transform responses.

Pure functions: :mod:`sustain.backends.elasticsearch.windows` sends what they build, and tests
check every body against Elastic's TypeScript API types.

>>> updated_pipeline_body()["processors"]
[{'set': {'field': 'updated_at', 'value': '{{{_ingest.timestamp}}}'}}]
>>> changed_windows_search(1767571200000, None)["query"]
{'range': {'updated_at': {'gte': '1767571200000', 'format': 'epoch_millis'}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from sustain.backends.elasticsearch.bodies import DATE, KEYWORD, OPAQUE, small_index_body
from sustain.backends.elasticsearch.client import PAGE_SIZE
from sustain.backends.elasticsearch.mappings import bucket_field, event_doc_id
from sustain.backends.elasticsearch.transforms import SEARCH_MAX_BUCKETS, UPDATED_FIELD, dest_index
from sustain.timestamps import iso
from sustain.transforms.plan import TransformPlan
from sustain.transforms.profile import ReferenceProfile

# Margin for clock differences between the node that starts a checkpoint and the ingest nodes.
CLOCK_SKEW_MS = 30_000


# -- profiles -------------------------------------------------------------------------------------------


def profiles_index_body() -> dict[str, Any]:
    """``PUT <prefix>-profiles``: one document per (model, version); the profile is stored, not indexed."""
    return small_index_body({"model": KEYWORD, "version": KEYWORD, "created_at": DATE, "profile": OPAQUE}, "profiles")


def profile_id(model: str, version: str) -> str:
    return event_doc_id(f"{model}/{version}")


def profile_document(profile: ReferenceProfile) -> dict[str, Any]:
    return {
        "model": profile.model,
        "version": profile.version,
        "created_at": iso(profile.created_at),
        "profile": orjson.loads(profile.to_json()),
    }


def profiles_search(model: str, after: list[Any] | None) -> dict[str, Any]:
    """A model's profiles, oldest first."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [{"term": {"model": {"value": model}}}]}},
        "size": PAGE_SIZE,
        "sort": [{"created_at": {"order": "asc"}}, {"version": {"order": "asc"}}],
    }
    if after is not None:
        body["search_after"] = after
    return body


# -- transform output -------------------------------------------------------------------------------------


def windows_search(
    after: list[Any] | None,
    *,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Destination documents of a transform, oldest bucket first (``bucket`` and ``version`` are its group keys)."""
    filters: list[dict[str, Any]] = []
    if version is not None:
        filters.append({"term": {"version": {"value": version}}})
    if since is not None or until is not None:
        bounds: dict[str, Any] = {}
        if since is not None:
            bounds["gte"] = iso(since)
        if until is not None:
            bounds["lt"] = iso(until)
        filters.append({"range": {"bucket": bounds}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "size": PAGE_SIZE,
        "sort": [{"bucket": {"order": "asc"}}, {"version": {"order": "asc"}}],
    }
    if fields is not None:
        body["_source"] = fields
    if after is not None:
        body["search_after"] = after
    return body


def changed_windows_search(since_ms: int, after: list[Any] | None) -> dict[str, Any]:
    """Destination documents (re)written at or after ``since_ms``: the windows a checkpoint changed."""
    body: dict[str, Any] = {
        "query": {"range": {UPDATED_FIELD: {"gte": str(since_ms), "format": "epoch_millis"}}},
        "size": PAGE_SIZE,
        "sort": [{"bucket": {"order": "asc"}}, {"version": {"order": "asc"}}],
        "_source": ["version", "bucket"],
    }
    if after is not None:
        body["search_after"] = after
    return body


def labels_since_search(since_ms: int, after: list[Any] | None) -> dict[str, Any]:
    """Labels stored at or after ``since_ms``, oldest first (``<prefix>-labels-<model>``)."""
    body: dict[str, Any] = {
        "query": {"range": {"received_at": {"gte": str(since_ms), "format": "epoch_millis"}}},
        "size": PAGE_SIZE,
        "sort": [{"received_at": {"order": "asc"}}, {"key_kind": {"order": "asc"}}, {"key": {"order": "asc"}}],
        "_source": ["key_kind", "key", "received_at"],
    }
    if after is not None:
        body["search_after"] = after
    return body


def events_by_key_search(
    request_ids: list[str], event_ids: list[str], window: str, after: list[Any] | None
) -> dict[str, Any]:
    """The version and ``window`` bucket of the events with one of these request or event ids."""
    keys: list[dict[str, Any]] = []
    if request_ids:
        keys.append({"terms": {"request.id": request_ids}})
    if event_ids:
        keys.append({"terms": {"event.id": event_ids}})
    body: dict[str, Any] = {
        "query": {"bool": {"should": keys, "minimum_should_match": 1}},
        "size": PAGE_SIZE,
        "sort": [{"@timestamp": {"order": "asc"}}, {"event.id": {"order": "asc"}}],
        "_source": ["model.version", bucket_field(window)],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = after
    return body


def updated_pipeline_body() -> dict[str, Any]:
    """``PUT _ingest/pipeline/<prefix>-windows-updated``: the transforms' ``dest.pipeline``."""
    return {
        "description": "sustain: stamp updated_at on transform output, to find the windows a checkpoint changed",
        "processors": [{"set": {"field": UPDATED_FIELD, "value": "{{{_ingest.timestamp}}}"}}],
        "_meta": {"managed_by": "sustain"},
    }


def move_alias(alias: str, index: str, among: str) -> list[dict[str, Any]]:
    """``POST _aliases`` actions moving ``alias`` to ``index`` from any index matching ``among``, atomically.

    >>> move_alias("p-windows-m-1h", "p-windows-m-1h-0a1b2c3d", "p-windows-*")[1]
    {'add': {'index': 'p-windows-m-1h-0a1b2c3d', 'alias': 'p-windows-m-1h'}}
    """
    return [
        {"remove": {"index": among, "alias": alias, "must_exist": False}},
        {"add": {"index": index, "alias": alias}},
    ]


def max_buckets_of(settings: Mapping[str, Any] | None) -> int:
    """``search.max_buckets`` from ``GET _cluster/settings?include_defaults&flat_settings`` (transient first).

    >>> max_buckets_of({"persistent": {"search.max_buckets": "20000"}, "defaults": {"search.max_buckets": "65536"}})
    20000
    >>> max_buckets_of(None)
    65536
    """
    for scope in ("transient", "persistent", "defaults"):
        value = ((settings or {}).get(scope) or {}).get("search.max_buckets")
        if value is not None:
            return int(value)
    return SEARCH_MAX_BUCKETS


# -- transform responses -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformState:
    """The parts of ``GET _transform/<id>/_stats`` the transformer acts on."""

    state: str
    checkpoint: int
    checkpoint_ms: int  # when the last completed checkpoint started (0 before the first)
    processed: int
    reason: str | None = None


def transform_state(stats: Mapping[str, Any] | None) -> TransformState | None:
    """The state of the one transform in a stats response (None when there is none)."""
    if stats is None or not stats.get("transforms"):
        return None
    entry = stats["transforms"][0]
    last = entry.get("checkpointing", {}).get("last", {})
    return TransformState(
        state=str(entry.get("state")),
        checkpoint=int(last.get("checkpoint", 0)),
        checkpoint_ms=int(last.get("timestamp_millis", 0)),
        processed=int(entry.get("stats", {}).get("documents_processed", 0)),
        reason=entry.get("reason"),
    )


def stale_transforms(listing: Mapping[str, Any] | None, plan: TransformPlan, keep: str, prefix: str) -> list[str]:
    """Ids of transforms of this deployment for the same model and window as ``plan``, other than ``keep``.

    A transform belongs to the deployment when sustain manages it and it writes to one of the
    deployment's window indices (``<prefix>-windows-``), so deployments sharing a cluster stay apart.
    """
    if listing is None:
        return []
    own = dest_index(plan, prefix).rsplit("-", 1)[0] + "-"  # <prefix>-windows-<model>-<window>-
    stale = []
    for config in listing.get("transforms", []):
        meta = config.get("_meta") or {}
        index = (config.get("dest") or {}).get("index", "")
        if (
            config.get("id") != keep
            and meta.get("managed_by") == "sustain"
            and meta.get("model") == plan.model
            and meta.get("window") == plan.window
            and str(index).startswith(own)
        ):
            stale.append(str(config["id"]))
    return stale
