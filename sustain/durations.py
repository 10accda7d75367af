"""Durations written the way people write them: ``30s``, ``5m``, ``1h``, ``7d``.

>>> parse_duration("90s"), parse_duration("1h"), parse_duration(15)
(90.0, 3600.0, 15.0)
>>> format_duration(86400), format_duration(90)
('1d', '90s')
>>> parse_duration("soon")
Traceback (most recent call last):
...
ValueError: 'soon' is not a duration; write a number and a unit, e.g. 30s, 5m, 1h, 1d, 1w
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``value``; a bare number is already seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return float(value)
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write a number and a unit, e.g. 30s, 5m, 1h, 1d, 1w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in one unit."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"
