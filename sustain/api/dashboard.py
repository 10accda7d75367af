"""``GET /v1/dashboard/...``: the data behind the built-in web UI (shaped in :mod:`sustain.dashboards.data`)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from sustain.api.collector import Ctx, Read
from sustain.api.context import AppContext
from sustain.api.responses import JSON, json_response
from sustain.dashboards.data import ModelQuery, Sources, TimeRange, model_view, overview
from sustain.dashboards.engine_status import engine_summary

router = APIRouter()

Span = Annotated[
    str | None, Query(alias="range", description="instead of since: this long back from until, e.g. 15m, 6h, 7d")
]


def _sources(ctx: AppContext) -> Sources:
    engine = ctx.require_engine("it has no windows or indicators to show")
    alerting = ctx.alerting
    return Sources(
        documents=engine.documents,
        windows=engine.windows,
        transformer=engine.runner,
        alerts=alerting.alerts if alerting is not None else None,
    )


@router.get(
    "/v1/dashboard/overview",
    dependencies=[Read],
    tags=["dashboard"],
    summary="Every model and version: status, traffic in the last hour, last alert and sparklines",
)
async def get_overview(
    ctx: Ctx, since: datetime | None = None, until: datetime | None = None, span: Span = None
) -> JSON:
    sources, specs = _sources(ctx), ctx.collector.specs()
    failures = ctx.engine.model_failures() if ctx.engine is not None else {}
    body = await asyncio.to_thread(overview, sources, specs, TimeRange.parse(since, until, span), failures)
    body["inference"] = ctx.inference is not None  # the page then shows the inference units' queues
    body["engine"] = engine_summary(ctx.require_engine("it has no windows or indicators to show"))
    return json_response(200, body)


@router.get(
    "/v1/dashboard/models/{model}",
    dependencies=[Read],
    tags=["dashboard"],
    summary="One model over a range: traffic, latency, drift heatmap, distributions, predictions, labels, "
    "data quality, alerts and its spec",
)
async def get_model_dashboard(
    model: str,
    ctx: Ctx,
    since: datetime | None = None,
    until: datetime | None = None,
    span: Span = None,
    window: Annotated[str | None, Query(description="one of the model's windows (default: fits the range)")] = None,
    version: str | None = None,
) -> JSON:
    spec = ctx.collector.spec(model)
    query = ModelQuery(TimeRange.parse(since, until, span), window=window, version=version)
    body = await asyncio.to_thread(model_view, _sources(ctx), spec, query)
    return json_response(200, body)
