"""Where the units of an indicator pass are computed: in this process, or in worker processes on every core.

Indicators are Python and NumPy: in one process they take turns on the interpreter lock, so a machine's other
cores sit idle while a thousand models wait. :class:`WorkerPool` runs units (:class:`~sustain.indicators.work.
ModelWork`, one model's windows) in ``workers`` processes, each model always in the same worker (the state of a
stateful indicator lives where it is computed). Only the engine's process touches the store: a worker's samples,
history and labelled rows, its saved states and its calibration cache misses are calls back to the engine over
the worker's pipe, answered by a thread of the engine's process, and its documents, states and newly drawn null
distributions come back with each unit for the engine's single writer. A unit that fails, or whose worker dies,
is that model's failure; a dead worker is replaced for the next unit.

:class:`InProcess` computes the same units in this process (small passes, and engines without workers).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

from sustain.indicators.base import Indicator
from sustain.indicators.context import WindowSource
from sustain.indicators.documents import IndicatorDoc, IndicatorStore
from sustain.indicators.runner import IndicatorRunner
from sustain.indicators.stats.nulls import NullCache, NullSummary
from sustain.indicators.work import ModelWork, compute_model
from sustain.registry import Registry
from sustain.spec import ModelSpec
from sustain.transforms.plan import TransformPlan
from sustain.transforms.profile import ReferenceProfile
from sustain.transforms.window import WindowAggregates

log = logging.getLogger("sustain.indicators.pool")

Outcome = list[IndicatorDoc] | BaseException

SOURCE_CALLS = ("sample", "sample_labelled", "history", "labelled")


class Computer(Protocol):
    """Computes the units of a pass: one outcome per unit, in order (documents, or that model's failure)."""

    def run(self, units: Sequence[ModelWork]) -> list[Outcome]: ...


def single_blas_thread() -> contextlib.AbstractContextManager[object]:
    """One BLAS thread while indicators compute: a multithreaded SVD of a few thousand rows on a busy 2-core
    machine took 150-490 ms against 13 ms on one thread (the threads spin waiting for each other)."""
    from threadpoolctl import threadpool_limits

    limits: contextlib.AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limits


class InProcess:
    """Computes units one after the other in this process."""

    def __init__(
        self,
        runner: IndicatorRunner,
        source: WindowSource | None,
        *,
        registry: Registry[type[Indicator]] | None = None,
        nulls: NullCache | None = None,
    ) -> None:
        self.runner = runner
        self.source = source
        self.registry = registry
        self.nulls = nulls
        self._models: set[str] = set()

    def run(self, units: Sequence[ModelWork]) -> list[Outcome]:
        if self.nulls is not None:
            self._models.update(unit.model for unit in units)
            self.nulls.fit(len(self._models))
        outcomes: list[Outcome] = []
        with single_blas_thread():
            for unit in units:
                try:
                    outcomes.append(
                        compute_model(unit, self.runner, self.source, registry=self.registry, nulls=self.nulls)
                    )
                except Exception as exc:  # this model's failure
                    outcomes.append(exc)
        return outcomes


# -- the wire: what a unit looks like to a worker ------------------------------------------------------------


@dataclass
class _Unit:
    """A unit as sent: the spec and profiles only when the worker has not seen those objects yet."""

    model: str
    plan: TransformPlan
    windows: list[WindowAggregates]
    partial: list[bool]
    profile_versions: list[str]
    binning_version: str | None
    spec: ModelSpec | None = None  # None: the one sent before
    profiles: dict[str, ReferenceProfile] = field(default_factory=dict)  # the new or changed ones
    before: dict[tuple[str, datetime], WindowAggregates | None] = field(default_factory=dict)


@dataclass
class _Done:
    docs: list[IndicatorDoc]
    states: dict[str, dict[str, object]]
    nulls: list[tuple[str, NullSummary]]
    errors: int


class _Remote:
    """The worker's end of its pipe: calls back to the engine's process and waits for the answer."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()  # indicator threads of one worker share the pipe

    def call(self, what: str, *args: Any) -> Any:
        with self.lock:
            self.conn.send(("call", what, args))
            kind, value = self.conn.recv()
        if kind == "error":
            raise value
        return value


class _RemoteSource:
    """A :class:`~sustain.indicators.context.WindowSource` answered by the engine's own source."""

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote

    def sample(self, *args: Any) -> Any:
        return self.remote.call("sample", *args)

    def sample_labelled(self, *args: Any) -> Any:
        return self.remote.call("sample_labelled", *args)

    def history(self, *args: Any) -> Any:
        return self.remote.call("history", *args)

    def labelled(self, *args: Any) -> Any:
        return self.remote.call("labelled", *args)


class _RemoteStates:
    """The indicator store as a worker sees it: saved states only (documents go back with the unit)."""

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote

    def get_states(self, model: str) -> dict[str, dict[str, Any]]:
        states: dict[str, dict[str, Any]] = self.remote.call("get_states", model)
        return states

    def put(self, docs: Sequence[IndicatorDoc]) -> None:  # pragma: no cover - never called in a worker
        raise RuntimeError("a worker does not write documents")

    def put_states(self, model: str, states: dict[str, dict[str, Any]]) -> None:  # pragma: no cover
        raise RuntimeError("a worker does not write states")


class _RemoteNulls:
    def __init__(self, remote: _Remote) -> None:
        self.remote = remote

    def load_nulls(self, prefix: str) -> dict[str, NullSummary]:
        found: dict[str, NullSummary] = self.remote.call("load_nulls", prefix)
        return found

    def save_nulls(self, items: Sequence[tuple[str, NullSummary]]) -> None:  # pragma: no cover
        raise RuntimeError("a worker does not write null distributions")


def _worker(conn: Connection, registry_blob: bytes, timeout: float, null_entries: int) -> None:
    """A worker process: compute units until told to stop (or until the engine's end of the pipe closes)."""
    single_blas_thread().__enter__()  # for the worker's life
    registry = _registry(pickle.loads(zlib.decompress(registry_blob)))
    remote = _Remote(conn)
    runner = IndicatorRunner(_RemoteStates(remote), timeout=timeout, registry=registry)  # type: ignore[arg-type]
    source = _RemoteSource(remote)
    nulls = NullCache(_RemoteNulls(remote), max_entries=null_entries)
    specs: dict[str, ModelSpec] = {}
    profiles: dict[tuple[str, str], ReferenceProfile] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        if message[0] == "registry":
            registry = _registry(pickle.loads(zlib.decompress(message[1])))
            runner = IndicatorRunner(_RemoteStates(remote), timeout=timeout, registry=registry)  # type: ignore[arg-type]
            continue
        unit: _Unit = message[1]
        if unit.spec is not None:
            specs[unit.model] = unit.spec
            nulls.fit(len(specs))  # this worker's models: each always computes here
        for version, profile in unit.profiles.items():
            profiles[(unit.model, version)] = profile
        errors = runner.stats.errors
        try:
            work = ModelWork(
                specs[unit.model],
                unit.plan,
                unit.windows,
                unit.partial,
                {v: profiles[(unit.model, v)] for v in unit.profile_versions},
                profiles[(unit.model, unit.binning_version)] if unit.binning_version is not None else None,
                unit.before,
            )
            docs = compute_model(work, runner, source, registry=registry, nulls=nulls)
            done = _Done(docs, runner.states([unit.model]).get(unit.model, {}), nulls.take_new(), 0)
            done.errors = runner.stats.errors - errors
            conn.send(("done", done))
        except Exception as exc:
            conn.send(("failed", _picklable(exc)))


def _registry(items: dict[str, type[Indicator]] | None) -> Registry[type[Indicator]] | None:
    if items is None:
        return None
    from sustain.indicators.registry import _is_indicator

    registry: Registry[type[Indicator]] = Registry("indicator", check=_is_indicator)
    for name, cls in items.items():
        registry.register(name, cls)
    return registry


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


# -- the engine's side ------------------------------------------------------------------------------------


class _Worker:
    """One worker process and what it has been sent."""

    def __init__(self, context: Any, registry_blob: bytes, timeout: float, null_entries: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(child, registry_blob, timeout, null_entries), name="sustain-indicators", daemon=True
        )
        self.process.start()
        child.close()
        self.specs: dict[str, ModelSpec] = {}
        self.profiles: dict[tuple[str, str], ReferenceProfile] = {}

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("stop",))
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        self.conn.close()


class WorkerPool:
    """``workers`` processes computing units; answers their calls from ``source``, ``documents`` and
    ``nulls`` (the engine's), so only this process reads and writes the store."""

    def __init__(
        self,
        workers: int,
        *,
        source: WindowSource | None,
        documents: IndicatorStore,
        nulls: NullCache,
        registry: Registry[type[Indicator]] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.source = source
        self.documents = documents
        self.nulls = nulls
        self.registry = registry
        self.timeout = timeout
        self.errors = 0
        self._context = multiprocessing.get_context("spawn")
        self._registry_blob = self._snapshot()
        self._workers: list[_Worker | None] = [None] * max(1, workers)
        self._states: dict[str, dict[str, dict[str, object]]] = {}
        self._new_nulls: list[tuple[str, NullSummary]] = []
        self._lock = threading.Lock()
        try:  # all at once, now: a process that cannot start workers learns it here, not in every unit
            for index in range(len(self._workers)):
                self._worker(index)
        except BaseException:
            self.close()
            raise

    def _snapshot(self) -> bytes:
        """The registry the workers use, by value (classes travel by reference: a class a worker cannot import
        fails loudly here rather than in every unit)."""
        items = None if self.registry is None else {name: self.registry.get(name) for name in self.registry.names()}
        return zlib.compress(pickle.dumps(items))

    def _worker(self, index: int) -> _Worker:
        worker = self._workers[index]
        if worker is None or not worker.process.is_alive():
            if worker is not None:
                log.warning("indicator worker %d died; starting another", index)
                worker.close(0.1)
            worker = self._workers[index] = _Worker(self._context, self._registry_blob, self.timeout, self.nulls.floor)
        return worker

    def run(self, units: Sequence[ModelWork]) -> list[Outcome]:
        blob = self._snapshot()
        if blob != self._registry_blob:  # a plugin registered since: the workers learn it
            self._registry_blob = blob
            for worker in self._workers:
                if worker is not None and worker.process.is_alive():
                    worker.conn.send(("registry", blob))
        outcomes: list[Outcome | None] = [None] * len(units)
        shares: list[list[int]] = [[] for _ in self._workers]
        for i, unit in enumerate(units):
            shares[zlib.crc32(unit.model.encode()) % len(self._workers)].append(i)
        threads = []
        for index, share in enumerate(shares):
            if share:
                thread = threading.Thread(
                    target=self._serve, args=(index, [units[i] for i in share], share, outcomes), daemon=True
                )
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()
        return [o if o is not None else RuntimeError("not computed") for o in outcomes]

    def _serve(self, index: int, units: list[ModelWork], slots: list[int], outcomes: list[Outcome | None]) -> None:
        """Send this worker its units one by one, answering its calls meanwhile."""
        for unit, slot in zip(units, slots, strict=True):
            try:
                worker = self._worker(index)
                worker.conn.send(("unit", self._wire(worker, unit)))
                outcomes[slot] = self._await(worker, unit)
            except (EOFError, OSError, BrokenPipeError) as exc:
                outcomes[slot] = RuntimeError(f"the indicator worker computing {unit.model!r} died: {exc!r}")
                dead = self._workers[index]
                if dead is not None:  # its replacement knows nothing yet
                    dead.specs.clear()
                    dead.profiles.clear()
            except Exception as exc:
                outcomes[slot] = exc

    def _wire(self, worker: _Worker, unit: ModelWork) -> _Unit:
        sent = _Unit(
            unit.model,
            unit.plan,
            unit.windows,
            unit.partial,
            sorted(unit.profiles),
            unit.binning.version if unit.binning is not None else None,
            before=unit.before,
        )
        if worker.specs.get(unit.model) is not unit.spec:
            sent.spec = worker.specs[unit.model] = unit.spec
        wanted = dict(unit.profiles)
        if unit.binning is not None:
            wanted.setdefault(unit.binning.version, unit.binning)
        for version, profile in wanted.items():
            if worker.profiles.get((unit.model, version)) is not profile:
                sent.profiles[version] = worker.profiles[(unit.model, version)] = profile
        return sent

    def _await(self, worker: _Worker, unit: ModelWork) -> Outcome:
        while True:
            message = worker.conn.recv()
            kind = message[0]
            if kind == "call":
                worker.conn.send(self._answer(message[1], message[2]))
            elif kind == "done":
                done: _Done = message[1]
                with self._lock:
                    self.errors += done.errors
                    if done.states:
                        self._states[unit.model] = done.states
                    self._new_nulls.extend(done.nulls)
                return done.docs
            else:
                failed: BaseException = message[1]
                return failed

    def _answer(self, what: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            if what in SOURCE_CALLS:
                if self.source is None:
                    raise RuntimeError("the engine has no window source")
                return "ok", getattr(self.source, what)(*args)
            if what == "get_states":
                return "ok", self.documents.get_states(*args)
            if what == "load_nulls":
                store = self.nulls.store
                return "ok", store.load_nulls(*args) if store is not None else {}
            raise RuntimeError(f"unknown call {what!r}")
        except Exception as exc:
            return "error", _picklable(exc)

    def save_states(self, documents: IndicatorStore) -> None:
        """Write the states the workers reported since the last call."""
        with self._lock:
            states, self._states = self._states, {}
        for model, by_indicator in states.items():
            documents.put_states(model, by_indicator)

    def take_nulls(self) -> list[tuple[str, NullSummary]]:
        """The null distributions the workers drew since the last call (for the store)."""
        with self._lock:
            new, self._new_nulls = self._new_nulls, []
        return new

    def close(self) -> None:
        for worker in self._workers:
            if worker is not None:
                worker.close()
        self._workers = [None] * len(self._workers)
