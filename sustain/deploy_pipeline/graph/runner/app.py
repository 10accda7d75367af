"""The runner's HTTP face: Seldon's v1 protocol and the Open Inference Protocol (V2), on Starlette.

Seldon serves one protocol per deployment; the runner answers both, each with its own chaining rules:

* ``POST /api/v1.0/predictions`` (and ``/api/v0.1/``), ``POST /api/v1.0/feedback`` — Seldon messages;
* ``POST /v2/models/{name}/infer`` (also ``/versions/{v}/infer``) — OIP requests, checked against the spec;
* ``GET /ready``, ``/live``, ``/v2/health/ready``, ``/v2/health/live``, ``/v2/models/{name}[/ready]``.

Every answer carries the request's ``Seldon-Puid`` (from the request, or a new one), as the executor's does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sustain.deploy_pipeline.graph.runner.messages import check_oip_request
from sustain.deploy_pipeline.graph.runner.service import GraphRunner
from sustain.deploy_pipeline.graph.runner.units import failure
from sustain.errors import ValidationError

PUID = "Seldon-Puid"


def _json(status: int, body: Any, puid: str | None = None) -> Response:
    headers = {PUID: puid} if puid else None
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the body is not valid JSON: {exc}", field="body") from None


def create_runner_app(
    runner: GraphRunner,
    *,
    manage: bool = True,
    progress: Callable[[str], None] | None = None,
    stop_on_shutdown: bool = False,
) -> Starlette:
    """The ASGI app; with ``manage`` it starts the runner (scoring servers, logger) and stops it with the app;
    with ``stop_on_shutdown`` only stops it (for a runner started beforehand)."""

    async def seldon_predict(request: Request) -> Response:
        puid = request.headers.get(PUID)
        try:
            body = await _body(request)
            if not isinstance(body, dict):
                raise ValidationError("a Seldon message is a JSON object", field="body")
        except ValidationError as exc:
            return _json(400, failure(400, exc.message), puid)
        status, reply, puid = await runner.predict(body, "seldon", puid)
        return _json(status, reply, puid)

    async def seldon_feedback(request: Request) -> Response:
        puid = request.headers.get(PUID)
        try:
            body = await _body(request)
            if not isinstance(body, dict):
                raise ValidationError(
                    "feedback is a JSON object with request, response, reward and truth", field="body"
                )
        except ValidationError as exc:
            return _json(400, failure(400, exc.message), puid)
        status, reply, puid = await runner.feedback(body, puid)
        return _json(status, reply, puid)

    async def v2_infer(request: Request) -> Response:
        puid = request.headers.get(PUID)
        try:
            body = await _body(request)
            check_oip_request(body)
        except ValidationError as exc:
            return _json(400, {"error": exc.message}, puid)
        status, reply, puid = await runner.predict(body, "v2", puid)
        if status != 200 and "error" not in reply:
            info = (reply.get("status") or {}).get("info") if isinstance(reply.get("status"), dict) else None
            reply = {"error": info or orjson.dumps(reply).decode()}
        return _json(status, reply, puid)

    async def ready(request: Request) -> Response:
        return _json(200, {"status": "ready"})

    async def model_metadata(request: Request) -> Response:
        return _json(
            200,
            {
                "name": request.path_params.get("model", runner.graph.name),
                "platform": "sustain-graph",
                "versions": [],
                "inputs": [],
                "outputs": [],
            },
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage:
            await runner.start(progress)
        try:
            yield
        finally:
            if manage or stop_on_shutdown:
                await runner.stop()  # drains the CloudEvents queue before the process exits

    routes = [
        Route("/api/v1.0/predictions", seldon_predict, methods=["POST"]),
        Route("/api/v0.1/predictions", seldon_predict, methods=["POST"]),
        Route("/api/v1.0/feedback", seldon_feedback, methods=["POST"]),
        Route("/api/v0.1/feedback", seldon_feedback, methods=["POST"]),
        Route("/v2/models/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{model}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{model}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", ready, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/health/live", ready, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/live", ready, methods=["GET"]),
        Route("/api/v1.0/health/status", ready, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
