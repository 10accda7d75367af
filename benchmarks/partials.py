"""What folding a minute of events into window partials costs per model: the SQL plan against the NumPy partials.

The fleet of ``benchmarks/scale.py`` (20 numeric and 5 categorical features and a probability output per model,
reference bins on every numeric column, about 1,000 events a minute) in an embedded store. For each model's plan,
on the same minute of events, in the same process:

* **SQL plan**: :func:`~sustain.backends.duckdb.sql.delta_sql`, the partials as one wide aggregate query, and its
  rows in long form (the reference the NumPy partials are tested against, and how the engine folded events before);
* **read**: :func:`~sustain.backends.duckdb.partials.read_sql` alone, the narrow ``SELECT`` of the new events (the
  floor of the NumPy path);
* **NumPy partials**: that read and :func:`~sustain.backends.duckdb.partials.partials` (the numeric-like columns
  stacked as one matrix), as a transform run computes them.

Milliseconds of CPU per model, the median over ``--repeat`` rounds of every model.

Run: .venv/bin/python benchmarks/partials.py [--models 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scale import setup
from benchmarks.scale_fleet import WINDOW_SECONDS, minute_floor
from sustain.backends.duckdb.partials import partials, read_sql
from sustain.backends.duckdb.sql import delta_sql, long_rows
from sustain.backends.duckdb.store import events_table
from sustain.transforms.plan import TransformPlan


def cpu_ms(run: Callable[[], object], count: int, repeat: int) -> float:
    """Median CPU milliseconds of ``run`` per item, ``run`` doing ``count`` items."""
    rounds = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        rounds.append((time.process_time() - started) / count * 1000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        store, fleet, engine, _ = setup(args.models, Path(tmp), workers=0)
        try:
            fleet.write(minute_floor(datetime.now(UTC)) - timedelta(minutes=5), WINDOW_SECONDS, 0, poisson=1000)
            plans: list[TransformPlan] = [p for spec in store.list_specs() for p in engine.runner.plans(spec)]
            upto = [0, 10**12]

            def sql_plan() -> None:
                for plan in plans:
                    long_rows(plan, store.sql(delta_sql(plan, events_table(plan.model)), upto))

            def read() -> None:
                for plan in plans:
                    store.sql(read_sql(plan, events_table(plan.model)), upto)

            def numpy_partials() -> None:
                for plan in plans:
                    partials(plan, store.sql(read_sql(plan, events_table(plan.model)), upto))

            events = store.sql(read_sql(plans[0], events_table(plans[0].model)), upto).num_rows
            figures = {
                "SQL plan": cpu_ms(sql_plan, len(plans), args.repeat),
                "read": cpu_ms(read, len(plans), args.repeat),
                "NumPy partials (read included)": cpu_ms(numpy_partials, len(plans), args.repeat),
            }
        finally:
            engine.stop()
            store.close()

    table = Table(
        title=f"a minute of events into partials: {args.models} models, ~{events:,} events and 26 columns each"
    )
    table.add_column("way")
    table.add_column("CPU ms per model", justify="right")
    table.add_column("vs SQL plan", justify="right")
    for name, ms in figures.items():
        table.add_row(name, f"{ms:.1f}", f"{figures['SQL plan'] / ms:.1f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
