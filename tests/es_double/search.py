"""Queries, sorting and aggregations of the Elasticsearch double, over the doc values of :mod:`.fields`.

Supported, with Elasticsearch's semantics and response shapes: ``match_all``, ``bool`` (``filter``, ``must``,
``should`` with ``minimum_should_match``, ``must_not``), ``term``, ``terms``, ``ids``, ``range`` (numbers and
dates, ``format: epoch_millis``), ``exists``, ``function_score`` with a seeded ``random_score``; sorts on
fields with ``missing``, ``search_after``, ``collapse``, ``_source`` filtering; and the aggregations
``composite`` (terms sources, ``after``), ``top_hits``, ``terms`` (computed per shard, that is per backing
index, with ``shard_size`` and ``sum_other_doc_count``, then reduced, as a cluster does), ``filter``,
``missing``, ``value_count``, ``sum``, ``min``, ``max``, ``avg`` and ``cardinality``. Runtime fields run the
painless scripts sustain emits (:data:`SCRIPTS`). Anything else raises :class:`Unsupported`, so a body the
double does not understand fails a test instead of passing silently.

>>> doc = Doc("i", "1", {"a": 3, "k": "x"}, {"properties": {"a": {"type": "long"}, "k": {"type": "keyword"}}})
>>> matches({"bool": {"filter": [{"range": {"a": {"gt": 2}}}, {"term": {"k": {"value": "x"}}}]}}, doc)
True
>>> aggregate({"n": {"value_count": {"field": "k"}}, "t": {"terms": {"field": "k"}}}, [doc])["t"]
{'doc_count_error_upper_bound': 0, 'sum_other_doc_count': 0, 'buckets': [{'key': 'x', 'doc_count': 1}]}
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.es_double.fields import field_mapping, format_date, parse_date, values_of

MAX_RESULT_WINDOW = 10_000
DEFAULT_MAX_BUCKETS = 65_536


class Unsupported(Exception):
    """A request the double does not implement (a test must not pass by ignoring it)."""


class RequestError(Exception):
    """An error Elasticsearch answers with a status and an error type."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason, self.extra = status, kind, reason, extra


# The painless sources sustain's transforms emit, and what each emits for one document.
def _shifted(power: int) -> Callable[[Doc, Mapping[str, Any]], list[float]]:
    def run(doc: Doc, params: Mapping[str, Any]) -> list[float]:
        values = doc.values(params["field"])
        if not values:
            return []
        v = float(values[0]) - float(params["shift"])
        return [v**power]

    return run


SCRIPTS: dict[str, Callable[[Doc, Mapping[str, Any]], list[float]]] = {
    "if (doc.containsKey(params.field) && doc[params.field].size() > 0)"
    " { double v = doc[params.field].value - params.shift; emit(v); }": _shifted(1),
    "if (doc.containsKey(params.field) && doc[params.field].size() > 0)"
    " { double v = doc[params.field].value - params.shift; emit(v * v); }": _shifted(2),
}


@dataclass
class Doc:
    """One stored document as a search sees it."""

    index: str
    id: str
    source: dict[str, Any]
    mappings: Mapping[str, Any]
    seq_no: int = 0
    version: int = 1
    runtime: Mapping[str, Any] = field(default_factory=dict)
    score: float | None = None
    cache: dict[Any, list[Any]] = field(default_factory=dict, repr=False)  # sources never change once stored

    def values(self, path: str) -> list[Any]:
        definition = self.runtime.get(path)
        key: Any = path if definition is None else (path, repr(definition))
        found = self.cache.get(key)
        if found is not None:
            return found
        if definition is not None:
            script = definition.get("script", {})
            run = SCRIPTS.get(script.get("source", ""))
            if run is None:
                raise Unsupported(f"the double does not know the runtime script {script.get('source')!r}")
            found = run(
                Doc(self.index, self.id, self.source, self.mappings, cache=self.cache), script.get("params", {})
            )
        else:
            found = values_of(self.source, path, self.mappings)
        self.cache[key] = found
        return found

    def field_type(self, path: str) -> str | None:
        if path in self.runtime:
            return str(self.runtime[path].get("type", "keyword"))
        mapping = field_mapping(self.mappings, path)
        return None if mapping is None else str(mapping.get("type", "object"))

    def with_runtime(self, runtime: Mapping[str, Any]) -> Doc:
        return Doc(
            self.index, self.id, self.source, self.mappings, self.seq_no, self.version, runtime, self.score, self.cache
        )


# -- queries -------------------------------------------------------------------------------------------------------


def _single(params: Mapping[str, Any], what: str) -> tuple[str, Any]:
    items = [(k, v) for k, v in params.items() if k not in ("boost", "_name")]
    if len(items) != 1:
        raise RequestError(400, "parsing_exception", f"[{what}] query malformed, expected one field")
    return items[0]


def _coerce(value: Any, kind: str | None) -> Any:
    if kind in ("date", "date_nanos"):
        return parse_date(value)
    if kind in ("keyword", "flattened", "text", None):
        return ("true" if value else "false") if isinstance(value, bool) else str(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value) == "true"
    return float(value)


def _bound(value: Any, kind: str | None, fmt: str | None) -> Any:
    if fmt == "epoch_millis" or kind in ("date", "date_nanos"):
        return parse_date(value)
    return float(value)


def matches(query: Mapping[str, Any], doc: Doc) -> bool:
    """Whether ``doc`` matches ``query``."""
    if len(query) != 1:
        raise RequestError(400, "parsing_exception", f"a query needs exactly one type, got {sorted(query)}")
    [(kind, params)] = query.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        unknown = set(params) - {"filter", "must", "should", "must_not", "minimum_should_match", "boost"}
        if unknown:
            raise Unsupported(f"bool clauses {sorted(unknown)}")

        def clauses(name: str) -> list[Mapping[str, Any]]:
            found = params.get(name, [])
            return [found] if isinstance(found, Mapping) else list(found)

        should = clauses("should")
        required = params.get("minimum_should_match", 0 if clauses("filter") or clauses("must") else 1)
        return (
            all(matches(q, doc) for q in clauses("filter") + clauses("must"))
            and not any(matches(q, doc) for q in clauses("must_not"))
            and (not should or sum(matches(q, doc) for q in should) >= int(required))
        )
    if kind == "exists":
        return bool(doc.values(params["field"]))
    if kind == "ids":
        return doc.id in set(params["values"])
    if kind == "function_score":
        return matches(params.get("query", {"match_all": {}}), doc)
    name, condition = _single(params, kind)
    values = doc.values(name)
    field_kind = doc.field_type(name)
    if kind == "term":
        wanted = condition["value"] if isinstance(condition, Mapping) else condition
        return _coerce(wanted, field_kind) in values
    if kind == "terms":
        wanted = {_coerce(v, field_kind) for v in condition}
        return any(v in wanted for v in values)
    if kind == "range":
        fmt = condition.get("format")
        tests = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b}
        tests["lte"] = lambda a, b: a <= b
        bounds = {op: _bound(v, field_kind, fmt) for op, v in condition.items() if op in tests}
        if set(condition) - set(tests) - {"format"}:
            raise Unsupported(f"range options {sorted(set(condition) - set(tests) - {'format'})}")
        return any(all(tests[op](v, bound) for op, bound in bounds.items()) for v in values)
    raise Unsupported(f"the {kind!r} query")


def random_score(seed: int, value: Any) -> float:
    """A score in [0, 1) from a seed and a field value, stable like Elasticsearch's ``random_score``."""
    digest = hashlib.blake2b(f"{seed}\x1f{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def score(query: Mapping[str, Any], doc: Doc) -> float:
    """The ``_score`` of a matching document: function_score's random_score (boost_mode replace), else 1.0."""
    if "function_score" not in query:
        return 1.0
    params = query["function_score"]
    if params.get("boost_mode", "multiply") != "replace":
        raise Unsupported("function_score without boost_mode replace")
    [function] = params["functions"]
    if set(function) != {"random_score"}:
        raise Unsupported(f"function_score functions {sorted(function)}")
    options = function["random_score"]
    values = doc.values(options["field"])
    return random_score(int(options["seed"]), values[0] if values else "")


# -- sorting -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool
    missing_first: bool


def sort_keys(sort: Any) -> list[SortKey]:
    keys = []
    for entry in sort if isinstance(sort, list) else [sort]:
        if isinstance(entry, str):
            name, options = entry, {}
        else:
            [(name, options)] = entry.items()
            options = {"order": options} if isinstance(options, str) else options
        descending = options.get("order", "desc" if name == "_score" else "asc") == "desc"
        missing = options.get("missing", "_last")
        if missing not in ("_first", "_last"):
            raise Unsupported(f"sort missing={missing!r}")
        keys.append(SortKey(name, descending, missing == "_first"))
    return keys


def sort_values(doc: Doc, keys: Sequence[SortKey]) -> list[Any]:
    """The ``sort`` array of a hit: per key the doc's min (ascending) or max (descending) value, or None."""
    found: list[Any] = []
    for key in keys:
        if key.field == "_score":
            found.append(doc.score)
            continue
        if key.field == "_doc":
            found.append(doc.seq_no)
            continue
        if doc.field_type(key.field) is None:
            raise RequestError(
                400, "search_phase_execution_exception", f"No mapping found for [{key.field}] in order to sort on"
            )
        values = doc.values(key.field)
        found.append((max(values) if key.descending else min(values)) if values else None)
    return found


def _comparable(values: Sequence[Any], keys: Sequence[SortKey]) -> tuple[Any, ...]:
    """A tuple whose ascending order is the requested order (missing values first or last as asked)."""
    parts: list[Any] = []
    for value, key in zip(values, keys, strict=True):
        if value is None:
            parts.append((0 if key.missing_first else 2, 0))
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        ranked: Any = (-value if number else _Reverse(value)) if key.descending else value
        parts.append((1, ranked))
    return tuple(parts)


@dataclass(frozen=True)
class _Reverse:
    value: Any

    def __lt__(self, other: _Reverse) -> bool:
        return bool(self.value > other.value)


def sort_docs(docs: Iterable[Doc], sort: Any) -> list[tuple[Doc, list[Any]]]:
    keys = sort_keys(sort)
    rows = [(doc, sort_values(doc, keys)) for doc in docs]
    rows.sort(key=lambda row: _comparable(row[1], keys))
    return rows


def after(rows: list[tuple[Doc, list[Any]]], search_after: Sequence[Any], sort: Any) -> list[tuple[Doc, list[Any]]]:
    keys = sort_keys(sort)
    bound = _comparable([_coerce_sort(v) for v in search_after], keys)
    return [row for row in rows if _comparable(row[1], keys) > bound]


def _coerce_sort(value: Any) -> Any:
    return value


# -- _source filtering ---------------------------------------------------------------------------------------------


def filter_source(source: Mapping[str, Any], includes: Sequence[str]) -> dict[str, Any]:
    """``source`` with only the fields matching ``includes`` (paths with ``*`` wildcards), nested as stored."""

    def keep(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{prefix}{key}"
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in includes):
                out[key] = value
            elif isinstance(value, Mapping) and any(p.startswith(f"{path}.") for p in includes):
                inner = keep(value, f"{path}.")
                if inner:
                    out[key] = inner
        return out

    return keep(source, "")


def source_of(doc: Doc, option: Any) -> dict[str, Any] | None:
    if option is False:
        return None
    if option is None or option is True:
        return doc.source
    includes = option if isinstance(option, list) else option.get("includes", option.get("include", []))
    return filter_source(doc.source, [includes] if isinstance(includes, str) else includes)


def hit(doc: Doc, source_option: Any, sort: list[Any] | None, with_score: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"_index": doc.index, "_id": doc.id, "_score": doc.score if with_score else None}
    source = source_of(doc, source_option)
    if source is not None:
        found["_source"] = source
    if sort is not None:
        found["sort"] = sort
    return found


# -- aggregations --------------------------------------------------------------------------------------------------


@dataclass
class BucketCounter:
    """Counts buckets of one response against ``search.max_buckets``, as the cluster's MultiBucketConsumer does."""

    limit: int = DEFAULT_MAX_BUCKETS
    count: int = 0

    def add(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise RequestError(
                400,
                "too_many_buckets_exception",
                f"Trying to create too many buckets. Must be less than or equal to: [{self.limit}] but this number "
                f"of buckets was exceeded. This limit can be set by changing the [search.max_buckets] cluster level "
                "setting.",
                max_buckets=self.limit,
            )


def _key_of(value: Any, kind: str | None) -> dict[str, Any]:
    if kind in ("date", "date_nanos"):
        return {"key": value, "key_as_string": format_date(value)}
    if kind == "boolean":
        return {"key": 1 if value else 0, "key_as_string": "true" if value else "false"}
    return {"key": value}


def _terms(params: Mapping[str, Any], docs: Sequence[Doc], sub: Mapping[str, Any], counter: BucketCounter) -> Any:
    """Top ``size`` terms by doc count (ties by key), counted per shard with ``shard_size`` and then reduced."""
    unknown = set(params) - {"field", "size", "shard_size", "missing", "order", "min_doc_count"}
    if unknown or params.get("order", {"_count": "desc"}) != {"_count": "desc"}:
        raise Unsupported(f"terms options {sorted(unknown) or params.get('order')}")
    name, size = params["field"], int(params.get("size", 10))
    shard_size = int(params.get("shard_size", math.ceil(size * 1.5 + 10)))
    by_shard: dict[str, list[Doc]] = {}
    for doc in docs:
        by_shard.setdefault(doc.index, []).append(doc)
    reduced: Counter[Any] = Counter()
    total = 0
    error = 0
    for shard_docs in by_shard.values():
        counts: Counter[Any] = Counter()
        for doc in shard_docs:
            values = set(doc.values(name))
            if not values and "missing" in params:
                values = {params["missing"]}
            counts.update(values)
        total += sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = ranked[:shard_size]
        if len(ranked) > shard_size:
            error += kept[-1][1]
        reduced.update(dict(kept))
    top = sorted(reduced.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    counter.add(len(top))
    kind = docs[0].field_type(name) if docs else None
    buckets = []
    for key, count in top:
        members = [d for d in docs if key in d.values(name)]
        buckets.append({**_key_of(key, kind), "doc_count": count, **aggregate(sub, members, counter)})
    return {
        "doc_count_error_upper_bound": error if len(by_shard) > 1 else 0,
        "sum_other_doc_count": total - sum(count for _, count in top),
        "buckets": buckets,
    }


def _composite(params: Mapping[str, Any], docs: Sequence[Doc], sub: Mapping[str, Any], counter: BucketCounter) -> Any:
    sources = []
    for source in params["sources"]:
        [(name, definition)] = source.items()
        if set(definition) != {"terms"}:
            raise Unsupported(f"composite source {sorted(definition)}")
        sources.append((name, definition["terms"]))
    groups: dict[tuple[Any, ...], list[Doc]] = {}
    for doc in docs:
        key = []
        for _, terms in sources:
            values = doc.values(terms["field"])
            if not values and not terms.get("missing_bucket"):
                break
            key.append(min(values) if values else None)
        else:
            groups.setdefault(tuple(key), []).append(doc)
    names = [name for name, _ in sources]
    ordered = sorted(groups, key=lambda k: tuple((v is not None, v) for v in k))
    if "after" in params:
        bound = tuple((params["after"][n] is not None, params["after"][n]) for n in names)
        ordered = [k for k in ordered if tuple((v is not None, v) for v in k) > bound]
    page = ordered[: int(params.get("size", 10))]
    counter.add(len(page))
    buckets = [
        {
            "key": dict(zip(names, key, strict=True)),
            "doc_count": len(groups[key]),
            **aggregate(sub, groups[key], counter),
        }
        for key in page
    ]
    result: dict[str, Any] = {"buckets": buckets}
    if buckets:
        result["after_key"] = buckets[-1]["key"]
    return result


def _top_hits(params: Mapping[str, Any], docs: Sequence[Doc]) -> Any:
    rows = sort_docs(docs, params["sort"]) if "sort" in params else [(d, None) for d in docs]
    hits = [hit(doc, params.get("_source"), values, False) for doc, values in rows[: int(params.get("size", 3))]]
    return {"hits": {"total": {"value": len(docs), "relation": "eq"}, "max_score": None, "hits": hits}}


def _metric(kind: str, params: Mapping[str, Any], docs: Sequence[Doc]) -> Any:
    values = [v for doc in docs for v in doc.values(params["field"])]
    numbers = [float(v) for v in values if not isinstance(v, str)]
    if kind == "value_count":
        return {"value": len(values)}
    if kind == "cardinality":
        return {"value": len(set(values))}
    if kind == "sum":
        return {"value": float(math.fsum(numbers))}
    if kind == "avg":
        return {"value": math.fsum(numbers) / len(numbers) if numbers else None}
    result: dict[str, Any] = {"value": (min if kind == "min" else max)(numbers) if numbers else None}
    if result["value"] is not None and docs and docs[0].field_type(params["field"]) in ("date", "date_nanos"):
        result["value_as_string"] = format_date(int(result["value"]))
    return result


METRICS = frozenset({"value_count", "cardinality", "sum", "avg", "min", "max"})


def aggregate(aggs: Mapping[str, Any], docs: Sequence[Doc], counter: BucketCounter | None = None) -> dict[str, Any]:
    """The ``aggregations`` of a search response for ``aggs`` over ``docs``."""
    counter = counter or BucketCounter()
    results: dict[str, Any] = {}
    for name, container in aggs.items():
        sub = container.get("aggs", container.get("aggregations", {}))
        kinds = [k for k in container if k not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise RequestError(400, "parsing_exception", f"aggregation [{name}] needs exactly one type, got {kinds}")
        kind, params = kinds[0], container[kinds[0]]
        if kind in METRICS:
            results[name] = _metric(kind, params, docs)
        elif kind == "filter":
            members = [d for d in docs if matches(params, d)]
            results[name] = {"doc_count": len(members), **aggregate(sub, members, counter)}
        elif kind == "missing":
            members = [d for d in docs if not d.values(params["field"])]
            results[name] = {"doc_count": len(members), **aggregate(sub, members, counter)}
        elif kind == "terms":
            results[name] = _terms(params, docs, sub, counter)
        elif kind == "composite":
            results[name] = _composite(params, docs, sub, counter)
        elif kind == "top_hits":
            results[name] = _top_hits(params, docs)
        else:
            raise Unsupported(f"the {kind!r} aggregation")
    return results
