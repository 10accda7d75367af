"""What statistics cost at scale: the scale fleet's CPU per model per pass under other indicator settings, beside
the defaults, in one process.

Issue 17's targets (20 ms of CPU per model per pass at 1,000 models on two cores) are not met by the default
statistics, and nothing cheaper may change an indicator's value by default. This prints what each opt-in
setting would save, so the choice can be made on figures. Each setting gets a fresh fleet (the scale
benchmark's: 20 numeric and 5 categorical features, 2,000-row references, a minute of ~1,000 events per model),
is warmed for ``--warm`` minutes (the calibration caches fill), then measured over ``--passes`` minutes:
transforms, indicators and writes of one minute of events, CPU of this process (indicators computed in
process, one BLAS thread). Settings are measured in turns, ``--rounds`` times, and the medians printed, so a
shared machine's load falls on all of them alike.

    .venv/bin/python benchmarks/scale_settings.py --models 50 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scale import setup
from benchmarks.scale_fleet import WINDOW_SECONDS, fleet_spec, minute_floor
from sustain.indicators.defaults import default_indicators

Indicators = list[dict[str, object]]


def defaults() -> Indicators:
    return [i.model_dump(exclude_none=True) for i in default_indicators(fleet_spec(0))]


def changed(drift: dict[str, object] | None = None, without: tuple[str, ...] = ()) -> Indicators:
    """The defaults with drift's parameters set to ``drift`` and the indicators named in ``without`` left out."""
    out = []
    for indicator in defaults():
        if indicator["type"] in without:
            continue
        if drift is not None and indicator["type"] == "drift":
            indicator = {**indicator, "params": drift}
        out.append(indicator)
    return out


SETTINGS = {
    "default": "the defaults (exact tests up to 1,000 events, calibrated distances above)",
    "calibrated": "drift: {test: calibrated} (every window judged by its calibrated distance)",
    "no-multivariate": "the defaults without multivariate_drift",
    "calibrated+no-multivariate": "both of the above",
}


def indicators_of(name: str) -> Indicators | None:
    return {
        "default": None,
        "calibrated": changed({"test": "calibrated"}),
        "no-multivariate": changed(without=("multivariate_drift",)),
        "calibrated+no-multivariate": changed({"test": "calibrated"}, ("multivariate_drift",)),
    }[name]


def measure(name: str, models: int, warm: int, passes: int) -> list[float]:
    """CPU ms per model of each measured pass."""
    with tempfile.TemporaryDirectory() as tmp:
        store, fleet, engine, _ = setup(models, Path(tmp), 0, indicators=indicators_of(name))
        start = minute_floor(datetime.now(UTC)) - timedelta(minutes=warm + passes + 5)
        cpu = []
        try:
            for k in range(warm + passes):
                fleet.write(start + timedelta(minutes=k), WINDOW_SECONDS, 0, poisson=1000)
                began = time.process_time()
                if k == 0:
                    engine.step()
                else:
                    engine.run_transforms()
                    engine.run_indicators(open_windows=False)
                if k >= warm:
                    cpu.append(1000 * (time.process_time() - began) / models)
        finally:
            engine.stop()
            store.close()
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--warm", type=int, default=6, help="minutes before measuring (caches fill)")
    parser.add_argument("--passes", type=int, default=3, help="minutes measured per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names")
    args = parser.parse_args()

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    console = Console(width=max(Console().width, 150))  # the table unwrapped in a log or a pipe
    found: dict[str, list[float]] = {n: [] for n in names}
    with Progress(console=console) as progress:
        task = progress.add_task(f"{args.models} models", total=args.rounds * len(names))
        for _ in range(args.rounds):
            for name in names:
                found[name] += measure(name, args.models, args.warm, args.passes)
                progress.advance(task)
    base = statistics.median(found[names[0]])
    table = Table(title=f"CPU per model per pass, {args.models} models, minutes {args.warm}+ (medians)")
    for column in ("setting", "what it changes", "CPU ms/model", f"vs {names[0]}"):
        table.add_column(column, justify="right" if column.startswith(("CPU", "vs")) else "left")
    for name in names:
        median = statistics.median(found[name])
        table.add_row(name, SETTINGS[name], f"{median:.1f}", f"{median / base:.2f}×")
    console.print(table)


if __name__ == "__main__":
    main()
