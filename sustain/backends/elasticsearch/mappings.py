"""The Elasticsearch side of event capture: field names, the event document and the bodies that store it.

One document per event goes to the data stream ``<prefix>-events-<model>`` (``sustain-events-<model>``)::

    {"@timestamp": "2026-01-01T00:10:00Z", "event": {"id": "e1", "ingested": <set by the ingest pipeline>},
     "model": {"id": "churn", "version": "3"}, "request": {"id": "r1"},
     "buckets": {"1m": "2026-01-01T00:10:00.000Z", "1h": "2026-01-01T00:00:00.000Z"},
     "features": {"age": 41.0, "plan": "pro"}, "outputs": {"proba": {"stay": 0.2, "churn": 0.8}},
     "measures": {"note": 12.0}, "latency_ms": 12.5, "error": "timeout", "tags": {...}, "invalid": ["age"]}

``measures`` holds numbers derived at ingest, so transforms can aggregate them
like any number: a text's length in characters and an embedding's L2 norm.
``buckets`` holds, per window of the spec, the start of the window's time bucket
the event falls in (epoch-aligned, ``floor(ts / w) * w``, as the embedded engine
buckets); transforms group on it (see :func:`sustain.backends.elasticsearch.transforms.transform_body`).
Values that are null are left out of the document (Elasticsearch treats a
missing field and a null alike). ``event.ingested`` is always set by the
server, through the ``index.final_pipeline`` of the events template, because
continuous transforms sync on it.

Field names come from :func:`es_field` and never depend on the rest of the
spec, so adding a feature never moves an existing one.

Every bulk action carries ``_id`` = the event id (:func:`event_doc_id`) with the
``create`` op type, so a replayed event is refused with a 409 by the backing index
that holds it. That check is per backing index; the store also looks the ids up in
the older backing indices around every write, so a replay that straddles a rollover
is a duplicate too (:mod:`sustain.backends.elasticsearch.rollover`). The data stream
rolls over weekly (or at 50 GB per primary shard): a handful of backing indices per
model for the default 30 days of retention, rather than one small shard a day.

Names carry a prefix (``sustain`` by default) so that several deployments can
share a cluster: ``<prefix>-events-<model>``, ILM policy ``<prefix>-events``,
ingest pipeline ``<prefix>-events-ingested``.

>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"age": "numeric", "note": "text"},
...     "outputs": {"p": {"kind": "class_scores", "classes": ["no", "yes"]}}})
>>> doc = event_document(spec, {"event_id": "e1", "version": "1", "timestamp": "2026-01-01T00:00:00Z",
...     "features": {"age": 41.0, "note": "hello"}, "outputs": {"p": {"no": 0.3, "yes": 0.7}}})
>>> doc["features"], doc["outputs"], doc["measures"]
({'age': 41.0, 'note': 'hello'}, {'p': {'no': 0.3, 'yes': 0.7}}, {'note': 5.0})
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from sustain.collector.categories import category_key
from sustain.durations import parse_duration
from sustain.spec import ModelSpec
from sustain.store.layout import Column, Layout
from sustain.timestamps import iso

DEFAULT_PREFIX = "sustain"
ILM_POLICY = "sustain-events"
INGEST_PIPELINE = "sustain-events-ingested"
# Lucene refuses an _id over 512 bytes; longer event ids are hashed.
MAX_ID_BYTES = 512
# Lucene refuses a keyword term over 32766 bytes (and with it the whole document); 8191 characters
# are at most 32764 UTF-8 bytes. Longer error messages are cut to this length; categories and class labels are
# made safe keys at ingest instead (sustain.collector.categories), so both engines count the same ones.
KEYWORD_MAX_CHARS = 8191
ROLLOVER_AGE = "7d"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MEASURED_KINDS = frozenset({"text", "embedding"})


def events_data_stream(model: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The data stream (and index template name) holding the events of ``model``.

    >>> events_data_stream("churn"), events_data_stream("churn", prefix="acme")
    ('sustain-events-churn', 'acme-events-churn')
    """
    return f"{prefix}-events-{model}"


def ilm_policy_name(prefix: str = DEFAULT_PREFIX) -> str:
    """The ILM policy every events data stream of a deployment uses.

    >>> ilm_policy_name() == ILM_POLICY
    True
    """
    return f"{prefix}-events"


def ingest_pipeline_name(prefix: str = DEFAULT_PREFIX) -> str:
    """The final pipeline that stamps ``event.ingested`` on every event of a deployment.

    >>> ingest_pipeline_name() == INGEST_PIPELINE
    True
    """
    return f"{prefix}-events-ingested"


def bucket_field(window: str) -> str:
    """The document field holding the bucket start of ``window`` (a spec window label).

    >>> bucket_field("1h"), bucket_field("1.5s")
    ('buckets.1h', 'buckets.1_5s_e9f575')
    """
    return f"buckets.{safe_name(window)}"


def event_doc_id(event_id: str) -> str:
    """The ``_id`` of an event's document: its id, or ``sha256:<hex>`` when over Lucene's 512 bytes.

    >>> event_doc_id("e1"), event_doc_id("x" * 600)[:15]
    ('e1', 'sha256:5130b33e')
    """
    if len(event_id.encode()) <= MAX_ID_BYTES:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def safe_name(name: str) -> str:
    """``name`` as one Elasticsearch field-name segment: ``[A-Za-z0-9_-]``, not starting with ``_``.

    A name that is already safe is kept as it is. A name that had to change (any other
    character, dots included, becomes ``_``; a leading ``_`` gets an ``x`` in front) also gets
    ``_`` and the first 6 hex digits of its SHA-1, so two different names never collide
    ("a.b" and "a b" both clean to "a_b") and a changed name never takes the place of a safe
    one. The rule looks at one name only, so it is deterministic and stable as a spec grows.

    >>> safe_name("age"), safe_name("Age-2")
    ('age', 'Age-2')
    >>> safe_name("a.b"), safe_name("a b"), safe_name("_id")
    ('a_b_69f664', 'a_b_7dbde9', 'x_id_a6526f')
    >>> safe_name("größe")
    'gr__e_93c6a3'
    """
    cleaned = _UNSAFE.sub("_", name)
    if cleaned.startswith("_") or not cleaned:
        cleaned = "x" + cleaned
    if cleaned == name:
        return name
    return f"{cleaned}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def es_field(column: str, *, measure: bool = False) -> str:
    """The document path of a storage column (``measure``: of the number derived from it).

    ``f:<name>`` → ``features.<safe>``; ``o:<name>`` → ``outputs.<safe>``;
    ``o:<name>:<class>`` → ``outputs.<safe>.<safe class>``; the length of a text or
    the norm of an embedding ``f:<name>`` → ``measures.<safe>``. As everywhere in
    sustain, the first ``:`` after an output's name separates the class.

    >>> es_field("f:age"), es_field("o:proba:churn"), es_field("f:note", measure=True)
    ('features.age', 'outputs.proba.churn', 'measures.note')
    >>> es_field("f:account age"), es_field("o:score v2")
    ('features.account_age_ad00fe', 'outputs.score_v2_272b6d')
    >>> es_field("label")
    Traceback (most recent call last):
    ...
    ValueError: 'label' is not a feature (f:...) or output (o:...) column
    """
    prefix, sep, rest = column.partition(":")
    if not sep or prefix not in ("f", "o"):
        raise ValueError(f"{column!r} is not a feature (f:...) or output (o:...) column")
    if prefix == "f":
        return ("measures." if measure else "features.") + safe_name(rest)
    if measure:
        raise ValueError(f"outputs have no derived measures: {column!r}")
    name, has_class, cls = rest.partition(":")
    return f"outputs.{safe_name(name)}" + (f".{safe_name(cls)}" if has_class else "")


def es_duration(seconds: float) -> str:
    """An Elasticsearch time value for ``seconds`` in the largest exact unit (no weeks in ES).

    >>> es_duration(60), es_duration(90), es_duration(7 * 86400), es_duration(1.5)
    ('1m', '90s', '7d', '1500ms')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


# -- the event document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """Where one stored value column goes in the document."""

    column: Column
    path: tuple[str, ...]
    measure_path: tuple[str, ...] | None


def _slots(spec: ModelSpec) -> list[_Slot]:
    slots = []
    for col in Layout.of(spec).value_columns:
        measured = col.source == "feature" and col.kind in _MEASURED_KINDS
        measure = tuple(es_field(col.name, measure=True).split(".")) if measured else None
        slots.append(_Slot(col, tuple(es_field(col.name).split(".")), measure))
    return slots


def _put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _keyword(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text[:KEYWORD_MAX_CHARS]


def _category(value: Any) -> str | None:
    """A category as the collector stores it (a safe ``flattened`` key); rows that bypassed it are made safe here."""
    text = _text(value)
    return None if text is None else category_key(text)


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(value: Any) -> int:
    """Microseconds since the epoch of an event timestamp: a datetime, an ISO 8601 string, or epoch millis.

    Naive datetimes are UTC, as everywhere in sustain.

    >>> epoch_micros("1970-01-01T00:00:01.5Z"), epoch_micros(datetime(1970, 1, 1, 0, 0, 2)), epoch_micros(3)
    (1500000, 2000000, 3000)
    """
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return round(value * 1000)  # epoch millis, as Elasticsearch reads a number in a date field
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(stamp, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp - _EPOCH) // timedelta(microseconds=1)


def bucket_start(micros: int, window_seconds: float) -> str:
    """The start of the epoch-aligned bucket of ``window_seconds`` holding ``micros``, as ISO 8601 with millis.

    The same ``floor(ts / w) * w`` the embedded engine's ``time_bucket`` and an Elasticsearch
    ``fixed_interval`` date histogram compute (both align fixed intervals on the epoch in UTC).

    >>> bucket_start(epoch_micros("2026-01-05T01:59:59.999999Z"), 3600.0)
    '2026-01-05T01:00:00.000Z'
    >>> bucket_start(-1, 60.0)
    '1969-12-31T23:59:00.000Z'
    """
    width = round(window_seconds * 1_000_000)
    start = _EPOCH + timedelta(microseconds=micros // width * width)
    return start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z"


def _buckets(windows: list[tuple[str, float]], timestamp: Any) -> dict[str, str]:
    micros = epoch_micros(timestamp)
    return {field: bucket_start(micros, seconds) for field, seconds in windows}


def _stored_value(col: Column, value: Any) -> Any:
    """The document value of one stored value, or None to leave it out."""
    kind = col.kind
    if kind in ("numeric", "probability", "regression", "class_scores"):
        return _number(value)
    if kind in ("categorical", "class_label"):
        return _category(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "text":
        return value if isinstance(value, str) else None
    if kind == "embedding":
        if not isinstance(value, list | tuple):
            return None
        numbers = [_number(v) for v in value]
        return None if any(n is None for n in numbers) else numbers
    raise ValueError(f"unknown column kind {kind!r}")


def _measure(kind: str, value: Any) -> float:
    """Text length in characters (code points, like DuckDB ``length``), or embedding L2 norm."""
    return float(len(value)) if kind == "text" else math.hypot(*value)


def _value_of(col: Column, event: Mapping[str, Any], classes: Mapping[str, list[str]]) -> Any:
    if col.source == "feature":
        return (event.get("features") or {}).get(col.key)
    value = (event.get("outputs") or {}).get(col.key)
    if col.cls is None:
        return value
    if isinstance(value, Mapping):
        return value.get(col.cls)
    if isinstance(value, list | tuple) and len(value) == len(classes[col.key]):
        return value[classes[col.key].index(col.cls)]  # scores sent as a list, in class order
    return None


def _bucket_windows(spec: ModelSpec) -> list[tuple[str, float]]:
    """(field segment under ``buckets``, seconds) of every window of ``spec``."""
    return [(safe_name(label), parse_duration(label)) for label in spec.windows]


def _document(
    spec: ModelSpec, slots: list[_Slot], windows: list[tuple[str, float]], event: Mapping[str, Any]
) -> dict[str, Any]:
    classes = {o.name: list(o.classes or []) for o in spec.outputs}
    doc: dict[str, Any] = {
        "@timestamp": _timestamp(event["timestamp"]),
        "event": {"id": str(event["event_id"])},
        "model": {"id": spec.name, "version": str(event["version"])},
        "buckets": _buckets(windows, event["timestamp"]),
    }
    if event.get("request_id") is not None:
        doc["request"] = {"id": str(event["request_id"])}
    for slot in slots:
        value = _stored_value(slot.column, _value_of(slot.column, event, classes))
        if value is None:
            continue
        _put(doc, slot.path, value)
        if slot.measure_path is not None:
            _put(doc, slot.measure_path, _measure(slot.column.kind, value))
    latency = _number(event.get("latency_ms"))
    if latency is not None:
        doc["latency_ms"] = latency
    error = _keyword(event.get("error"))
    if error is not None:
        doc["error"] = error
    if event.get("tags") is not None:
        doc["tags"] = event["tags"]
    if event.get("invalid"):
        doc["invalid"] = [str(v) for v in event["invalid"]]
    if event.get("extra"):
        doc["extra"] = event["extra"]
    return doc


def event_document(spec: ModelSpec, event: Mapping[str, Any]) -> dict[str, Any]:
    """The Elasticsearch document of one stored event (the shape of ``records.row_to_event``).

    Class scores may be a ``{class: score}`` object or a list in class order. Values of
    the wrong type are left out, like nulls (the collector has already listed them in
    ``invalid``).

    >>> from sustain.spec import ModelSpec
    >>> spec = ModelSpec.model_validate({"name": "m", "features": {"v": {"kind": "embedding", "dim": 2}}})
    >>> doc = event_document(spec, {"event_id": "e1", "request_id": None, "version": "2",
    ...     "timestamp": "2026-01-01T00:00:00Z", "features": {"v": [3.0, 4.0]}, "outputs": {},
    ...     "latency_ms": None, "error": "boom", "tags": {"region": "eu"}})
    >>> doc["measures"], doc["error"], doc["model"], "request" in doc, "latency_ms" in doc
    ({'v': 5.0}, 'boom', {'id': 'm', 'version': '2'}, False, False)
    >>> doc["buckets"]
    {'1h': '2026-01-01T00:00:00.000Z'}
    """
    return _document(spec, _slots(spec), _bucket_windows(spec), event)


def bulk_lines(spec: ModelSpec, events: Iterable[Mapping[str, Any]], *, prefix: str = DEFAULT_PREFIX) -> bytes:
    """NDJSON for ``POST _bulk``: a ``create`` action (the only one data streams take) and a document per event.

    The action's ``_id`` is the event id, so a repeated event is refused with a 409 by the
    backing index holding it (see the module docstring for rollovers).

    >>> from sustain.spec import ModelSpec
    >>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric"}})
    >>> body = bulk_lines(spec, [{"event_id": "e1", "version": "1", "timestamp": "2026-01-01T00:00:00Z",
    ...     "features": {"x": 1}, "outputs": {}}])
    >>> print(body.decode(), end="")
    {"create":{"_index":"sustain-events-m","_id":"e1"}}
    {"@timestamp":"2026-01-01T00:00:00Z","event":{"id":"e1"},"model":{"id":"m","version":"1"},"buckets":{"1h":"2026-01-01T00:00:00.000Z"},"features":{"x":1.0}}
    """
    slots, windows, index = _slots(spec), _bucket_windows(spec), events_data_stream(spec.name, prefix)
    parts: list[bytes] = []
    for event in events:
        action = {"create": {"_index": index, "_id": event_doc_id(str(event["event_id"]))}}
        parts += [orjson.dumps(action), b"\n", orjson.dumps(_document(spec, slots, windows, event)), b"\n"]
    return b"".join(parts)


# -- index template, ILM policy, ingest pipeline -----------------------------------------------------


def _mapping_of(col: Column) -> dict[str, Any]:
    if col.kind in ("numeric", "probability", "regression", "class_scores"):
        return {"type": "double"}
    if col.kind in ("categorical", "class_label"):
        return {"type": "keyword"}
    if col.kind == "boolean":
        return {"type": "boolean"}
    if col.kind == "text":
        return {"type": "text"}
    if col.kind == "embedding":
        return {"type": "dense_vector", "dims": col.arrow_type.list_size, "index": False}
    raise ValueError(f"unknown column kind {col.kind!r}")


def _add_property(properties: dict[str, Any], path: tuple[str, ...], mapping: dict[str, Any], column: str) -> None:
    """Put ``mapping`` at ``path`` under ``properties``, creating objects; a clash names the column."""
    node = properties
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {"properties": {}})
        if "properties" not in child:
            where = ".".join(path[: depth + 1])
            raise ValueError(f"column {column!r} needs {where!r} to be an object, but it is a {child['type']} field")
        node = child["properties"]
    if path[-1] in node:
        raise ValueError(f"column {column!r} maps to {'.'.join(path)!r}, which another column already uses")
    node[path[-1]] = mapping


def events_index_template(spec: ModelSpec, *, prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The body of ``PUT _index_template/<prefix>-events-<model>``: a data stream with typed fields.

    Mappings are not dynamic: fields not declared in the spec stay in ``_source``
    without being indexed. The pattern names one data stream exactly, so it never
    overlaps the built-in ``logs-*-*``/``metrics-*-*`` templates.

    >>> from sustain.spec import ModelSpec
    >>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric", "t": "text"}})
    >>> body = events_index_template(spec)
    >>> body["index_patterns"], body["priority"]
    (['sustain-events-m'], 200)
    >>> props = body["template"]["mappings"]["properties"]
    >>> props["features"]["properties"], props["measures"]["properties"]
    ({'x': {'type': 'double'}, 't': {'type': 'text'}}, {'t': {'type': 'double'}})
    >>> props["buckets"]
    {'properties': {'1h': {'type': 'date'}}}
    """
    keyword = {"type": "keyword"}
    properties: dict[str, Any] = {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"id": keyword, "ingested": {"type": "date"}}},
        "model": {"properties": {"id": keyword, "version": keyword}},
        "request": {"properties": {"id": keyword}},
        "features": {"properties": {}},
        "outputs": {"properties": {}},
        "measures": {"properties": {}},
        "latency_ms": {"type": "double"},
        "error": keyword,
        "tags": {"type": "flattened"},
        "invalid": keyword,
        "extra": {"type": "object", "enabled": False},
        "buckets": {"properties": {segment: {"type": "date"} for segment, _ in _bucket_windows(spec)}},
    }
    for slot in _slots(spec):
        _add_property(properties, slot.path, _mapping_of(slot.column), slot.column.name)
        if slot.measure_path is not None:
            _add_property(properties, slot.measure_path, {"type": "double"}, slot.column.name)
    return {
        "index_patterns": [events_data_stream(spec.name, prefix)],
        "data_stream": {},
        "priority": 200,
        "template": {
            "settings": {
                "index.lifecycle.name": ilm_policy_name(prefix),
                "index.final_pipeline": ingest_pipeline_name(prefix),
            },
            "mappings": {"dynamic": False, "properties": properties},
        },
        "_meta": {"managed_by": "sustain", "model": spec.name},
    }


# Painless for backfilling ``buckets.<window>`` of events stored before a window was added to the spec.
BACKFILL_BUCKETS_SCRIPT = (
    "def ts = ctx._source['@timestamp'];"
    " long ms = ts instanceof String ? ZonedDateTime.parse(ts).toInstant().toEpochMilli() : ((Number) ts).longValue();"
    " if (ctx._source.buckets == null) { ctx._source.buckets = new HashMap(); }"
    " for (def entry : params.windows.entrySet()) {"
    " long w = ((Number) entry.getValue()).longValue();"
    " ctx._source.buckets[entry.getKey()] = Math.floorDiv(ms, w) * w; }"
)


def backfill_buckets_body(windows: list[str]) -> dict[str, Any]:
    """The body of ``POST <prefix>-events-<model>/_update_by_query``: write the bucket fields of new ``windows``.

    Events stored before a window was added to the spec lack its ``buckets.<window>`` field, and
    a date histogram skips documents without a value. The rewrite goes through the final
    pipeline, which moves ``event.ingested``, so running transforms pick the events up again
    (they recompute whole buckets, so nothing is counted twice).

    >>> body = backfill_buckets_body(["1h"])
    >>> body["query"]["bool"]["should"], body["script"]["params"]
    ([{'bool': {'must_not': [{'exists': {'field': 'buckets.1h'}}]}}], {'windows': {'1h': 3600000}})
    """
    lacking = [{"bool": {"must_not": [{"exists": {"field": bucket_field(w)}}]}} for w in windows]
    millis = {safe_name(w): round(parse_duration(w) * 1000) for w in windows}
    return {
        "query": {"bool": {"should": lacking, "minimum_should_match": 1}},
        "script": {"source": BACKFILL_BUCKETS_SCRIPT, "lang": "painless", "params": {"windows": millis}},
    }


def ilm_policy(max_age: str = "30d") -> dict[str, Any]:
    """The body of ``PUT _ilm/policy/sustain-events``: roll over weekly (or at 50 GB), delete after ``max_age``.

    A backing index is deleted ``max_age`` after its rollover, so events are kept between ``max_age`` and
    ``max_age`` plus a week.

    >>> ilm_policy("2w")["policy"]["phases"]["delete"]
    {'min_age': '14d', 'actions': {'delete': {}}}
    """
    return {
        "policy": {
            "phases": {
                "hot": {"actions": {"rollover": {"max_age": ROLLOVER_AGE, "max_primary_shard_size": "50gb"}}},
                "delete": {"min_age": es_duration(parse_duration(max_age)), "actions": {"delete": {}}},
            },
            "_meta": {"managed_by": "sustain"},
        }
    }


def ingest_pipeline() -> dict[str, Any]:
    """The body of ``PUT _ingest/pipeline/sustain-events-ingested``: stamp ``event.ingested`` on arrival.

    >>> ingest_pipeline()["processors"]
    [{'set': {'field': 'event.ingested', 'value': '{{{_ingest.timestamp}}}'}}]
    """
    return {
        "description": "sustain: set event.ingested, the field continuous transforms sync on",
        "processors": [{"set": {"field": "event.ingested", "value": "{{{_ingest.timestamp}}}"}}],
        "_meta": {"managed_by": "sustain"},
    }
