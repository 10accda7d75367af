"""The serving gateway: one stable address per model in front of its versions' scoring servers.

``POST /{model}/invocations`` takes MLflow's scoring formats (``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs``) and answers like the scoring server, with ``X-Sustain-Version`` and ``X-Request-Id``
headers. The gateway

* routes each request to the champion, or to the candidate for ``canary_percent`` of them (an exact share,
  not a coin toss), or copies it to the candidate as a shadow whose answer the caller never sees;
* fails over when a version's process is down or does not answer (to the champion, then a standby version,
  then the candidate), so one version dying fails no request while another serves;
* logs every request and response as a sustain event of the version that answered (one event per row; the
  request id is the caller's ``X-Request-Id``, suffixed ``-<row>`` for batches), so labels can join later;
* switches routes atomically: a promote or a rollback replaces one object, requests in flight finish where
  they started.

It is a small Starlette application (the only HTTP framework sustain uses), mounted by ``sustain serve`` at
``/serving`` or run on its own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from sustain.deploy_pipeline.release.monitoring import outputs_of
from sustain.spec import ModelSpec

log = logging.getLogger("sustain.release")

EventSink = Callable[[str, list[dict[str, Any]]], Awaitable[None]]
SERVING_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_RETRY_STATUSES = {502, 503, 504}


@dataclass
class Backend:
    """One version's scoring server, as the gateway sees it."""

    version: str
    url: str
    up: bool = True


@dataclass(frozen=True)
class Route:
    """A model's routing, replaced whole on every switch."""

    champion: Backend | None
    candidate: Backend | None = None
    canary_percent: float = 0.0
    shadow: bool = False
    standby: tuple[Backend, ...] = ()


@dataclass
class Counters:
    requests: dict[str, int] = field(default_factory=dict)  # version -> answered
    failovers: int = 0
    failed: int = 0
    shadowed: int = 0


def rows_of(body: Any) -> list[dict[str, Any]] | None:
    """The request's rows as ``{column: value}``, None when they have no column names."""
    if not isinstance(body, dict):
        return None
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        columns = split.get("columns") if isinstance(split, dict) else None
        data = split.get("data") if isinstance(split, dict) else None
        if isinstance(columns, list) and isinstance(data, list):
            return [dict(zip(columns, row, strict=False)) for row in data if isinstance(row, list)]
        return None
    for key in ("dataframe_records", "instances", "inputs"):
        value = body.get(key)
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            n = min((len(v) for v in value.values()), default=0)
            return [{k: v[i] for k, v in value.items()} for i in range(n)]
        if isinstance(value, list):
            return [r for r in value if isinstance(r, dict)] if value and isinstance(value[0], dict) else None
    return None


class Gateway:
    def __init__(
        self,
        *,
        sink: EventSink | None = None,
        spec_of: Callable[[str], ModelSpec | None] = lambda _: None,
        authorize: Callable[[Request], None] | None = None,
        timeout: float = 60.0,
        flush_interval: float = 0.25,
    ) -> None:
        self.sink = sink
        self.spec_of = spec_of
        self.authorize = authorize
        self.timeout = timeout
        self.flush_interval = flush_interval
        self.routes: dict[str, Route] = {}
        self.counters: dict[str, Counters] = {}
        self._turn: dict[str, int] = {}
        self._client: httpx.AsyncClient | None = None
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self.app = Starlette(
            lifespan=self._lifespan,
            routes=[
                HttpRoute("/", self._status, methods=["GET"]),
                HttpRoute("/{model}/invocations", self._invocations, methods=["POST"]),
                HttpRoute("/{model}/ping", self._ping, methods=["GET"]),
            ],
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    # -- routing -------------------------------------------------------------------------------
    def set_route(self, model: str, route: Route | None) -> None:
        """Replace the model's route in one assignment; None stops serving the model."""
        if route is None:
            self.routes.pop(model, None)
        else:
            self.routes[model] = route
            self.counters.setdefault(model, Counters())

    def backends(self) -> list[Backend]:
        seen: dict[int, Backend] = {}
        for route in self.routes.values():
            for b in (route.champion, route.candidate, *route.standby):
                if b is not None:
                    seen[id(b)] = b
        return list(seen.values())

    def _order(self, model: str, route: Route) -> list[Backend]:
        """Backends to try, in order: the one chosen for this request first, the others as fail-over."""
        turn = self._turn.get(model, 0) + 1
        self._turn[model] = turn
        share = route.canary_percent
        to_candidate = (
            route.candidate is not None
            and not route.shadow
            and int(turn * share // 100) > int((turn - 1) * share // 100)
        )
        first = route.candidate if to_candidate else route.champion
        order = [first, route.champion, *route.standby, None if route.shadow else route.candidate]
        unique: list[Backend] = []
        for b in order:
            if b is not None and b not in unique:
                unique.append(b)
        return sorted(unique, key=lambda b: not b.up)  # a backend known to be down goes last, not away

    # -- HTTP ------------------------------------------------------------------------------------
    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits)
        return self._client

    async def _status(self, request: Request) -> Response:
        if self.authorize is not None:
            self.authorize(request)
        return JSONResponse({"models": self.status()})

    def status(self) -> dict[str, Any]:
        out = {}
        for model, route in sorted(self.routes.items()):
            counters = self.counters.get(model, Counters())
            out[model] = {
                "champion": _describe(route.champion),
                "candidate": _describe(route.candidate),
                "canary_percent": route.canary_percent,
                "shadow": route.shadow,
                "standby": [_describe(b) for b in route.standby],
                "answered": dict(counters.requests),
                "failovers": counters.failovers,
                "failed": counters.failed,
            }
        return out

    async def _ping(self, request: Request) -> Response:
        model = request.path_params["model"]
        route = self.routes.get(model)
        if route is None or route.champion is None:
            return JSONResponse({"error": f"no version of {model} is served"}, status_code=404)
        return JSONResponse({"model": model, "version": route.champion.version})

    async def _invocations(self, request: Request) -> Response:
        if self.authorize is not None:
            self.authorize(request)
        model = request.path_params["model"]
        route = self.routes.get(model)
        if route is None or (route.champion is None and route.candidate is None):
            return _error(404, f"no version of model {model!r} is served here")
        body = await request.body()
        content_type = request.headers.get("content-type", "application/json")
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        counters = self.counters.setdefault(model, Counters())
        started = time.perf_counter()
        response: httpx.Response | None = None
        answered: Backend | None = None
        last_error = ""
        for attempt, backend in enumerate(self._order(model, route)):
            try:
                response = await self.client.post(
                    f"{backend.url}/invocations", content=body, headers={"content-type": content_type}
                )
            except httpx.TransportError as exc:
                last_error = f"version {backend.version}: {type(exc).__name__}"
                backend.up = False
                counters.failovers += attempt == 0
                continue
            if response.status_code in _RETRY_STATUSES:
                last_error = f"version {backend.version} answered {response.status_code}"
                counters.failovers += attempt == 0
                continue
            backend.up = True
            answered = backend
            break
        latency_ms = (time.perf_counter() - started) * 1000
        if response is None or answered is None:
            counters.failed += 1
            return _error(503, f"no version of {model!r} could answer ({last_error}); retry shortly", retry=True)
        counters.requests[answered.version] = counters.requests.get(answered.version, 0) + 1
        self._log(model, answered.version, request_id, body, response, latency_ms)
        if route.shadow and route.candidate is not None and route.candidate is not answered:
            self._shadow(model, route.candidate, request_id, body, content_type)
        headers = {"x-sustain-version": answered.version, "x-request-id": request_id}
        return Response(
            response.content,
            status_code=response.status_code,
            media_type=response.headers.get("content-type", "application/json"),
            headers=headers,
        )

    def _shadow(self, model: str, backend: Backend, request_id: str, body: bytes, content_type: str) -> None:
        async def copy() -> None:
            started = time.perf_counter()
            try:
                response = await self.client.post(
                    f"{backend.url}/invocations", content=body, headers={"content-type": content_type}
                )
            except httpx.TransportError:
                backend.up = False
                return
            self.counters[model].shadowed += 1
            self._log(
                model, backend.version, f"shadow-{request_id}", body, response, (time.perf_counter() - started) * 1000
            )

        task = asyncio.get_running_loop().create_task(copy())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    # -- events ------------------------------------------------------------------------------------
    def _log(
        self, model: str, version: str, request_id: str, body: bytes, response: httpx.Response, latency_ms: float
    ) -> None:
        if self.sink is None:
            return
        spec = self.spec_of(model)
        if spec is None:
            return
        try:
            rows = rows_of(orjson.loads(body))
        except orjson.JSONDecodeError:
            rows = None
        if not rows:
            return
        error: str | None = None
        predictions: list[Any] = []
        if response.status_code == 200:
            try:
                reply = orjson.loads(response.content)
                predictions = reply.get("predictions", []) if isinstance(reply, dict) else reply
            except orjson.JSONDecodeError:
                error = "the scoring server's answer is not JSON"
        else:
            error = f"{response.status_code}: {response.text[:200]}"
        single = len(rows) == 1
        events = []
        for i, row in enumerate(rows):
            event: dict[str, Any] = {
                "request_id": request_id if single else f"{request_id}-{i}",
                "version": version,
                "features": row,
                "latency_ms": latency_ms,
            }
            if error is not None:
                event["error"] = error
            elif i < len(predictions):
                event["outputs"] = outputs_of(spec, predictions[i])
            events.append(event)
        self._pending.setdefault(model, []).extend(events)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for model, events in pending.items():
            if not events or self.sink is None:
                continue
            try:
                await self.sink(model, events)
            except Exception:  # logging must never fail a prediction, nor stop the next flush
                log.exception("logging %d served events of %s failed", len(events), model)

    async def aclose(self) -> None:
        for task in list(self._shadow_tasks):
            with contextlib.suppress(Exception):
                await task
        await self.flush()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _describe(backend: Backend | None) -> dict[str, Any] | None:
    return None if backend is None else {"version": backend.version, "url": backend.url, "up": backend.up}


def _error(status: int, message: str, retry: bool = False) -> Response:
    headers = {"retry-after": "1"} if retry else None
    code = "not_found" if status == 404 else "unavailable"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class HttpEventSink:
    """Served events into a sustain service over HTTP (when the gateway runs apart from it)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"content-type": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, model: str, events: list[dict[str, Any]]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30)
        response = await self._client.post(
            f"{self.url}/v1/models/{model}/events", content=orjson.dumps(events), headers=self.headers
        )
        if response.status_code >= 400 and response.status_code != 207:
            log.warning("sustain refused %d served events of %s: %s", len(events), model, response.text[:300])
