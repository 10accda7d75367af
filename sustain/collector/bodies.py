"""Request bodies within limits: the in-flight budget, content decoding, JSON arrays or NDJSON.

Memory stays bounded twice over: one body may not exceed its limit (413), and
all bodies being read at once may not exceed the in-flight budget (429).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from sustain.errors import Overloaded, PayloadTooLarge, UnsupportedMediaType, ValidationError


class InflightBudget:
    """Bytes of request bodies held in memory at once, across all requests.

    A request takes a :class:`Hold` and grows it while its body is read and decoded (decoded bytes count,
    not the wire's); the hold is released when the request is answered, not when reading ends.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def _take(self, n: int, held: int) -> None:
        with self._lock:
            # One request alone may always use the whole budget: its own limit bounds it.
            if self.used > held and self.used + n > self.limit:
                raise Overloaded(
                    f"the collector is holding {self.used} bytes of requests in memory; retry shortly",
                    retry_after=1.0,
                )
            self.used += n

    def _give(self, n: int) -> None:
        with self._lock:
            self.used -= n

    def hold(self) -> Hold:
        return Hold(self)

    @contextmanager
    def reserve(self, n: int) -> Iterator[Hold]:
        """A hold of ``n`` bytes for the duration of the block."""
        hold = self.hold()
        try:
            hold.grow(n)
            yield hold
        finally:
            hold.release()


class Hold:
    """One request's share of an :class:`InflightBudget`; grows as its body is read, released once."""

    def __init__(self, budget: InflightBudget) -> None:
        self.budget = budget
        self.bytes = 0

    def grow(self, n: int) -> None:
        if n > 0:
            self.budget._take(n, self.bytes)
            self.bytes += n

    def grow_to(self, total: int) -> None:
        self.grow(total - self.bytes)

    def release(self) -> None:
        if self.bytes:
            self.budget._give(self.bytes)
            self.bytes = 0


def too_large(size: int, limit: int, what: str = "request body") -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} is {size} bytes or more, over the limit of {limit} bytes; send smaller batches",
        details={"limit_bytes": limit},
    )


class ContentDecoder:
    """Decode a body chunk by chunk from its Content-Encoding, never producing more than ``limit`` bytes.

    Every member of a multi-member gzip body is read (``cat a.gz b.gz`` is a valid gzip stream), and
    decompression stops as soon as the output would pass ``limit`` (413), whatever the ratio.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.lower().strip()
        if encoding not in ("gzip", "x-gzip", "deflate", "identity", ""):
            raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
        self.encoding = "gzip" if encoding == "x-gzip" else encoding
        self.limit = limit
        self.size = 0
        self._wbits = 31 if self.encoding == "gzip" else 15
        self._zlib = zlib.decompressobj(wbits=self._wbits) if self.encoding in ("gzip", "deflate") else None
        self._started = False  # the current member has consumed input

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            return self._count(data)
        out: list[bytes] = []
        while data:
            if self._zlib.eof:  # a member ended: what follows is another gzip member, or zero padding
                if not data.strip(b"\x00"):
                    break
                if self.encoding != "gzip":
                    raise ValidationError("body has data after the end of its deflate stream", field="body")
                self._zlib = zlib.decompressobj(wbits=self._wbits)
            try:
                piece = self._zlib.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise ValidationError(f"body is not valid {self.encoding}: {exc}", field="body") from None
            self._started = True
            out.append(self._count(piece))
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the body: a truncated compressed stream is an error, not a shorter body."""
        if self._zlib is None:
            return b""
        if self._started and not self._zlib.eof:
            try:
                tail = self._zlib.flush()
            except zlib.error as exc:
                raise ValidationError(f"body is not valid {self.encoding}: {exc}", field="body") from None
            self._count(tail)
            raise ValidationError(f"body is a truncated {self.encoding} stream", field="body")
        return b""

    def _count(self, piece: bytes) -> bytes:
        self.size += len(piece)
        if self.size > self.limit:
            raise too_large(self.size, self.limit, "decoded body")
        return piece


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded from its Content-Encoding (gzip, deflate or identity), at most ``limit`` bytes."""
    decoder = ContentDecoder(encoding, limit)
    out = decoder.feed(body)
    decoder.finish()
    return out


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
