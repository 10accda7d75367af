"""Declarative aggregation plans derived from the monitor spec: what each window keeps.

One plan per model and window. For each stored column it lists the mergeable
partial aggregates to keep per (version, time bucket):

* numbers (and text lengths, embedding norms): count, missing, invalid, sum and
  sum of squares around a shift (the reference mean, for numerical stability),
  min, max, and counts in the reference bins;
* categories and booleans: count per value, missing, invalid;
* per row: rows, model errors, and a latency histogram on fixed log-spaced edges.

Every partial merges by addition except min and max, so window partials combine
across time buckets, workers and checkpoints. A plan compiles to SQL for the
embedded engine (:mod:`sustain.backends.duckdb.sql`) and to an Elasticsearch
transform body (:mod:`sustain.backends.elasticsearch.transforms`).

>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric", "c": "categorical"}})
>>> plan = plan_for(spec, "1h", None)
>>> plan.id, [(c.column, c.kind, c.edges) for c in plan.columns]
('m-1h', [('f:x', 'numeric', None), ('f:c', 'categorical', None)])
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import orjson

from sustain.durations import parse_duration
from sustain.spec import ModelSpec
from sustain.store.layout import Layout
from sustain.transforms.profile import OTHER, ReferenceProfile

# Latency histogram edges in milliseconds: 4 per decade from 0.1 ms to 100 s. Quantiles read from it are
# within about 30% (one bin) of the exact value; interpolation inside the bin does better in practice.
LATENCY_EDGES: tuple[float, ...] = tuple(float(round(v, 6)) for v in 10 ** np.arange(-1, 5.01, 0.25))

CATEGORICAL_KINDS = frozenset({"categorical", "boolean", "class_label"})


def profile_kind(kind: str) -> str:
    """The aggregation kind of a feature or output kind."""
    if kind in ("class_label", "categorical"):
        return "categorical"
    if kind in ("class_scores", "probability", "regression"):
        return "numeric"
    return kind


def column_kinds(spec: ModelSpec) -> dict[str, str]:
    """Storage column → aggregation kind, for every feature and output column, plus ``label``."""
    kinds = {c.name: profile_kind(c.kind) for c in Layout.of(spec).value_columns}
    if spec.label is not None:
        kinds["label"] = profile_kind(spec.label.kind)
    return kinds


CATEGORY_LIMIT = 100
MAX_CATEGORY_LIMIT = 1000


@dataclass(frozen=True)
class ColumnPlan:
    column: str  # storage column (f:age, o:proba:churn)
    kind: str  # numeric | categorical | boolean | text | embedding
    edges: tuple[float, ...] | None = None
    shift: float = 0.0
    categories: tuple[str, ...] | None = None  # known categories (spec or reference), for engines that need them
    range: tuple[float, float] | None = None  # the spec's allowed range: values outside are counted

    @property
    def category_limit(self) -> int | None:
        """How many categories a window keeps per categorical column: the rest are counted together under
        ``OTHER``, alike in every engine (Elasticsearch's ``terms`` aggregation returns only that many).

        At least :data:`CATEGORY_LIMIT`, more when the spec or the reference knows more, at most
        :data:`MAX_CATEGORY_LIMIT`; None for other kinds (booleans have two).

        >>> wide = ColumnPlan("f:c", "categorical", categories=tuple(map(str, range(300))))
        >>> [c.category_limit for c in (ColumnPlan("f:c", "categorical"), wide, ColumnPlan("f:b", "boolean"))]
        [100, 300, None]
        """
        if self.kind != "categorical":
            return None
        return min(MAX_CATEGORY_LIMIT, max(CATEGORY_LIMIT, len(self.categories or ())))

    @property
    def feature(self) -> str:
        """The spec name: ``age`` for ``f:age``, ``proba.churn`` for ``o:proba:churn``."""
        prefix, _, rest = self.column.partition(":")
        return rest.replace(":", ".") if prefix in ("f", "o") else self.column

    @property
    def is_output(self) -> bool:
        """A model output (``o:...``) rather than a feature (``f:...``)."""
        return self.column.startswith("o:")

    @property
    def invalid_key(self) -> str:
        """How a type error on this column is named in the event's ``invalid`` list."""
        prefix, _, rest = self.column.partition(":")
        if prefix == "o":
            return "outputs." + rest.split(":")[0]
        return rest


@dataclass(frozen=True)
class TransformPlan:
    model: str
    window: str
    window_seconds: float
    columns: tuple[ColumnPlan, ...]
    latency_edges: tuple[float, ...] = LATENCY_EDGES
    binning_version: str | None = None

    @property
    def id(self) -> str:
        return f"{self.model}-{self.window}"

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever the partials would be computed differently; stored aggregates are then rebuilt.
        (Computed once per plan: a pass compares every plan's with its checkpoint's.)"""
        return hashlib.sha256(orjson.dumps(asdict(self))).hexdigest()[:16]

    def column(self, name: str) -> ColumnPlan:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)


def plan_for(spec: ModelSpec, window: str, binning: ReferenceProfile | None) -> TransformPlan:
    """The plan of ``spec`` for ``window``; numeric bins come from the binning reference, if any."""
    columns = []
    for column, kind in column_kinds(spec).items():
        if column == "label":
            continue  # labels are aggregated by the label partials, joined by request id
        known = binning.columns.get(column) if binning is not None else None
        if kind in ("categorical", "boolean"):
            categories: tuple[str, ...] | None = None
            feature = spec.feature(column[2:]) if column.startswith("f:") else None
            output = spec.output(column[2:]) if column.startswith("o:") else None
            if kind == "boolean":
                categories = ("true", "false")
            elif feature is not None and feature.categories:
                categories = tuple(feature.categories)
            elif output is not None and output.classes:
                categories = tuple(output.classes)
            elif known is not None and known.categories:
                categories = tuple(k for k in known.categories if k != OTHER)
            columns.append(ColumnPlan(column, kind, categories=categories))
        else:
            edges = tuple(known.edges) if known is not None and known.edges is not None else None
            shift = float(known.mean) if known is not None and known.mean is not None else 0.0
            feature = spec.feature(column[2:]) if column.startswith("f:") else None
            allowed = feature.range if feature is not None else None
            columns.append(ColumnPlan(column, kind, edges=edges, shift=shift, range=allowed))
    return TransformPlan(
        model=spec.name,
        window=window,
        window_seconds=parse_duration(window),
        columns=tuple(columns),
        binning_version=binning.version if binning is not None else None,
    )
