"""Alerts, silences and the hook endpoint an external alerter (ElastAlert2's ``post2``) calls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, model_validator

from sustain.alerting.documents import alerts_json, new_silence
from sustain.alerting.service import Alerting
from sustain.api.bodies import read_body
from sustain.api.collector import Admin, Ctx, Read
from sustain.api.context import AppContext
from sustain.api.responses import JSON, json_response
from sustain.durations import parse_duration
from sustain.errors import NotFound, ValidationError

router = APIRouter()


def _alerting(ctx: AppContext) -> Alerting:
    return ctx.require_alerting()


@router.get("/v1/alerts", dependencies=[Read], tags=["alerts"], summary="Alerts, newest first")
async def list_alerts(
    ctx: Ctx,
    model: str | None = None,
    status: Annotated[str | None, Query(pattern="^(firing|resolved)$")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> JSON:
    alerts = _alerting(ctx).alerts.query(model=model, status=status, since=since, limit=limit)
    return json_response(200, {"count": len(alerts), "alerts": alerts_json(alerts)})


@router.get("/v1/alerts/{alert_id}", dependencies=[Read], tags=["alerts"], summary="One alert with its attempts")
async def get_alert(alert_id: str, ctx: Ctx) -> JSON:
    alert = _alerting(ctx).alerts.get(alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id!r}", field="alert_id")
    return json_response(200, alert.to_json())


class SilenceIn(BaseModel):
    model: str = Field(default="*", description="a model name, or * for all")
    rule: str = Field(default="*", description="a rule name, or * for all")
    version: str = Field(default="*", description="a version, or * for all")
    duration: str | None = Field(default=None, description="e.g. 2h; or give ends_at")
    ends_at: datetime | None = None
    reason: str = Field(min_length=1, description="why; shown next to the silenced alerts")
    created_by: str = ""

    @model_validator(mode="after")
    def _end(self) -> SilenceIn:
        if (self.duration is None) == (self.ends_at is None):
            raise ValueError("give exactly one of duration or ends_at")
        if self.duration is not None:
            parse_duration(self.duration)
        return self


@router.post("/v1/silences", dependencies=[Admin], tags=["alerts"], status_code=201, summary="Silence alerts")
async def create_silence(body: SilenceIn, ctx: Ctx) -> JSON:
    now = datetime.now(UTC)
    if body.model != "*":
        ctx.collector.spec(body.model)
    if body.duration is not None:
        seconds = parse_duration(body.duration)
    else:
        assert body.ends_at is not None
        ends = body.ends_at if body.ends_at.tzinfo else body.ends_at.replace(tzinfo=UTC)
        seconds = (ends - now).total_seconds()
    if seconds <= 0:
        raise ValidationError("the silence would already be over; give a future end", field="ends_at")
    silence = new_silence(
        model=body.model,
        rule=body.rule,
        version=body.version,
        duration_seconds=seconds,
        reason=body.reason,
        created_by=body.created_by,
        starts_at=now,
    )
    _alerting(ctx).alerts.put_silence(silence)
    return json_response(201, silence.to_json())


@router.get("/v1/silences", dependencies=[Read], tags=["alerts"], summary="Silences in force (all=true: every one)")
async def list_silences(ctx: Ctx, all: bool = False) -> JSON:
    silences = _alerting(ctx).alerts.silences(None if all else datetime.now(UTC))
    return json_response(200, {"silences": [s.to_json() for s in silences]})


@router.delete("/v1/silences/{silence_id}", dependencies=[Admin], tags=["alerts"], summary="End a silence now")
async def delete_silence(silence_id: str, ctx: Ctx) -> JSON:
    if not _alerting(ctx).alerts.delete_silence(silence_id):
        raise NotFound(f"no silence {silence_id!r}", field="silence_id")
    return json_response(200, {"deleted": silence_id})


@router.post(
    "/v1/hooks/{action}",
    dependencies=[Admin],
    tags=["alerts"],
    status_code=202,
    summary="Run the action of a model's alert rule for an external alerter (ElastAlert2 post2), once the rule's "
    "whole condition is confirmed; 404 unknown rule, 409 the rule does not hold now or does not run the action",
)
async def hook(action: str, request: Request, ctx: Ctx, model: str | None = None, rule: str | None = None) -> JSON:
    body = await read_body(request, ctx.settings.max_body_bytes, ctx.budget)
    try:
        payload = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", field="body") from None
    if not isinstance(payload, dict):
        raise ValidationError("the hook body must be a JSON object", field="body")
    model = model or payload.get("model") or payload.get("model_id")
    if not model:
        raise ValidationError("name the model: ?model=NAME or a 'model' field in the body", field="model")
    spec = ctx.collector.spec(str(model))
    if action not in spec.actions:
        known = ", ".join(sorted(spec.actions)) or "none"
        raise NotFound(f"model {spec.name!r} has no action {action!r} (known: {known})", field="action")
    alerting = _alerting(ctx)
    rule = rule or payload.get("rule")
    alert = await asyncio.to_thread(alerting.hook, spec, action, None if rule is None else str(rule), payload)
    return json_response(202, {"dispatched": True, "alert_id": alert.id, "action": action})
