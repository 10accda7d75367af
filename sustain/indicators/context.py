"""What an indicator sees: one window's aggregates, the reference profile, and narrow accessors.

Indicators never query a store. The engine hands them a :class:`WindowContext`
whose data came from whichever engine ran the transforms; bounded samples,
earlier windows and joined labels are fetched through :class:`WindowSource`
only when an indicator asks for them.

A plugin reads rows under the spec's own names with :meth:`WindowContext.rows`
and :meth:`WindowContext.reference_rows` (see :mod:`sustain.indicators.rows`)::

    window = ctx.rows(2000)               # window.n of window.total events, seeded
    frame = window.frame()                # pandas: age, plan, prediction, proba.no, proba.yes, label
    scores = window.scores("proba")       # NumPy: n x classes
    before = ctx.reference_rows().frame()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from sustain.indicators.rows import LABEL, Rows
from sustain.indicators.stats.nulls import NullCache
from sustain.spec import ModelSpec
from sustain.store.layout import Layout
from sustain.transforms.plan import ColumnPlan, TransformPlan
from sustain.transforms.profile import ReferenceProfile
from sustain.transforms.window import WindowAggregates


class WindowSource(Protocol):
    """Engine-specific access to more than the aggregates."""

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        """Up to ``n`` events of the window, chosen at random (reproducibly for a seed)."""

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        """Up to ``count`` windows of the same plan and version before ``before``, oldest first."""

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        """The window's events that have a label: the requested columns plus ``label`` (issue: label metrics)."""

    def sample_labelled(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        """The events :meth:`sample` draws for the same arguments, in its order, plus ``label`` (null if none yet).

        Optional for a third-party source: without it, :meth:`WindowContext.rows` has no label column.
        """


@dataclass
class WindowContext:
    spec: ModelSpec
    plan: TransformPlan
    window: WindowAggregates
    reference: ReferenceProfile | None
    columns: list[ColumnPlan]
    source: WindowSource | None = None
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)  # earlier indicators' values for this window, by id
    partial: bool = False  # the window is not final yet: open, or within the model's late-arrival delay
    nulls: NullCache | None = None  # null distributions drawn once and shared (the engine's calibration cache)

    @property
    def version(self) -> str:
        return self.window.version

    def sample(self, columns: Sequence[str], n: int) -> pa.Table:
        if self.source is None:
            return pa.table({c: pa.array([], pa.null()) for c in columns})
        w = self.window
        return self.source.sample(w.model, w.version, w.start, w.end, columns, n, self.seed)

    def history(self, count: int) -> list[WindowAggregates]:
        if self.source is None:
            return []
        return self.source.history(self.plan, self.version, self.window.start, count)

    def labelled(self, columns: Sequence[str]) -> pa.Table:
        if self.source is None:
            return pa.table({c: pa.array([], pa.null()) for c in [*columns, "label"]})
        w = self.window
        return self.source.labelled(w.model, w.version, w.start, w.end, columns)

    def rows(self, n: int = 2000, names: Sequence[str] | None = None, *, labels: bool = True) -> Rows:
        """Up to ``n`` of the window's events, drawn at random with ``seed``, under the spec's names.

        ``names`` picks features and outputs (default: the indicator's columns, ``ctx.columns``). The joined
        label is the ``label`` column when the spec declares one and ``labels`` is true. The result says how
        many rows it holds of how many the window has (``rows.n``, ``rows.total``, ``rows.sampled``).
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        columns = self._storage_columns(names)
        w = self.window
        joined = getattr(self.source, "sample_labelled", None) if labels and self.spec.label is not None else None
        if self.source is None:
            table = pa.table({c: pa.array([], pa.null()) for c in columns})
        elif joined is not None:
            table = joined(w.model, w.version, w.start, w.end, columns, n, self.seed)
        else:
            table = self.sample(columns, n)
        return Rows.from_table(self.spec, table, of="window", total=w.rows)

    def reference_rows(self, names: Sequence[str] | None = None, *, labels: bool = True) -> Rows:
        """The reference's bounded sample (kept when its profile was built) under the spec's names.

        No rows (``n == 0``, ``total == 0``) when the model has no reference yet.
        """
        columns = self._storage_columns(names)
        if labels and self.spec.label is not None:
            columns.append(LABEL)
        reference = self.reference
        sample = reference.sample if reference is not None else {}
        size = len(next(iter(sample.values()))) if sample else 0
        present = {c: sample.get(c, [None] * size) for c in columns}
        return Rows.from_columns(self.spec, present, of="reference", total=reference.rows if reference else 0)

    def _storage_columns(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return [c.column for c in self.columns]
        layout = Layout.of(self.spec)
        known = dict.fromkeys(c.key for c in layout.value_columns)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise KeyError(f"{', '.join(map(repr, unknown))}: not a feature or output of {self.spec.name!r}")
        wanted = set(names)
        return [c.name for c in layout.value_columns if c.key in wanted]


def select_columns(spec: ModelSpec, plan: TransformPlan, names: Sequence[str] | None) -> list[ColumnPlan]:
    """The plan's columns for feature/output names (all when ``names`` is None).

    >>> from sustain.spec import ModelSpec
    >>> from sustain.transforms.plan import plan_for
    >>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric", "y": "numeric"},
    ...     "outputs": {"p": {"kind": "class_scores", "classes": ["a", "b"]}}})
    >>> [c.column for c in select_columns(spec, plan_for(spec, "1h", None), ["x", "p"])]
    ['f:x', 'o:p:a', 'o:p:b']
    """
    if names is None:
        return list(plan.columns)
    wanted = set(names)
    chosen = []
    for col in plan.columns:
        _, _, rest = col.column.partition(":")
        base = rest.split(":")[0]
        if base in wanted:
            chosen.append(col)
    return chosen
