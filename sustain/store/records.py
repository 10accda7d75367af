"""Turn stored rows back into the event shape users logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from sustain.store.layout import Layout
from sustain.timestamps import iso


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def row_to_event(layout: Layout, row: dict[str, Any]) -> dict[str, Any]:
    """One stored row (with optional ``label``/``label_ts`` join columns) as an event object."""
    features: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for col in layout.value_columns:
        if col.name not in row:
            continue  # a column added to the spec after this query was planned
        value = row[col.name]
        if col.source == "feature":
            features[col.key] = list(value) if isinstance(value, tuple) else value
        elif col.cls is None:
            outputs[col.key] = value
        else:
            outputs.setdefault(col.key, {})[col.cls] = value
    event: dict[str, Any] = {
        "event_id": row.get("event_id") or str(row["eid"]),
        "request_id": row.get("request_id"),
        "version": row["version"],
        "timestamp": _iso(row["ts"]),
        "received_at": _iso(row.get("received_at")),
        "features": features,
        "outputs": outputs,
        "latency_ms": row.get("latency_ms"),
        "error": row.get("error"),
        "tags": orjson.loads(row["tags"]) if row.get("tags") else None,
    }
    if row.get("extra"):
        event["extra"] = orjson.loads(row["extra"])
    if row.get("invalid"):
        event["invalid"] = list(row["invalid"])
    if "label" in row:
        event["label"] = (
            None if row.get("label_ts") is None else {"value": row["label"], "timestamp": _iso(row["label_ts"])}
        )
    return event
