"""What travels through Redis: a request's stream fields, the item a unit holds, and a stored answer.

A request is one stream entry with the fields ``id`` (the request id), ``p`` (the payload, a JSON object),
and optionally ``k`` (the ordering key) and ``r`` (the client to notify). An answer is a JSON object under
``aiu:res:{id}``: ``{"prediction": ...}`` or ``{"error": "..."}``.

>>> fields = request_fields("r-1", {"age": 41}, key="c-7", reply_to="cl-1")
>>> item = Item.from_entry("aiu:{churn}:req:5", 5, b"1-0", fields, read_at=0.0)
>>> item.request_id, item.key, item.payload, item.reply_to
('r-1', 'c-7', {'age': 41}, 'cl-1')
>>> decode_answer(encode_answer(prediction=0.25))
Answer(prediction=0.25, error=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sustain.errors import ValidationError


def _default(value: Any) -> Any:
    """numpy values and other foreign objects: plain Python where possible, else their text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """A request payload is one row: a JSON object of field name to value (the model's features)."""
    if not isinstance(payload, Mapping):
        raise ValidationError(f"a payload must be a mapping of field to value, got {type(payload).__name__}")
    try:
        return dumps(payload)
    except TypeError as exc:
        raise ValidationError(f"the payload cannot be written as JSON: {exc}", field="payload") from exc


def request_fields(
    request_id: str, payload: Mapping[str, Any], *, key: str | None = None, reply_to: str | None = None
) -> dict[str, bytes | str]:
    fields: dict[str, bytes | str] = {"id": request_id, "p": encode_payload(payload)}
    if key is not None:
        fields["k"] = key
    if reply_to is not None:
        fields["r"] = reply_to
    return fields


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _object(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(slots=True, eq=False)
class Item:
    """One request a unit has read and not yet answered. ``order_key`` is what at most one in-flight item may
    share: the request's key, or the item itself when it has none. Times are ``time.monotonic()`` seconds."""

    stream: str
    partition: int
    entry_id: bytes
    request_id: str
    key: str | None
    raw_payload: bytes
    reply_to: str | None
    read_at: float
    payload: dict[str, Any]
    deliveries: int = 1
    error: str | None = None  # why the entry cannot be sent to a backend at all (unreadable fields)
    order_key: object = None
    queued_at: float = -1.0  # when Redis took the request, on this process's monotonic clock (else read_at)

    def __post_init__(self) -> None:
        if self.order_key is None:
            self.order_key = self.key if self.key is not None else self
        if self.queued_at < 0:
            self.queued_at = self.read_at

    @classmethod
    def from_entry(
        cls,
        stream: str,
        partition: int,
        entry_id: bytes,
        fields: Mapping[Any, Any] | None,
        *,
        read_at: float,
        deliveries: int = 1,
    ) -> Item:
        """An item from a stream entry (fields as redis-py returns them: bytes, or str when decoding); a deleted
        or malformed entry becomes an item carrying its error."""
        found: Mapping[Any, Any] = fields or {}
        if found and isinstance(next(iter(found)), str):
            found = {k.encode(): v for k, v in found.items()}
        request_id = _text(found.get(b"id"))
        raw = found.get(b"p")
        payload = _object(raw)
        item = cls(
            stream,
            partition,
            entry_id,
            request_id or "",
            _text(found.get(b"k")),
            raw.encode() if isinstance(raw, str) else (raw or b""),
            _text(found.get(b"r")),
            read_at,
            payload or {},
            deliveries,
        )
        if not found:
            item.error = "the stream entry was deleted before it was answered"
        elif not request_id:
            item.error = "the stream entry has no request id"
        elif payload is None:
            item.error = "the payload is not a JSON object"
        return item


@dataclass(frozen=True, slots=True)
class Answer:
    prediction: Any = None
    error: str | None = None


def encode_answer(*, prediction: Any = None, error: str | None = None) -> bytes:
    return dumps({"error": error} if error is not None else {"prediction": prediction})


def decode_answer(raw: bytes | str) -> Answer:
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        return Answer(error=f"unreadable answer {str(raw)[:100]!r}")
    return Answer(prediction=body.get("prediction"), error=body.get("error"))
