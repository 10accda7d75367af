"""``GET /v1/inference/status``: the inference units' queues, per model (the server started with ``--redis``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from sustain.api.collector import Ctx, Read
from sustain.api.responses import JSON, json_response
from sustain.errors import NotFound

router = APIRouter()


@router.get(
    "/v1/inference/status",
    dependencies=[Read],
    tags=["inference"],
    summary="Each model served by inference units: units alive, lag, pending requests, backlog, dead letters",
)
async def get_inference_status(ctx: Ctx) -> JSON:
    if ctx.inference is None:
        raise NotFound(
            "this service was started without --redis, so it shows no inference units; "
            "start it with --redis URL (or SUSTAIN_REDIS) to see their queues"
        )
    models = await asyncio.to_thread(ctx.inference.read)
    return json_response(200, {"models": [m.to_dict() for m in models]})
