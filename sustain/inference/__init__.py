"""Asynchronous inference units: requests over Redis Streams, batched against any serving backend.

A client puts requests on a model's streams; units (``sustain aiu serve``) read them, batch them, call the
backend once per batch, store each answer once, and log every inference to sustain's collector. A key keeps
its requests in order; a bad request is isolated from its batch and dead-lettered; a dead unit's requests are
taken over by the others. See the README's "Inference units".

Needs the ``aiu`` extra (redis-py). Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustain._lazy import lazy_attributes

if TYPE_CHECKING:
    from sustain.inference.aclient import AsyncInferenceClient
    from sustain.inference.backends import Backend, backends, open_backend
    from sustain.inference.client import InferenceClient
    from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, MonitorConfig, UnitConfig
    from sustain.inference.errors import (
        BackendRejected,
        BackendUnavailable,
        InferenceError,
        InferenceFailed,
        QueueUnavailable,
        ResultTimeout,
    )
    from sustain.inference.queues import ModelStatus, status
    from sustain.inference.unit import Unit

_HOMES = {
    "AsyncInferenceClient": "aclient",
    "Backend": "backends",
    "backends": "backends",
    "open_backend": "backends",
    "InferenceClient": "client",
    "BackendConfig": "config",
    "BatchPolicy": "config",
    "ModelBinding": "config",
    "MonitorConfig": "config",
    "UnitConfig": "config",
    "BackendRejected": "errors",
    "BackendUnavailable": "errors",
    "InferenceError": "errors",
    "InferenceFailed": "errors",
    "QueueUnavailable": "errors",
    "ResultTimeout": "errors",
    "ModelStatus": "queues",
    "status": "queues",
    "Unit": "unit",
}

__all__ = [
    "AsyncInferenceClient",
    "Backend",
    "BackendConfig",
    "BackendRejected",
    "BackendUnavailable",
    "BatchPolicy",
    "InferenceClient",
    "InferenceError",
    "InferenceFailed",
    "ModelBinding",
    "ModelStatus",
    "MonitorConfig",
    "QueueUnavailable",
    "ResultTimeout",
    "Unit",
    "UnitConfig",
    "backends",
    "open_backend",
    "status",
]

__getattr__, __dir__ = lazy_attributes(__name__, _HOMES, __all__, globals())
