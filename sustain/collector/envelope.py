"""Check the envelope of every event in a batch: ids, version, timestamp, latency, tags, error.

Two paths give the same answer. The fast path checks a whole batch with a few
vectorised passes and Arrow conversions; it gives up (returns ``None``) at the
first irregularity, and the per-item path then finds and explains every
problem. Well-formed batches, the common case, never pay for the per-item path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sustain.collector.timestamps import MAX_FUTURE, parse_timestamps, to_micros

EVENT_FIELDS = (
    "event_id",
    "timestamp",
    "version",
    "request_id",
    "features",
    "outputs",
    "latency_ms",
    "tags",
    "error",
)
ALLOWED = frozenset(EVENT_FIELDS)
_ALLOWED_TEXT = ", ".join(EVENT_FIELDS)
MAX_ID_LENGTH = 256
MAX_VERSION_LENGTH = 128


@dataclass
class ItemError:
    """Why one item of a batch was rejected (shaped like an Elasticsearch bulk item error)."""

    index: int
    field: str
    reason: str
    status: int = 422
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "index": self.index,
            "status": self.status,
            "error": {"type": "invalid", "field": self.field, "reason": self.reason},
        }
        if self.id is not None:
            item["id"] = self.id
        return item


@dataclass
class Envelope:
    """The checked envelope columns of the items at positions ``keep``."""

    keep: list[int]
    ids: pa.Array
    request_ids: pa.Array
    versions: pa.Array
    latencies: pa.Array
    micros: pa.Array
    errors: list[ItemError]


# -- fast path ------------------------------------------------------------------------------------
def _strings(values: list[Any], max_length: int, allow_null: bool = True) -> pa.Array | None:
    try:
        arr = pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if arr.null_count == len(arr):
        return arr if allow_null else None
    if not allow_null and arr.null_count:
        return None
    bounds = pc.min_max(pc.utf8_length(arr)).as_py()
    if bounds["min"] < 1 or bounds["max"] > max_length:
        return None
    return arr


def _fast_timestamps(values: list[Any], now: datetime) -> pa.Array | None:
    now_us = to_micros(now)
    n = len(values)
    if all(v is None for v in values):
        return pa.array(np.full(n, now_us, dtype=np.int64))
    micros: pa.Array
    try:
        numbers = pa.array(values, pa.float64())
        filled = numbers.fill_null(now_us / 1e6).to_numpy(zero_copy_only=False)
        micros = pa.array(np.round(filled * 1e6).astype(np.int64))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        try:
            from sustain.store.layout import TIMESTAMP

            parsed = pc.cast(pa.array(values, pa.string()), TIMESTAMP).cast(pa.int64())
            micros = parsed.fill_null(now_us)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            return None
    bounds = pc.min_max(micros).as_py()
    if bounds["min"] < 0 or bounds["max"] > to_micros(now + MAX_FUTURE):
        return None
    return micros


def fast_envelope(items: list[Any], default_version: str, now: datetime) -> Envelope | None:
    """The envelope of a batch without a single problem, or None to take the per-item path."""
    for e in items:
        if type(e) is not dict or not e.keys() <= ALLOWED or type(e.get("features")) is not dict:
            return None
        outputs, tags = e.get("outputs"), e.get("tags")
        if (outputs is not None and type(outputs) is not dict) or (tags is not None and type(tags) is not dict):
            return None
        if type(e.get("latency_ms")) is bool or type(e.get("timestamp")) is bool:
            return None  # Arrow would read a boolean as 0/1; the per-item path rejects it
    ids = _strings([e.get("event_id") for e in items], MAX_ID_LENGTH)
    request_ids = _strings([e.get("request_id") for e in items], MAX_ID_LENGTH)
    versions = _strings([e.get("version") for e in items], MAX_VERSION_LENGTH)
    if ids is None or request_ids is None or versions is None:
        return None
    try:
        latencies = pa.array([e.get("latency_ms") for e in items], pa.float64())
        pa.array([e.get("error") for e in items], pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if latencies.null_count < len(latencies) and pc.min(latencies).as_py() < 0:
        return None
    micros = _fast_timestamps([e.get("timestamp") for e in items], now)
    if micros is None:
        return None
    return Envelope(
        keep=list(range(len(items))),
        ids=ids,
        request_ids=request_ids,
        versions=versions.fill_null(default_version),
        latencies=latencies,
        micros=micros,
        errors=[],
    )


# -- per-item path --------------------------------------------------------------------------------
def _id(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        if not value or len(value) > MAX_ID_LENGTH:
            raise ValueError(f"{name} must be 1-{MAX_ID_LENGTH} characters")
        return str(value)
    if type(value) is int:
        return str(value)
    raise ValueError(f"{name} must be a string, got {type(value).__name__}")


def check_item(e: Any, default_version: str) -> tuple[str | None, str | None, str, Any] | ItemError:
    """Validate one item's envelope; return (event_id, request_id, version, latency) or the error."""
    if type(e) is not dict:
        return ItemError(-1, "", f"an event must be a JSON object, got {type(e).__name__}")
    if not e.keys() <= ALLOWED:
        unknown = sorted(e.keys() - ALLOWED)
        return ItemError(-1, unknown[0], f"unknown field {unknown[0]!r}; an event has: {_ALLOWED_TEXT}")
    try:
        event_id = _id(e.get("event_id"), "event_id")
    except ValueError as exc:
        return ItemError(-1, "event_id", str(exc))
    try:
        request_id = _id(e.get("request_id"), "request_id")
    except ValueError as exc:
        return ItemError(-1, "request_id", str(exc), id=event_id)
    features = e.get("features")
    if type(features) is not dict:
        got = "is required" if features is None else f"must be an object {{name: value}}, got {type(features).__name__}"
        return ItemError(-1, "features", f"features {got}", id=event_id)
    outputs = e.get("outputs")
    if outputs is not None and type(outputs) is not dict:
        return ItemError(-1, "outputs", f"outputs must be an object, got {type(outputs).__name__}", id=event_id)
    version = e.get("version")
    if version is None:
        version = default_version
    elif type(version) is int:
        version = str(version)
    elif type(version) is not str or not version or len(version) > MAX_VERSION_LENGTH:
        reason = f"version must be a non-empty string of at most {MAX_VERSION_LENGTH} characters"
        return ItemError(-1, "version", reason, id=event_id)
    latency = e.get("latency_ms")
    if latency is not None and (type(latency) not in (int, float) or latency < 0):
        return ItemError(-1, "latency_ms", "latency_ms must be a non-negative number", id=event_id)
    tags = e.get("tags")
    if tags is not None and type(tags) is not dict:
        return ItemError(-1, "tags", f"tags must be an object, got {type(tags).__name__}", id=event_id)
    error = e.get("error")
    if error is not None and type(error) is not str:
        return ItemError(-1, "error", "error must be a string (the model's error message) or null", id=event_id)
    return event_id, request_id, version, latency


def item_envelope(items: list[Any], default_version: str, now: datetime) -> Envelope:
    """Check item by item, explaining every rejection."""
    errors: list[ItemError] = []
    keep: list[int] = []
    ids: list[str | None] = []
    request_ids: list[str | None] = []
    versions: list[str] = []
    latencies: list[Any] = []
    for i, e in enumerate(items):
        checked = check_item(e, default_version)
        if isinstance(checked, ItemError):
            checked.index = i
            errors.append(checked)
            continue
        keep.append(i)
        ids.append(checked[0])
        request_ids.append(checked[1])
        versions.append(checked[2])
        latencies.append(checked[3])
    micros, ts_errors = parse_timestamps([items[i].get("timestamp") for i in keep], now)
    good = range(len(keep))
    if ts_errors:
        for pos in sorted(ts_errors):
            errors.append(ItemError(keep[pos], "timestamp", ts_errors[pos], id=ids[pos]))
        good = [p for p in range(len(keep)) if p not in ts_errors]  # type: ignore[assignment]
    return Envelope(
        keep=[keep[p] for p in good],
        ids=pa.array([ids[p] for p in good], pa.string()),
        request_ids=pa.array([request_ids[p] for p in good], pa.string()),
        versions=pa.array([versions[p] for p in good], pa.string()),
        latencies=pa.array([latencies[p] for p in good], pa.float64()),
        micros=pa.array([micros[p] for p in good], pa.int64()),
        errors=errors,
    )
