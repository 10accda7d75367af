"""MLflow webhook deliveries: verified, parsed, and turned into what the pipeline should do.

MLflow (>= 3.3, SQL backends) signs each delivery the way sustain signs its own
(:mod:`sustain.alerting.signing`), under its own header names::

    X-MLflow-Delivery-Id: <uuid>            (the same on every retry of one delivery)
    X-MLflow-Timestamp: <unix seconds>
    X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{raw body}")>

>>> from sustain.alerting.signing import signature
>>> body = b'{"entity": "model_version", "action": "created", "data": {"name": "churn", "version": "3"}}'
>>> headers = {"X-MLflow-Delivery-Id": "d-1", "X-MLflow-Timestamp": "1767225600",
...            "X-MLflow-Signature": signature(b"s3cret", "d-1", 1767225600, body)}
>>> verify_delivery(b"s3cret", headers, body, now=1767225630)
'd-1'
>>> parse_event(body)
WebhookEvent(event='model_version.created', name='churn', version='3', alias=None)
>>> try:
...     verify_delivery(b"other", headers, body, now=1767225630)
... except WebhookRejected as exc:
...     print(exc.message)
the X-MLflow-Signature does not match the body: the secret differs, or the body was changed
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from sustain.alerting.signing import signature
from sustain.deploy_pipeline.release.errors import WebhookRejected
from sustain.errors import ValidationError

DELIVERY_HEADER = "x-mlflow-delivery-id"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
SIGNATURE_HEADER = "x-mlflow-signature"
EVENTS = ("model_version.created", "model_version_alias.created")
TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    name: str
    version: str | None
    alias: str | None = None


def verify_delivery(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: int | None = None,
) -> str:
    """The delivery id of a correctly signed, fresh delivery; :class:`WebhookRejected` naming the problem otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery = lowered.get(DELIVERY_HEADER, "").strip()
    stamp = lowered.get(TIMESTAMP_HEADER, "").strip()
    given = lowered.get(SIGNATURE_HEADER, "").strip()
    if not delivery or not stamp or not given:
        missing = [
            h for h, v in ((DELIVERY_HEADER, delivery), (TIMESTAMP_HEADER, stamp), (SIGNATURE_HEADER, given)) if not v
        ]
        raise WebhookRejected(f"the delivery is not signed: missing {', '.join(missing)}", field="headers")
    if not stamp.isdigit():
        raise WebhookRejected(f"{TIMESTAMP_HEADER} must be unix seconds, got {stamp[:30]!r}", field=TIMESTAMP_HEADER)
    current = int(time.time()) if now is None else now
    age = current - int(stamp)
    if abs(age) > tolerance:
        raise WebhookRejected(
            f"the delivery's timestamp is {abs(age)} s {'old' if age > 0 else 'in the future'}, beyond the "
            f"{tolerance} s allowed (a replay, or clocks apart)",
            field=TIMESTAMP_HEADER,
        )
    expected = signature(secret, delivery, int(stamp), body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebhookRejected(
            "the X-MLflow-Signature does not match the body: the secret differs, or the body was changed",
            field=SIGNATURE_HEADER,
        )
    return delivery


def parse_event(body: bytes) -> WebhookEvent:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the webhook body is not JSON: {exc}", field="body") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise ValidationError("the webhook body needs entity, action and a data object", field="body")
    data = payload["data"]
    event = f"{payload.get('entity', '')}.{payload.get('action', '')}"
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError("the webhook's data names no registered model", field="data.name")
    version = data.get("version")
    alias = data.get("alias")
    return WebhookEvent(event, name, None if version is None else str(version), None if alias is None else str(alias))
