"""How a model spec maps onto stored columns, shared by every backend.

Every declared feature and output gets a typed column, so aggregation runs on
native types instead of parsing JSON. Names are prefixed to keep them apart from
the envelope columns: ``f:<feature>``, ``o:<output>`` and, for class scores,
``o:<output>:<class>``.

>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"age": "numeric"},
...     "outputs": {"p": {"kind": "class_scores", "classes": ["no", "yes"]}}})
>>> [c.name for c in Layout.of(spec).value_columns]
['f:age', 'o:p:no', 'o:p:yes']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from sustain.spec import Feature, LabelKind, ModelSpec, Output

Source = Literal["feature", "output"]

TIMESTAMP = pa.timestamp("us", tz="UTC")

# Envelope columns every event carries, in storage order. ``seq`` is the ingest sequence
# (monotonic, assigned at commit) that transforms checkpoint on; ``eid`` the event's id as a UUID. Repeated ids
# are found in a dedup index over a bounded horizon (the embedded store's ``dd:<model>`` table), never by an
# index over every event ever stored: that one would hold every id in memory for ever.
ENVELOPE: tuple[tuple[str, pa.DataType, str], ...] = (
    ("seq", pa.int64(), "BIGINT NOT NULL"),
    ("eid", pa.string(), "UUID NOT NULL"),
    ("event_id", pa.string(), "VARCHAR"),
    ("request_id", pa.string(), "VARCHAR"),
    ("version", pa.string(), "VARCHAR NOT NULL"),
    ("ts", TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ("received_at", TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ("latency_ms", pa.float64(), "DOUBLE"),
    ("error", pa.string(), "VARCHAR"),
    ("tags", pa.string(), "JSON"),
    ("extra", pa.string(), "JSON"),
    ("invalid", pa.list_(pa.string()), "VARCHAR[]"),
)

# Columns the collector produces (the store adds seq, eid and received_at).
PARSED_ENVELOPE = tuple(c for c in ENVELOPE if c[0] not in ("seq", "eid", "received_at"))


@dataclass(frozen=True)
class Column:
    """One stored value column."""

    name: str
    source: Source
    key: str  # feature or output name
    kind: str  # feature kind or output kind
    arrow_type: pa.DataType
    sql_type: str
    cls: str | None = None  # the class, for one column of class scores

    @property
    def is_numeric(self) -> bool:
        return self.sql_type == "DOUBLE"


def _feature_column(f: Feature) -> Column:
    arrow: pa.DataType
    if f.kind == "numeric":
        arrow, sql = pa.float64(), "DOUBLE"
    elif f.kind == "boolean":
        arrow, sql = pa.bool_(), "BOOLEAN"
    elif f.kind == "embedding":
        assert f.dim is not None
        arrow, sql = pa.list_(pa.float32(), f.dim), f"FLOAT[{f.dim}]"
    else:
        arrow, sql = pa.string(), "VARCHAR"
    return Column(f"f:{f.name}", "feature", f.name, f.kind, arrow, sql)


def _output_columns(o: Output) -> list[Column]:
    if o.kind == "class_scores":
        assert o.classes is not None
        return [Column(f"o:{o.name}:{c}", "output", o.name, o.kind, pa.float64(), "DOUBLE", cls=c) for c in o.classes]
    if o.kind == "class_label":
        return [Column(f"o:{o.name}", "output", o.name, o.kind, pa.string(), "VARCHAR")]
    return [Column(f"o:{o.name}", "output", o.name, o.kind, pa.float64(), "DOUBLE")]


def label_types(kind: LabelKind) -> tuple[pa.DataType, str]:
    return (pa.float64(), "DOUBLE") if kind == "regression" else (pa.string(), "VARCHAR")


@dataclass(frozen=True)
class Layout:
    """The stored shape of one model's events."""

    model: str
    value_columns: tuple[Column, ...]

    @classmethod
    def of(cls, spec: ModelSpec) -> Layout:
        columns = [_feature_column(f) for f in spec.features]
        for o in spec.outputs:
            columns.extend(_output_columns(o))
        return cls(spec.name, tuple(columns))

    def feature_columns(self) -> list[Column]:
        return [c for c in self.value_columns if c.source == "feature"]

    def output_columns(self) -> list[Column]:
        return [c for c in self.value_columns if c.source == "output"]

    def column(self, name: str) -> Column:
        for c in self.value_columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def parsed_schema(self) -> pa.Schema:
        """The Arrow schema of a batch the collector hands to the store."""
        fields = [pa.field(n, t) for n, t, _ in PARSED_ENVELOPE]
        fields += [pa.field(c.name, c.arrow_type) for c in self.value_columns]
        return pa.schema(fields)

    def sql_columns(self) -> list[tuple[str, str]]:
        return [(n, sql) for n, _, sql in ENVELOPE] + [(c.name, c.sql_type) for c in self.value_columns]


def quote(identifier: str) -> str:
    """Quote an SQL identifier (DuckDB and standard SQL)."""
    return '"' + identifier.replace('"', '""') + '"'
