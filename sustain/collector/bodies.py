"""Request bodies within limits: the in-flight budget, content decoding, JSON arrays or NDJSON.

Memory stays bounded twice over: one body may not exceed its limit (413), and
all bodies being read at once may not exceed the in-flight budget (429).
"""

from __future__ import annotations

import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from sustain.errors import Overloaded, PayloadTooLarge, UnsupportedMediaType, ValidationError


class InflightBudget:
    """Bytes of request bodies held in memory at once, across all requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, n: int) -> Any:
        with self._lock:
            if self.used > 0 and self.used + n > self.limit:
                raise Overloaded(
                    f"the collector is holding {self.used} bytes of requests in memory; retry shortly",
                    retry_after=1.0,
                )
            self.used += n
        try:
            yield
        finally:
            with self._lock:
                self.used -= n


def too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is {size} bytes, over the limit of {limit} bytes; send smaller batches",
        details={"limit_bytes": limit},
    )


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded from its Content-Encoding (gzip, deflate or identity), at most ``limit`` bytes."""
    encoding = encoding.lower()
    if encoding in ("gzip", "deflate"):
        decoder = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            body = decoder.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ValidationError(f"body is not valid {encoding}: {exc}", field="body") from None
        if len(body) > limit or decoder.unconsumed_tail:
            raise too_large(limit + 1, limit)
    elif encoding not in ("identity", ""):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
    return body


@dataclass
class Decoded:
    """Items of a JSON array or NDJSON body; ``line_errors`` maps item index to why its line is not JSON."""

    items: list[Any]
    line_errors: dict[int, str]


def decode_items(body: bytes, content_type: str | None) -> Decoded:
    """A JSON array, a single JSON object, or NDJSON (one object per line)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not body.strip():
        raise ValidationError("request body is empty; send a JSON array or NDJSON of items", field="body")
    if ctype and not (ctype.endswith("json") or "ndjson" in ctype or "jsonl" in ctype or ctype == "text/plain"):
        raise UnsupportedMediaType(
            f"Content-Type {ctype!r} is not supported here; send application/json or application/x-ndjson"
        )
    ndjson = "ndjson" in ctype or "jsonl" in ctype
    if not ndjson:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            stripped = body.lstrip()
            if stripped[:1] == b"{" and b"\n" in body.strip():
                ndjson = True  # NDJSON sent without its content type
            else:
                raise ValidationError(f"body is not valid JSON: {exc}", field="body") from None
        else:
            if isinstance(data, list):
                return Decoded(data, {})
            if isinstance(data, dict):
                return Decoded([data], {})
            raise ValidationError(
                f"body must be a JSON array of objects (or one object), got {type(data).__name__}",
                field="body",
            )
    items: list[Any] = []
    errors: dict[int, str] = {}
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            errors[len(items)] = f"line {number} is not valid JSON: {exc}"
            items.append(None)
    return Decoded(items, errors)
