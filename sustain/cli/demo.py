"""``sustain demo``: the whole loop in about a minute (drift → alert → retrain → new version)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from sustain.cli.app import app, json_option, out, path_type


@app.command()
@click.option("--port", type=int, default=None, help="port for the demo's service; default a free one")
@click.option("--dir", "directory", type=path_type(), default=None, help="where the demo keeps its data (temp dir)")
@click.option("--serve", is_flag=True, help="keep serving after the story, to explore the dashboard")
@json_option
def demo(port: int | None, directory: Path | None, serve: bool, json_out: bool) -> None:
    """Train a model, monitor it, drift it, watch the alert fire and the retraining register a new version."""
    from sustain.demo.story import run_demo

    started = time.monotonic()

    def say(message: str) -> None:
        out.print(f"[dim][{time.monotonic() - started:5.1f}s][/] {message}", highlight=False, soft_wrap=True)

    summary = run_demo(port, directory, say, keep_serving=serve)
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
