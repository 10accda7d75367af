"""Compiling an inference graph: load and check ``graph.yaml``, then render it for each target.

The baseline, measured in the same run, is parsing the file's YAML alone (``yaml.safe_load``): the least any
compiler reading that file pays. Model URIs resolve from a mapping (:class:`StaticResolver`), so the figures are the
compiler's own; a registry round trip per model comes on top. The goal is < 50 ms per graph and target.

Run: .venv/bin/python benchmarks/graph.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from sustain.deploy_pipeline.graph import TARGETS, StaticResolver, load_graph_text, render_target

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the loader sustain uses
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "graphs"
NAMES = ("single", "transformer", "ab", "ensemble", "canary")


def timed(function: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def resolver_for(texts: list[str]) -> StaticResolver:
    uris = set()
    for text in texts:
        graph = load_graph_text(text)
        uris |= {n.impl.uri for n in graph.nodes.values() if n.impl.uri}
        uris |= {v.uri for v in (graph.canary, graph.shadow) if v}
    return StaticResolver({u: f"s3://mlflow/1/models/m-{i}/artifacts" for i, u in enumerate(sorted(uris))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    texts = {name: (EXAMPLES / f"{name}.yaml").read_text() for name in NAMES}
    resolver = resolver_for(list(texts.values()))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"compile time per graph (ms, medians of {args.repeat} runs)")
    for column in ("graph", "yaml parse (baseline)", "load + checks", *TARGETS):
        table.add_column(column, justify="left" if column == "graph" else "right")
    worst = 0.0
    for name, text in texts.items():
        parse = timed(partial(yaml.load, text, Loader=LOADER), args.repeat)
        load = timed(partial(load_graph_text, text), args.repeat)
        graph = load_graph_text(text)
        per_target = []
        for target in TARGETS:
            ms = timed(partial(render_target, graph, target, resolver), args.repeat)
            worst = max(worst, load + ms)
            per_target.append(f"{ms:.2f}")
        table.add_row(name, f"{parse:.2f}", f"{load:.2f}", *per_target)
    console = Console()
    console.print(table)
    console.print(f"slowest load + render: {worst:.1f} ms (goal: < 50 ms)")


if __name__ == "__main__":
    main()
