"""The engine: transforms, then indicators, then alerting, on a schedule, over a store.

Every ``transform_interval`` the checkpointed transforms fold new events into
window partials and note which windows changed; every ``indicator_interval``
the indicators of the spec run on those windows and their documents are
written back. A failing indicator (a plugin that raises, returns garbage or is
slow) is recorded as an indicator error and never stops the engine.

Models are isolated from each other: whatever fails for one model (a transform,
its indicators, profiling its reference) is recorded on that model
(:meth:`Engine.model_failures`, shown by ``/readyz`` and the dashboard overview)
and the other models carry on. The failure clears once that stage succeeds again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sustain.errors import PluginError, SustainError
from sustain.indicators.base import Indicator, IndicatorValue
from sustain.indicators.context import WindowContext, WindowSource, select_columns
from sustain.indicators.defaults import default_indicators
from sustain.indicators.documents import IndicatorDoc, IndicatorStore
from sustain.indicators.registry import load_module
from sustain.indicators.runner import IndicatorRunner
from sustain.registry import Registry
from sustain.spec import IndicatorSpec, ModelSpec
from sustain.store.base import Store
from sustain.transforms.plan import TransformPlan
from sustain.transforms.protocols import Retainer, Transformer, WindowStore
from sustain.transforms.references import profile_reference
from sustain.transforms.runner_report import RetentionReport, RunReport
from sustain.transforms.window import WindowAggregates

log = logging.getLogger("sustain.engine")

# Windows recomputed at start-up and after a rebuild, per plan: enough for dashboards and alert rules.
RECENT_WINDOWS = 48

DocsListener = Callable[[list[IndicatorDoc]], None]


class Ownership(Protocol):
    """Which models this engine computes, when several engines (service replicas) share one store."""

    def owns(self, model: str) -> bool:
        """Whether this engine computes ``model`` now (called every transform run: it may renew a lease)."""

    def release(self) -> None:
        """Give up every model at once, so another replica takes over without waiting (on stop)."""


@dataclass
class EngineStats:
    transform_runs: int = 0
    indicator_runs: int = 0
    documents: int = 0
    indicator_errors: int = 0
    last_error: str | None = None
    last_transform_seconds: float = 0.0
    last_indicator_seconds: float = 0.0


@dataclass
class ModelFailure:
    """The latest failure of one stage (transforms, indicators, reference) of one model."""

    model: str
    stage: str
    message: str
    since: datetime
    last: datetime
    count: int = 1

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "error": self.message,
            "since": self.since.isoformat(),
            "last": self.last.isoformat(),
            "count": self.count,
        }


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, SustainError) else f"{type(exc).__name__}: {exc}"


@dataclass
class _Dirty:
    plan: TransformPlan
    windows: set[tuple[str, datetime]] = field(default_factory=set)
    open: set[tuple[str, datetime]] = field(default_factory=set)  # computed while still open: redo once closed


class Engine:
    """Schedules transforms → indicators (→ alerting, via listeners) over a backend's parts.

    A backend builds it (:meth:`sustain.backends.base.Backend.engine`): the embedded one with SQL transforms
    and DuckDB tables, the Elasticsearch one with continuous transforms and indices."""

    def __init__(
        self,
        store: Store,
        *,
        windows: WindowStore,
        runner: Transformer,
        documents: IndicatorStore,
        source: WindowSource,
        transform_interval: float = 10.0,
        indicator_interval: float = 30.0,
        indicator_timeout: float = 30.0,
        retention: Retainer | None = None,
        retention_interval: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: Registry[type[Indicator]] | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        """``ownership``, when given, limits this engine to the models it holds (one writer per model among
        replicas); without it the engine computes every model of the store."""
        self.store = store
        self.windows = windows
        self.runner = runner
        self.documents = documents
        self.source = source
        self.transform_interval = transform_interval
        self.indicator_interval = indicator_interval
        self.retention = retention
        self.retention_interval = retention_interval
        self.clock = clock
        self.stats = EngineStats()
        self.listeners: list[DocsListener] = []
        self._dirty: dict[str, _Dirty] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry = registry
        self.indicators = IndicatorRunner(documents, timeout=indicator_timeout, registry=registry)
        self._started = False
        self.ownership = ownership
        self._owned: set[str] = set()
        # Events up to this time are folded into the windows: the start of the last transform run, less the
        # runner's own lag (an Elasticsearch transform's sync delay). A window is final once its end plus the
        # model's late-arrival delay is before it.
        self._settled: datetime | None = None
        self._late: dict[str, float] = {}
        self._failures: dict[tuple[str, str], ModelFailure] = {}

    # -- per-model failures ---------------------------------------------------------------------
    def model_failures(self) -> dict[str, list[dict[str, object]]]:
        """Every model with a stage that failed at its latest run: model -> [{stage, error, since, ...}]."""
        out: dict[str, list[dict[str, object]]] = {}
        for (model, _), failure in sorted(self._failures.items()):
            out.setdefault(model, []).append(failure.to_json())
        return out

    def _failed(self, model: str, stage: str, exc: BaseException) -> None:
        now = self.clock()
        message = _describe(exc)
        known = self._failures.get((model, stage))
        if known is None:
            self._failures[(model, stage)] = ModelFailure(model, stage, message, now, now)
            log.error("model %s: %s failed (the other models carry on): %s", model, stage, message, exc_info=exc)
        else:
            known.message, known.last, known.count = message, now, known.count + 1
            log.warning("model %s: %s failed again (%d times): %s", model, stage, known.count, message)
        self.stats.last_error = f"{model}: {stage}: {message}"

    def _succeeded(self, model: str, stage: str) -> None:
        if self._failures.pop((model, stage), None) is not None:
            log.info("model %s: %s runs again", model, stage)

    # -- references ---------------------------------------------------------------------------
    def on_reference(self, model: str, version: str) -> None:
        """Profile a newly uploaded reference (the collector calls this after storing it). A failure is
        recorded on the model and raised as a :class:`PluginError` naming it."""
        spec = self._spec(model)
        try:
            profile_reference(self.store, self.windows, spec, version)
        except Exception as exc:
            self._failed(model, "reference", exc)
            what = f"profiling the reference of {model!r} version {version!r} failed"
            raise PluginError(f"{what}: {_describe(exc)}") from exc
        self._succeeded(model, "reference")
        # Profiles feed the plans: a change of bins makes the next transform run rebuild the windows.
        with self._lock:
            for plan in self.runner.plans(spec):
                self._mark_recent(plan)

    # -- transforms ---------------------------------------------------------------------------
    def run_transforms(self, specs: Iterable[ModelSpec] | None = None) -> list[RunReport]:
        started = time.perf_counter()
        settled = self.clock() - timedelta(seconds=float(getattr(self.runner, "lag_seconds", 0.0)))
        reports = []
        with self._lock:
            for spec in specs if specs is not None else self.store.list_specs():
                if self.ownership is not None and not self.ownership.owns(spec.name):
                    self._owned.discard(spec.name)
                    continue
                taken = spec.name not in self._owned  # first run, or a model taken over from another replica
                self._owned.add(spec.name)
                self._late[spec.name] = spec.late_arrival_seconds
                try:
                    reports.extend(self._transform(spec, taken))
                except Exception as exc:  # this model's failure, recorded on it; the others carry on
                    self._failed(spec.name, "transforms", exc)
                else:
                    self._succeeded(spec.name, "transforms")
            self._started = True
            self._settled = settled
        self.stats.transform_runs += 1
        self.stats.last_transform_seconds = time.perf_counter() - started
        return reports

    def _transform(self, spec: ModelSpec, taken: bool) -> list[RunReport]:
        reports = []
        for plan in self.runner.plans(spec):
            report = self.runner.run_plan(plan)
            reports.append(report)
            dirty = self._dirty.setdefault(plan.id, _Dirty(plan))
            dirty.plan = plan
            if report.rebuilt or not self._started or taken:
                self._mark_recent(plan, report.rebuilt_from)
            dirty.windows.update(report.touched)
        return reports

    def _mark_recent(self, plan: TransformPlan, kept_from: datetime | None = None) -> None:
        since = self.clock() - timedelta(seconds=plan.window_seconds * RECENT_WINDOWS)
        if kept_from is not None:  # older windows were not rebuilt: their indicators stand as computed
            since = max(since, kept_from)
        dirty = self._dirty.setdefault(plan.id, _Dirty(plan))
        dirty.plan = plan
        dirty.windows.update(self.windows.window_buckets(plan, since=since))

    # -- indicators ---------------------------------------------------------------------------
    def indicator_specs(self, spec: ModelSpec) -> list[IndicatorSpec]:
        for module in spec.plugins:
            load_module(module, self.registry)
        return spec.indicators if spec.indicators is not None else default_indicators(spec)

    def final(self, plan: TransformPlan, start: datetime) -> bool:
        """Whether the window of ``plan`` starting at ``start`` is final: its end plus the model's late-arrival
        delay is before the last transform run, so every event that arrived in time is in it."""
        if self._settled is None:
            return False
        end = start + timedelta(seconds=plan.window_seconds + self._late.get(plan.model, 0.0))
        return end <= self._settled

    def run_indicators(self) -> list[IndicatorDoc]:
        started = time.perf_counter()
        with self._lock:
            for d in self._dirty.values():
                closed = {k for k in d.open if self.final(d.plan, k[1])}
                d.windows |= closed
                d.open -= closed
            if self.ownership is not None:  # windows of models another replica computes now are its work
                for d in self._dirty.values():
                    if d.plan.model not in self._owned:
                        d.windows.clear()
                        d.open.clear()
            work = [(d.plan, sorted(d.windows, key=lambda k: k[1])) for d in self._dirty.values() if d.windows]
            for plan, keys in work:
                dirty = self._dirty[plan.id]
                dirty.windows.clear()
                dirty.open |= {k for k in keys if not self.final(plan, k[1])}  # computed early: redo once final
        docs: list[IndicatorDoc] = []
        failed: set[str] = set()
        for plan, keys in work:
            spec = self.store.get_spec(plan.model)
            if spec is None:
                continue
            try:
                docs.extend(self._compute_windows(spec, plan, keys))
            except Exception as exc:  # this model's failure: its windows wait for the next run, the rest go on
                self._failed(plan.model, "indicators", exc)
                failed.add(plan.model)
                with self._lock:
                    self._dirty[plan.id].windows.update(keys)
        for model in {plan.model for plan, _ in work} - failed:
            self._succeeded(model, "indicators")
        self.documents.put(docs)
        self.indicators.save_states()
        self.stats.indicator_runs += 1
        self.stats.indicator_errors = self.indicators.stats.errors
        self.stats.documents += len(docs)
        self.stats.last_indicator_seconds = time.perf_counter() - started
        for listener in self.listeners:
            try:
                listener(docs)
            except Exception as exc:  # alerting must not stop indicators
                self.stats.last_error = f"listener failed: {exc!r}"
                log.exception("an indicator listener failed")
        return docs

    def _compute_windows(
        self, spec: ModelSpec, plan: TransformPlan, keys: list[tuple[str, datetime]]
    ) -> list[IndicatorDoc]:
        since = min(b for _, b in keys)
        wanted = set(keys)
        windows = [w for w in self.windows.read_windows(plan, since=since) if (w.version, w.start) in wanted]
        indicator_specs = self.indicator_specs(spec)  # a plugin that does not load fails this model only
        binning = self.windows.binning_profile(spec)
        profiles = {p.version: p for p in self.windows.list_profiles(spec.name)}
        docs: list[IndicatorDoc] = []
        for window in windows:
            partial = not self.final(plan, window.start)
            reference = profiles.get(window.version) or binning
            computed: dict[str, list[IndicatorValue]] = {}
            for ind in indicator_specs:
                if ind.windows is not None and plan.window not in ind.windows:
                    continue
                ctx = WindowContext(
                    spec=spec,
                    plan=plan,
                    window=window,
                    reference=reference,
                    columns=select_columns(spec, plan, ind.features),
                    source=self.source,
                    seed=_seed(spec.name, window),
                    values=computed,
                    partial=partial,
                )
                values = self.indicators.run(spec, ind, ctx)
                computed[ind.id] = values
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
                    )
                    if reference is not None and value.details is not None:
                        doc.details.setdefault("reference_version", reference.version)
                    docs.append(doc)
        return docs

    # -- retention ----------------------------------------------------------------------------
    def run_retention(self) -> list[RetentionReport]:
        """One retention sweep of every model (raw events, labels and dedup ids past their horizons)."""
        if self.retention is None:
            return []
        reports = []
        now = self.clock()
        for spec in self.store.list_specs():
            if self.ownership is not None and spec.name not in self._owned:
                continue  # another replica computes this model: its retention is that replica's work
            try:
                with self._lock:  # never between a transform's read of the events and its checkpoint
                    report = self.retention.sweep(spec, now)
            except Exception as exc:
                self._failed(spec.name, "retention", exc)
                continue
            self._succeeded(spec.name, "retention")
            reports.append(report)
            if report.events or report.labels:
                log.info("model %s: retention deleted %d events and %d labels", spec.name, report.events, report.labels)
        return reports

    # -- schedule -----------------------------------------------------------------------------
    def step(self) -> list[IndicatorDoc]:
        """One transform run then one indicator run (tests and one-shot commands)."""
        self.run_transforms()
        return self.run_indicators()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sustain-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.indicators.close()
        if self.ownership is not None:
            self.ownership.release()

    def _loop(self) -> None:
        next_transform = next_indicators = time.monotonic()
        next_retention = next_transform + self.retention_interval
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_transform:
                    self.run_transforms()
                    next_transform = now + self.transform_interval
                if now >= next_indicators:
                    self.run_indicators()
                    next_indicators = now + self.indicator_interval
                if now >= next_retention:
                    self.run_retention()
                    next_retention = now + self.retention_interval
            except Exception as exc:  # keep the schedule whatever happens; the error is visible in stats
                self.stats.last_error = repr(exc)
                log.exception("engine step failed; retrying at the next interval")
                next_transform = max(next_transform, now + self.transform_interval)
                next_indicators = max(next_indicators, now + self.indicator_interval)
            self._stop.wait(max(0.01, min(next_transform, next_indicators, next_retention) - time.monotonic()))

    def _spec(self, model: str) -> ModelSpec:
        spec = self.store.get_spec(model)
        if spec is None:
            from sustain.errors import NotFound

            raise NotFound(f"model {model!r} is not registered")
        return spec


def _seed(model: str, window: WindowAggregates) -> int:
    text = f"{model}|{window.version}|{window.window}|{window.start.isoformat()}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")
