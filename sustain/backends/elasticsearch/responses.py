"""Reading Elasticsearch responses back into sustain's shapes: bulk outcomes, events, labels and Arrow tables.

Pure functions over the JSON the API documents, so tests run them on canned responses.

>>> items = [{"create": {"_index": "i", "_id": "a", "status": 201}},
...          {"create": {"_index": "i", "_id": "b", "status": 409,
...                      "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}}]
>>> [(o.inserted, o.duplicates, o.failures) for o in bulk_outcomes(items, [2])]
[(1, 1, [])]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from sustain.backends.elasticsearch.bodies import label_id
from sustain.backends.elasticsearch.client import error_summary
from sustain.backends.elasticsearch.mappings import es_field
from sustain.spec import LabelKind
from sustain.store.layout import TIMESTAMP, Column, Layout, label_types

CREATED = frozenset({200, 201})


@dataclass
class BulkOutcome:
    """What happened to the operations of one batch in a bulk request."""

    inserted: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)


def _item(item: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    [(op, result)] = item.items()
    return op, result


def describe_failure(item: Mapping[str, Any]) -> str:
    """``<op> <_id>: <status> <type>: <reason>`` for one failed bulk item."""
    op, result = _item(item)
    kind, reason = error_summary({"error": result.get("error") or {}})
    return f"{op} {result.get('_id')}: {result.get('status')} {kind}: {reason}"


def bulk_outcomes(items: Sequence[Mapping[str, Any]], sizes: Sequence[int]) -> list[BulkOutcome]:
    """Split bulk response items over consecutive batches of ``sizes`` operations.

    ``create`` answered 201 counts as inserted and 409 (the ``_id`` exists) as a duplicate;
    anything else is a failure.
    """
    if sum(sizes) != len(items):
        raise ValueError(f"{len(items)} bulk items for {sum(sizes)} operations")
    outcomes = []
    start = 0
    for size in sizes:
        outcome = BulkOutcome()
        for item in items[start : start + size]:
            _, result = _item(item)
            status = result.get("status")
            if status in CREATED:
                outcome.inserted += 1
            elif status == 409:
                outcome.duplicates += 1
            else:
                outcome.failures.append(describe_failure(item))
        outcomes.append(outcome)
        start += size
    return outcomes


def bulk_failures(items: Iterable[Mapping[str, Any]], *, missing_ok: bool = False) -> list[str]:
    """Descriptions of the items that did not succeed (a delete of a missing id is fine with ``missing_ok``)."""
    failed = []
    for item in items:
        _, result = _item(item)
        status = int(result.get("status", 0))
        if 200 <= status < 300 or (missing_ok and status == 404):
            continue
        failed.append(describe_failure(item))
    return failed


# -- documents ------------------------------------------------------------------------------------------


def at_path(source: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a document (None when any part is missing)."""
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def labels_by_id(mget: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The found documents of an ``_mget`` response by ``_id``."""
    if mget is None:
        return {}
    return {doc["_id"]: doc["_source"] for doc in mget.get("docs", []) if doc.get("found")}


def label_for(source: Mapping[str, Any], labels: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The label document of an event: by request id first, then by event id (as the embedded store joins)."""
    request = (source.get("request") or {}).get("id")
    if request is not None:
        found = labels.get(label_id("request_id", str(request)))
        if found is not None:
            return found
    return labels.get(label_id("event_id", str(source["event"]["id"])))


def event_from_source(layout: Layout, source: Mapping[str, Any], label: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored event document as the event object users logged (the shape of ``records.row_to_event``)."""
    features: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for col in layout.value_columns:
        value = at_path(source, es_field(col.name))
        if col.source == "feature":
            features[col.key] = value
        elif col.cls is None:
            outputs[col.key] = value
        else:
            outputs.setdefault(col.key, {})[col.cls] = value
    event: dict[str, Any] = {
        "event_id": source["event"]["id"],
        "request_id": at_path(source, "request.id"),
        "version": source["model"]["version"],
        "timestamp": source["@timestamp"],
        "received_at": at_path(source, "event.ingested"),
        "features": features,
        "outputs": outputs,
        "latency_ms": source.get("latency_ms"),
        "error": source.get("error"),
        "tags": source.get("tags"),
    }
    if source.get("extra"):
        event["extra"] = source["extra"]
    if source.get("invalid"):
        event["invalid"] = list(source["invalid"])
    event["label"] = None if label is None else {"value": label.get("label"), "timestamp": label.get("ts")}
    return event


# -- Arrow tables -----------------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A stored date (ISO 8601, nanoseconds cut to microseconds, or epoch millis) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    text = str(value)
    if "." in text:  # Python reads at most 6 fractional digits; ingest timestamps carry 9
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    stamp = datetime.fromisoformat(text)
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _array(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_fixed_size_list(arrow_type):
        size = arrow_type.list_size
        values = [v if isinstance(v, list) and len(v) == size else None for v in values]
    return pa.array(values, arrow_type)


def _column_type(layout: Layout, name: str, label_kind: LabelKind | None) -> pa.DataType:
    if name == "label":
        return label_types(label_kind)[0] if label_kind is not None else pa.string()
    if name in ("ts", "label_ts"):
        return TIMESTAMP
    try:
        return layout.column(name).arrow_type
    except KeyError:
        return pa.null()


def columns_table(
    layout: Layout, names: Sequence[str], rows: Sequence[Mapping[str, Any]], label_kind: LabelKind | None = None
) -> pa.Table:
    """An Arrow table of ``rows`` (storage column → value) with each column typed as the layout stores it."""
    arrays = {}
    for name in names:
        arrow_type = _column_type(layout, name, label_kind)
        values = [row.get(name) for row in rows]
        if arrow_type == TIMESTAMP:
            values = [parse_time(v) for v in values]
        arrays[name] = _array(values, arrow_type) if arrow_type != pa.null() else pa.nulls(len(rows))
    return pa.table(arrays)


def event_row(layout: Layout, source: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Storage column → value for one event document (``ts`` is the event time)."""
    row: dict[str, Any] = {}
    for name in names:
        if name == "ts":
            row[name] = source.get("@timestamp")
            continue
        try:
            column: Column = layout.column(name)
        except KeyError:
            row[name] = None
            continue
        row[name] = at_path(source, es_field(column.name))
    return row


def reference_table(layout: Layout, label_kind: LabelKind | None, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Stored reference rows as the model's reference layout: every value column, then ``label``."""
    names = [c.name for c in layout.value_columns] + ["label"]
    return columns_table(layout, names, rows, label_kind)
