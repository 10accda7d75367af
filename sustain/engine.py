"""The engine: transforms, then indicators, then alerting, on a schedule, over a store.

A *pass* folds new events into window partials (the transforms, checkpointed), then computes the indicators of
the windows that changed and writes their documents back, then tells the listeners (alerting). Work follows the
data, not the number of models:

* the transforms run only for plans with events or labels their checkpoints have not seen, all of them in one
  batch when the backend can (:meth:`~sustain.transforms.protocols.Transformer.run_plans`): an idle model costs
  next to nothing;
* a window is computed when it changed; windows that became final (closed) are computed at the first pass
  after, oldest first, ahead of open ones, which are recomputed (``partial`` documents) only every
  ``indicator_interval``; the loop wakes when a window becomes final;
* on its own schedule (:meth:`Engine.start`) the transforms and the indicators run on two threads, so the next
  events are folded while the indicators of the windows that just became final compute;
* the windows a pass computes are read at once, each model's indicators are computed as one unit (in worker
  processes when the pass is large, see :mod:`sustain.indicators.pool`), and every document of the pass is
  written in one store write;
* calibrated drift reads null distributions from a cache drawn once per reference, window-size bucket and
  distance (:mod:`sustain.indicators.stats.nulls`), kept in the store across restarts.

Each pass times its phases (:data:`PHASES`, in :attr:`EngineStats.phases`), counts the models it processed,
and every document keeps its freshness (seconds from its window's last event to its computation); the engine
knows how far behind each model is (:meth:`Engine.lags`). A failing indicator (a plugin that raises, returns
garbage or is slow) is recorded as an indicator error.

A window is *final* once its end plus the model's ``late_arrival`` delay is before the start of the last
transform run (less the runner's own lag): every event that arrived in time is in it (:meth:`Engine.final`).
Documents of windows that are not final yet are ``partial``; alert rules judge final windows only.

Models are isolated from each other: whatever fails for one model (a transform, its indicators, profiling its
reference, retention) is recorded on that model (:meth:`Engine.model_failures`, shown by ``/readyz`` and the
dashboard overview) and the other models carry on. The failure clears once that stage succeeds again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sustain.errors import PluginError, SustainError
from sustain.indicators.base import Indicator
from sustain.indicators.context import WindowSource
from sustain.indicators.documents import IndicatorDoc, IndicatorStore
from sustain.indicators.pool import Computer, InProcess, WorkerPool
from sustain.indicators.runner import IndicatorRunner
from sustain.indicators.stats.nulls import DEFAULT_ENTRIES, NullCache, NullStore
from sustain.indicators.work import ModelWork, indicator_specs
from sustain.registry import Registry
from sustain.spec import IndicatorSpec, ModelSpec
from sustain.store.base import Store
from sustain.transforms.plan import TransformPlan
from sustain.transforms.protocols import Retainer, Transformer, WindowStore
from sustain.transforms.references import profile_reference
from sustain.transforms.runner_report import RetentionReport, RunReport

log = logging.getLogger("sustain.engine")

# Windows recomputed at start-up and after a rebuild, per plan: enough for dashboards and alert rules.
RECENT_WINDOWS = 48

# The phases of a pass, in order: what ``sustain_engine_phase_seconds{phase}`` reports.
PHASES = ("transforms", "read", "indicators", "write", "alerts")

# From this many models in one indicator run on, the run goes to worker processes (when the engine has any).
POOL_FROM_MODELS = 8
# The most of the time transform runs take on their own schedule (windows that become final are folded at once).
TRANSFORM_SHARE = 0.25

DocsListener = Callable[[list[IndicatorDoc]], None]
Key = tuple[str, datetime]  # (version, window start)


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
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))  # the last pass's
    phase_totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    open_passes_deferred: int = 0  # open-window passes put off because a window becomes final before they end
    models_transformed: int = 0  # models with new events or labels in the last transform run
    models_processed: int = 0  # models whose windows the last indicator run computed
    windows_computed: int = 0  # windows the last indicator run computed
    freshness: dict[str, float] = field(default_factory=dict)  # model -> seconds, its newest final window's


@dataclass
class ModelFailure:
    """The latest failure of one stage (transforms, indicators, reference, retention) of one model."""

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
    windows: set[Key] = field(default_factory=set)  # changed since computed
    open: set[Key] = field(default_factory=set)  # computed while not final: computed again once final


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
        workers: int = 0,
        nulls: NullStore | None = None,
        null_entries: int = DEFAULT_ENTRIES,
    ) -> None:
        """``ownership``, when given, limits this engine to the models it holds (one writer per model among
        replicas); without it the engine computes every model of the store. ``workers`` worker processes
        compute the indicators of large passes (0: always in this process). ``nulls`` keeps the calibration
        cache across restarts; each process keeps at least ``null_entries`` null distributions in memory,
        more when its models need more (:meth:`~sustain.indicators.stats.nulls.NullCache.fit`)."""
        self.store = store
        self.windows = windows
        self.runner = runner
        self.documents = documents
        self.source = source
        self.transform_interval = transform_interval
        self.indicator_interval = indicator_interval
        self.indicator_timeout = indicator_timeout
        self.retention = retention
        self.retention_interval = retention_interval
        self.clock = clock
        self.stats = EngineStats()
        self.listeners: list[DocsListener] = []
        self._dirty: dict[str, _Dirty] = {}
        self._lock = threading.RLock()  # the windows to compute (``_dirty``); plans change under both locks
        # One transform run, a retention sweep or a plan change at a time: a sweep must never delete events
        # between a transform's read of them and its checkpoint. The indicator thread does not wait for it.
        self._transform_lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # transforms and retention
        self._indicator_thread: threading.Thread | None = None
        self._due = threading.Event()  # a transform run ended: the indicator thread has work to look at
        self.registry = registry
        self.indicators = IndicatorRunner(documents, timeout=indicator_timeout, registry=registry)
        self.nulls = NullCache(nulls, max_entries=null_entries)
        self.workers = workers
        self._pool: WorkerPool | None = None
        self._in_process = InProcess(self.indicators, source, registry=registry, nulls=self.nulls)
        self._started = False
        self.ownership = ownership
        self._owned: set[str] = set()
        self._plans: dict[str, tuple[ModelSpec, object, list[TransformPlan]]] = {}
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
        with self._transform_lock, self._lock:
            self._plans.pop(model, None)
            for plan in self.runner.plans(spec):
                self._mark_recent(plan)

    def plans(self, spec: ModelSpec) -> list[TransformPlan]:
        """The transform plans of ``spec``, remembered while the spec and its binning profile stay the same."""
        binning = self.windows.binning_profile(spec)
        found = self._plans.get(spec.name)
        if found is not None and found[0] is spec and found[1] is binning:
            return found[2]
        plans = self.runner.plans(spec)
        self._plans[spec.name] = (spec, binning, plans)
        return plans

    # -- transforms ---------------------------------------------------------------------------
    def run_transforms(self, specs: Iterable[ModelSpec] | None = None) -> list[RunReport]:
        """Fold new events and labels into the windows of every model this engine computes."""
        with self._phase("transforms") as started:
            settled = self.clock() - timedelta(seconds=float(getattr(self.runner, "lag_seconds", 0.0)))
            with self._transform_lock:
                plans: list[TransformPlan] = []
                taken: set[str] = set()
                failed: set[str] = set()
                running: list[str] = []
                for spec in specs if specs is not None else self.store.list_specs():
                    if self.ownership is not None and not self.ownership.owns(spec.name):
                        self._owned.discard(spec.name)
                        continue
                    if spec.name not in self._owned:  # first run, or a model taken over from another replica
                        taken.add(spec.name)
                    self._owned.add(spec.name)
                    self._late[spec.name] = spec.late_arrival_seconds
                    running.append(spec.name)
                    try:
                        plans.extend(self.plans(spec))
                    except Exception as exc:  # this model's failure, recorded on it; the others carry on
                        self._failed(spec.name, "transforms", exc)
                        failed.add(spec.name)
                batch = self.runner.run_plans(plans)
                for failure in batch.failures:
                    self._failed(failure.plan.model, "transforms", failure.error)
                    failed.add(failure.plan.model)
                by_id = {p.id: p for p in plans}
                busy: set[str] = set()
                with self._lock:
                    for report in batch.reports:
                        plan = by_id[report.transform]
                        try:
                            self._note_report(plan, report, plan.model in taken)
                        except Exception as exc:
                            self._failed(plan.model, "transforms", exc)
                            failed.add(plan.model)
                        if report.events or report.touched:
                            busy.add(plan.model)
                for model in running:
                    if model not in failed:
                        self._succeeded(model, "transforms")
                self._started = True
                self._settled = settled
            self.stats.models_transformed = len(busy)
        self.stats.transform_runs += 1
        self.stats.last_transform_seconds = time.perf_counter() - started
        return batch.reports

    def _note_report(self, plan: TransformPlan, report: RunReport, taken: bool) -> None:
        """Remember the windows a transform run changed (all recent ones after a rebuild or a take-over)."""
        dirty = self._dirty.setdefault(plan.id, _Dirty(plan))
        dirty.plan = plan
        if report.rebuilt or not self._started or taken:
            self._mark_recent(plan, report.rebuilt_from)
        dirty.windows.update(report.touched)

    def _mark_recent(self, plan: TransformPlan, kept_from: datetime | None = None) -> None:
        since = self.clock() - timedelta(seconds=plan.window_seconds * RECENT_WINDOWS)
        if kept_from is not None:  # older windows were not rebuilt: their indicators stand as computed
            since = max(since, kept_from)
        dirty = self._dirty.setdefault(plan.id, _Dirty(plan))
        dirty.plan = plan
        dirty.windows.update(self.windows.window_buckets(plan, since=since))

    # -- indicators ---------------------------------------------------------------------------
    def indicator_specs(self, spec: ModelSpec) -> list[IndicatorSpec]:
        return indicator_specs(spec, self.registry)

    def final(self, plan: TransformPlan, start: datetime) -> bool:
        """Whether the window of ``plan`` starting at ``start`` is final: its end plus the model's late-arrival
        delay is before the last transform run, so every event that arrived in time is in it."""
        if self._settled is None:
            return False
        return self._final_at(plan, start) <= self._settled

    def _final_at(self, plan: TransformPlan, start: datetime) -> datetime:
        """When the window becomes final: its end plus the model's late-arrival delay (on the settled clock)."""
        return start + timedelta(seconds=plan.window_seconds + self._late.get(plan.model, 0.0))

    def run_indicators(self, *, open_windows: bool = True) -> list[IndicatorDoc]:
        """Compute the windows that changed: those that became final, and (``open_windows``) open ones."""
        started = time.perf_counter()
        with self._lock:
            work = self._take(open_windows)
        with self._phase("read"):
            units = self._units(work)
        with self._phase("indicators"):
            outcomes = self._computer(len(units)).run([u for u, _ in units])
        docs: list[IndicatorDoc] = []
        computed: set[str] = set()
        for (unit, keys), outcome in zip(units, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # this model's failure: its windows wait for the next run
                self._failed(unit.model, "indicators", outcome)
                with self._lock:
                    self._dirty[unit.plan.id].windows.update(keys)
                continue
            self._succeeded(unit.model, "indicators")
            docs.extend(outcome)
            computed.add(unit.model)
        with self._phase("write"):
            self.documents.put(docs)
            self._save_states(computed)
        self._note_freshness(docs)
        self.stats.indicator_runs += 1
        self.stats.indicator_errors = self.indicators.stats.errors + self._pool_errors()
        self.stats.documents += len(docs)
        self.stats.models_processed = len(computed)
        self.stats.windows_computed = sum(len(u.windows) for u, _ in units)
        with self._phase("alerts"):
            for listener in self.listeners:
                try:
                    listener(docs)
                except Exception as exc:  # alerting must not stop indicators
                    self.stats.last_error = f"listener failed: {exc!r}"
                    log.exception("an indicator listener failed")
        self.stats.last_indicator_seconds = time.perf_counter() - started
        return docs

    def _take(self, open_windows: bool) -> list[tuple[TransformPlan, list[Key]]]:
        """The windows this run computes, per plan: plans with final windows first, oldest first."""
        for d in self._dirty.values():
            closed = {k for k in d.open if self.final(d.plan, k[1])}
            d.windows |= closed
            d.open -= closed
        if self.ownership is not None:  # windows of models another replica computes now are its work
            for d in self._dirty.values():
                if d.plan.model not in self._owned:
                    d.windows.clear()
                    d.open.clear()
        work = []
        for d in self._dirty.values():
            due = {k for k in d.windows if open_windows or self.final(d.plan, k[1])}
            if not due:
                continue
            d.windows -= due
            d.open |= {k for k in due if not self.final(d.plan, k[1])}
            work.append((d.plan, sorted(due, key=lambda k: (k[1], k[0]))))
        far = datetime.max.replace(tzinfo=UTC)

        def urgency(item: tuple[TransformPlan, list[Key]]) -> datetime:
            plan, keys = item
            ends = [k[1] for k in keys if self.final(plan, k[1])]
            return min(ends) if ends else far

        return sorted(work, key=urgency)

    def _units(self, work: list[tuple[TransformPlan, list[Key]]]) -> list[tuple[ModelWork, list[Key]]]:
        """The windows of the work read at once, as one unit per plan (with its model's reference profiles)."""
        specs: dict[str, ModelSpec | None] = {}
        wanted: list[tuple[TransformPlan, list[Key]]] = []
        asked: list[tuple[TransformPlan, set[Key]]] = []
        for plan, keys in work:
            if plan.model not in specs:
                specs[plan.model] = self.store.get_spec(plan.model)
            if specs[plan.model] is not None:
                wanted.append((plan, keys))
                step = timedelta(seconds=plan.window_seconds)
                asked.append((plan, {*keys, *((v, start - step) for v, start in keys)}))  # and the one before
        read = self.windows.read_many(asked)
        units = []
        for (plan, keys), found in zip(wanted, read, strict=True):
            computed = set(keys)
            windows = [w for w in found if (w.version, w.start) in computed]
            step = timedelta(seconds=plan.window_seconds)
            known = {(w.version, w.start): w for w in found}
            before = {(v, s - step): known.get((v, s - step)) for v, s in keys}
            spec = specs[plan.model]
            assert spec is not None
            try:
                profiles = {p.version: p for p in self.windows.list_profiles(spec.name)}
                binning = self.windows.binning_profile(spec)
            except Exception as exc:
                self._failed(spec.name, "indicators", exc)
                with self._lock:
                    self._dirty[plan.id].windows.update(keys)
                continue
            partial = [not self.final(plan, w.start) for w in windows]
            units.append((ModelWork(spec, plan, windows, partial, profiles, binning, before), keys))
        return units

    def _computer(self, units: int) -> Computer:
        """Worker processes for a large run (started on the first), this process otherwise. Once started, the
        pool computes every run: the state of stateful indicators lives where they are computed."""
        if self._pool is None and self.workers > 0 and units >= POOL_FROM_MODELS:
            self.indicators.save_states()  # the workers start from the states saved so far
            try:
                self._pool = WorkerPool(
                    self.workers,
                    source=self.source,
                    documents=self.documents,
                    nulls=self.nulls,
                    registry=self.registry,
                    timeout=self.indicator_timeout,
                )
            except Exception as exc:  # e.g. a plugin class the workers cannot import: compute here instead
                self.workers = 0
                self.stats.last_error = f"indicator workers did not start: {exc!r}"
                log.warning("indicator workers did not start (%r); computing in the engine's process", exc)
        return self._pool if self._pool is not None else self._in_process

    def _save_states(self, models: set[str]) -> None:
        new = self.nulls.take_new()
        if self._pool is not None:
            self._pool.save_states(self.documents)
            new += self._pool.take_nulls()
        else:
            self.indicators.save_states(models)
        store = self.nulls.store
        if store is not None and new:
            try:
                store.save_nulls(new)
            except Exception:  # a cache: losing it costs time, not correctness
                log.exception("saving %d null distributions failed", len(new))

    def _pool_errors(self) -> int:
        return self._pool.errors if self._pool is not None else 0

    def _note_freshness(self, docs: list[IndicatorDoc]) -> None:
        """Per model, the freshness of its newest final window computed (what the dashboard ranks)."""
        newest: dict[str, tuple[datetime, float]] = {}
        for doc in docs:
            if doc.partial or doc.freshness is None:
                continue
            known = newest.get(doc.model)
            if known is None or doc.window_end > known[0]:
                newest[doc.model] = (doc.window_end, doc.freshness)
        for model, (_, seconds) in newest.items():
            self.stats.freshness[model] = seconds

    def lags(self) -> dict[str, float]:
        """Per model this engine computes, seconds since its oldest window still to compute became final (its
        end plus the model's late-arrival delay; 0 when it has none)."""
        now = self.clock()
        out = dict.fromkeys(self._owned, 0.0)
        with self._lock:
            for d in self._dirty.values():
                for _, start in d.windows:
                    if self.final(d.plan, start):
                        since = (now - self._final_at(d.plan, start)).total_seconds()
                        out[d.plan.model] = max(out.get(d.plan.model, 0.0), since)
        return out

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
                with self._transform_lock:  # never between a transform's read of the events and its checkpoint
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
    @contextmanager
    def _phase(self, name: str) -> Iterator[float]:
        started = time.perf_counter()
        try:
            yield started
        finally:
            seconds = time.perf_counter() - started
            self.stats.phases[name] = seconds
            self.stats.phase_totals[name] = self.stats.phase_totals.get(name, 0.0) + seconds

    def step(self) -> list[IndicatorDoc]:
        """One transform run then one indicator run of every changed window (tests and one-shot commands)."""
        self.run_transforms()
        return self.run_indicators()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._due.clear()
        self._thread = threading.Thread(target=self._loop, name="sustain-engine", daemon=True)
        self._indicator_thread = threading.Thread(
            target=self._indicator_loop, name="sustain-engine-indicators", daemon=True
        )
        self._thread.start()
        self._indicator_thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._due.set()
        for thread in (self._thread, self._indicator_thread):
            if thread is not None:
                thread.join(timeout)
        self._thread = self._indicator_thread = None
        self.indicators.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self.ownership is not None:
            self.ownership.release()

    def _loop(self) -> None:
        """The transforms: a run every ``transform_interval`` (and when a window becomes final), each followed
        by a wake-up of the indicator thread (:meth:`_indicator_loop`); a retention sweep every
        ``retention_interval``.

        Transforms and indicators run on two threads so that they overlap: while the workers compute the
        windows that just became final, this thread keeps folding the events that keep arriving (a thousand
        models' transforms are a third of a pass; run one after the other, the workers waited for them)."""
        next_pass = time.monotonic()
        next_retention = next_pass + self.retention_interval
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_pass:
                    self.run_transforms()
                    self._due.set()
                    next_pass = self._next_transforms(time.monotonic() - now)
                if now >= next_retention:
                    self.run_retention()
                    next_retention = now + self.retention_interval
            except Exception as exc:  # keep the schedule whatever happens; the error is visible in stats
                self.stats.last_error = repr(exc)
                log.exception("engine pass failed; retrying at the next interval")
                next_pass = now + self.transform_interval
                next_retention = max(next_retention, now + self.retention_interval)
            self._stop.wait(max(0.01, min(next_pass, next_retention) - time.monotonic()))

    def _next_transforms(self, took: float) -> float:
        """When the next transform run starts (monotonic clock), after one that took ``took`` seconds.

        A run costs about the same for two seconds of events as for a minute's (its cost is per model and
        column: a thousand models took 15-30 s either way), so runs are spaced to keep their share of the time
        under :data:`TRANSFORM_SHARE`, and a run that would still be folding when a window becomes final waits
        for that moment instead. A window that becomes final is folded at once whatever the spacing."""
        now = time.monotonic()
        final = self._next_final(now)
        due = now + max(self.transform_interval, took * (1 / TRANSFORM_SHARE - 1))
        return final if due + took > final else due

    def _indicator_loop(self) -> None:
        """Indicators after each transform run (the windows it made final); open windows every
        ``indicator_interval``.

        Final windows come first: they are computed and written before any open window, and an open-window pass
        is put off while it would still run when the next window becomes final (how long the last one took), so
        a busy engine spends itself on the windows alerts are raised on and updates open windows when it can."""
        next_open = time.monotonic()
        open_seconds = 0.0  # how long the last open-window pass took
        while not self._stop.is_set():
            self._due.wait()
            self._due.clear()
            if self._stop.is_set():
                return
            try:
                self.run_indicators(open_windows=False)
                now = time.monotonic()
                if now >= next_open and not self._stop.is_set():
                    if self.open_pass_fits(open_seconds):
                        self.run_indicators(open_windows=True)
                        open_seconds = time.monotonic() - now
                        next_open = now + self.indicator_interval
                    else:
                        self.stats.open_passes_deferred += 1
            except Exception as exc:  # the next transform run wakes this thread again
                self.stats.last_error = repr(exc)
                log.exception("indicator pass failed; retrying after the next transform run")

    def open_pass_fits(self, seconds: float) -> bool:
        """Whether an open-window pass of ``seconds`` would end before the next window with data becomes final."""
        now = time.monotonic()
        return self._next_final(now) - now > seconds

    def _next_final(self, monotonic_now: float) -> float:
        """When (on the monotonic clock) the next window with data becomes final: its end plus the model's
        late-arrival delay plus the runner's own lag."""
        now = self.clock()
        lag = timedelta(seconds=float(getattr(self.runner, "lag_seconds", 0.0)))
        soonest: float | None = None
        with self._lock:
            for d in self._dirty.values():
                for _, start in d.open | d.windows:
                    at = self._final_at(d.plan, start) + lag
                    if at > now:
                        wait = (at - now).total_seconds()
                        soonest = wait if soonest is None else min(soonest, wait)
        return monotonic_now + soonest + 0.05 if soonest is not None else float("inf")

    def _spec(self, model: str) -> ModelSpec:
        spec = self.store.get_spec(model)
        if spec is None:
            from sustain.errors import NotFound

            raise NotFound(f"model {model!r} is not registered")
        return spec
