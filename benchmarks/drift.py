"""`sustain drift` against a scipy loop and Evidently's data drift preset, as whole commands, in one run.

Data: a reference of 100,000 rows and a current set of 1,000,000 rows x 25 columns (20 numeric, 5 categorical),
written as Parquet (row groups of 100,000 rows). Four columns drift: x3 (+0.5 sd), x11 (x1.5 scale), x17
(+0.25 sd) and c1 (category shares change); the other 21 do not.

For each tool: wall time of the whole command as a user runs it (interpreter start, imports and file reading
included), peak memory (max RSS of the process), the columns it flags, and whether that is exactly the drifted
set. Evidently runs from its own virtualenv (`.cache/bench-evidently`, made with `--setup`: Evidently 0.7 needs
pandas < 3 and plotly < 6, which the project does not use).

Run: .venv/bin/python benchmarks/drift.py [--setup] [--skip-evidently] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / ".cache" / "bench-evidently"
DRIFTED = {"x3", "x11", "x17", "c1"}
CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def make_table(n: int, drifted: bool, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for j in range(20):
        center, scale = 10.0 * j, 1.0 + j / 10
        values = rng.normal(center, scale, n)
        if drifted and j == 3:
            values += 0.5 * scale
        elif drifted and j == 11:
            values = center + (values - center) * 1.5
        elif drifted and j == 17:
            values += 0.25 * scale
        columns[f"x{j}"] = pa.array(values)
    shares = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
    for j in range(5):
        p = shares[::-1].copy() if drifted and j == 1 else shares
        columns[f"c{j}"] = pa.array(rng.choice(CATEGORIES, size=n, p=p / p.sum()))
    return pa.table(columns)


def write_data(directory: Path) -> tuple[Path, Path]:
    reference, current = directory / "reference.parquet", directory / "current.parquet"
    pq.write_table(make_table(100_000, False, 1), reference, row_group_size=100_000)
    pq.write_table(make_table(1_000_000, True, 2), current, row_group_size=100_000)
    return reference, current


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """Like :func:`run` but with the child's own peak RSS (os.wait4)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command[:3])} failed ({proc.returncode}): {stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, stdout


def flagged(tool: str, stdout: str) -> list[str]:
    data = json.loads(stdout)
    if tool == "sustain":
        return [r["column"] for r in data if r["drifted"]]
    return list(data)


def setup_evidently() -> None:
    if (EVIDENTLY_VENV / "bin" / "python").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    pip = [str(EVIDENTLY_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "evidently>=0.7,<0.8", "pandas<3", "plotly<6", "pyarrow"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="create the Evidently virtualenv if missing")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per fast tool (the median is reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.setup:
        setup_evidently()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        reference, current = write_data(Path(tmp))
        tools = {
            "sustain": [str(bin_dir / "sustain"), "drift", str(reference), str(current), "--json"],
            "scipy": [sys.executable, str(ROOT / "benchmarks" / "drift_scipy.py"), str(reference), str(current)],
        }
        evidently_python = EVIDENTLY_VENV / "bin" / "python"
        if not args.skip_evidently:
            if not evidently_python.exists():
                raise SystemExit("no Evidently virtualenv: run with --setup (or --skip-evidently)")
            script = str(ROOT / "benchmarks" / "drift_evidently.py")
            tools["evidently"] = [str(evidently_python), script, str(reference), str(current)]
        results: dict[str, dict[str, Any]] = {}
        for tool, command in tools.items():
            repeat = 1 if tool == "evidently" else args.repeat
            runs = [run_measured(command) for _ in range(repeat)]
            seconds = statistics.median(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            columns = flagged(tool, runs[-1][2])
            results[tool] = {
                "seconds": round(seconds, 3),
                "peak_mb": round(peak),
                "flagged": columns,
                "exact": set(columns) == DRIFTED,
                "false_alarms": sorted(set(columns) - DRIFTED),
                "missed": sorted(DRIFTED - set(columns)),
            }
    base = results["sustain"]["seconds"]
    for r in results.values():
        r["times_sustain"] = round(r["seconds"] / base, 1)
    if args.json:
        print(json.dumps(results))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="drift: 100,000 reference rows vs 1,000,000 current rows x 25 columns (4 drifted)")
    for name in ("tool", "whole command (s)", "x sustain", "peak MB", "flagged", "false alarms", "missed"):
        table.add_column(name, justify="left" if name in ("tool", "flagged") else "right")
    for tool, r in results.items():
        table.add_row(
            tool,
            f"{r['seconds']:.2f}",
            f"{r['times_sustain']:.1f}",
            str(r["peak_mb"]),
            ", ".join(r["flagged"]) or "-",
            ", ".join(r["false_alarms"]) or "-",
            ", ".join(r["missed"]) or "-",
        )
    console = Console()
    console.print(table)
    console.print(json.dumps(results))


if __name__ == "__main__":
    main()
