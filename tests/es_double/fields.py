"""Field types and values of the Elasticsearch double: what a search sees of a document, and what indexing refuses.

A document's ``_source`` is kept as sent; searches, sorts and aggregations see the *doc values* of mapped
fields only, normalised by type as Elasticsearch does (keywords are strings, ``date`` fields epoch
milliseconds, numbers floats or ints, booleans booleans). An unmapped field of a ``dynamic: false`` index
is in ``_source`` but invisible to queries, as in Elasticsearch. Indexing checks what makes a real cluster
refuse a document: a keyword term over 32,766 UTF-8 bytes, a ``flattened`` key with a NUL character,
a flattened ``key\\0value`` term over the same limit, and a value that does not parse as its
field's type (``mapper_parsing_exception``).

>>> mappings = {"properties": {"a": {"properties": {"b": {"type": "date"}}}, "f": {"type": "flattened"}}}
>>> values_of({"a": {"b": "1970-01-01T00:00:01Z"}}, "a.b", mappings), values_of({"a.b": 5}, "a.b", mappings)
([1000], [5])
>>> values_of({"f": {"x": 1, "y": {"z": True}}}, "f", mappings), values_of({"f": {"y": {"z": 2}}}, "f.y.z", mappings)
(['1', 'true'], ['2'])
>>> index_problems({"f": {"a\\x00b": 1}}, mappings)
['Keys in [flattened] fields cannot contain the reserved character \\\\0. Offending key: [a\\x00b].']
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_TERM_BYTES = 32_766  # Lucene's limit for one indexed term (IndexWriter.MAX_TERM_LENGTH)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC = frozenset({"double", "float", "half_float", "scaled_float", "long", "integer", "short", "byte"})
_INTEGRAL = frozenset({"long", "integer", "short", "byte"})


class MappingError(ValueError):
    """A document a real cluster would refuse (``mapper_parsing_exception`` / ``illegal_argument_exception``)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def parse_date(value: Any) -> int:
    """Epoch milliseconds of a date value: ISO 8601 (any fraction, ``Z`` or offset) or epoch millis.

    >>> parse_date("2026-01-05T10:30:00.250000Z"), parse_date("2026-01-05T10:30:01.123456789Z"), parse_date(5)
    (1767609000250, 1767609001123, 5)
    """
    if isinstance(value, bool):
        raise MappingError("mapper_parsing_exception", f"failed to parse date field [{value}]")
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    if "." in text:  # Python reads at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError("mapper_parsing_exception", f"failed to parse date field [{value}]") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp - _EPOCH) // timedelta(milliseconds=1)


def format_date(millis: int) -> str:
    """Epoch milliseconds as Elasticsearch formats a date: ``2026-01-05T10:00:00.000Z``."""
    stamp = _EPOCH + timedelta(milliseconds=millis)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def field_mapping(mappings: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of ``path`` (a flattened field's sub-key maps to ``{"type": "flattened", "key": ...}``)."""
    node: Mapping[str, Any] = mappings
    parts = path.split(".")
    for i, part in enumerate(parts):
        properties = node.get("properties", {})
        if part not in properties:
            return None
        node = properties[part]
        if node.get("type") == "flattened" and i < len(parts) - 1:
            return {"type": "flattened", "key": ".".join(parts[i + 1 :])}
    return dict(node)


def _raw(source: Any, parts: list[str]) -> Iterator[Any]:
    """Values at ``parts`` of a source object, reading ``{"a": {"b": 1}}`` and ``{"a.b": 1}`` alike."""
    if not parts:
        if isinstance(source, list):
            yield from (v for v in source if v is not None)
        elif source is not None:
            yield source
        return
    if isinstance(source, list):
        for item in source:
            yield from _raw(item, parts)
        return
    if not isinstance(source, Mapping):
        return
    for n in range(1, len(parts) + 1):
        key = ".".join(parts[:n])
        if key in source:
            yield from _raw(source[key], parts[n:])


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _leaves(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, prefix)
    elif value is not None:
        yield prefix, value


def _keyword(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def normalise(value: Any, mapping: Mapping[str, Any]) -> Any:
    """One source value as the doc value of its field type (raises MappingError when it cannot be one)."""
    kind = mapping.get("type", "object")
    if kind in ("keyword", "text", "flattened"):
        return _keyword(value)
    if kind in ("date", "date_nanos"):
        return parse_date(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise MappingError("mapper_parsing_exception", f"failed to parse field of type [boolean]: [{value}]")
    if kind in _NUMERIC:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise MappingError("mapper_parsing_exception", f"failed to parse field of type [{kind}]: [{value}]")
        return int(number) if kind in _INTEGRAL else number
    return value


def values_of(source: Mapping[str, Any], path: str, mappings: Mapping[str, Any]) -> list[Any]:
    """The doc values of ``path`` in a document (empty when the field is unmapped or absent)."""
    mapping = field_mapping(mappings, path)
    if mapping is None or mapping.get("enabled") is False or mapping.get("index") is False:
        return []
    kind = mapping.get("type")
    if kind == "flattened":
        key = mapping.get("key")
        root = path if key is None else path[: -len(key) - 1]
        found = []
        for value in _raw(source, root.split(".")):
            for leaf_key, leaf in _leaves(value):
                if key is None or leaf_key == key:
                    found.append(_keyword(leaf))
        return found
    if kind in (None, "object", "nested", "dense_vector"):
        return []
    return [normalise(v, mapping) for v in _raw(source, path.split("."))]


def _check_properties(source: Mapping[str, Any], properties: Mapping[str, Any], prefix: str) -> None:
    for key, value in source.items():
        parts = str(key).split(".")
        mapping: Mapping[str, Any] | None = properties.get(parts[0])
        for part in parts[1:]:
            if mapping is None or mapping.get("type") == "flattened":
                break
            mapping = mapping.get("properties", {}).get(part)
        if mapping is not None:
            _check_value(value, mapping, f"{prefix}{key}")


def _check_value(value: Any, mapping: Mapping[str, Any], path: str) -> None:
    kind = mapping.get("type", "object")
    if value is None or mapping.get("enabled") is False or kind == "dense_vector":
        return
    if kind == "object" or "properties" in mapping:
        if isinstance(value, Mapping):
            _check_properties(value, mapping.get("properties", {}), f"{path}.")
        elif not isinstance(value, list):
            raise MappingError(
                "document_parsing_exception", f"object mapping for [{path}] tried to parse field [{path}] as object"
            )
        return
    if kind == "flattened":
        _check_flattened(value, path)
        return
    for item in value if isinstance(value, list) else [value]:
        normalised = normalise(item, mapping)
        too_long = kind == "keyword" and len(str(normalised).encode()) > MAX_TERM_BYTES
        if too_long and "ignore_above" not in mapping:
            raise MappingError(
                "illegal_argument_exception",
                f'Document contains at least one immense term in field="{path}" (whose UTF8 encoding is longer '
                f"than the max length {MAX_TERM_BYTES}), all of which were skipped.",
            )


def _check_flattened(value: Any, path: str) -> None:
    """FlattenedFieldParser.addField: a key may not hold NUL, and ``key\\0value`` must fit one Lucene term.

    Empty keys are accepted (8.6 and later; older clusters refuse them).
    """
    if not isinstance(value, Mapping):
        return
    for key, leaf in _leaves(value):
        if "\x00" in key:
            raise MappingError(
                "document_parsing_exception",
                f"Keys in [flattened] fields cannot contain the reserved character \\0. Offending key: [{key}].",
            )
        text = _keyword(leaf)
        if len(f"{key}\x00{text}".encode()) > MAX_TERM_BYTES:
            raise MappingError(
                "document_parsing_exception",
                f"Flattened field [{path}] contains one immense field whose keyed encoding is longer than the "
                f"allowed max length of {MAX_TERM_BYTES} bytes. Key length: {len(key)}, value length: {len(text)} "
                f"for key starting with [{key[:50]}]",
            )


def index_problems(source: Mapping[str, Any], mappings: Mapping[str, Any]) -> list[str]:
    """Why a real cluster would refuse ``source`` under ``mappings`` (empty: it would index it)."""
    try:
        check_document(source, mappings)
    except MappingError as exc:
        return [exc.reason]
    return []


def check_document(source: Mapping[str, Any], mappings: Mapping[str, Any]) -> None:
    """Raise MappingError as the cluster would for ``source``."""
    _check_properties(source, mappings.get("properties", {}), "")
