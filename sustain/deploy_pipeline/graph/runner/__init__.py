"""The local runner: ``sustain graph serve graph.yaml`` runs a graph with Seldon's executor semantics.

:func:`serve` blocks, serving on ``options.host:options.port`` until interrupted; tests and embedders use
:class:`GraphRunner` with :func:`create_runner_app`.
"""

from __future__ import annotations

from collections.abc import Callable

from sustain.deploy_pipeline.graph.model import Graph
from sustain.deploy_pipeline.graph.runner.app import create_runner_app
from sustain.deploy_pipeline.graph.runner.service import GraphRunner, RunnerOptions

__all__ = ["GraphRunner", "RunnerOptions", "create_runner_app", "serve"]


def serve(graph: Graph, options: RunnerOptions, progress: Callable[[str], None] | None = None) -> None:
    """Start the scoring servers, then serve the graph until interrupted."""
    import uvicorn

    runner = GraphRunner(graph, options)
    app = create_runner_app(runner, progress=progress)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning")
