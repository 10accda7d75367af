"""The units a graph's nodes run on: an MLflow scoring server over HTTP, or a class in this process.

Each unit answers the calls Seldon's executor makes (``predict``, ``transform_input``, ``transform_output``,
``route``, ``aggregate``, ``send_feedback``) with the payload a cluster's component would return, in the
protocol of the request (``seldon`` or ``v2``). A failed call raises :class:`UnitError` with the status and body
the component answered, which the executor passes on (and, like Seldon's, does not log as a response).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import numpy as np
import orjson

from sustain.deploy_pipeline.graph.builtins import AverageCombiner, EpsilonGreedy, RandomABTest
from sustain.deploy_pipeline.graph.model import GraphError, Node
from sustain.deploy_pipeline.graph.runner.messages import (
    Message,
    from_oip,
    from_seldon,
    invocation,
    mlflow_to_seldon,
    predictions,
    to_oip,
    to_seldon,
)
from sustain.errors import SustainError, ValidationError


class UnitError(Exception):
    """A node answered with an error: its HTTP status and body go back to the caller unchanged."""

    def __init__(self, status: int, body: Message) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def failure(status: int, info: str) -> Message:
    """The executor's error payload (``CreateErrorPayload``): a SeldonMessage status."""
    return {"status": {"code": status, "info": info, "status": "FAILURE"}}


class Unit(Protocol):
    name: str

    async def predict(self, msg: Message, protocol: str) -> Message: ...

    async def transform_input(self, msg: Message, protocol: str) -> Message: ...

    async def transform_output(self, msg: Message, protocol: str) -> Message: ...

    async def route(self, msg: Message, protocol: str) -> int: ...

    async def aggregate(self, msgs: Sequence[Message], protocol: str) -> Message: ...

    async def send_feedback(self, feedback: Message, routing: int | None) -> None: ...


def _features(msg: Message, protocol: str) -> tuple[Any, list[str] | None]:
    try:
        if protocol == "v2":
            return from_oip(msg, "inputs" if "inputs" in msg else "outputs")
        features, names = from_seldon(msg)
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        reason = exc.message if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        raise UnitError(400, failure(400, f"cannot read the payload: {reason}")) from None
    return features, names or None


class MlflowUnit:
    """A model served by ``mlflow models serve`` at ``url``."""

    def __init__(self, name: str, url: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.client = client

    async def predict(self, msg: Message, protocol: str) -> Message:
        features, names = _features(msg, protocol)
        try:
            reply = await self.client.post(
                f"{self.url}/invocations",
                content=orjson.dumps(invocation(features, names)),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise UnitError(500, failure(500, f"node {self.name}: cannot reach its scoring server: {exc}")) from None
        body = reply.json() if reply.content else {}
        if reply.status_code != 200:
            raise UnitError(
                reply.status_code, body if isinstance(body, dict) else failure(reply.status_code, str(body))
            )
        result = predictions(body)
        return to_oip(result, self.name, msg) if protocol == "v2" else mlflow_to_seldon(result, msg)

    async def transform_input(self, msg: Message, protocol: str) -> Message:
        return await self.predict(msg, protocol)

    async def transform_output(self, msg: Message, protocol: str) -> Message:
        return await self.predict(msg, protocol)

    async def route(self, msg: Message, protocol: str) -> int:
        raise UnitError(500, failure(500, f"node {self.name} is a model and cannot route"))

    async def aggregate(self, msgs: Sequence[Message], protocol: str) -> Message:
        raise UnitError(500, failure(500, f"node {self.name} is a model and cannot combine"))

    async def send_feedback(self, feedback: Message, routing: int | None) -> None:
        return None  # Seldon's MLFLOW_SERVER implements no feedback


def load_class(ref: str) -> type:
    """Import ``package.module:Class``."""
    module_name, _, class_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GraphError(f"cannot import {module_name} for {ref}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise GraphError(f"{module_name} has no class {class_name} (from {ref})")
    return cls


def _call(method: Any, *args: Any) -> Any:
    """Call a user method the way Seldon's wrapper does: with the arguments it accepts."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return method(*args)
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params.values()):
        return method(*args)
    return method(*args[: max(1, len(positional))])


class CodeUnit:
    """A class in this process, called like Seldon's Python wrapper calls it."""

    def __init__(self, name: str, instance: Any, image_tag: str) -> None:
        self.name = name
        self.instance = instance
        self.image_tag = image_tag

    def _meta(self, msg: Message) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        request_meta: dict[str, Any] = msg["meta"] if isinstance(msg.get("meta"), dict) else {}
        if request_meta.get("puid"):
            meta["puid"] = request_meta["puid"]
        meta["requestPath"] = {**(request_meta.get("requestPath") or {}), self.name: self.image_tag}
        return meta

    async def _run(self, method_name: str, msg: Message, protocol: str, is_request: bool) -> Message:
        features, names = _features(msg, protocol)
        method = getattr(self.instance, method_name, None)
        if method is None:
            if method_name == "predict":
                raise UnitError(500, failure(500, f"node {self.name}: {type(self.instance).__name__} has no predict"))
            result: Any = features  # the wrapper passes data through when the method is missing
        else:
            try:
                result = await asyncio.to_thread(_call, method, features, names or [])
            except SustainError:
                raise
            except Exception as exc:
                raise UnitError(500, failure(500, f"node {self.name}: {type(exc).__name__}: {exc}")) from None
        keep = names if is_request else None
        if protocol == "v2":
            return to_oip(np.asarray(result), self.name, msg, keep)
        return to_seldon(result, msg, names=keep, is_request=is_request, meta=self._meta(msg))

    async def predict(self, msg: Message, protocol: str) -> Message:
        return await self._run("predict", msg, protocol, is_request=False)

    async def transform_input(self, msg: Message, protocol: str) -> Message:
        return await self._run("transform_input", msg, protocol, is_request=True)

    async def transform_output(self, msg: Message, protocol: str) -> Message:
        return await self._run("transform_output", msg, protocol, is_request=False)

    async def route(self, msg: Message, protocol: str) -> int:
        method = getattr(self.instance, "route", None)
        if method is None:
            return -1
        features, names = _features(msg, protocol)
        try:
            return int(await asyncio.to_thread(_call, method, features, names or []))
        except Exception as exc:
            raise UnitError(500, failure(500, f"node {self.name}: route failed: {type(exc).__name__}: {exc}")) from None

    async def aggregate(self, msgs: Sequence[Message], protocol: str) -> Message:
        method = getattr(self.instance, "aggregate", None)
        if method is None:
            raise UnitError(500, failure(500, f"node {self.name}: {type(self.instance).__name__} has no aggregate"))
        parts = [_features(m, protocol) for m in msgs]
        try:
            result = await asyncio.to_thread(_call, method, [f for f, _ in parts], [n or [] for _, n in parts])
        except Exception as exc:
            raise UnitError(
                500, failure(500, f"node {self.name}: aggregate failed: {type(exc).__name__}: {exc}")
            ) from None
        if protocol == "v2":
            return to_oip(np.asarray(result), self.name, msgs[0])
        return to_seldon(result, msgs[0], names=None, is_request=False, meta=self._meta(msgs[0]))

    async def send_feedback(self, feedback: Message, routing: int | None) -> None:
        method = getattr(self.instance, "send_feedback", None)
        if method is None:
            return
        request = feedback.get("request") or {}
        features, names = from_seldon(request) if request else (np.array([]), [])
        reward = float(feedback.get("reward") or 0.0)
        truth = feedback.get("truth")
        await asyncio.to_thread(method, features, names, reward, truth, routing)


def builtin_instance(node: Node, seed: int | None) -> Any:
    impl = node.impl
    if impl.kind == "average":
        return AverageCombiner()
    if impl.kind == "ab":
        return RandomABTest(ratioA=float(impl.param("ratio", 0.5)), seed=seed)
    if impl.kind == "epsilon_greedy":
        node_seed = int(impl.param("seed", seed if seed is not None else 0))
        return EpsilonGreedy(n_branches=len(node.children), epsilon=float(impl.param("epsilon", 0.1)), seed=node_seed)
    raise GraphError(f"node {node.name} is not a built-in")


def code_unit(node: Node, seed: int | None) -> CodeUnit:
    """The in-process unit of a code or built-in node."""
    impl = node.impl
    if impl.is_builtin:
        instance = builtin_instance(node, seed)
        return CodeUnit(node.name, instance, f"sustain/{impl.kind}")
    if impl.code is None:
        where = f"line {node.line}: " if node.line else ""
        raise GraphError(f"{where}node {node.name} has only an image ({impl.image}); the local runner needs its code")
    cls = load_class(impl.code)
    try:
        instance = cls()
    except Exception as exc:
        raise GraphError(f"node {node.name}: {impl.code}() failed: {type(exc).__name__}: {exc}") from None
    return CodeUnit(node.name, instance, impl.image or impl.code)
