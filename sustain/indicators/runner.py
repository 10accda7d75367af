"""Run indicators safely: a broken plugin becomes an ``error`` value, never an engine failure.

Each ``compute`` runs in a worker thread with a deadline. An indicator that
raises, yields something other than :class:`IndicatorValue`, yields a
non-finite number, or overruns its deadline is recorded as an error for that
window; while an overrunning call is still busy the indicator is skipped
(Python cannot stop a thread, so it is not started twice). Stateful indicators
(change detectors) get their state back from the indicator store when they are
created and have it saved after every run, so restarts continue where they
stopped.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from sustain.indicators.base import Indicator, IndicatorValue
from sustain.indicators.context import WindowContext
from sustain.indicators.documents import IndicatorStore
from sustain.indicators.registry import build, indicators
from sustain.registry import Registry
from sustain.spec import IndicatorSpec, ModelSpec

log = logging.getLogger("sustain.indicators")


@dataclass
class RunnerStats:
    errors: int = 0
    timeouts: int = 0
    last_error: str | None = None


def _error(message: str) -> list[IndicatorValue]:
    return [IndicatorValue(None, None, status="error", details={"error": message})]


def _check(values: list[object]) -> list[IndicatorValue]:
    checked: list[IndicatorValue] = []
    for v in values:
        if not isinstance(v, IndicatorValue):
            raise TypeError(f"compute() must yield IndicatorValue objects, got {type(v).__name__}")
        for name in ("value", "p_value", "threshold"):
            number = getattr(v, name)
            if number is not None and (not isinstance(number, int | float) or not math.isfinite(number)):
                raise ValueError(f"compute() yielded {name}={number!r}; numbers must be finite (or None)")
        checked.append(v)
    return checked


class IndicatorRunner:
    def __init__(
        self,
        documents: IndicatorStore,
        *,
        timeout: float = 30.0,
        workers: int = 2,
        registry: Registry[type[Indicator]] | None = None,
    ) -> None:
        self.documents = documents
        self.registry = indicators if registry is None else registry
        self.timeout = timeout
        self.stats = RunnerStats()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sustain-indicator")
        self._instances: dict[tuple[str, str], Indicator] = {}
        self._states: dict[str, dict[str, dict[str, object]]] = {}  # saved states read at start, by model
        self._busy: dict[tuple[str, str], Future[list[object]]] = {}
        self._lock = threading.Lock()

    def instance(self, spec: ModelSpec, ind: IndicatorSpec) -> Indicator:
        key = (spec.name, ind.model_dump_json())
        found = self._instances.get(key)
        if found is None:
            found = build(ind, self.registry)
            states = self._states.get(spec.name)
            if states is None:  # read once per model: its first window builds all its indicators
                states = self._states[spec.name] = self.documents.get_states(spec.name)
            state = states.get(ind.id)
            if state is not None:
                found.load_state(state)
            self._instances[key] = found
        return found

    def run(self, spec: ModelSpec, ind: IndicatorSpec, ctx: WindowContext) -> list[IndicatorValue]:
        key = (spec.name, ind.model_dump_json())
        with self._lock:
            running = self._busy.get(key)
            if running is not None and not running.done():
                return self._fail(spec, ind, ctx, "skipped: its previous computation is still running")
        try:
            indicator = self.instance(spec, ind)
        except Exception as exc:
            return self._fail(spec, ind, ctx, f"{type(exc).__name__}: {exc}")
        future: Future[list[object]] = self._pool.submit(lambda: list(indicator.compute(ctx)))
        try:
            values = future.result(timeout=self.timeout)
        except FutureTimeout:
            with self._lock:
                self._busy[key] = future
            self.stats.timeouts += 1
            return self._fail(spec, ind, ctx, f"timed out after {self.timeout:g}s")
        except Exception as exc:
            return self._fail(spec, ind, ctx, f"{type(exc).__name__}: {exc}")
        try:
            return _check(values)
        except (TypeError, ValueError) as exc:
            return self._fail(spec, ind, ctx, str(exc))

    def _fail(self, spec: ModelSpec, ind: IndicatorSpec, ctx: WindowContext, message: str) -> list[IndicatorValue]:
        self.stats.errors += 1
        self.stats.last_error = f"indicator {ind.id!r} of {spec.name!r}: {message}"
        log.warning("indicator %s of %s on window %s: %s", ind.id, spec.name, ctx.window.start, message)
        return _error(message)

    def states(self, models: Collection[str] | None = None) -> dict[str, dict[str, dict[str, object]]]:
        """The state of every stateful indicator (of ``models``), by model and indicator id."""
        by_model: dict[str, dict[str, dict[str, object]]] = {}
        for (model, body), indicator in self._instances.items():
            if models is not None and model not in models:
                continue
            state = indicator.state()
            if state is not None:
                by_model.setdefault(model, {})[IndicatorSpec.model_validate_json(body).id] = state
        return by_model

    def save_states(self, models: Collection[str] | None = None) -> None:
        """Store the states of the stateful indicators (of ``models``: those computed since the last save)."""
        for model, states in self.states(models).items():
            self.documents.put_states(model, states)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
