"""HTTP routes of the collector: events, labels, references, CloudEvents, specs, health."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sustain.alerting.actions import check_actions
from sustain.api.auth import check_token
from sustain.api.bodies import deadline_of, read_body
from sustain.api.context import AppContext, context
from sustain.api.responses import JSON, json_response
from sustain.api.schemas import BulkReply, EventIn, LabelIn, array_body
from sustain.collector.bodies import Decoded, decode_items
from sustain.errors import Forbidden, SpecError, ValidationError
from sustain.settings import Scope
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.spec.models import check_env_references
from sustain.spec.secrets import EnvPolicy, redact_spec_json, restore_redacted, runs_commands
from sustain.store.base import EventQuery


def require(scope: Scope) -> Callable[[Request], None]:
    def dependency(request: Request) -> None:
        check_token(context(request).settings, request.headers.get("authorization"), scope)

    return dependency


Read = Depends(require("read"))
Write = Depends(require("write"))
Admin = Depends(require("admin"))
Ctx = Annotated[AppContext, Depends(context)]

router = APIRouter()


@router.post(
    "/v1/models/{model}/events",
    dependencies=[Write],
    tags=["capture"],
    response_model=BulkReply,
    openapi_extra=array_body(EventIn),
    summary="Log events (JSON array or NDJSON); 200 all kept, 207 some rejected, 422 none kept",
)
async def post_events(model: str, request: Request, ctx: Ctx) -> JSON:
    decoded = await _items(request, ctx)
    return json_response(*await ctx.collector.ingest_events(model, decoded, deadline_of(request)))


async def _items(request: Request, ctx: AppContext) -> Decoded:
    body = await read_body(request, ctx.settings.max_body_bytes, ctx.budget)
    return decode_items(body, request.headers.get("content-type"))


@router.get("/v1/models/{model}/events", dependencies=[Read], tags=["capture"], summary="Stored events, newest first")
async def get_events(
    model: str,
    ctx: Ctx,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
    request_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> JSON:
    ctx.collector.spec(model)
    query = EventQuery(since=since, until=until, version=version, request_id=request_id, limit=limit)
    events = ctx.store.read_events(model, query)
    return json_response(200, {"model": model, "count": len(events), "events": events})


@router.post(
    "/v1/models/{model}/labels",
    dependencies=[Write],
    tags=["capture"],
    response_model=BulkReply,
    openapi_extra=array_body(LabelIn),
    summary="Log true labels, joined to events by request_id or event_id whenever they arrive",
)
async def post_labels(model: str, request: Request, ctx: Ctx) -> JSON:
    decoded = await _items(request, ctx)
    return json_response(*await ctx.collector.ingest_labels(model, decoded, deadline_of(request)))


@router.put(
    "/v1/models/{model}/reference",
    dependencies=[Write],
    tags=["capture"],
    summary="Upload reference data (CSV, Parquet or JSON body, or a multipart 'file') for a version",
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def put_reference(model: str, request: Request, ctx: Ctx, version: Annotated[str | None, Query()] = None) -> JSON:
    spec = ctx.collector.spec(model)
    version = version or spec.effective_default_version
    body = await read_body(request, ctx.settings.max_reference_bytes, ctx.budget)
    content_type = request.headers.get("content-type")
    filename = None
    if content_type and content_type.startswith("multipart/form-data"):
        body, content_type, filename = await _multipart_file(request, body)
    info, parsed = await ctx.collector.put_reference(
        model, version, body, content_type, filename, max_rows=ctx.settings.max_reference_rows
    )
    return json_response(
        200,
        {
            "model": model,
            "version": version,
            "rows": info.rows,
            "columns": info.columns,
            "ignored_columns": parsed.ignored_columns,
            "missing_features": parsed.missing_features,
            "uploaded_at": info.uploaded_at.isoformat(),
        },
    )


async def _multipart_file(request: Request, body: bytes) -> tuple[bytes, str | None, str | None]:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as StarletteRequest

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await StarletteRequest(request.scope, replay).form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationError("multipart upload needs a 'file' field", field="file")
    data = await upload.read()
    return data, upload.content_type, upload.filename


@router.get(
    "/v1/models/{model}/reference",
    dependencies=[Read],
    tags=["capture"],
    summary="Stored reference data sets",
)
async def get_reference(model: str, ctx: Ctx) -> JSON:
    ctx.collector.spec(model)
    infos = ctx.store.reference_info(model)
    return json_response(
        200,
        {
            "model": model,
            "references": [
                {
                    "version": i.version,
                    "rows": i.rows,
                    "columns": i.columns,
                    "uploaded_at": i.uploaded_at.isoformat(),
                }
                for i in infos
            ],
        },
    )


@router.post(
    "/v1/cloudevents",
    dependencies=[Write],
    tags=["capture"],
    status_code=202,
    summary="Seldon Core v1 / KServe logger CloudEvents (HTTP binary mode)",
)
async def post_cloudevent(request: Request, ctx: Ctx, model: Annotated[str | None, Query()] = None) -> JSON:
    body = await read_body(request, ctx.settings.max_body_bytes, ctx.budget)
    status, reply = await ctx.collector.cloudevent(request.headers, body, model)
    return json_response(status, reply)


# -- specs ---------------------------------------------------------------------------------------
@router.get("/v1/models", dependencies=[Read], tags=["specs"], summary="Every registered model")
async def list_models(ctx: Ctx) -> JSON:
    models = []
    for spec in ctx.collector.specs():
        models.append(
            {
                "name": spec.name,
                "description": spec.description,
                "versions": spec.versions,
                "default_version": spec.effective_default_version,
                "features": len(spec.features),
                "outputs": len(spec.outputs),
                "has_label": spec.label is not None,
                "windows": spec.windows,
            }
        )
    return json_response(200, {"models": models})


@router.get("/v1/models/{model}", dependencies=[Read], tags=["specs"], summary="One model's spec (secrets as ***)")
async def get_model(model: str, ctx: Ctx) -> JSON:
    return json_response(200, shown_spec(ctx.collector.spec(model)))


def shown_spec(spec: ModelSpec) -> dict[str, Any]:
    """A spec as the API answers it: action secrets replaced by ``***``."""
    return redact_spec_json(spec.model_dump(mode="json"))


@router.put(
    "/v1/models/{model}",
    dependencies=[Admin],
    tags=["specs"],
    summary="Create or replace a model's spec (admin); actions that run programs only come from the config file",
)
async def put_model(model: str, request: Request, ctx: Ctx) -> JSON:
    body = await read_body(request, ctx.settings.max_body_bytes, ctx.budget)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise ValidationError("a model spec must be a JSON object", field="body")
    data.setdefault("name", model)
    if data["name"] != model:
        raise ValidationError(f"the spec names model {data['name']!r} but the URL says {model!r}", field="name")
    stored = ctx.store.get_spec(model)
    if stored is not None:
        data = restore_redacted(data, stored.model_dump(mode="json"))
    spec = parse_model_spec(data)
    check_http_spec(spec, stored, ctx.env_policy)
    check_actions(spec)
    created = await ctx.collector.put_spec(spec)
    return json_response(201 if created else 200, shown_spec(spec))


def check_http_spec(spec: ModelSpec, stored: ModelSpec | None, policy: EnvPolicy) -> None:
    """What a spec sent over HTTP may not do: define an action that runs a program on the server (only the
    config file may; one it defined may be sent back unchanged), or read an environment variable off the list."""
    for name, action in spec.actions.items():
        if not runs_commands(action.type, action.options):
            continue
        if stored is not None and stored.actions.get(name) == action:
            continue
        raise Forbidden(
            f"action {name!r} runs a program on the server ({action.type}); such actions can only be defined in "
            "the config file (sustain serve --config), not over HTTP",
            field=f"actions.{name}",
        )
    try:
        check_env_references(spec, policy)
    except ValueError as exc:
        raise SpecError(str(exc), field="actions") from None


# -- health --------------------------------------------------------------------------------------
@router.get("/healthz", tags=["health"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["health"],
    summary="The store and writer accept work; models whose transforms, indicators or reference failed are listed",
)
async def readyz(ctx: Ctx) -> JSON:
    problems = []
    if not ctx.writer.alive:
        problems.append("the writer thread is not running")
    try:
        ctx.store.list_specs()
    except Exception as exc:
        problems.append(f"store: {exc}")
    if problems:
        return json_response(503, {"status": "unavailable", "problems": problems})
    # One model's failure (a bad reference, a broken plugin) does not make the service unready: it keeps
    # collecting for every model. It is listed here, per model and stage, until that stage runs again.
    failing = ctx.engine.model_failures() if ctx.engine is not None else {}
    body = {"status": "ready", "queue_events": ctx.writer.pending_events, "failing_models": failing}
    return json_response(200, body)


@router.get("/metrics", dependencies=[Read], tags=["health"], summary="Prometheus metrics")
async def metrics(ctx: Ctx) -> Response:
    registries = [ctx.metrics.registry, *ctx.metrics_registries]
    # Indicator metrics read the store at scrape time (a network query on Elasticsearch): off the event loop.
    body = await asyncio.to_thread(lambda: b"".join(generate_latest(r) for r in registries))
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
