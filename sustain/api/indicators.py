"""``GET /v1/models/{model}/indicators``: the computed indicator documents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from sustain.api.collector import Ctx, Read
from sustain.api.responses import JSON, json_response
from sustain.indicators.documents import IndicatorQuery

router = APIRouter()


@router.get(
    "/v1/models/{model}/indicators",
    dependencies=[Read],
    tags=["indicators"],
    summary="Indicator documents, newest window first (latest=true: only the newest of each series)",
)
async def get_indicators(
    model: str,
    ctx: Ctx,
    since: datetime | None = None,
    until: datetime | None = None,
    indicator: str | None = None,
    feature: str | None = None,
    version: str | None = None,
    window: str | None = None,
    metric: str | None = None,
    status: Annotated[str | None, Query(pattern="^(ok|warn|alert|insufficient|error)$")] = None,
    latest: bool = False,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> JSON:
    ctx.collector.spec(model)
    engine = ctx.require_engine("it computes no indicators (start it without --no-engine)")
    query = IndicatorQuery(
        model=model,
        since=since,
        until=until,
        indicator=indicator,
        feature=feature,
        version=version,
        window=window,
        status=status,
        metric=metric,
        latest=latest,
        limit=limit,
    )
    docs = engine.documents.query(query)
    return json_response(200, {"model": model, "count": len(docs), "indicators": [d.to_json() for d in docs]})
