"""Compile a :class:`TransformPlan` to DuckDB SQL, and unpivot its result into long partial rows.

The query reads the events with ``seq`` in ``(?, ?]`` (the rows committed since
the last checkpoint), groups them by version and epoch-aligned time bucket, and
returns one wide row of partials per group. :func:`long_rows` turns that into
``(version, bucket, column, stat, key, value)`` rows that merge by addition (or
min/max) into what is already stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa

from sustain.store.layout import quote
from sustain.transforms.plan import ColumnPlan, TransformPlan

EPOCH = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"


def _float_list(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]::DOUBLE[]"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _measure(col: ColumnPlan) -> str:
    """The SQL expression aggregated for a numeric-like column."""
    ref = quote(col.column)
    if col.kind == "text":
        return f"length({ref})::DOUBLE"
    if col.kind == "embedding":
        return f"sqrt(list_sum(list_transform({ref}::DOUBLE[], lambda v: v * v)))"
    return f"{ref}::DOUBLE"


def _column_aggregates(i: int, col: ColumnPlan) -> list[str]:
    ref = quote(col.column)
    is_invalid = f"coalesce(list_contains(invalid, {_literal(col.invalid_key)}), false)"
    invalid = f'count(*) FILTER (WHERE {is_invalid}) AS "{i}|invalid"'
    # A value of the wrong type is stored as null too: it counts as a type error, not as missing.
    missing = f'count(*) FILTER (WHERE {ref} IS NULL AND NOT {is_invalid}) AS "{i}|missing"'
    if col.kind == "categorical":
        return [f'histogram({ref}) AS "{i}|cat"', missing, invalid]
    if col.kind == "boolean":
        return [
            f'count(*) FILTER (WHERE {ref}) AS "{i}|true"',
            f'count(*) FILTER (WHERE NOT {ref}) AS "{i}|false"',
            missing,
            invalid,
        ]
    x = _measure(col)
    shifted = f"({x} - {float(col.shift)!r})"
    parts = [
        f'count({x}) AS "{i}|count"',
        missing,
        invalid,
        f'sum({shifted}) AS "{i}|sum"',
        f'sum({shifted} * {shifted}) AS "{i}|sumsq"',
        f'min({x}) AS "{i}|min"',
        f'max({x}) AS "{i}|max"',
    ]
    if col.range is not None:
        low, high = col.range
        parts.append(f'count(*) FILTER (WHERE {x} < {float(low)!r} OR {x} > {float(high)!r}) AS "{i}|oor"')
    if col.edges:
        parts.append(f'histogram({x}, {_float_list(col.edges)}) AS "{i}|bin"')
    elif col.edges is not None:
        parts.append(f'count({x}) AS "{i}|bin0"')  # a single bin: every value
    return parts


def delta_sql(plan: TransformPlan, events_table: str) -> str:
    """Partials of the events with seq in (?, ?], per version and bucket."""
    seconds = int(plan.window_seconds)
    parts = [
        "version",
        f"time_bucket(INTERVAL '{seconds} seconds', ts, {EPOCH}) AS bucket",
        'count(*) AS "*|rows"',
        'count(error) AS "*|errors"',
        'epoch_us(max(ts)) AS "ts|max"',
        'count(latency_ms) AS "lat|count"',
        'count(*) FILTER (WHERE latency_ms IS NULL) AS "lat|missing"',
        'sum(latency_ms) AS "lat|sum"',
        'sum(latency_ms * latency_ms) AS "lat|sumsq"',
        'min(latency_ms) AS "lat|min"',
        'max(latency_ms) AS "lat|max"',
        f'histogram(latency_ms, {_float_list(plan.latency_edges)}) AS "lat|bin"',
    ]
    for i, col in enumerate(plan.columns):
        parts.extend(_column_aggregates(i, col))
    return f"SELECT {', '.join(parts)} FROM {events_table} WHERE seq > ? AND seq <= ? GROUP BY ALL ORDER BY bucket"


def _pairs(histogram: Any) -> list[tuple[Any, int]]:
    """A DuckDB MAP read through Arrow: a list of (key, value) pairs (or a dict)."""
    if not histogram:
        return []
    return list(histogram.items()) if isinstance(histogram, dict) else list(histogram)


def _bins(histogram: Any, edges: tuple[float, ...]) -> Iterator[tuple[str, float]]:
    index = {float(e): i for i, e in enumerate(edges)}
    for boundary, count in _pairs(histogram):
        if count:
            yield str(index.get(float(boundary), len(edges))), float(count)


def long_rows(plan: TransformPlan, delta: pa.Table) -> list[tuple[str, datetime, str, str, str, float]]:
    """``(version, bucket, column, stat, key, value)`` for every non-empty partial of ``delta``."""
    out: list[tuple[str, datetime, str, str, str, float]] = []
    for row in delta.to_pylist():
        version, bucket = row["version"], row["bucket"]

        def put(column: str, stat: str, key: str, value: Any, _v: str = version, _b: datetime = bucket) -> None:
            if value is not None and (value != 0 or stat in ("min", "max")):
                out.append((_v, _b, column, stat, key, float(value)))

        put("*", "rows", "", row["*|rows"])
        put("*", "errors", "", row["*|errors"])
        put("ts", "max", "", row["ts|max"])  # epoch microseconds of the latest event
        for stat in ("count", "missing", "sum", "sumsq", "min", "max"):
            put("latency_ms", stat, "", row[f"lat|{stat}"])
        for key, value in _bins(row["lat|bin"], plan.latency_edges):
            put("latency_ms", "bin", key, value)
        for i, col in enumerate(plan.columns):
            put(col.column, "missing", "", row[f"{i}|missing"])
            put(col.column, "invalid", "", row[f"{i}|invalid"])
            if col.kind == "categorical":
                for category, count in _pairs(row[f"{i}|cat"]):
                    put(col.column, "cat", str(category), count)
            elif col.kind == "boolean":
                put(col.column, "cat", "true", row[f"{i}|true"])
                put(col.column, "cat", "false", row[f"{i}|false"])
            else:
                for stat in ("count", "sum", "sumsq", "min", "max"):
                    put(col.column, stat, "", row[f"{i}|{stat}"])
                if col.range is not None:
                    put(col.column, "oor", "", row[f"{i}|oor"])
                if col.edges:
                    for key, value in _bins(row[f"{i}|bin"], col.edges):
                        put(col.column, "bin", key, value)
                elif col.edges is not None:
                    put(col.column, "bin", "0", row[f"{i}|bin0"])
    return out
