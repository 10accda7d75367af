"""App factory: builds the Store, the writer, the collector and the FastAPI app from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sustain.alerting.actions import check_actions
from sustain.alerting.service import Alerting
from sustain.api.alerts import router as alerts_router
from sustain.api.collector import router as collector_router
from sustain.api.context import AppContext
from sustain.api.dashboard import router as dashboard_router
from sustain.api.guard import Admission, RequestGuard
from sustain.api.indicators import router as indicators_router
from sustain.api.inference import router as inference_router
from sustain.api.pages import router as pages_router
from sustain.api.releases import build_releases, start_releases, stop_releases
from sustain.api.releases import router as releases_router
from sustain.api.responses import JSON, json_response
from sustain.backends import open_backend
from sustain.backends.base import Backend
from sustain.collector.bodies import InflightBudget
from sustain.collector.metrics import ServiceMetrics
from sustain.collector.service import Collector
from sustain.dashboards.prometheus import indicator_registry
from sustain.errors import Overloaded, SustainError, Unauthorized
from sustain.settings import Settings
from sustain.spec import ModelSpec, MonitorConfig
from sustain.spec.loader import load_config
from sustain.spec.secrets import EnvPolicy
from sustain.store.base import Store
from sustain.store.writer import Writer

log = logging.getLogger("sustain.api.app")

# Parts added by later layers (engine, dashboards) hook in here without the server importing them eagerly.
Startup = Callable[[AppContext], Any]


def apply_config(store: Store, path: str) -> list[str]:
    """Register every model of a spec file; unchanged specs are left alone. Returns the names applied."""
    return [spec.name for spec in _apply(store, load_config(path))]


def _apply(store: Store, config: MonitorConfig) -> list[ModelSpec]:
    for spec in config.models:
        check_actions(spec)
        if store.get_spec(spec.name) != spec:
            store.put_spec(spec)
    return list(config.models)


def build_context(settings: Settings, backend: Backend | None = None) -> AppContext:
    backend = backend or open_backend(settings.store_uri)
    store = backend.store
    env_policy = EnvPolicy()
    if settings.config:
        config = load_config(settings.config)
        _apply(store, config)
        env_policy = config.env_policy
    metrics_ref: dict[str, ServiceMetrics] = {}
    writer = Writer(
        store,
        max_pending_events=settings.max_pending_events,
        max_queue_seconds=settings.max_queue_seconds,
        on_commit=lambda n, s: metrics_ref["m"].observe_commit(n, s),
    )
    budget = InflightBudget(settings.max_inflight_bytes)
    metrics = ServiceMetrics(lambda: writer.pending_events, lambda: budget.used)
    metrics_ref["m"] = metrics
    collector = Collector(store, writer, metrics)
    ctx = AppContext(
        settings=settings,
        backend=backend,
        writer=writer,
        collector=collector,
        metrics=metrics,
        budget=budget,
        started_at=time.time(),
        env_policy=env_policy,
    )
    if settings.engine:
        engine = backend.engine(
            transform_interval=settings.transform_interval,
            indicator_interval=settings.indicator_interval,
            retention_interval=settings.retention_interval,
            workers=settings.engine_workers,
            null_entries=settings.null_cache_entries,
        )
        alerting = Alerting(store, engine.documents, backend.alert_store(settings), env_policy=env_policy)
        engine.listeners.append(alerting.on_indicators)
        collector.on_reference = engine.on_reference
        ctx.engine, ctx.alerting = engine, alerting
        ctx.metrics_registries.append(indicator_registry(engine, alerting))
    ctx.releases = build_releases(ctx)
    if ctx.releases is not None:
        from sustain.deploy_pipeline.release.metrics import release_registry

        ctx.metrics_registries.append(release_registry(ctx.releases))
    if settings.redis:
        from sustain.inference.metrics import queue_registry
        from sustain.inference.queues import QueueReader

        ctx.inference = QueueReader(settings.redis)
        ctx.metrics_registries.append(queue_registry(ctx.inference.read))
    return ctx


async def _sweep_cloudevents(collector: Collector, every: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await collector.complete_pending()
        except Exception:  # the sweeper must outlive any one bad exchange
            log.exception("completing pending CloudEvents failed")


def _error_response(exc: SustainError) -> JSON:
    headers: dict[str, str] = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(exc.http_status, {"error": exc.to_dict()}, headers)


def create_app(
    settings: Settings | None = None,
    *,
    context: AppContext | None = None,
    startup: list[Startup] | None = None,
) -> FastAPI:
    """The sustain service. ``context`` may be built beforehand (the CLI does, to report errors early)."""
    settings = settings or Settings.from_env()
    settings.check_bind()  # the same guard as `sustain serve`, for apps made by uvicorn --factory and the like
    ctx = context or build_context(settings)
    hooks = list(startup or [])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.writer.start()
        engine = ctx.engine
        if engine is not None:
            engine.start()
        tasks = [asyncio.create_task(_sweep_cloudevents(ctx.collector))]
        await start_releases(ctx)
        stoppers = []
        for hook in hooks:
            stop = hook(ctx)
            if stop is not None:
                stoppers.append(stop)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for stop in reversed(stoppers):
                with contextlib.suppress(Exception):
                    stop()
            await stop_releases(ctx)
            if engine is not None:
                engine.stop()
            if ctx.alerting is not None:
                ctx.alerting.close()
            if ctx.inference is not None:
                ctx.inference.close()
            ctx.writer.stop()
            ctx.backend.close()

    app = FastAPI(
        title="sustain",
        summary="Model monitoring: capture, aggregate, detect drift, alert and act.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.sustain = ctx
    admission = Admission(settings.max_write_requests, settings.admission_seconds)
    app.state.admission = admission
    app.add_middleware(RequestGuard, settings=settings, metrics=ctx.metrics, admission=admission)

    @app.exception_handler(SustainError)
    async def sustain_error(request: Request, exc: SustainError) -> JSON:
        if isinstance(exc, Overloaded):
            ctx.metrics.refused.labels("overloaded").inc()
        elif exc.http_status == 413:
            ctx.metrics.refused.labels("too_large").inc()
        elif exc.http_status in (401, 403):
            ctx.metrics.refused.labels("auth").inc()
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSON:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}" if len(loc) > 1 else ".".join(loc)
            problems.append({"field": ".".join(loc[1:]) or where, "message": f"{where}: {err.get('msg')}"})
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        body = {
            "error": {
                "code": "invalid",
                "message": first["message"],
                "field": first["field"],
                "details": problems,
            }
        }
        return json_response(422, body)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        return json_response(exc.status_code, {"error": {"code": code, "message": message}})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return json_response(
            500, {"error": {"code": "internal", "message": "internal error; the server log has the details"}}
        )

    app.include_router(collector_router)
    app.include_router(indicators_router)
    app.include_router(releases_router)  # before alerts: /v1/hooks/mlflow, not the action hook /v1/hooks/{action}
    app.include_router(alerts_router)
    app.include_router(dashboard_router)
    app.include_router(inference_router)
    app.include_router(pages_router)
    if ctx.releases is not None and ctx.releases.gateway is not None:
        app.mount("/serving", ctx.releases.gateway.app)  # POST /serving/{model}/invocations
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sustain")
    except PackageNotFoundError:
        return "0+unknown"
