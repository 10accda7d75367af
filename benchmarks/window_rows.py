"""What reading rows under the spec's names costs a plugin, against the Arrow sample it replaces.

One closed window of synthetic events in the embedded store (the conformance kit's pipeline). Per sample size:
``ctx.sample(columns, n)``, the Arrow table of storage columns plugins read before (the baseline);
``ctx.rows(n, labels=False)``, the same draw as NumPy arrays under the spec's names; ``ctx.rows(n)``, with the
label joined; and ``.frame()`` on top, the pandas DataFrame.

Run: .venv/bin/python benchmarks/window_rows.py [--events 20000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from sustain.indicators.checks import sample_context


def timed(function: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    ctx = sample_context(rows=args.events)
    columns = [c.column for c in ctx.columns]

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"one window of {args.events:,} events, {len(columns)} columns; medians of {args.repeat} runs")
    for name in ("rows drawn", "ctx.sample (ms)", "rows, no label (ms)", "rows + label (ms)", "+ .frame() (ms)"):
        table.add_column(name, justify="right")
    for n in (500, 2000, 10_000):
        baseline = timed(lambda n=n: ctx.sample(columns, n), args.repeat)  # type: ignore[misc]
        arrays = timed(lambda n=n: ctx.rows(n, labels=False), args.repeat)  # type: ignore[misc]
        labelled = timed(lambda n=n: ctx.rows(n), args.repeat)  # type: ignore[misc]
        framed = timed(lambda n=n: ctx.rows(n).frame(), args.repeat)  # type: ignore[misc]
        table.add_row(f"{n:,}", f"{baseline:.1f}", f"{arrays:.1f}", f"{labelled:.1f}", f"{framed:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
