"""Turn logged values into typed Arrow columns, counting what does not fit.

A value of the wrong type never rejects an event: the value is stored as null
and the feature is listed in the event's ``invalid`` field, so data-quality
indicators can count type errors per feature while the prediction is kept.

The fast path hands the whole list to Arrow's C++ converter; only when that
fails does a slow per-value pass find the culprits. JSON cannot carry NaN or
infinities, so the fast path needs no check for them.

>>> from sustain.store.layout import Column
>>> import pyarrow as pa
>>> col = Column("f:x", "feature", "x", "numeric", pa.float64(), "DOUBLE")
>>> arr, bad = to_arrow([1, 2.5, None, "high"], col)
>>> arr.to_pylist(), bad
([1.0, 2.5, None, None], [3])
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from sustain.collector.categories import sanitize_categories
from sustain.store.layout import Column

CATEGORY_KINDS = frozenset({"categorical", "class_label"})

_TRUE = frozenset({"true", "True", "TRUE", "1", "yes"})
_FALSE = frozenset({"false", "False", "FALSE", "0", "no"})


def _number(v: Any) -> float | None:
    t = type(v)
    if t is float:
        return v if math.isfinite(v) else None
    if t is int or t is bool:
        return float(v)
    raise TypeError


def _category(v: Any) -> str:
    t = type(v)
    if t is str:
        return str(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float and v.is_integer():
        return str(int(v))
    raise TypeError


def _text(v: Any) -> str:
    if type(v) is str:
        return v
    raise TypeError


def _boolean(v: Any) -> bool:
    t = type(v)
    if t is bool:
        return bool(v)
    if (t is int or t is float) and v in (0, 1):
        return bool(v)
    if t is str:
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise TypeError


def _slow(values: list[Any], column: Column) -> tuple[list[Any], list[int]]:
    bad: list[int] = []
    out: list[Any] = []
    kind = column.kind
    if column.source == "output":
        convert = _category if kind == "class_label" else _number
    elif kind == "numeric":
        convert = _number
    elif kind == "categorical":
        convert = _category
    elif kind == "boolean":
        convert = _boolean
    elif kind == "embedding":
        dim = column.arrow_type.list_size

        def convert(v: Any) -> Any:
            if type(v) is not list or len(v) != dim:
                raise TypeError
            return [_number(x) for x in v]

    else:
        convert = _text
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(convert(v))
        except (TypeError, ValueError):
            bad.append(i)
            out.append(None)
    return out, bad


def to_arrow(values: list[Any], column: Column) -> tuple[pa.Array, list[int]]:
    """The typed array for ``values`` and the positions whose value had the wrong type.

    Categories are made safe keys (:mod:`sustain.collector.categories`): no NUL, none empty, none too long.
    """
    try:
        arr = pa.array(values, type=column.arrow_type, from_pandas=False)
        bad: list[int] = []
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        cleaned, bad = _slow(values, column)
        arr = pa.array(cleaned, type=column.arrow_type)
    if column.kind in CATEGORY_KINDS:
        arr = sanitize_categories(arr)
    return arr, bad
