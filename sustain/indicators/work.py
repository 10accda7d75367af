"""One model's share of an indicator pass: its windows in, its indicator documents out.

The engine reads the windows a pass must compute, groups them by model and window length into
:class:`ModelWork` units, and hands each unit to :func:`compute_model`, in its own process or in a worker
(:mod:`sustain.indicators.pool`); either way the same code computes the same documents. A unit raises only for
its own model (an indicator plugin that does not load, say): a failing indicator is already an ``error`` value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from sustain.indicators.base import Indicator, IndicatorValue
from sustain.indicators.context import WindowContext, WindowSource, select_columns
from sustain.indicators.defaults import default_indicators
from sustain.indicators.documents import IndicatorDoc
from sustain.indicators.registry import load_module
from sustain.indicators.runner import IndicatorRunner
from sustain.indicators.stats.nulls import NullCache
from sustain.registry import Registry
from sustain.spec import IndicatorSpec, ModelSpec
from sustain.transforms.plan import TransformPlan
from sustain.transforms.profile import ReferenceProfile
from sustain.transforms.window import WindowAggregates


@dataclass
class ModelWork:
    """The windows of one plan (a model and window length) a pass computes, oldest first, and what they need."""

    spec: ModelSpec
    plan: TransformPlan
    windows: list[WindowAggregates]
    partial: list[bool]  # per window: not final yet (its documents say so; it is computed again once final)
    profiles: dict[str, ReferenceProfile] = field(default_factory=dict)  # by reference version
    binning: ReferenceProfile | None = None  # for versions without a reference of their own
    # Read with the windows: the window before each one (None: it has no events), for ``ctx.history(1)``.
    before: dict[tuple[str, datetime], WindowAggregates | None] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.spec.name


def indicator_specs(spec: ModelSpec, registry: Registry[type[Indicator]] | None = None) -> list[IndicatorSpec]:
    """The indicators ``spec`` asks for (its plugins loaded first), or the defaults."""
    for module in spec.plugins:
        load_module(module, registry)
    return spec.indicators if spec.indicators is not None else default_indicators(spec)


def window_seed(model: str, window: WindowAggregates) -> int:
    """The seed of a window's random draws: the same for every computation of that window, anywhere."""
    text = f"{model}|{window.version}|{window.window}|{window.start.isoformat()}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def compute_model(
    work: ModelWork,
    runner: IndicatorRunner,
    source: WindowSource | None,
    *,
    registry: Registry[type[Indicator]] | None = None,
    nulls: NullCache | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[IndicatorDoc]:
    """The documents of every window of ``work``, in window order (stateful indicators see them in turn).

    Each document keeps ``freshness``: how many seconds after the window's last event it was computed."""
    specs = indicator_specs(work.spec, registry)
    spec, plan = work.spec, work.plan
    if source is not None and work.before:
        source = _Prefetched(source, work)
    docs: list[IndicatorDoc] = []
    shared = [c.column for c in plan.columns if c.kind in SHARED_KINDS]
    for window, partial in zip(work.windows, work.partial, strict=True):
        reference = work.profiles.get(window.version) or work.binning
        window_source = None if source is None else WindowSample(source, window, shared)
        computed: dict[str, list[IndicatorValue]] = {}
        for ind in specs:
            if ind.windows is not None and plan.window not in ind.windows:
                continue
            ctx = WindowContext(
                spec=spec,
                plan=plan,
                window=window,
                reference=reference,
                columns=select_columns(spec, plan, ind.features),
                source=window_source,
                seed=window_seed(spec.name, window),
                values=computed,
                partial=partial,
                nulls=nulls,
            )
            values = runner.run(spec, ind, ctx)
            computed[ind.id] = values
            at = now()
            last = window.last_event or min(window.end, at)
            freshness = max(0.0, (at - last).total_seconds())
            for value in values:
                doc = IndicatorDoc.of(
                    value,
                    model=spec.name,
                    version=window.version,
                    indicator=ind.id,
                    type=ind.type,
                    window=plan.window,
                    start=window.start,
                    end=window.end,
                    partial=partial,
                    computed_at=at,
                    freshness=freshness,
                )
                if reference is not None and value.details is not None:
                    doc.details.setdefault("reference_version", reference.version)
                docs.append(doc)
    return docs


class _Prefetched:
    """A unit's window source: the window before each window of the unit comes from what the engine read with
    them (one query for the pass instead of one per window); everything else from the engine's source."""

    def __init__(self, source: WindowSource, work: ModelWork) -> None:
        self._source = source
        self._plan = work.plan
        self._before = dict(work.before)
        for window in work.windows:  # a unit's windows are each other's history too
            self._before[(window.version, window.start)] = window

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        key = (version, before - timedelta(seconds=plan.window_seconds))
        if count == 1 and plan == self._plan and key in self._before:
            found = self._before[key]
            return [] if found is None else [found]
        return self._source.history(plan, version, before, count)

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        return self._source.sample(model, version, start, end, columns, n, seed)

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        return self._source.labelled(model, version, start, end, columns)

    def __getattr__(self, name: str) -> Any:  # sample_labelled, when the engine's source has it
        return getattr(self._source, name)


SHARED_KINDS = frozenset({"numeric", "categorical", "boolean"})  # small values: worth reading once for all


class WindowSample:
    """One window's source: a sample that holds the whole window is drawn once for every indicator asking.

    A reservoir of ``n`` rows over a window of fewer rows holds all of them, in an order that depends neither on
    ``n`` nor on the columns read (the embedded store's reservoir; tested). Drift (up to 1,000 rows, numbers) and
    multivariate drift (up to 2,000 rows, numbers and categories) would read the same rows twice: the first
    request reads every column in ``shared`` as well, and a later one with the same seed, whose ``n`` also exceeds
    the rows drawn, takes its columns from that draw. Anything else goes to the source unchanged.
    """

    def __init__(self, source: WindowSource, window: WindowAggregates, shared: Sequence[str]) -> None:
        self._source = source
        self._window = window
        self._shared = list(shared)
        self._drawn: tuple[int, pa.Table] | None = None  # seed, every row of the window

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        w = self._window
        if (model, version, start, end) != (w.model, w.version, w.start, w.end) or len(set(columns)) != len(columns):
            return self._source.sample(model, version, start, end, columns, n, seed)
        if self._drawn is not None:
            drawn_seed, table = self._drawn
            if drawn_seed == seed and n > table.num_rows and set(columns) <= set(table.column_names):
                return table.select(list(columns))
            return self._source.sample(model, version, start, end, columns, n, seed)
        if w.rows >= n:  # the reservoir will be full: its draw depends on n
            return self._source.sample(model, version, start, end, columns, n, seed)
        wanted = list(dict.fromkeys([*columns, *self._shared]))
        table = self._source.sample(model, version, start, end, wanted, n, seed)
        if table.num_rows < n:  # not full (no event arrived since the window was folded): the whole window
            self._drawn = (seed, table)
        return table.select(list(columns))

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        return self._source.history(plan, version, before, count)

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        return self._source.labelled(model, version, start, end, columns)

    def __getattr__(self, name: str) -> Any:  # sample_labelled, when the source has it
        return getattr(self._source, name)
