"""The engine at scale: passes follow the data (idle models cost nothing, final windows first, open ones on their
interval), every document keeps its freshness, phases and lags are measured and shown at /metrics and on the
dashboard, one model's failure stays its own, and worker processes compute exactly what this process computes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.dashboards.engine_status import EngineCollector, engine_summary
from sustain.engine import PHASES
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery
from sustain.spec import ModelSpec
from sustain.store.base import EventBatch
from sustain.synthetic import SyntheticModel
from tests.helpers import PATIENCE, wait_for

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def spec(name: str, **extra: object) -> ModelSpec:
    body = {
        "name": name,
        "features": {"a": "numeric", "b": "numeric", "c": {"kind": "categorical", "categories": ["x", "y", "z"]}},
        "outputs": {"p": {"kind": "probability"}},
        "windows": ["1m"],
        **extra,
    }
    return ModelSpec.model_validate(body)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Fleet:
    """Models with references in one store, an engine over it on a clock the test moves."""

    def __init__(self, path: Path, names: list[str], workers: int = 0, **extra: object) -> None:
        self.store = DuckDBStore(f"duckdb:///{path}")
        self.clock = Clock(T0)
        self.models: dict[str, SyntheticModel] = {}
        for name in names:
            s = spec(name, **extra)
            self.store.put_spec(s)
            self.models[name] = model = SyntheticModel(s, seed=len(self.models))
            self.store.put_reference(name, "1", to_layout(s, pa.table(model.reference(2000))).table)
        self.engine = embedded_engine(self.store, clock=self.clock, workers=workers)
        for name in names:
            self.engine.on_reference(name, "1")

    def log(self, name: str, n: int, start: datetime, span: timedelta = MINUTE, drift: float = 0.0) -> None:
        s = self.store.get_spec(name)
        assert s is not None
        events = self.models[name].events(n, {"a": drift} if drift else None)
        for i, e in enumerate(events):
            e["timestamp"] = (start + span * (i + 0.5) / n).isoformat()
        self.store.append_events([EventBatch(name, parse_events(s, events, T0).table)])

    def close(self) -> None:
        self.engine.stop()
        self.store.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(names: list[str], workers: int = 0, file: str = "e.duckdb", **extra: object) -> Fleet:
        made.append(Fleet(tmp_path / file, names, workers, **extra))
        return made[-1]

    yield make
    for f in made:
        f.close()


def windows_of(docs: list[IndicatorDoc]) -> set[tuple[str, datetime, bool]]:
    return {(d.model, d.window_start, d.partial) for d in docs}


def test_a_pass_touches_only_models_with_new_data(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["busy", "idle"])
    f.log("busy", 300, T0)
    f.log("idle", 300, T0)
    f.clock.now = T0 + 2 * MINUTE
    assert windows_of(f.engine.step()) == {("busy", T0, False), ("idle", T0, False)}
    assert f.engine.step() == [] and f.engine.stats.models_transformed == 0  # nothing new: nothing computed
    assert f.engine.stats.models_processed == 0 and set(f.engine.stats.phases) == set(PHASES)
    f.log("busy", 200, T0 + MINUTE)
    f.clock.now = T0 + 3 * MINUTE
    docs = f.engine.step()
    assert windows_of(docs) == {("busy", T0 + MINUTE, False)}
    assert (f.engine.stats.models_transformed, f.engine.stats.models_processed) == (1, 1)
    assert {d.n for d in docs if d.indicator == "traffic"} == {200}


def test_final_windows_first_and_open_windows_on_their_interval(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["m"])
    f.clock.now = T0 + timedelta(seconds=30)  # the window [T0, T0+1m) is open
    f.log("m", 100, T0, timedelta(seconds=30))
    f.engine.run_transforms()
    assert f.engine.run_indicators(open_windows=False) == []  # an open window waits for its interval...
    assert f.engine.lags() == {"m": 0.0}  # ...and is not late
    partial = f.engine.run_indicators(open_windows=True)
    assert windows_of(partial) == {("m", T0, True)}
    f.log("m", 100, T0 + timedelta(seconds=30), timedelta(seconds=30))
    f.clock.now = T0 + MINUTE + timedelta(seconds=4)  # closed, but within the model's late arrival (5 s)
    f.engine.run_transforms()
    assert f.engine.run_indicators(open_windows=False) == [] and f.engine.lags() == {"m": 0.0}
    f.clock.now = T0 + MINUTE + timedelta(seconds=9)
    f.engine.run_transforms()
    assert f.engine.lags() == {"m": pytest.approx(4.0)}  # final since 4 s, not computed yet
    final = f.engine.run_indicators(open_windows=False)
    assert windows_of(final) == {("m", T0, False)} and {d.n for d in final if d.indicator == "traffic"} == {200}
    assert f.engine.lags() == {"m": 0.0}
    stored = f.engine.documents.query(IndicatorQuery("m", indicator="traffic"))
    assert [(d.partial, d.n) for d in stored] == [(False, 200)]  # the final documents replaced the partial ones


def test_an_open_pass_waits_when_it_would_delay_a_final_window(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["m"])
    assert f.engine.open_pass_fits(3600.0)  # no window with data: nothing to delay
    f.clock.now = T0 + timedelta(seconds=30)  # [T0, T0+1m) is open, final 35 s from now (with 5 s late arrival)
    f.log("m", 100, T0, timedelta(seconds=30))
    f.engine.run_transforms()
    assert f.engine.open_pass_fits(10.0)
    assert not f.engine.open_pass_fits(40.0)  # the last open pass took longer: the final window goes first


def test_the_loop_folds_new_events_while_indicators_compute(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["m"])
    f.engine.transform_interval = 0.05
    f.log("m", 100, T0)
    f.clock.now = T0 + 2 * MINUTE
    computing, release = threading.Event(), threading.Event()
    run_indicators = f.engine.run_indicators

    def held(*, open_windows: bool = True) -> list[IndicatorDoc]:
        if not release.is_set():
            computing.set()
            release.wait(30 * PATIENCE)
        return run_indicators(open_windows=open_windows)

    f.engine.run_indicators = held  # type: ignore[method-assign]
    f.engine.start()
    wait_for(lambda: computing.is_set(), what="the first indicator pass")
    runs = f.engine.stats.transform_runs
    f.clock.now = T0 + 3 * MINUTE
    f.log("m", 50, T0 + MINUTE)  # arrives while the indicator thread is busy
    spec_m = f.store.get_spec("m")
    assert spec_m is not None
    plan = f.engine.plans(spec_m)[0]

    def folded() -> bool:
        return T0 + MINUTE in {start for _, start in f.engine.windows.window_buckets(plan)}

    wait_for(folded, what="the new events folded while the indicator pass is held")
    assert f.engine.stats.transform_runs > runs and not release.is_set()
    release.set()

    def traffic() -> dict[datetime, int | None] | None:
        docs = f.engine.documents.query(IndicatorQuery("m", indicator="traffic"))
        found = {d.window_start: d.n for d in docs if not d.partial}
        return found if len(found) == 2 else None

    assert wait_for(traffic, what="both windows computed") == {T0: 100, T0 + MINUTE: 50}


def test_transform_runs_are_spaced_by_their_cost_but_fold_a_final_window_at_once(
    fleet: Callable[..., Fleet],
) -> None:
    f = fleet(["m"])
    f.engine.transform_interval = 1.0
    assert f.engine._next_transforms(20.0) - time.monotonic() == pytest.approx(60.0, abs=1.0)  # a quarter of the time
    f.clock.now = T0 + timedelta(seconds=30)  # [T0, T0+1m) is open, final 35 s from now (with 5 s late arrival)
    f.log("m", 100, T0, timedelta(seconds=30))
    f.engine.run_transforms()
    for took, wait in ((0.1, 1.0), (2.0, 6.0), (10.0, 35.05)):  # a run of 10 s would still fold at the final moment
        assert f.engine._next_transforms(took) - time.monotonic() == pytest.approx(wait, abs=1.0)


def test_each_document_keeps_its_freshness(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["m"])
    f.log("m", 120, T0)
    last_event = T0 + MINUTE * (119.5 / 120)
    f.clock.now = T0 + 2 * MINUTE
    docs = f.engine.step()
    assert docs and all(d.freshness is not None for d in docs)
    for d in docs:
        assert d.freshness == pytest.approx((d.computed_at - last_event).total_seconds(), abs=1e-3)
    stored = f.engine.documents.query(IndicatorQuery("m"))
    assert {d.freshness for d in stored} == {d.freshness for d in docs}  # kept by the store
    assert f.engine.stats.freshness["m"] in {d.freshness for d in docs}  # the model's newest final window's


def test_one_models_failure_stays_its_own(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["good"])
    broken = spec("broken", plugins=["sustain_no_such_plugin_module"])
    f.store.put_spec(broken)
    f.models["broken"] = SyntheticModel(broken, seed=9)
    f.log("good", 200, T0)
    f.log("broken", 200, T0)
    f.clock.now = T0 + 2 * MINUTE
    docs = f.engine.step()
    assert {d.model for d in docs} == {"good"}
    assert "broken" in (f.engine.stats.last_error or "") and "sustain_no_such_plugin_module" in (
        f.engine.stats.last_error or ""
    )
    assert f.engine.lags()["broken"] > 0  # its window waits for the next pass
    f.log("good", 100, T0 + MINUTE)
    f.clock.now = T0 + 3 * MINUTE
    assert {d.model for d in f.engine.step()} == {"good"}


def test_phases_models_and_lags_at_metrics_and_on_the_dashboard(fleet: Callable[..., Fleet]) -> None:
    f = fleet(["m1", "m2"])
    f.log("m1", 200, T0)
    f.log("m2", 200, T0)
    f.clock.now = T0 + 2 * MINUTE
    f.engine.step()
    f.log("m2", 50, T0 + MINUTE)
    f.clock.now = T0 + 3 * MINUTE + timedelta(seconds=5)  # m2's window has been final (end + 5 s late arrival) 60 s
    f.engine.run_transforms()  # m2's new window is final and waits
    registry = CollectorRegistry()
    registry.register(EngineCollector(f.engine))
    for phase in PHASES:
        seconds = registry.get_sample_value("sustain_engine_phase_seconds", {"phase": phase})
        assert seconds is not None and seconds >= 0
    assert registry.get_sample_value("sustain_engine_models_processed") == 2.0
    assert registry.get_sample_value("sustain_engine_models_transformed") == 1.0
    assert registry.get_sample_value("sustain_engine_window_lag_seconds", {"model": "m1"}) == 0.0
    assert registry.get_sample_value("sustain_engine_window_lag_seconds", {"model": "m2"}) == 60.0
    freshness = registry.get_sample_value("sustain_engine_freshness_seconds", {"model": "m1"})
    assert freshness == f.engine.stats.freshness["m1"] and freshness > 0
    summary = engine_summary(f.engine)
    assert summary["most_behind"] == {"model": "m2", "lag_seconds": 60.0}
    slowest = max(f.engine.stats.freshness.items(), key=lambda kv: kv[1])
    assert summary["slowest"] == {"model": slowest[0], "freshness_seconds": slowest[1]}
    assert summary["phases"].keys() == set(PHASES) and summary["models_processed"] == 2


def comparable(docs: list[IndicatorDoc]) -> dict[tuple[str, ...], tuple[object, ...]]:
    return {
        (d.model, d.indicator, d.feature or "", d.metric or "", d.window_start.isoformat()): (
            d.value,
            d.status,
            d.p_value,
            d.threshold,
            d.n,
            d.method,
        )
        for d in docs
    }


NAMES = [f"m{i}" for i in range(9)]  # enough units for the engine to hand them to its workers


def load_same(f: Fleet) -> None:
    for i, name in enumerate(NAMES):
        f.log(name, 1500 if i % 3 == 0 else 400, T0, drift=0.5 if i % 2 else 0.0)  # calibrated and exact tests


def test_worker_processes_compute_what_this_process_computes(fleet: Callable[..., Fleet]) -> None:
    here = fleet(NAMES, workers=0, file="here.duckdb")
    pool = fleet(NAMES, workers=2, file="pool.duckdb")
    for f in (here, pool):
        load_same(f)
        f.clock.now = T0 + 2 * MINUTE
    local = here.engine.step()
    remote = pool.engine.step()
    assert pool.engine._pool is not None  # the run went to the workers
    assert here.engine._pool is None
    assert comparable(remote) == comparable(local)
    assert any(d.method and "calibrated" in d.method for d in remote)  # the calibration cache answered workers too
    assert len(pool.engine.store.sql("SELECT * FROM _nulls")) > 0  # type: ignore[attr-defined]

    pids = [w.process.pid for w in pool.engine._pool._workers if w is not None]
    for pid in pids:  # workers die between passes: the next pass starts others
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    for f in (here, pool):
        for name in NAMES:
            f.log(name, 300, T0 + MINUTE)
        f.clock.now = T0 + 3 * MINUTE
    assert comparable(pool.engine.step()) == comparable(here.engine.step())


def test_a_plugin_the_workers_cannot_import_keeps_the_work_here(fleet: Callable[..., Fleet]) -> None:
    from sustain.indicators.base import Indicator, IndicatorValue
    from sustain.indicators.registry import indicators
    from sustain.registry import Registry

    class Here(Indicator):  # defined in a function: a worker process cannot import it
        name = "here"

        def compute(self, ctx):
            yield IndicatorValue(None, float(ctx.window.rows))

    registry: Registry[type[Indicator]] = Registry("indicator")
    for name in indicators.names():
        registry.register(name, indicators.get(name))
    registry.register("here", Here)
    f = fleet(NAMES, workers=2, indicators=[{"type": "here"}, {"type": "traffic"}])
    f.engine.registry = registry
    f.engine.indicators.registry = registry
    f.engine._in_process.registry = registry
    for name in NAMES:
        f.log(name, 100, T0)
    f.clock.now = T0 + 2 * MINUTE
    docs = f.engine.step()
    assert f.engine._pool is None and f.engine.workers == 0  # refused: computed in this process instead
    assert {d.value for d in docs if d.indicator == "here"} == {100.0}
    assert "workers did not start" in (f.engine.stats.last_error or "")


def test_service_settings_size_the_engine(tmp_path: Path) -> None:
    """SUSTAIN_ENGINE_WORKERS and SUSTAIN_NULL_CACHE_ENTRIES reach the engine of ``sustain serve``."""
    from sustain.api.app import build_context
    from sustain.settings import Settings

    env = {"SUSTAIN_ENGINE_WORKERS": "2", "SUSTAIN_NULL_CACHE_ENTRIES": "100"}
    ctx = build_context(Settings.from_env(env, store=f"duckdb:///{tmp_path / 's.duckdb'}"))
    try:
        assert ctx.engine is not None
        assert (ctx.engine.workers, ctx.engine.nulls.max_entries) == (2, 100)
    finally:
        if ctx.engine is not None:
            ctx.engine.stop()
        ctx.backend.close()
