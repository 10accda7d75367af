"""Signed deliveries: HMAC-SHA256 over the delivery id, the timestamp and the raw body.

The same scheme MLflow uses for its webhooks, so a receiver can verify both::

    X-Sustain-Delivery-Id: 3f1c...
    X-Sustain-Timestamp: 1767225600
    X-Sustain-Signature: v1,<base64 HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}")>

>>> headers = sign(b"secret", "d-1", b'{"a": 1}', timestamp=1767225600)
>>> verify(b"secret", headers, b'{"a": 1}', now=1767225601)
True
>>> verify(b"wrong", headers, b'{"a": 1}', now=1767225601)
False
>>> verify(b"secret", headers, b'{"a": 1}', now=1767225601 + 3600)
False
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

DELIVERY_HEADER = "X-Sustain-Delivery-Id"
TIMESTAMP_HEADER = "X-Sustain-Timestamp"
SIGNATURE_HEADER = "X-Sustain-Signature"


def signature(secret: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    message = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def sign(secret: bytes, delivery_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign ``body``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: signature(secret, delivery_id, stamp, body),
    }


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, tolerance: int = 300, now: int | None = None
) -> bool:
    """True when ``headers`` sign ``body`` with ``secret`` and the timestamp is within ``tolerance`` seconds."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery = lowered.get(DELIVERY_HEADER.lower())
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    given = lowered.get(SIGNATURE_HEADER.lower())
    if not delivery or not stamp or not given or not stamp.isdigit():
        return False
    current = int(time.time()) if now is None else now
    if abs(current - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, delivery, int(stamp), body), given)
