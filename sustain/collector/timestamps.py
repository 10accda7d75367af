"""Parse event timestamps in bulk: ISO 8601 strings or epoch seconds.

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 1, 2, tzinfo=timezone.utc)
>>> micros, bad = parse_timestamps(["2026-01-01T00:00:00Z", 1767225600, None, "yesterday"], now)
>>> micros[:3] == [1767225600000000, 1767225600000000, 1767312000000000], bad
(True, {3: "'yesterday' is not an ISO 8601 date-time or epoch seconds"})
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sustain.store.layout import TIMESTAMP

MAX_FUTURE = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _parse_one(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        return round(float(value) * 1_000_000)
    if isinstance(value, str):
        return to_micros(datetime.fromisoformat(value))
    raise ValueError


def parse_timestamps(values: list[Any], now: datetime) -> tuple[list[int], dict[int, str]]:
    """Microseconds since the epoch per value (``None`` means now) and the errors by position."""
    now_us = to_micros(now)
    out: list[int] = [now_us] * len(values)
    strings = [(i, v) for i, v in enumerate(values) if type(v) is str]
    errors: dict[int, str] = {}
    if strings:
        try:
            parsed = pc.cast(pa.array([v for _, v in strings], pa.string()), TIMESTAMP)
            for (i, _), us in zip(strings, parsed.cast(pa.int64()).to_pylist(), strict=True):
                out[i] = us
            strings = []
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # some are naive, date-only or invalid: parse one by one below
    others = strings + [(i, v) for i, v in enumerate(values) if v is not None and type(v) is not str]
    for i, v in others:
        try:
            out[i] = _parse_one(v)
        except (ValueError, OverflowError, TypeError):
            errors[i] = f"{v!r} is not an ISO 8601 date-time or epoch seconds"
    limit = to_micros(now + MAX_FUTURE)
    for i, us in enumerate(out):
        if i in errors:
            continue
        if us < 0:
            errors[i] = f"{values[i]!r} is before 1970"
        elif us > limit:
            errors[i] = f"{values[i]!r} is more than a day in the future (the clock of the sender may be wrong)"
    return out, errors
