"""The local runner: ``sustain graph serve graph.yaml`` runs a graph with Seldon's executor semantics.

:func:`serve` blocks, serving on ``options.host:options.port`` until interrupted; tests and embedders use
:class:`GraphRunner` with :func:`create_runner_app`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sustain.deploy_pipeline.graph.model import Graph
from sustain.deploy_pipeline.graph.runner.app import create_runner_app
from sustain.deploy_pipeline.graph.runner.service import GraphRunner, RunnerOptions

__all__ = ["GraphRunner", "RunnerOptions", "create_runner_app", "serve"]


def serve(graph: Graph, options: RunnerOptions, progress: Callable[[str], None] | None = None) -> None:
    """Start the scoring servers and code nodes, then serve the graph until interrupted.

    The runner starts before the HTTP server, so a node that cannot start (an import error, a model that does
    not load) is a GraphError with a sentence; it stops in the app's shutdown, which uvicorn runs before it
    hands SIGTERM back to the process, so queued CloudEvents are sent before the process exits.
    """
    import uvicorn

    async def main() -> None:
        runner = GraphRunner(graph, options)
        try:
            await runner.start(progress)
        except BaseException:
            await runner.stop()
            raise
        app = create_runner_app(runner, manage=False, stop_on_shutdown=True)
        config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning")
        await uvicorn.Server(config).serve()

    asyncio.run(main())
