"""Validate late-arriving labels: ``{"request_id" | "event_id": ..., "label": ..., "timestamp": ...}``.

Labels join events by request or event id whenever they arrive, before or
after the event; sending a label again for the same id replaces it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from sustain.collector.categories import category_key
from sustain.collector.envelope import MAX_ID_LENGTH, ItemError
from sustain.collector.timestamps import parse_timestamps
from sustain.errors import ValidationError
from sustain.spec import ModelSpec
from sustain.store.base import LabelBatch
from sustain.store.layout import TIMESTAMP, label_types

LABEL_FIELDS = frozenset({"request_id", "event_id", "label", "timestamp"})


def _label_value(value: Any, spec: ModelSpec) -> Any:
    assert spec.label is not None
    if spec.label.kind == "regression":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"a regression label must be a number, got {type(value).__name__}")
        return float(value)
    if type(value) is bool:
        value = "true" if value else "false"
    elif type(value) is int or (type(value) is float and value.is_integer()):
        value = str(int(value))
    elif type(value) is not str:
        raise ValueError(f"a class label must be a string or an integer, got {type(value).__name__}")
    value = category_key(value)  # the same keys as predicted classes (sustain.collector.categories)
    classes = spec.label.classes
    if classes and value not in classes:
        raise ValueError(f"label {value!r} is not one of the classes {classes}")
    return value


def parse_labels(spec: ModelSpec, items: list[Any], now: datetime) -> tuple[LabelBatch, list[ItemError]]:
    if spec.label is None:
        raise ValidationError(
            f"model {spec.name!r} declares no label; add 'label: {{kind: class_label}}' (or regression) to its spec",
            field="label",
        )
    errors: list[ItemError] = []
    kinds: list[str] = []
    keys: list[str] = []
    values: list[Any] = []
    stamps: list[Any] = []
    positions: list[int] = []
    for i, item in enumerate(items):
        if type(item) is not dict:
            errors.append(ItemError(i, "", f"a label must be a JSON object, got {type(item).__name__}"))
            continue
        unknown = sorted(item.keys() - LABEL_FIELDS)
        if unknown:
            errors.append(
                ItemError(
                    i,
                    unknown[0],
                    f"unknown field {unknown[0]!r}; a label has request_id or event_id, label, timestamp",
                )
            )
            continue
        has_request, has_event = item.get("request_id") is not None, item.get("event_id") is not None
        if has_request == has_event:
            errors.append(ItemError(i, "request_id", "give exactly one of request_id or event_id"))
            continue
        kind = "request_id" if has_request else "event_id"
        key = item[kind]
        if type(key) is int:
            key = str(key)
        if type(key) is not str or not key or len(key) > MAX_ID_LENGTH:
            errors.append(ItemError(i, kind, f"{kind} must be a string of 1-{MAX_ID_LENGTH} characters"))
            continue
        if "label" not in item or item["label"] is None:
            errors.append(ItemError(i, "label", "label is required", id=key))
            continue
        try:
            value = _label_value(item["label"], spec)
        except ValueError as exc:
            errors.append(ItemError(i, "label", str(exc), id=key))
            continue
        kinds.append(kind)
        keys.append(key)
        values.append(value)
        stamps.append(item.get("timestamp"))
        positions.append(i)
    micros, ts_errors = parse_timestamps(stamps, now)
    keep = [p for p in range(len(positions)) if p not in ts_errors]
    for p, reason in ts_errors.items():
        errors.append(ItemError(positions[p], "timestamp", reason, id=keys[p]))
    errors.sort(key=lambda e: e.index)
    arrow_type, _ = label_types(spec.label.kind)
    # A key labelled twice in one batch: the last one wins, as it would across batches.
    last: dict[tuple[str, str], int] = {}
    for p in keep:
        last[(kinds[p], keys[p])] = p
    chosen = sorted(last.values())
    table = pa.table(
        {
            "key_kind": pa.array([kinds[p] for p in chosen], pa.string()),
            "key": pa.array([keys[p] for p in chosen], pa.string()),
            "label": pa.array([values[p] for p in chosen], arrow_type),
            "ts": pa.array([micros[p] for p in chosen], pa.int64()).cast(TIMESTAMP),
        }
    )
    return LabelBatch(spec.name, table), errors
