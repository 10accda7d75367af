"""The state of the Elasticsearch double: indices, data streams, templates, pipelines, aliases, a clock.

:class:`Cluster` keeps everything in memory and implements the document and index APIs the way a one-node
8.19 cluster answers them (the transform APIs are in :mod:`.transforms`, the HTTP side in :mod:`.node`):

* a data stream writes to its newest backing index (``.ds-<name>-<yyyy.MM.dd>-<generation>``); ``create``
  refuses an ``_id`` only when *that* index holds it, so a repeat after :meth:`Cluster.rollover` is stored
  again, exactly as elastic/elasticsearch#44794 describes;
* index templates with ``data_stream`` apply their settings and mappings to new backing indices, and an
  ``index.final_pipeline`` runs on every write (``set`` processors, ``{{{_ingest.timestamp}}}`` = the clock);
* documents are checked against the mappings (:func:`.fields.check_document`): a refused document is a
  failed bulk item, as on a cluster;
* writes are searchable at once (as if every request asked for ``refresh``).

The clock is the test's: :attr:`Cluster.now_ms` moves only through :meth:`Cluster.advance`.

Simpler than a cluster, on purpose: one node and no security; every write is searchable at once (no refresh
interval, so ``sync.time.delay`` matters only against the clock); ILM rolls over only when a test calls
:meth:`Cluster.rollover`; transforms checkpoint only when the clock moves; scores are a stable hash, not BM25.
A request outside what it implements is answered with status 501 (``unsupported_by_double``), so it fails the
test that sent it.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.es_double.fields import MappingError, check_document, format_date
from tests.es_double.search import DEFAULT_MAX_BUCKETS, Doc, RequestError, Unsupported

START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z
_INGEST_TIMESTAMP = "{{{_ingest.timestamp}}}"


def not_found(index: str) -> RequestError:
    return RequestError(404, "index_not_found_exception", f"no such index [{index}]", index=index)


@dataclass
class Index:
    name: str
    mappings: dict[str, Any]
    settings: dict[str, Any]
    created_ms: int
    data_stream: str | None = None
    docs: dict[str, Doc] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)
    seq: int = 0

    def setting(self, name: str) -> Any:
        return self.settings.get(name, self.settings.get(name.removeprefix("index.")))


@dataclass
class DataStream:
    name: str
    template: str
    indices: list[str] = field(default_factory=list)
    generation: int = 0


def flat_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"index": {"number_of_shards": 1}}`` as ``{"index.number_of_shards": 1}``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_settings(value, f"{name}."))
        else:
            out[name if name.startswith("index.") else f"index.{name}"] = value
    return out


def merge_properties(current: dict[str, Any], update: Mapping[str, Any], path: str = "") -> None:
    """Add ``update``'s fields to ``current``; a field whose type would change is refused, as on a cluster."""
    for name, mapping in update.items():
        where = f"{path}{name}"
        existing = current.get(name)
        if existing is None:
            current[name] = dict(mapping)
            continue
        if "properties" in mapping or "properties" in existing:
            existing.setdefault("properties", {})
            merge_properties(existing["properties"], mapping.get("properties", {}), f"{where}.")
            continue
        if existing.get("type") != mapping.get("type"):
            raise RequestError(
                400,
                "illegal_argument_exception",
                f"mapper [{where}] cannot be changed from type [{existing.get('type')}] to [{mapping.get('type')}]",
            )


class Cluster:
    """An in-memory Elasticsearch 8.19 for tests; every client of one Cluster sees the same data."""

    version = "8.19.2"

    def __init__(self, *, max_buckets: int = DEFAULT_MAX_BUCKETS) -> None:
        self.now_ms = START_MS
        self.indices: dict[str, Index] = {}
        self.data_streams: dict[str, DataStream] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.settings: dict[str, Any] = {"search.max_buckets": max_buckets}
        self.requests: list[Any] = []  # every request and answer, see tests.es_double.node.Recorded
        # Called with (method, path) before each request is answered: tests use it to act "in between".
        self.before_request: list[Callable[[str, str], None]] = []
        self.lock = threading.RLock()
        from tests.es_double.transforms import Transforms

        self.transforms = Transforms(self)

    def client_options(self, client: str = "client") -> dict[str, Any]:
        """Keyword arguments for ``elasticsearch.Elasticsearch`` connecting it to this cluster as ``client``."""
        from tests.es_double.node import client_options

        return client_options(self, client)

    # -- time ---------------------------------------------------------------------------------------------------------
    def now_iso(self) -> str:
        stamp = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=self.now_ms)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # ingest timestamps carry nanoseconds

    def advance(self, seconds: float) -> None:
        """Move the clock; continuous transforms whose frequency elapsed run their checkpoints."""
        with self.lock:
            end = self.now_ms + round(seconds * 1000)
            while True:
                due = self.transforms.next_due()
                if due is None or due > end:
                    break
                self.now_ms = max(self.now_ms, due)
                self.transforms.run_due()
            self.now_ms = end

    @property
    def max_buckets(self) -> int:
        return int(self.settings["search.max_buckets"])

    # -- names -----------------------------------------------------------------------------------------------------
    def resolve(self, expression: str, *, allow_missing: bool = False) -> list[Index]:
        """The indices an index expression names: names, aliases, data streams, wildcards, comma lists."""
        found: dict[str, Index] = {}
        for part in expression.split(","):
            part = part.strip()
            names: list[str] = []
            if part in self.indices:
                names = [part]
            elif part in self.data_streams:
                names = list(self.data_streams[part].indices)
            elif any(part in index.aliases for index in self.indices.values()):
                names = [i.name for i in self.indices.values() if part in i.aliases]
            elif "*" in part:
                for name in self.indices:
                    if fnmatch.fnmatchcase(name, part) and not name.startswith("."):
                        names.append(name)
                for stream in self.data_streams.values():
                    if fnmatch.fnmatchcase(stream.name, part):
                        names.extend(stream.indices)
                for index in self.indices.values():
                    if any(fnmatch.fnmatchcase(alias, part) for alias in index.aliases):
                        names.append(index.name)
            elif not allow_missing:
                raise not_found(part)
            for name in names:
                found[name] = self.indices[name]
        return list(found.values())

    def index(self, name: str) -> Index:
        if name not in self.indices:
            raise not_found(name)
        return self.indices[name]

    # -- indices ---------------------------------------------------------------------------------------------------
    def create_index(self, name: str, body: Mapping[str, Any] | None = None, *, stream: str | None = None) -> Index:
        if name in self.indices or name in self.data_streams:
            raise RequestError(
                400, "resource_already_exists_exception", f"index [{name}/{uuid.uuid4().hex[:22]}] already exists"
            )
        if name != name.lower() or name.startswith(("-", "_", "+")):
            raise RequestError(400, "invalid_index_name_exception", f"Invalid index name [{name}]")
        body = body or {}
        mappings = dict(body.get("mappings", {}))
        mappings["properties"] = {k: dict(v) for k, v in mappings.get("properties", {}).items()}
        index = Index(name, mappings, flat_settings(body.get("settings", {})), self.now_ms, stream)
        for alias in body.get("aliases", {}):
            index.aliases.add(alias)
        self.indices[name] = index
        return index

    def put_mapping(self, expression: str, body: Mapping[str, Any]) -> None:
        for index in self.resolve(expression):
            merge_properties(index.mappings.setdefault("properties", {}), body.get("properties", {}))

    def delete_index(self, expression: str) -> None:
        for index in self.resolve(expression):
            del self.indices[index.name]

    def update_aliases(self, actions: list[Mapping[str, Any]]) -> None:
        for action in actions:
            [(kind, params)] = action.items()
            if kind == "add":
                for index in self.resolve(params["index"]):
                    index.aliases.add(params["alias"])
            elif kind == "remove":
                targets = self.resolve(params["index"], allow_missing=True)
                hits = [i for i in targets if params["alias"] in i.aliases]
                if not hits and params.get("must_exist", False):
                    raise RequestError(404, "aliases_not_found_exception", f"aliases [{params['alias']}] missing")
                for index in hits:
                    index.aliases.discard(params["alias"])
            else:
                raise Unsupported(f"alias action {kind!r}")

    # -- templates, data streams, rollover -------------------------------------------------------------------------
    def template_for(self, name: str) -> tuple[str, dict[str, Any]] | None:
        best: tuple[int, str, dict[str, Any]] | None = None
        for template_name, body in self.templates.items():
            if any(fnmatch.fnmatchcase(name, p) for p in body.get("index_patterns", [])):
                priority = int(body.get("priority", 0))
                if best is None or priority > best[0]:
                    best = (priority, template_name, body)
        return None if best is None else (best[1], best[2])

    def create_data_stream(self, name: str) -> DataStream:
        if name in self.data_streams:
            raise RequestError(400, "resource_already_exists_exception", f"data_stream [{name}] already exists")
        found = self.template_for(name)
        if found is None or "data_stream" not in found[1]:
            raise RequestError(
                400, "illegal_argument_exception", f"no matching index template with a data stream found for [{name}]"
            )
        stream = DataStream(name, found[0])
        self.data_streams[name] = stream
        self.rollover(name)
        return stream

    def rollover(self, name: str) -> str:
        """Start a new backing index of data stream ``name`` (what ILM does at ``max_age``); its name."""
        stream = self.data_streams[name]
        template = self.templates[stream.template].get("template", {})
        stream.generation += 1
        day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=self.now_ms)).strftime("%Y.%m.%d")
        backing = f".ds-{name}-{day}-{stream.generation:06d}"
        previous = self.indices[stream.indices[-1]].mappings if stream.indices else template.get("mappings", {})
        body = {"settings": template.get("settings", {}), "mappings": _copy(previous)}
        self.create_index(backing, body, stream=name)
        stream.indices.append(backing)
        return backing

    def write_index(self, name: str) -> Index:
        if name in self.data_streams:
            return self.indices[self.data_streams[name].indices[-1]]
        targets = [i for i in self.indices.values() if name in i.aliases]
        if len(targets) == 1:
            return targets[0]
        if name in self.indices:
            return self.indices[name]
        return self._auto_create(name)

    def _auto_create(self, name: str) -> Index:
        found = self.template_for(name)
        if found is not None and "data_stream" in found[1]:
            self.create_data_stream(name)
            return self.write_index(name)
        if found is not None:
            return self.create_index(name, found[1].get("template", {}))
        return self.create_index(name, {"mappings": {"dynamic": True}})

    # -- pipelines -------------------------------------------------------------------------------------------------
    def run_pipeline(self, name: str, source: dict[str, Any]) -> dict[str, Any]:
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            raise RequestError(400, "illegal_argument_exception", f"pipeline with id [{name}] does not exist")
        for processor in pipeline.get("processors", []):
            [(kind, params)] = processor.items()
            if kind != "set":
                raise Unsupported(f"ingest processor {kind!r}")
            value = params["value"]
            if value == _INGEST_TIMESTAMP:
                value = self.now_iso()
            elif isinstance(value, str) and "{{" in value:
                raise Unsupported(f"ingest template {value!r}")
            node = source
            parts = params["field"].split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return source

    # -- documents -------------------------------------------------------------------------------------------------
    def write(
        self,
        target: str,
        doc_id: str | None,
        source: dict[str, Any],
        *,
        op_type: str = "index",
        pipeline: str | None = None,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
    ) -> dict[str, Any]:
        """Index one document; the bulk item / index response body (raises RequestError when refused)."""
        index = self.write_index(target)
        if index.data_stream is not None:
            if op_type != "create":
                raise RequestError(
                    400,
                    "illegal_argument_exception",
                    f"only write ops with an op_type of create are allowed in data streams [{target}]",
                )
            if "@timestamp" not in source:
                raise RequestError(
                    400, "document_parsing_exception", "data stream timestamp field [@timestamp] is missing"
                )
        if doc_id is not None and len(doc_id.encode()) > 512:
            raise RequestError(
                400, "action_request_validation_exception", "id is too long, must be no longer than 512 bytes"
            )
        doc_id = doc_id or uuid.uuid4().hex[:20]
        existing = index.docs.get(doc_id)
        if op_type == "create" and existing is not None:
            raise RequestError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [{existing.version}])",
                index=index.name,
            )
        if if_seq_no is not None and (existing is None or existing.seq_no != if_seq_no or if_primary_term != 1):
            current = "none" if existing is None else existing.seq_no
            raise RequestError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, required seqNo [{if_seq_no}], current document has seqNo [{current}]",
                index=index.name,
            )
        source = _copy(source)
        for name in (pipeline, index.setting("index.default_pipeline"), index.setting("index.final_pipeline")):
            if name and name != "_none":
                source = self.run_pipeline(name, source)
        try:
            check_document(source, index.mappings)
        except MappingError as exc:
            raise RequestError(400, exc.kind, exc.reason, index=index.name) from None
        if index.mappings.get("dynamic") is True:
            _map_dynamically(index.mappings, source)
        index.seq += 1
        version = 1 if existing is None else existing.version + 1
        index.docs[doc_id] = Doc(index.name, doc_id, source, index.mappings, index.seq, version)
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": version,
            "result": "created" if existing is None else "updated",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": index.seq,
            "_primary_term": 1,
            "status": 201 if existing is None else 200,
        }

    def replace(self, index_name: str, doc_id: str, source: dict[str, Any]) -> None:
        """Rewrite a document where it is (update_by_query), through the index's final pipeline."""
        index = self.indices[index_name]
        final = index.setting("index.final_pipeline")
        if final and final != "_none":
            source = self.run_pipeline(final, source)
        try:
            check_document(source, index.mappings)
        except MappingError as exc:
            raise RequestError(400, exc.kind, exc.reason, index=index.name) from None
        index.seq += 1
        previous = index.docs[doc_id]
        index.docs[doc_id] = Doc(index.name, doc_id, source, index.mappings, index.seq, previous.version + 1)

    def delete(self, target: str, doc_id: str) -> dict[str, Any]:
        index = self.write_index(target)
        found = index.docs.pop(doc_id, None)
        index.seq += 1
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": 1 if found is None else found.version + 1,
            "result": "deleted" if found is not None else "not_found",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": index.seq,
            "_primary_term": 1,
            "status": 200 if found is not None else 404,
        }

    def docs(self, expression: str, *, allow_missing: bool = False) -> Iterator[Doc]:
        for index in self.resolve(expression, allow_missing=allow_missing):
            yield from index.docs.values()

    def get(self, expression: str, doc_id: str) -> dict[str, Any]:
        found = self.resolve(expression)
        if len(found) != 1:
            raise not_found(expression)
        [index] = found
        doc = index.docs.get(doc_id)
        if doc is None:
            return {"_index": index.name, "_id": doc_id, "found": False}
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
            "_source": doc.source,
        }


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _map_dynamically(mappings: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Dynamic mapping for indices created without a template: strings keyword, numbers double, objects nested."""
    properties = mappings.setdefault("properties", {})
    for key, value in source.items():
        if key in properties or value is None:
            continue
        if isinstance(value, Mapping):
            properties[key] = {"properties": {}}
            _map_dynamically(properties[key], value)
        elif isinstance(value, bool):
            properties[key] = {"type": "boolean"}
        elif isinstance(value, int | float):
            properties[key] = {"type": "long" if isinstance(value, int) else "double"}
        elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*", value):
            properties[key] = {"type": "date"}
        elif isinstance(value, str):
            properties[key] = {"type": "keyword"}


__all__ = ["START_MS", "Cluster", "DataStream", "Index", "format_date", "not_found"]
