"""The local runner: a graph's predictors on one machine, with real MLflow scoring servers and in-process code.

Predictors are the graph's (``main``, ``canary``, ``shadow``), each with its own executor, as Seldon runs one
executor per predictor. A request goes to main or canary by the canary's percent (drawn per request, as an
ingress split does); the shadow receives a copy whose answer is dropped, as a mirror does. Each predictor logs
under its own ``Ce-Endpoint``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sustain.deploy_pipeline.graph.model import Graph
from sustain.deploy_pipeline.graph.runner.eventlog import EventLogger
from sustain.deploy_pipeline.graph.runner.executor import Call, Executor
from sustain.deploy_pipeline.graph.runner.messages import Message
from sustain.deploy_pipeline.graph.runner.scoring import START_TIMEOUT, ScoringServers
from sustain.deploy_pipeline.graph.runner.units import MlflowUnit, Unit, UnitError, code_unit, failure

UNIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunnerOptions:
    host: str = "127.0.0.1"
    port: int = 9000
    sustain_url: str | None = None  # overrides the graph's monitor.url
    seed: int | None = None
    inject_routing: bool = False  # Seldon's SELDON_ENABLE_ROUTING_INJECTION
    scoring_timeout: float = START_TIMEOUT
    log_workers: int = 5


class GraphRunner:
    def __init__(self, graph: Graph, options: RunnerOptions | None = None) -> None:
        self.graph = graph
        self.options = options or RunnerOptions()
        self.random = random.Random(self.options.seed)
        uris = [n.impl.uri for _, g, _, _ in graph.predictors() for n in g.mlflow_nodes() if n.impl.uri]
        self.servers = ScoringServers(uris, timeout=self.options.scoring_timeout)
        self.logger = EventLogger(
            graph.name,
            graph.namespace or "default",
            graph.protocol,
            f"http://{self.options.host}:{self.options.port}/",
            workers=self.options.log_workers,
        )
        self.executors: dict[str, Executor] = {}
        self.traffic: list[tuple[str, int]] = []
        self.shadow: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def log_urls(self) -> dict[str, str]:
        base = (self.options.sustain_url or self.graph.monitor.url).rstrip("/")
        return {node: f"{base}/v1/cloudevents?model={model}" for node, model in self.graph.monitored().items()}

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        units_code = {
            n.name: code_unit(n, self.options.seed) for n in self.graph.nodes.values() if n.impl.kind != "mlflow"
        }
        await asyncio.to_thread(self.servers.start, progress)
        self._client = httpx.AsyncClient(timeout=UNIT_TIMEOUT)
        await self.logger.start()
        for name, variant, traffic, shadow in self.graph.predictors():
            units: dict[str, Unit] = dict(units_code)
            for node in variant.mlflow_nodes():
                assert node.impl.uri is not None
                units[node.name] = MlflowUnit(node.name, self.servers.url(node.impl.uri), self._client)
            self.executors[name] = Executor(
                variant,
                units,
                self.log_urls(),
                self.logger,
                seed=self.options.seed,
                inject_routing=self.options.inject_routing,
            )
            if shadow:
                self.shadow = name
            else:
                self.traffic.append((name, traffic or 0))

    async def stop(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.logger.close()
        if self._client is not None:
            await self._client.aclose()
        await asyncio.to_thread(self.servers.stop)

    def choose(self) -> str:
        draw = self.random.uniform(0, 100)
        total = 0
        for name, weight in self.traffic:
            total += weight
            if draw < total:
                return name
        return self.traffic[0][0]

    async def _run(self, predictor: str, msg: Message, call: Call) -> tuple[int, Message]:
        try:
            return 200, await self.executors[predictor].run(msg, call)
        except UnitError as exc:
            return exc.status, exc.body

    async def predict(self, msg: Message, protocol: str, puid: str | None) -> tuple[int, Message, str]:
        """Route ``msg`` to a predictor (and mirror it to the shadow); (status, body, Seldon-Puid)."""
        request_id = puid or str(uuid.uuid4())
        if self.shadow is not None:
            shadow_id = puid or str(uuid.uuid4())  # a mirrored request gets its own puid unless the client sent one
            shadow_call = Call(shadow_id, self.shadow, protocol)
            task = asyncio.create_task(self._run(self.shadow, msg, shadow_call))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        predictor = self.choose()
        status, body = await self._run(predictor, msg, Call(request_id, predictor, protocol))
        return status, body, request_id

    async def feedback(self, msg: Message, puid: str | None) -> tuple[int, Message, str]:
        request_id = puid or str(uuid.uuid4())
        predictor = self.choose()
        executor = self.executors[predictor]
        call = Call(request_id, predictor, "seldon")
        try:
            await executor.feedback(executor.graph.node(executor.graph.root), msg, call)
        except UnitError as exc:
            return exc.status, exc.body, request_id
        except Exception as exc:
            return 500, failure(500, f"feedback failed: {type(exc).__name__}: {exc}"), request_id
        return 200, {"data": {"names": [], "ndarray": []}, "meta": {}}, request_id

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait for mirrored requests and queued CloudEvents (tests and shutdown)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)
        await self.logger.drain(timeout)
