"""What an indicator sees: one window's aggregates, the reference profile, and narrow accessors.

Indicators never query a store. The engine hands them a :class:`WindowContext`
whose data came from whichever engine ran the transforms; bounded samples,
earlier windows and joined labels are fetched through :class:`WindowSource`
only when an indicator asks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from sustain.spec import ModelSpec
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
