"""Category values made safe as keys, at ingest, for every store alike.

Categories (categorical features, class labels) end up as *keys*: the Elasticsearch transforms write a window's
category counts into a ``flattened`` field, ``{category: count}``, and a flattened field refuses a key holding a
NUL character, refuses (before 8.6) an empty key, and refuses a ``key\\0count`` term longer than Lucene's 32,766
bytes. One refused document fails the transform's bulk write, and the transform stays ``failed`` on every retry.
So the collector rewrites such values once, before any store sees them, and both engines count the same keys:

* NUL characters become U+FFFD (the replacement character);
* the empty string becomes :data:`EMPTY`;
* a value longer than :data:`MAX_BYTES` UTF-8 bytes is cut there, at a character boundary.

Every other value is left as it is; the check is vectorised and costs one pass over the column.

>>> [category_key(v) for v in ["basic", "a\\x00b", "", "é" * 20_000]][:3], len(category_key("é" * 20_000).encode())
(['basic', 'a\\ufffdb', '(empty)'], 32744)
>>> sanitize_categories(pa.array(["x", "", None])).to_pylist()
['x', '(empty)', None]
"""

from __future__ import annotations

from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

EMPTY = "(empty)"
REPLACEMENT = "\ufffd"
# A flattened field indexes "key\0value"; the value is a count of at most 20 digits; Lucene's limit is 32,766.
MAX_BYTES = 32_766 - 1 - 20

ArrowStrings = TypeVar("ArrowStrings", pa.Array, pa.ChunkedArray)


def category_key(value: str) -> str:
    """``value`` as a category every store can key on (see the module docstring)."""
    if not value:
        return EMPTY
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    encoded = value.encode()
    if len(encoded) > MAX_BYTES:
        value = encoded[:MAX_BYTES].decode("utf-8", errors="ignore")
    return value


def needs_rewrite(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether any value of a string column is empty, holds NUL or is too long."""
    if len(arr) == 0 or arr.null_count == len(arr):
        return False
    extremes = pc.min_max(pc.binary_length(arr))
    if (extremes["max"].as_py() or 0) > MAX_BYTES or extremes["min"].as_py() == 0:
        return True
    return bool(pc.any(pc.match_substring(arr, "\x00")).as_py())


def sanitize_categories(arr: ArrowStrings) -> ArrowStrings:
    """A string column with every value made a safe key; the same column when nothing needs it."""
    if not needs_rewrite(arr):
        return arr
    values = [None if v is None else category_key(v) for v in arr.to_pylist()]
    if isinstance(arr, pa.ChunkedArray):
        return pa.chunked_array([pa.array(values, arr.type)], arr.type)
    return pa.array(values, arr.type)
