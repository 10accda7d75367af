"""Timestamps the way every document, answer and record of sustain writes them: UTC, ISO 8601, ``Z``.

>>> from datetime import datetime, timedelta, timezone
>>> iso(datetime(2026, 12, 3, 9, 30, tzinfo=timezone(timedelta(hours=1))))
'2026-12-03T08:30:00Z'
>>> iso(datetime(2026, 12, 3, 9, 30)), iso(None)
('2026-12-03T09:30:00Z', None)
>>> parse_time("2026-12-03T08:30:00Z")
datetime.datetime(2026, 12, 3, 8, 30, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive time is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 in UTC with ``Z``; None stays None."""
    return None if value is None else utc(value).isoformat().replace("+00:00", "Z")


@overload
def parse_time(value: str) -> datetime: ...
@overload
def parse_time(value: None) -> None: ...
@overload
def parse_time(value: str | None) -> datetime | None: ...
def parse_time(value: str | None) -> datetime | None:
    """What :func:`iso` wrote, back as an aware datetime."""
    return None if value is None else utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
