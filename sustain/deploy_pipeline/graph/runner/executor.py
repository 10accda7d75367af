"""Seldon Core v1's executor semantics, ported from ``executor/predictor/predictor_process.go`` (release 1.19).

For every node, ``predict`` runs three phases:

1. **transform input** — a MODEL calls ``predict``, a TRANSFORMER ``transform-input``; anything else passes
   the message on. The message is first *chained* (V2: the previous outputs become inputs). With a logger,
   the node logs the request it sends and, if the call succeeded, the response.
2. **children** — a node with children logs its (transformed) message as a request again, then *routes*: a
   ROUTER asks its unit, ``RANDOM_ABTEST`` draws child 0 with probability ``ratioA``, anything else returns
   -1 = all children, called in parallel (the first failing child, in child order, fails the node; -2
   returns the message as is). The children's outputs are *aggregated*: a COMBINER logs, calls ``aggregate``
   and logs; **any other node returns only the first child's output**. The aggregate is logged as a response.
3. **transform output** — an OUTPUT_TRANSFORMER chains, logs, calls ``transform-output`` and logs.

So a node with children and a logger logs two pairs under one ``Ce-Modelid`` (its own call, then its
subtree's result); sustain's collector keeps the first, the node's own. Feedback walks the tree too: each
logged node logs the feedback, children get it as routed by ``response.meta.routing`` (all when absent), then
models and routers receive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sustain.deploy_pipeline.graph.builtins import RandomABTest
from sustain.deploy_pipeline.graph.model import Graph, Node
from sustain.deploy_pipeline.graph.runner.eventlog import FEEDBACK, REQUEST, RESPONSE, EventLogger, LogRequest
from sustain.deploy_pipeline.graph.runner.messages import Message, chain_v2
from sustain.deploy_pipeline.graph.runner.units import Unit, UnitError, failure

ROUTE_ALL = -1
ROUTE_NONE = -2


@dataclass
class Call:
    """One request's context: its id, the predictor it runs on, the protocol and the routing decisions."""

    puid: str
    endpoint: str
    protocol: str
    routing: dict[str, int] = field(default_factory=dict)


class Executor:
    """Runs one predictor's graph; ``log_urls`` maps each logged node to its logger URL."""

    def __init__(
        self,
        graph: Graph,
        units: Mapping[str, Unit],
        log_urls: Mapping[str, str],
        logger: EventLogger | None,
        *,
        seed: int | None = None,
        inject_routing: bool = False,
    ) -> None:
        self.graph = graph
        self.units = units
        self.log_urls = log_urls
        self.logger = logger
        self.inject_routing = inject_routing
        self.ab = {
            n.name: RandomABTest(ratioA=float(n.impl.param("ratio", 0.5)), seed=seed)
            for n in graph.nodes.values()
            if n.impl.kind == "ab"
        }

    # -- logging ---------------------------------------------------------------------------------
    async def log(self, node: Node, ce_type: str, msg: Message, call: Call) -> None:
        url = self.log_urls.get(node.name)
        if url is None or self.logger is None:
            return
        body = orjson.dumps(msg)
        await self.logger.log(LogRequest(url, body, "application/json", ce_type, node.name, call.puid, call.endpoint))

    def chain(self, msg: Message, call: Call) -> Message:
        return chain_v2(msg) if call.protocol == "v2" else msg

    # -- the three phases ------------------------------------------------------------------------
    async def _logged(self, node: Node, msg: Message, call: Call, run: Callable[[], Awaitable[Message]]) -> Message:
        await self.log(node, REQUEST, msg, call)
        result = await run()  # a UnitError skips the response log, as the executor's `err == nil` check does
        await self.log(node, RESPONSE, result, call)
        return result

    async def transform_input(self, node: Node, msg: Message, call: Call) -> Message:
        if node.kind not in ("model", "transformer"):
            return msg
        msg = self.chain(msg, call)
        call.routing[node.name] = ROUTE_ALL
        unit = self.units[node.name]
        method = unit.transform_input if node.kind == "transformer" else unit.predict
        return await self._logged(node, msg, call, lambda: method(msg, call.protocol))

    async def transform_output(self, node: Node, msg: Message, call: Call) -> Message:
        if node.kind != "output_transformer":
            return msg
        msg = self.chain(msg, call)
        unit = self.units[node.name]
        return await self._logged(node, msg, call, lambda: unit.transform_output(msg, call.protocol))

    async def route(self, node: Node, msg: Message, call: Call) -> int:
        if node.kind == "router" and node.impl.kind != "ab":
            return await self.units[node.name].route(msg, call.protocol)
        if node.impl.kind == "ab":
            return self.ab[node.name].route(None, None)
        return ROUTE_ALL

    async def aggregate(self, node: Node, outputs: Sequence[Message], msg: Message, call: Call) -> Message:
        if node.kind != "combiner":
            return outputs[0]
        await self.log(node, REQUEST, msg, call)
        call.routing[node.name] = ROUTE_ALL
        result = await self.units[node.name].aggregate(outputs, call.protocol)
        await self.log(node, RESPONSE, result, call)
        return result

    async def predict_children(self, node: Node, msg: Message, call: Call) -> Message:
        if not node.children:
            return msg
        await self.log(node, REQUEST, msg, call)
        route = await self.route(node, msg, call)
        children = [self.graph.node(c) for c in node.children]
        if route == ROUTE_ALL:
            results = await asyncio.gather(*(self.predict(c, msg, call) for c in children), return_exceptions=True)
            call.routing[node.name] = ROUTE_ALL
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            outputs: list[Message] = [r for r in results if not isinstance(r, BaseException)]
        elif route == ROUTE_NONE:
            call.routing[node.name] = ROUTE_NONE
            return msg
        elif 0 <= route < len(children):
            outputs = [await self.predict(children[route], msg, call)]
            call.routing[node.name] = route
        else:
            raise UnitError(500, failure(500, f"router {node.name} chose child {route}, but it has {len(children)}"))
        result = await self.aggregate(node, outputs, msg, call)
        await self.log(node, RESPONSE, result, call)
        return result

    async def predict(self, node: Node, msg: Message, call: Call) -> Message:
        transformed = await self.transform_input(node, msg, call)
        combined = await self.predict_children(node, transformed, call)
        return await self.transform_output(node, combined, call)

    async def run(self, msg: Message, call: Call) -> Message:
        """The graph's answer to ``msg`` (UnitError when a node failed)."""
        response = await self.predict(self.graph.node(self.graph.root), msg, call)
        if self.inject_routing and isinstance(response.get("meta"), dict):
            response = {**response, "meta": {**response["meta"], "routing": dict(call.routing)}}
        return response

    # -- feedback --------------------------------------------------------------------------------
    async def feedback(self, node: Node, msg: Message, call: Call) -> None:
        await self.log_feedback(node, msg, call)
        routing = _routing(msg).get(node.name, ROUTE_ALL)
        children = [self.graph.node(c) for c in node.children]
        if children:
            if routing == ROUTE_ALL:
                await asyncio.gather(*(self.feedback(c, msg, call) for c in children))
            elif 0 <= routing < len(children):
                await self.feedback(children[routing], msg, call)
        if node.kind in ("model", "router") and node.name in self.units:
            await self.units[node.name].send_feedback(msg, routing if routing >= 0 else None)

    async def log_feedback(self, node: Node, msg: Message, call: Call) -> None:
        url = self.log_urls.get(node.name)
        if url is not None and self.logger is not None:
            body = orjson.dumps(msg)
            await self.logger.log(
                LogRequest(url, body, "application/json", FEEDBACK, node.name, call.puid, call.endpoint)
            )


def _routing(msg: Message) -> dict[str, int]:
    response: Any = msg.get("response") if isinstance(msg, dict) else None
    meta = response.get("meta") if isinstance(response, dict) else None
    routing = meta.get("routing") if isinstance(meta, dict) else None
    return {str(k): int(v) for k, v in routing.items()} if isinstance(routing, dict) else {}
