"""One machine keeping many models fresh: the engine at 10, 100 and 1,000 models, beside the old per-model pass.

Every model has 20 numeric and 5 categorical features and a probability output, a 1-minute window, its own
reference (2,000 rows) and about 1,000 events a minute (Poisson), written to an embedded store as the collector
writes them. For each fleet size, in one run:

* **busy pass**: one minute of events for every model, then one pass (transforms, then the indicators of every
  window that just closed): engine seconds, and per model milliseconds of wall and CPU time (this process and
  its indicator workers);
* **idle pass**: passes with no new data: milliseconds per model;
* **overlapped**: then, as the engine's own loop runs them, the indicators of the minute just folded on a thread
  while the next minute's events are folded: wall and CPU per model (three more minutes: warmer caches than the
  busy passes, so compare the ratio of wall to CPU time, which the overlap lowers towards 1 / cores);
* **freshness**: the engine running on its own clock (``transform_interval`` 1 s) while events arrive in real
  time every ``--tick`` seconds, for ``--minutes`` windows: how long after each window's end its final
  indicators were written, p50 and p95 over every model and window;
* **baseline**: the pass as it was before (:mod:`benchmarks.scale_baseline`: per-model SQL transforms, window by
  window indicators, a null distribution drawn per window, BLAS on its own threads), busy and idle, on the
  same data in the same process, for up to ``--baseline-models`` models (its cost is per model).

The load average is printed beside the figures: the machine is shared, and a loaded machine stretches every
wall-clock figure (CPU milliseconds move much less).

Run: .venv/bin/python benchmarks/scale.py                      (10, 100, 1,000 models; about 30 minutes)
     .venv/bin/python benchmarks/scale.py --models 10,100 --minutes 2
     .venv/bin/python benchmarks/scale.py --models 100,1000 --warm 12   (a fleet that has run 12 minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scale_baseline import BaselinePass
from benchmarks.scale_fleet import WINDOW_SECONDS, Fleet, minute_floor
from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.engine import Engine
from sustain.indicators.stats.nulls import DEFAULT_ENTRIES


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of this process and of ``pids`` (its workers), from /proc."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def worker_pids(engine: Engine) -> list[int]:
    pool = engine._pool
    if pool is None:
        return []
    return [w.process.pid for w in pool._workers if w is not None and w.process.pid is not None]


@dataclass
class Timed:
    wall: float
    cpu: float


def timed(engine: Engine | None, run: object) -> Timed:
    pids = worker_pids(engine) if engine is not None else []
    wall, cpu = time.perf_counter(), cpu_seconds(pids)
    run()  # type: ignore[operator]
    pids = worker_pids(engine) if engine is not None else []
    return Timed(time.perf_counter() - wall, cpu_seconds(pids) - cpu)


@dataclass
class Figures:
    models: int
    references: float = 0.0  # seconds per model
    busy: Timed = field(default_factory=lambda: Timed(0, 0))
    idle: Timed = field(default_factory=lambda: Timed(0, 0))
    overlapped: Timed = field(default_factory=lambda: Timed(0, 0))
    phases: dict[str, float] = field(default_factory=dict)
    p50: float | None = None
    p95: float | None = None
    windows: int = 0
    base_models: int = 0
    base_busy: Timed = field(default_factory=lambda: Timed(0, 0))
    base_idle: Timed = field(default_factory=lambda: Timed(0, 0))
    load: str = ""
    # CPU-seconds a minute while events arrived in real time: the engine's process (the feeder's writes included),
    # the feeder's writes alone, and the indicator workers
    process_cpu: float = 0.0
    feeder_cpu: float = 0.0
    workers_cpu: float = 0.0


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def setup(
    models: int,
    directory: Path,
    workers: int,
    null_entries: int = DEFAULT_ENTRIES,
    indicators: list[dict[str, object]] | None = None,
) -> tuple[DuckDBStore, Fleet, Engine, float]:
    store = DuckDBStore(f"duckdb:///{directory / 'scale.duckdb'}")
    fleet = Fleet(store, models, indicators=indicators)
    engine = embedded_engine(
        store, workers=workers, transform_interval=1.0, indicator_interval=30.0, null_entries=null_entries
    )
    started = time.perf_counter()
    for m in fleet.models:
        store.put_reference(m.spec.name, "1", fleet.reference(m))
        engine.on_reference(m.spec.name, "1")
    return store, fleet, engine, (time.perf_counter() - started) / models


def controlled(figures: Figures, fleet: Fleet, engine: Engine, passes: int, warm: int = 0) -> datetime:
    """Busy and idle passes on past minutes (all windows closed), after ``warm`` minutes processed unmeasured;
    returns where the data ends."""
    start = minute_floor(datetime.now(UTC)) - timedelta(minutes=max(30, warm + 2 * passes + 6))
    fleet.write(start, WINDOW_SECONDS, 0, poisson=1000)  # first minute: first calibrations, first instances
    engine.step()
    warm_up(fleet, engine, start, warm)
    busy = []
    for k in range(warm + 1, warm + passes + 1):
        fleet.write(start + timedelta(minutes=k), WINDOW_SECONDS, 0, poisson=1000)
        busy.append(timed(engine, lambda: (engine.run_transforms(), engine.run_indicators(open_windows=False))))
        figures.phases = dict(engine.stats.phases)
    figures.busy = Timed(statistics.median(b.wall for b in busy), statistics.median(b.cpu for b in busy))
    idle = [
        timed(engine, lambda: (engine.run_transforms(), engine.run_indicators(open_windows=False))) for _ in range(5)
    ]
    figures.idle = Timed(statistics.median(i.wall for i in idle), statistics.median(i.cpu for i in idle))
    minute = warm + passes + 1
    fleet.write(start + timedelta(minutes=minute), WINDOW_SECONDS, 0, poisson=1000)
    engine.run_transforms()
    overlapped = []
    for _ in range(passes):  # as the engine's own loop runs them: last minute's indicators beside this one's transforms
        minute += 1
        fleet.write(start + timedelta(minutes=minute), WINDOW_SECONDS, 0, poisson=1000)
        overlapped.append(timed(engine, lambda: overlap(engine)))
    engine.run_indicators(open_windows=False)
    figures.overlapped = Timed(
        statistics.median(o.wall for o in overlapped), statistics.median(o.cpu for o in overlapped)
    )
    return start + timedelta(minutes=minute + 1)


def warm_up(fleet: Fleet, engine: Engine, start: datetime, minutes: int) -> None:
    """Minutes 1 to ``minutes`` after ``start`` written and processed, unmeasured: the calibration caches fill as
    a fleet's do in its first quarter of an hour, and later passes see the steady state."""
    if minutes <= 0:
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"warming {len(fleet.models):,} models", total=minutes)
        for k in range(1, minutes + 1):
            fleet.write(start + timedelta(minutes=k), WINDOW_SECONDS, 0, poisson=1000)
            engine.run_transforms()
            engine.run_indicators(open_windows=False)
            progress.advance(task)


def overlap(engine: Engine) -> None:
    """The indicators of the windows made final by the last transform run, on a thread (as the engine's indicator
    thread computes them), while this thread folds the next minute of events."""
    indicators = threading.Thread(target=lambda: engine.run_indicators(open_windows=False))
    indicators.start()
    engine.run_transforms()
    indicators.join()


def baseline(figures: Figures, models: int, directory: Path, passes: int) -> None:
    store = DuckDBStore(f"duckdb:///{directory / 'baseline.duckdb'}")
    fleet = Fleet(store, models)
    engine = embedded_engine(store)  # only for its parts: the baseline pass drives them itself
    for m in fleet.models:
        store.put_reference(m.spec.name, "1", fleet.reference(m))
        engine.on_reference(m.spec.name, "1")
    old = BaselinePass(store, engine.windows, engine.documents, engine.source)  # type: ignore[arg-type]
    specs = {s.name: s for s in store.list_specs()}
    start = minute_floor(datetime.now(UTC)) - timedelta(minutes=30)
    fleet.write(start, WINDOW_SECONDS, 0, poisson=1000)
    old.run(specs)
    busy = []
    for k in range(1, passes + 1):
        fleet.write(start + timedelta(minutes=k), WINDOW_SECONDS, 0, poisson=1000)
        busy.append(timed(None, lambda: old.run(specs)))
    figures.base_busy = Timed(statistics.median(b.wall for b in busy), statistics.median(b.cpu for b in busy))
    idle = [timed(None, lambda: old.run(specs)) for _ in range(3)]
    figures.base_idle = Timed(statistics.median(i.wall for i in idle), statistics.median(i.cpu for i in idle))
    figures.base_models = models
    engine.stop()
    store.close()


def freshness(figures: Figures, fleet: Fleet, engine: Engine, minutes: int, tick: float) -> None:
    """Events in real time, the engine on its own loop; freshness of every window that closes meanwhile."""
    stop = threading.Event()
    written_upto = [datetime.now(UTC)]
    feeder_cpu = [0.0]

    def feed() -> None:
        began = time.thread_time()
        while not stop.is_set():
            now = datetime.now(UTC)
            seconds = (now - written_upto[0]).total_seconds()
            if seconds > 0:
                fleet.write(written_upto[0], seconds, 0, poisson=max(1.0, 1000 * seconds / WINDOW_SECONDS))
                written_upto[0] = now
            stop.wait(max(0.0, tick - (datetime.now(UTC) - now).total_seconds()))
        feeder_cpu[0] = time.thread_time() - began

    feeder = threading.Thread(target=feed, daemon=True)
    first = minute_floor(datetime.now(UTC)) + timedelta(minutes=2)  # a whole minute of data, after a warm-up
    last = first + timedelta(minutes=minutes)
    wall, own = time.perf_counter(), time.process_time()
    feeder.start()
    engine.start()
    try:
        workers = cpu_seconds(worker_pids(engine)) - time.process_time()
        while datetime.now(UTC) < last + timedelta(seconds=2):
            time.sleep(1)
        stop.set()
        feeder.join()
        per_minute = WINDOW_SECONDS / (time.perf_counter() - wall)
        figures.process_cpu = (time.process_time() - own) * per_minute
        figures.workers_cpu = (cpu_seconds(worker_pids(engine)) - time.process_time() - workers) * per_minute
        figures.feeder_cpu = feeder_cpu[0] * per_minute
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not _all_final(engine, first, last, len(fleet.models)):
            time.sleep(1)
    finally:
        stop.set()
        engine.stop()
    table = engine.store.sql(  # type: ignore[attr-defined]
        "SELECT model, window_end, max(computed_at) AS computed FROM _indicators"
        " WHERE NOT partial AND window_start >= ? AND window_end <= ? GROUP BY ALL",
        [first, last],
    )
    lags = [
        (computed - end).total_seconds()
        for end, computed in zip(
            table.column("window_end").to_pylist(), table.column("computed").to_pylist(), strict=True
        )
    ]
    figures.windows = len(lags)
    if lags:
        figures.p50 = statistics.median(lags)
        figures.p95 = statistics.quantiles(lags, n=20)[-1] if len(lags) > 1 else lags[0]


def _all_final(engine: Engine, first: datetime, last: datetime, models: int) -> bool:
    found = engine.store.sql(  # type: ignore[attr-defined]
        "SELECT count(DISTINCT (model, window_start)) AS n FROM _indicators"
        " WHERE NOT partial AND window_start >= ? AND window_end <= ?",
        [first, last],
    )
    expected = models * int((last - first).total_seconds() // WINDOW_SECONDS)
    return int(found.column("n")[0].as_py()) >= expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="10,100,1000")
    parser.add_argument("--minutes", type=int, default=3, help="windows measured for freshness")
    parser.add_argument("--passes", type=int, default=3, help="busy passes measured (medians)")
    parser.add_argument("--baseline-models", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between two writes of events")
    parser.add_argument("--no-freshness", action="store_true")
    parser.add_argument(
        "--warm",
        type=int,
        default=0,
        help="minutes processed, unmeasured, before the busy passes: the steady state of a fleet that has run a while",
    )
    parser.add_argument(
        "--null-entries",
        type=int,
        default=DEFAULT_ENTRIES,
        help="null distributions kept per process at least (calibration; more when the models need more)",
    )
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    results = []
    for models in [int(m) for m in args.models.split(",")]:
        figures = Figures(models, load=load())
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            console.print(f"[bold]{models} models[/]: references, busy and idle passes (load {load()})")
            store, fleet, engine, figures.references = setup(models, directory, args.workers, args.null_entries)
            controlled(figures, fleet, engine, args.passes, args.warm)
            if not args.no_freshness:
                console.print(f"[bold]{models} models[/]: {args.minutes} windows in real time")
                freshness(figures, fleet, engine, args.minutes, args.tick)
            engine.stop()
            store.close()
            base = min(models, args.baseline_models)
            console.print(f"[bold]{models} models[/]: baseline on {base} models")
            (directory / "baseline").mkdir()
            baseline(figures, base, directory / "baseline", args.passes)
        figures.load = f"{figures.load} → {load()}"
        results.append(figures)

    warmed = f"; warmed {args.warm} minutes" if args.warm else ""
    table = Table(title=f"engine at scale; {args.workers} workers{warmed}; load average 1/5/15 min at start → end")
    for name in (
        "models",
        "busy pass (s)",
        "busy ms/model wall",
        "busy ms/model CPU",
        "idle ms/model",
        "overlapped ms/model wall / CPU",
        "p50 / p95 freshness (s)",
        "baseline busy ms/model wall / CPU",
        "baseline idle ms/model",
        "load",
    ):
        table.add_column(name, justify="right")
    for f in results:
        fresh = "-" if f.p50 is None or f.p95 is None else f"{f.p50:.1f} / {f.p95:.1f} ({f.windows} windows)"
        table.add_row(
            f"{f.models:,}",
            f"{f.busy.wall:.2f}",
            f"{1000 * f.busy.wall / f.models:.1f}",
            f"{1000 * f.busy.cpu / f.models:.1f}",
            f"{1000 * f.idle.wall / f.models:.2f}",
            f"{1000 * f.overlapped.wall / f.models:.1f} / {1000 * f.overlapped.cpu / f.models:.1f}",
            fresh,
            f"{1000 * f.base_busy.wall / f.base_models:.0f} / {1000 * f.base_busy.cpu / f.base_models:.0f}"
            f" (on {f.base_models})",
            f"{1000 * f.base_idle.wall / f.base_models:.1f}",
            f.load,
        )
    console.print(table)
    phases = Table(title="phases of the last busy pass (s)")
    for name in ("models", *results[0].phases):
        phases.add_column(name, justify="right")
    for f in results:
        phases.add_row(f"{f.models:,}", *(f"{v:.2f}" for v in f.phases.values()))
    console.print(phases)
    console.print(f"references: {', '.join(f'{f.models}: {1000 * f.references:.0f} ms/model' for f in results)}")
    for f in results:
        if f.process_cpu:
            console.print(
                f"{f.models:,} models, events in real time: the engine's process {f.process_cpu:.1f} CPU-s a minute"
                f" (writing the events {f.feeder_cpu:.1f} of it), its workers {f.workers_cpu:.1f}"
            )


if __name__ == "__main__":
    main()
