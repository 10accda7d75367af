"""Validate a batch of logged events and lay it out as one typed Arrow table.

An event is::

    {"event_id": "...", "timestamp": "2026-01-01T00:00:00Z", "version": "3",
     "request_id": "...", "features": {"age": 41, "plan": "pro"},
     "outputs": {"prediction": "churn", "proba": [0.2, 0.8]},
     "latency_ms": 12.5, "tags": {"region": "eu"}, "error": null}

Only ``features`` is required. Envelope problems (unknown field, wrong type,
bad timestamp) reject that item alone with a reason naming the field; a feature
value of the wrong type is stored as null and listed in ``invalid``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
import pyarrow as pa

from sustain.collector.envelope import ItemError, fast_envelope, item_envelope
from sustain.collector.values import to_arrow
from sustain.spec import ModelSpec
from sustain.store.layout import TIMESTAMP, Layout


@dataclass
class ParsedEvents:
    """The valid events of a batch as a table in the model's layout, plus the rejections."""

    model: str
    table: pa.Table
    errors: list[ItemError] = field(default_factory=list)
    received: int = 0
    invalid_values: int = 0


def parse_events(spec: ModelSpec, items: list[Any], now: datetime, layout: Layout | None = None) -> ParsedEvents:
    """Validate ``items`` against ``spec``; the valid ones become one Arrow table."""
    layout = layout or Layout.of(spec)
    default_version = spec.effective_default_version
    envelope = fast_envelope(items, default_version, now) or item_envelope(items, default_version, now)
    errors = envelope.errors
    keep = envelope.keep

    valid = [items[i] for i in keep]
    features = [e["features"] for e in valid]
    outputs = [e.get("outputs") or {} for e in valid]
    invalid: list[list[str] | None] = [None] * len(valid)
    extras: list[dict[str, Any] | None] = [None] * len(valid)

    declared_features = {f.name for f in spec.features}
    declared_outputs = {o.name for o in spec.outputs}
    rejected: dict[int, ItemError] = {}
    all_declared = all(f.keys() <= declared_features for f in features) and all(
        o.keys() <= declared_outputs for o in outputs
    )
    for pos, (f, o) in enumerate(zip(features, outputs, strict=True)):
        if all_declared:
            break
        unknown_f = f.keys() - declared_features
        unknown_o = o.keys() - declared_outputs
        if not unknown_f and not unknown_o:
            continue
        if spec.unknown_features == "reject":
            name = sorted(unknown_f)[0] if unknown_f else sorted(unknown_o)[0]
            where = "features" if unknown_f else "outputs"
            rejected[pos] = ItemError(
                keep[pos],
                f"{where}.{name}",
                f"{name!r} is not declared in the spec of model {spec.name!r}",
                id=envelope.ids[pos].as_py(),
            )
            continue
        extra: dict[str, Any] = {}
        if unknown_f:
            extra["features"] = {k: f[k] for k in unknown_f}
        if unknown_o:
            extra["outputs"] = {k: o[k] for k in unknown_o}
        extras[pos] = extra

    columns: dict[str, pa.Array] = {}
    invalid_count = 0
    feature_values = _transpose(features, [f.name for f in spec.features])
    output_values = _transpose(outputs, [o.name for o in spec.outputs])
    for col in layout.value_columns:
        if col.source == "feature":
            values = feature_values[col.key]
        elif col.cls is None:
            values = output_values[col.key]
        else:
            values = _class_scores(outputs, col.key, col.cls, spec.output(col.key).classes or [])  # type: ignore[union-attr]
        arr, bad = to_arrow(values, col)
        columns[col.name] = arr
        for pos in bad:
            marks = invalid[pos]
            label = col.key if col.source == "feature" else f"outputs.{col.key}"
            if marks is None:
                invalid[pos] = [label]
            elif label not in marks:
                marks.append(label)
            invalid_count += 1

    table = pa.table(
        {
            "event_id": envelope.ids,
            "request_id": envelope.request_ids,
            "version": envelope.versions,
            "ts": envelope.micros.cast(TIMESTAMP),
            "latency_ms": envelope.latencies,
            "error": pa.array([e.get("error") for e in valid], pa.string()),
            "tags": _json_column([e.get("tags") for e in valid]),
            "extra": _json_column(extras),
            "invalid": pa.array(invalid, pa.list_(pa.string())),
            **columns,
        },
        schema=layout.parsed_schema(),
    )
    if rejected:
        mask = pa.array([pos not in rejected for pos in range(len(valid))])
        table = table.filter(mask)
        errors.extend(rejected.values())
    errors.sort(key=lambda err: err.index)
    return ParsedEvents(spec.name, table, errors, received=len(items), invalid_values=invalid_count)


def _transpose(rows: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    """Columns of ``names`` from row dicts. When every row has every name (what loggers send), one C-level
    itemgetter pass per row replaces a Python-level lookup per value."""
    if len(names) >= 2:
        try:
            columns = list(zip(*map(itemgetter(*names), rows), strict=True)) if rows else [() for _ in names]
            return {name: list(col) for name, col in zip(names, columns, strict=True)}
        except KeyError:
            pass
    return {name: [r.get(name) for r in rows] for name in names}


def _json_column(values: list[Any]) -> pa.Array:
    if all(v is None for v in values):
        return pa.nulls(len(values), pa.string())
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())


def _class_scores(outputs: list[dict[str, Any]], name: str, cls: str, classes: list[str]) -> list[Any]:
    """One class's score from outputs that send scores as a list (class order) or as {class: score}."""
    index = classes.index(cls)
    values: list[Any] = []
    for o in outputs:
        scores = o.get(name)
        if scores is None:
            values.append(None)
        elif type(scores) is list:
            values.append(scores[index] if len(scores) == len(classes) else _WRONG_SHAPE)
        elif type(scores) is dict:
            values.append(scores.get(cls))
        else:
            values.append(_WRONG_SHAPE)
    return values


class _WrongShape:
    """Stands for a score list of the wrong length; the converter counts it as a type error."""


_WRONG_SHAPE = _WrongShape()
