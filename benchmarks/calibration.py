"""Calibrating a drift distance: all the null draws at once (what sustain runs) against one Python call per draw.

Each drift value is judged against its null distribution: ``draws`` pairs of "no drift" histograms drawn at the
window's sizes, and the distance of each pair (``sustain.indicators.stats.calibration.null_distribution``). That
runs for every column of every window, so its cost is the price of a column.

A second table times 1,000 draws over 100 bins for PSI and JS, the size the test suite used to assert (below
20 ms on a 2-vCPU machine): timings belong here, not in tests that a busy machine can fail.

Run: .venv/bin/python benchmarks/calibration.py [--draws 400] [--bins 20] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sustain.indicators.decide import DISTANCE_NAMES, distance_function
from sustain.indicators.stats.calibration import null_distribution


def timed(function: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reference = rng.normal(size=100_000)
    edges = np.quantile(reference, np.linspace(0, 1, args.bins + 1)[1:-1])
    ref_counts = np.bincount(np.searchsorted(edges, reference), minlength=args.bins)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"null distribution: {args.draws} draws, {args.bins} bins, medians of {args.repeat} runs")
    for name in ("distance", "all draws at once (ms)", "one call per draw (ms)", "× faster"):
        table.add_column(name, justify="left" if name == "distance" else "right")
    for name in DISTANCE_NAMES:
        statistic = distance_function(name, edges.tolist())

        def one_by_one(r: Any, c: Any, statistic: Any = statistic) -> float:
            return float(statistic(r, c))

        def calibrate(s: Any) -> Callable[[], Any]:
            return lambda: null_distribution(ref_counts, n_cur=10_000, statistic=s, draws=args.draws, seed=1)

        fast = timed(calibrate(statistic), args.repeat)
        slow = timed(calibrate(one_by_one), max(3, args.repeat // 5))
        table.add_row(name, f"{fast * 1e3:.2f}", f"{slow * 1e3:.2f}", f"{slow / fast:.0f}")
    Console().print(table)

    wide = np.random.default_rng(12345).multinomial(100_000, np.full(100, 0.01))
    target = Table(title=f"1,000 draws over 100 bins, n_cur 5,000: best of {max(7, args.repeat)} runs")
    for name in ("distance", "best (ms)", "target (ms)"):
        target.add_column(name, justify="left" if name == "distance" else "right")
    for name in ("psi", "js"):
        statistic = distance_function(name)

        def thousand_draws(s: Any = statistic) -> Any:
            return null_distribution(wide, 5000, s, draws=1000)

        best = min(timed(thousand_draws, 1) for _ in range(max(7, args.repeat)))
        target.add_row(name, f"{best * 1e3:.2f}", "20")
    Console().print(target)


if __name__ == "__main__":
    main()
