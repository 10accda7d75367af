"""What making categories safe keys at ingest costs, beside its baseline, in one run.

``sustain.collector.values.to_arrow`` converts a batch's values column by column; for categorical columns it
now also checks for NUL, empty and over-long values (:mod:`sustain.collector.categories`), and rewrites them
when any is found. This measures, per column of 1,000 values (one ingest batch):

1. the conversion alone (``pa.array``, the baseline) and the check on clean values, which every batch pays;
2. the rewrite of a column holding one hostile value, which only such batches pay.

Run: .venv/bin/python benchmarks/categories.py          (a few seconds)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sustain.collector.categories import sanitize_categories

ROWS = 1000
REPEATS = 2000


def timed(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median microseconds of one call over ``repeats`` (after a warm-up)."""
    for _ in range(50):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    clean = [f"plan-{i % 40}" for i in range(ROWS)]
    hostile = [*clean[:-1], "a\x00b"]
    convert = timed(lambda: pa.array(clean, pa.string()))
    arr = pa.array(clean, pa.string())
    check = timed(lambda: sanitize_categories(arr))
    bad = pa.array(hostile, pa.string())
    rewrite = timed(lambda: sanitize_categories(bad), repeats=REPEATS // 4)
    print(f"per categorical column of {ROWS} values (median of {REPEATS} runs)")
    print(f"  pa.array conversion (baseline)      {convert:8.1f} us")
    print(f"  + safety check, clean values        {check:8.1f} us  ({check / convert:.2f}x the conversion)")
    print(f"  + rewrite, one hostile value        {rewrite:8.1f} us  ({rewrite / convert:.2f}x the conversion)")


if __name__ == "__main__":
    main()
