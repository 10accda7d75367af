"""``sustain demo``: the whole loop in about a minute (drift → alert → retrain → new version)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sustain.cli.app import JsonOpt, app, out


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="port for the demo's service; default a free one")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where the demo keeps its data (default: a temp dir)")
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="keep serving after the story, to explore the dashboard")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a model, monitor it, drift it, watch the alert fire and the retraining register a new version."""
    from sustain.demo import run_demo

    started = time.monotonic()

    def say(message: str) -> None:
        out.print(f"[dim][{time.monotonic() - started:5.1f}s][/] {message}", highlight=False, soft_wrap=True)

    summary = run_demo(port, directory, say, keep_serving=serve)
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
