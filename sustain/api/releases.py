"""The release pipeline in the service: built from the settings, wired to the collector, and its HTTP routes.

``sustain serve --registry URI`` (or ``MLFLOW_TRACKING_URI``) turns it on. Model versions are served through
the gateway at ``/serving/{model}/invocations``; every request and response is logged into the collector in
this process. Reading needs a read token; starting a release, promoting and rolling back need an admin token;
MLflow's webhook is authenticated by its signature (``SUSTAIN_MLFLOW_WEBHOOK_SECRET``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Query, Request

from sustain.api.auth import check_token
from sustain.api.bodies import read_body
from sustain.api.collector import Admin, Ctx, Read
from sustain.api.responses import JSON, json_response
from sustain.collector.bodies import Decoded
from sustain.collector.service import Collector
from sustain.errors import ConfigError, NotFound, SustainError
from sustain.spec import ModelSpec

if TYPE_CHECKING:
    from sustain.api.context import AppContext
    from sustain.deploy_pipeline.release import ReleaseService

log = logging.getLogger("sustain.release")
router = APIRouter()


class CollectorMonitoring:
    """Monitoring for the pipeline, through the collector of this service (specs and references)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.loop: asyncio.AbstractEventLoop | None = None

    def spec(self, model: str) -> ModelSpec | None:
        try:
            return self.collector.spec(model)
        except NotFound:
            return None

    def register(self, spec: ModelSpec) -> None:
        if self.loop is None:
            raise SustainError("the service is not running yet; cannot register a model")
        asyncio.run_coroutine_threadsafe(self.collector.put_spec(spec), self.loop).result(timeout=120)

    def attach_reference(self, model: str, version: str, table: pa.Table) -> int:
        info, _ = self.collector.store_reference(self.collector.spec(model), version, table)
        return info.rows


def parse_target_options(text: str) -> dict[str, dict[str, str]]:
    """``kubernetes.namespace=ml,kubernetes.secret=s3`` → ``{"kubernetes": {"namespace": "ml", "secret": "s3"}}``.

    >>> parse_target_options("kubernetes.namespace=ml, local.ready_timeout=60")
    {'kubernetes': {'namespace': 'ml'}, 'local': {'ready_timeout': '60'}}
    """
    options: dict[str, dict[str, str]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        target, dot, name = key.strip().partition(".")
        if not sep or not dot or not target or not name:
            raise ConfigError(f"target option {item!r} must read TARGET.KEY=VALUE, e.g. kubernetes.namespace=models")
        options.setdefault(target, {})[name] = value.strip()
    return options


def build_releases(ctx: AppContext) -> ReleaseService | None:
    """The release service for ``ctx``, when the settings name a registry."""
    settings = ctx.settings
    if not settings.registry:
        return None
    from sustain.backends.duckdb.releases import DuckDBReleases
    from sustain.backends.duckdb.store import DuckDBStore
    from sustain.deploy_pipeline.release import Gateway, MlflowRegistry, ReleaseOptions, ReleaseService

    store = ctx.store if isinstance(ctx.store, DuckDBStore) else DuckDBStore(settings.release_store)
    monitoring = CollectorMonitoring(ctx.collector)

    async def sink(model: str, events: list[dict[str, Any]]) -> None:
        await ctx.collector.ingest_events(model, Decoded(events, {}))

    def authorize(request: Request) -> None:
        check_token(settings, request.headers.get("authorization"), "read")

    gateway = Gateway(sink=sink, spec_of=monitoring.spec, authorize=authorize)
    options = ReleaseOptions(
        target_options=parse_target_options(settings.target_options),
        workdir=Path(settings.release_dir),
        webhook_secret=settings.mlflow_webhook_secret,
        poll_interval=settings.release_poll,
        base_dir=Path(settings.config).resolve().parent if settings.config else None,
        gateway_url=f"{settings.base_url}/serving",
    )
    service = ReleaseService(
        DuckDBReleases(store),
        MlflowRegistry(settings.registry),
        monitoring,
        options,
        gateway=gateway,
        specs=ctx.collector.specs,
    )
    return service


async def start_releases(ctx: AppContext) -> None:
    service = ctx.releases
    if service is None:
        return
    monitoring = service.monitoring
    if isinstance(monitoring, CollectorMonitoring):
        monitoring.loop = asyncio.get_running_loop()
    service.start()
    settings = ctx.settings
    if settings.mlflow_webhook_secret and service.registry.is_server:
        from sustain.deploy_pipeline.release.webhooks import EVENTS

        url = f"{settings.base_url}/v1/hooks/mlflow"
        # MLflow names: letters, digits, '.', '_', '-'; one webhook per sustain address.
        name = "sustain-" + re.sub(r"[^A-Za-z0-9._-]+", "-", settings.base_url.split("://", 1)[-1]).strip("-._")
        try:
            await asyncio.to_thread(
                service.registry.ensure_webhook,
                name[:62],
                url,
                settings.mlflow_webhook_secret,
                EVENTS,
            )
        except SustainError as exc:
            log.warning("could not register sustain's webhook in MLflow (%s); the poll still runs", exc.message)


async def stop_releases(ctx: AppContext) -> None:
    service = ctx.releases
    if service is None:
        return
    if service.gateway is not None:
        await service.gateway.aclose()
    await asyncio.to_thread(service.close)


def _service(ctx: AppContext) -> ReleaseService:
    if ctx.releases is None:
        raise NotFound(
            "the release pipeline is off: start sustain serve with --registry URI (or MLFLOW_TRACKING_URI set)",
            field="registry",
        )
    return ctx.releases


def _release_json(service: ReleaseService, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "roles": service.roles(body["model"]).get(body["version"], [])}


@router.get("/v1/releases", dependencies=[Read], tags=["releases"], summary="Releases, most recently updated first")
async def list_releases(ctx: Ctx, model: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> JSON:
    service = _service(ctx)
    releases = await asyncio.to_thread(service.store.query, model, limit)
    return json_response(200, {"releases": [_release_json(service, r.to_json()) for r in releases]})


@router.get(
    "/v1/releases/{model}/history",
    dependencies=[Read],
    tags=["releases"],
    summary="Every state change and alias move of a model, oldest first",
)
async def release_history(model: str, ctx: Ctx) -> JSON:
    service = _service(ctx)
    transitions = await asyncio.to_thread(service.store.transitions, model)
    aliases = await asyncio.to_thread(service.store.alias_history, model)
    return json_response(
        200,
        {
            "model": model,
            "aliases": service.aliases(model),
            "transitions": [t.to_json() for t in transitions],
            "alias_moves": [a.to_json() for a in aliases],
        },
    )


@router.get(
    "/v1/releases/{model}/champion",
    dependencies=[Read],
    tags=["releases"],
    summary="Which version was champion at a time (default: now)",
)
async def champion_at(model: str, ctx: Ctx, at: datetime | None = None) -> JSON:
    service = _service(ctx)
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    event = await asyncio.to_thread(service.champion_at, model, when)
    version = None if event is None else event.version
    since = None if event is None else event.to_json()["at"]
    return json_response(200, {"model": model, "at": when.isoformat(), "version": version, "since": since})


@router.post(
    "/v1/releases/{model}/promote",
    dependencies=[Admin],
    tags=["releases"],
    summary="Promote the model's release candidate: @champion moves to it",
)
async def promote_candidate(model: str, ctx: Ctx) -> JSON:
    service = _service(ctx)
    release = await asyncio.to_thread(service.promote, model, None, actor="api")
    return json_response(200, _release_json(service, release.to_json()))


@router.post(
    "/v1/releases/{model}/rollback",
    dependencies=[Admin],
    tags=["releases"],
    summary="Roll back: @champion moves back to @previous_champion",
)
async def rollback(model: str, ctx: Ctx) -> JSON:
    service = _service(ctx)
    release = await asyncio.to_thread(service.rollback, model, actor="api")
    return json_response(200, _release_json(service, release.to_json()))


@router.get("/v1/releases/{model}/{version}", dependencies=[Read], tags=["releases"], summary="One release")
async def get_release(model: str, version: str, ctx: Ctx) -> JSON:
    service = _service(ctx)
    release = await asyncio.to_thread(service.store.get, model, version)
    if release is None:
        raise NotFound(f"no release of {model} version {version}", field="version")
    return json_response(200, _release_json(service, release.to_json()))


@router.post(
    "/v1/releases/{model}/{version}",
    dependencies=[Admin],
    tags=["releases"],
    status_code=202,
    summary="Release a registered version: its stages run in the background (poll GET for them)",
)
async def start_release(model: str, version: str, ctx: Ctx, target: str | None = None) -> JSON:
    service = _service(ctx)
    release = await asyncio.to_thread(service.submit, model, version, trigger="api", target=target)
    return json_response(202, _release_json(service, release.to_json()))


@router.post(
    "/v1/releases/{model}/{version}/promote",
    dependencies=[Admin],
    tags=["releases"],
    summary="Promote a version: @champion moves to it, @previous_champion keeps the old one",
)
async def promote(model: str, version: str, ctx: Ctx) -> JSON:
    service = _service(ctx)
    release = await asyncio.to_thread(service.promote, model, version, actor="api")
    return json_response(200, _release_json(service, release.to_json()))


@router.post(
    "/v1/hooks/mlflow",
    tags=["releases"],
    status_code=202,
    summary="MLflow webhooks (model_version.created, model_version_alias.created), signed with the shared secret",
)
async def mlflow_webhook(request: Request, ctx: Ctx) -> JSON:
    service = _service(ctx)
    body = await read_body(request, ctx.settings.max_body_bytes, ctx.budget)
    reply = await asyncio.to_thread(service.on_webhook, dict(request.headers), body)
    return json_response(202 if reply["outcome"] == "accepted" else 200, reply)


@router.get(
    "/v1/hooks/mlflow/deliveries",
    dependencies=[Admin],
    tags=["releases"],
    summary="Webhook deliveries, newest first, with what became of each",
)
async def deliveries(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSON:
    service = _service(ctx)
    found = await asyncio.to_thread(service.store.deliveries, limit)
    return json_response(200, {"deliveries": [d.to_json() for d in found]})


@router.get("/v1/serving", dependencies=[Read], tags=["releases"], summary="What each deploy target serves now")
async def serving(ctx: Ctx) -> JSON:
    service = _service(ctx)
    return json_response(200, {"targets": await asyncio.to_thread(service.serving)})
