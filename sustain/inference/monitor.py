"""Monitoring for free: every inference a unit makes goes to a sustain collector through the client Logger.

The request's payload is the event's features and the prediction its outputs (a prediction that is a mapping
gives its fields as outputs, anything else becomes ``{"prediction": value}``). The event id is the request id,
so an inference repeated after a unit died (answered once, logged at most twice) is stored once.

>>> outputs_of({"label": "churn", "proba": 0.8}), outputs_of(0.25)
({'label': 'churn', 'proba': 0.8}, {'prediction': 0.25})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sustain.collector.logger import Logger
from sustain.inference.config import MonitorConfig
from sustain.inference.messages import Item


def outputs_of(prediction: Any) -> dict[str, Any]:
    if isinstance(prediction, Mapping):
        return {str(k): v for k, v in prediction.items()}
    return {"prediction": prediction}


class Monitor:
    """Logs one model's inferences; only those answered now (a repeated inference was logged the first time)."""

    def __init__(self, config: MonitorConfig, model: str) -> None:
        self.logger = Logger(
            config.url, config.model or model, config.version, token=config.token, spool_dir=config.spool_dir
        )

    def answered(self, items: Sequence[Item], predictions: Sequence[Any], first: Sequence[bool], ms: float) -> None:
        for item, prediction, new in zip(items, predictions, first, strict=True):
            if new:
                self.logger.log(
                    item.payload,
                    outputs_of(prediction),
                    request_id=item.request_id,
                    event_id=item.request_id,
                    latency_ms=ms,
                )

    def failed(self, items: Sequence[Item], errors: Sequence[str], first: Sequence[bool]) -> None:
        for item, error, new in zip(items, errors, first, strict=True):
            if new:
                self.logger.log(item.payload, None, request_id=item.request_id, event_id=item.request_id, error=error)

    def close(self, timeout: float = 10.0) -> None:
        self.logger.close(timeout=timeout)
