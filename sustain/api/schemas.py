"""Pydantic models that document the collector's request bodies in OpenAPI.

Bodies are parsed by the fast path in :mod:`sustain.collector.events`; these
models describe the same shape for ``/docs`` and for client generators.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(None, description="unique id; made if absent; a repeated id is stored once")
    timestamp: str | float | None = Field(None, description="ISO 8601 or epoch seconds; default: now")
    version: str | None = Field(None, description="model version; default: the spec's default version")
    request_id: str | None = Field(None, description="joins labels that arrive later")
    features: dict[str, Any] = Field(description="{feature name: value}")
    outputs: dict[str, Any] | None = Field(None, description="{output name: value}; class scores as a list or object")
    latency_ms: float | None = Field(None, ge=0)
    tags: dict[str, Any] | None = None
    error: str | None = Field(None, description="the model's error message, if the prediction failed")


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = None
    event_id: str | None = None
    label: Any = Field(description="class or number, per the spec's label kind")
    timestamp: str | float | None = None


class ItemErrorOut(BaseModel):
    index: int
    status: int
    error: dict[str, str]
    id: str | None = None


class BulkReply(BaseModel):
    took: int = Field(description="milliseconds")
    errors: bool
    received: int
    accepted: int
    duplicates: int
    rejected: int
    invalid_values: int = Field(description="values of the wrong type, stored as null and listed in 'invalid'")
    items: list[ItemErrorOut] = Field(description="one entry per rejected item")


def array_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"type": "array", "items": model.model_json_schema()}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/x-ndjson": {"schema": {"type": "string", "description": "one JSON object per line"}},
            },
        }
    }
