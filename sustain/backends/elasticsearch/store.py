"""The Elasticsearch store: sustain's data in an Elasticsearch 8.x cluster.

Opened from ``elasticsearch+https://user:pass@host:9200?prefix=sustain`` (options in
:mod:`sustain.backends.elasticsearch.config`). What goes where, ``<p>`` being the prefix:

* events: the data stream ``<p>-events-<model>`` (index template, ILM policy and the
  ingest pipeline stamping ``event.ingested`` are installed by :meth:`put_spec`), one
  document per event with ``_id`` = the event id, written with ``create`` so a repeat
  is refused (see :mod:`sustain.backends.elasticsearch.mappings` for repeats across rollovers);
* labels: ``<p>-labels-<model>``, ``_id`` = ``<key_kind>:<key>``, so a repeat replaces;
* reference rows: ``<p>-reference-<model>``, tagged with version and upload id;
  ``<p>-references`` says which upload of each version is current, so a replaced
  reference switches at once and the old rows are deleted afterwards;
* specs: ``<p>-specs``; CloudEvents halves waiting for their partner: ``<p>-pending``.

Bodies come from :mod:`sustain.backends.elasticsearch.bodies`, responses are read by
:mod:`sustain.backends.elasticsearch.responses`, and every client error becomes a StoreError (or a
Conflict when a field would change type) in :class:`sustain.backends.elasticsearch.client.ESClient`.
Elasticsearch has no transaction across documents: a failed bulk request may have
stored part of its batch, and repeating it is safe (repeats are duplicates).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from sustain.backends.elasticsearch.bodies import (
    DONE,
    all_specs_search,
    complete_events_body,
    done_from_source,
    done_operations,
    event_search,
    events_mapping_update,
    forget_done_query,
    label_ids_for,
    label_lookup,
    label_operations,
    labels_index_body,
    pending_delete_operations,
    pending_id,
    pending_index_body,
    pending_operations,
    pending_search,
    reference_index_body,
    reference_info_document,
    reference_info_id,
    reference_info_search,
    reference_operations,
    reference_rows_search,
    references_index_body,
    spec_document,
    specs_index_body,
    stale_reference_rows,
)
from sustain.backends.elasticsearch.client import (
    ALREADY_EXISTS,
    MAX_RESULT_WINDOW,
    NOT_FOUND,
    ESClient,
    item_status,
    operations,
)
from sustain.backends.elasticsearch.config import IndexNames, parse_elasticsearch_uri
from sustain.backends.elasticsearch.mappings import (
    backfill_buckets_body,
    bulk_lines,
    event_doc_id,
    events_index_template,
    ilm_policy,
    ilm_policy_name,
    ingest_pipeline,
    ingest_pipeline_name,
)
from sustain.backends.elasticsearch.responses import (
    bulk_failures,
    bulk_outcomes,
    event_from_source,
    label_for,
    labels_by_id,
    parse_time,
    reference_table,
)
from sustain.backends.elasticsearch.rollover import BackingIndices, delete_operations
from sustain.errors import NotFound, SpecError, StoreError
from sustain.spec import ModelSpec
from sustain.store.base import (
    AppendResult,
    DoneExchange,
    EventBatch,
    EventQuery,
    LabelBatch,
    PendingHalf,
    ReferenceInfo,
)
from sustain.store.layout import Layout
from sustain.store.records import row_to_event

log = logging.getLogger("sustain.backends.elasticsearch.store")

REFERENCE_CHUNK = 5000


def new_event_id() -> str:
    """A UUIDv7 (time-ordered, as the embedded store generates) for an event sent without an id."""
    millis = int(datetime.now(UTC).timestamp() * 1000)
    value = (millis & ((1 << 48) - 1)) << 80 | (0x7 << 76) | (uuid.uuid4().int & ((1 << 76) - 1))
    value = (value & ~(0b11 << 62)) | (0b10 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=value))


def bulk_events(layout: Layout, table: pa.Table) -> list[dict[str, Any]]:
    """A parsed batch as the event objects :func:`bulk_lines` takes; an event sent without an id gets a UUIDv7."""
    return [row_to_event(layout, {**row, "eid": row.get("event_id") or new_event_id()}) for row in table.to_pylist()]


def _raise_failures(what: str, failures: list[str]) -> None:
    if failures:
        shown = "; ".join(failures[:3])
        raise StoreError(f"{what}: {len(failures)} operations failed, e.g. {shown}")


class ElasticsearchStore:
    """A :class:`sustain.store.base.Store` on an Elasticsearch 8.x cluster."""

    def __init__(self, uri: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        self.uri = uri
        self.config = parse_elasticsearch_uri(uri)
        self.names = IndexNames(self.config.prefix)
        self.client = ESClient(self.config, transport_options)
        self._lock = threading.RLock()
        self._specs: dict[str, ModelSpec] = {}
        self._layouts: dict[str, Layout] = {}
        self._ready: set[str] = set()
        self.backing = BackingIndices(self.client, self.names)
        try:
            for hit in self.client.search_all("loading the specs", self.names.specs, all_specs_search):
                self._remember(ModelSpec.model_validate(hit["_source"]["spec"]))
        except BaseException:
            self.client.close()
            raise

    @property
    def prefix(self) -> str:
        return self.config.prefix

    def close(self) -> None:
        self.client.close()

    def _remember(self, spec: ModelSpec) -> None:
        with self._lock:
            self._specs[spec.name] = spec
            self._layouts[spec.name] = Layout.of(spec)

    def layout(self, model: str) -> Layout:
        try:
            return self._layouts[model]
        except KeyError:
            raise NotFound(f"model {model!r} is not registered") from None

    def _ensure(self, what: str, index: str, body: dict[str, Any]) -> None:
        if index not in self._ready:
            self.client.ensure_index(what, index, body)
            self._ready.add(index)

    def _ensure_shared(self) -> None:
        """The ILM policy, the ingest pipeline and the system indices every model uses (once per store)."""
        if "__shared__" in self._ready:
            return
        call = self.client.call
        policy, pipeline = ilm_policy_name(self.prefix), ingest_pipeline_name(self.prefix)
        call(
            "installing the ILM policy",
            lambda es: es.ilm.put_lifecycle(name=policy, body=ilm_policy(self.config.retention)),
        )
        call("installing the ingest pipeline", lambda es: es.ingest.put_pipeline(id=pipeline, body=ingest_pipeline()))
        self._ensure("creating the specs index", self.names.specs, specs_index_body())
        self._ensure("creating the references index", self.names.references, references_index_body())
        self._ensure("creating the pending index", self.names.pending, pending_index_body())
        self._ready.add("__shared__")

    # -- specs --------------------------------------------------------------------------------------
    def put_spec(self, spec: ModelSpec) -> None:
        try:
            template = events_index_template(spec, prefix=self.prefix)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        previous = self._specs.get(spec.name)
        stream, labels = self.names.events(spec.name), self.names.labels(spec.name)
        call = self.client.call
        with self._lock:
            self._ensure_shared()
            call(
                f"installing the events template of {spec.name!r}",
                lambda es: es.indices.put_index_template(name=stream, body=template),
            )
            call(
                f"creating the events data stream of {spec.name!r}",
                lambda es: es.indices.create_data_stream(name=stream),
                allow=[ALREADY_EXISTS],
            )
            update = events_mapping_update(spec, self.prefix)
            call(f"mapping the events of {spec.name!r}", lambda es: es.indices.put_mapping(index=stream, body=update))
            label_index = labels_index_body(spec.label.kind if spec.label else None)
            self.client.ensure_index(f"creating the labels index of {spec.name!r}", labels, label_index)
            label_update = {"properties": label_index["mappings"]["properties"]}
            call(
                f"mapping the labels of {spec.name!r}",
                lambda es: es.indices.put_mapping(index=labels, body=label_update),
            )
            self._ensure(
                f"creating the reference index of {spec.name!r}",
                self.names.reference(spec.name),
                reference_index_body(),
            )
            added = [w for w in spec.windows if previous is not None and w not in previous.windows]
            if added:
                body = backfill_buckets_body(added)
                call(
                    f"backfilling the buckets of new windows {added} of {spec.name!r}",
                    lambda es: es.update_by_query(
                        index=stream, body=body, conflicts="proceed", wait_for_completion=False
                    ),
                )
            document = spec_document(spec, datetime.now(UTC))
            call(
                f"storing the spec of {spec.name!r}",
                lambda es: es.index(index=self.names.specs, id=spec.name, document=document, refresh="wait_for"),
            )
            self._remember(spec)

    def get_spec(self, model: str) -> ModelSpec | None:
        return self._specs.get(model)

    def list_specs(self) -> list[ModelSpec]:
        return sorted(self._specs.values(), key=lambda s: s.name)

    # -- capture ------------------------------------------------------------------------------------
    def append_events(self, batches: Sequence[EventBatch]) -> list[AppendResult]:
        """One bulk request (in 8 MB parts) for all batches; the ``create`` outcome of each item is counted.

        A 409 means the event id is already stored: a duplicate. Ids stored in an older backing index of the
        data stream are duplicates too, found before and after the write (see
        :mod:`sustain.backends.elasticsearch.rollover`). Any other refusal raises StoreError after the rest
        of the request was stored; sending the batches again is safe.
        """
        ops, sizes, repeats, models = [], [], [], []
        for batch in batches:
            spec = self._spec(batch.model)
            events = bulk_events(self.layout(batch.model), batch.table)
            known = self.backing.stored_before(batch.model, [event_doc_id(str(e["event_id"])) for e in events])
            fresh = [e for e in events if event_doc_id(str(e["event_id"])) not in known]
            batch_ops = operations(bulk_lines(spec, fresh, prefix=self.prefix))
            ops.extend(batch_ops)
            sizes.append(len(batch_ops))
            repeats.append(len(events) - len(fresh))
            models.extend([batch.model] * len(batch_ops))
        if not ops:
            return [AppendResult(b.model, 0, n) for b, n in zip(batches, repeats, strict=True)]
        items = self.client.bulk("storing events", ops)
        outcomes = bulk_outcomes(items, sizes)
        _raise_failures("storing events", [f for o in outcomes for f in o.failures])
        moved = self._undo_repeats(models, items)
        results = []
        start = 0
        for batch, outcome, size, repeated in zip(batches, outcomes, sizes, repeats, strict=True):
            undone = sum(moved[start : start + size])
            start += size
            results.append(AppendResult(batch.model, outcome.inserted - undone, outcome.duplicates + repeated + undone))
        return results

    def _undo_repeats(self, models: list[str], items: list[dict[str, Any]]) -> list[int]:
        """Delete events a rollover during the write let into a second backing index; 1 per undone item."""
        created: dict[str, list[tuple[str, str, int]]] = {}
        for n, (model, item) in enumerate(zip(models, items, strict=True)):
            result = item.get("create", {})
            if result.get("status") in (200, 201):
                created.setdefault(model, []).append((str(result["_index"]), str(result["_id"]), n))
        undone = [0] * len(items)
        found: list[tuple[str, str]] = []
        for model, entries in created.items():
            repeats = set(self.backing.repeats_after_rollover(model, [(i, d) for i, d, _ in entries]))
            for index, doc_id, n in entries:
                if (index, doc_id) in repeats:
                    undone[n] = 1
                    found.append((index, doc_id))
        if found:
            failures = bulk_failures(
                self.client.bulk("removing events repeated across a rollover", delete_operations(found)),
                missing_ok=True,
            )
            _raise_failures("removing events repeated across a rollover", failures)
        return undone

    def append_labels(self, batches: Sequence[LabelBatch]) -> list[int]:
        received_at = datetime.now(UTC)
        ops = []
        for batch in batches:
            self.layout(batch.model)
            ops.extend(label_operations(self.names.labels(batch.model), batch.table.to_pylist(), received_at))
        if ops:
            _raise_failures("storing labels", bulk_failures(self.client.bulk("storing labels", ops)))
        return [b.table.num_rows for b in batches]

    def put_reference(self, model: str, version: str, table: pa.Table) -> ReferenceInfo:
        """Store the rows under a new upload id, switch ``<p>-references`` to it, then delete the old rows."""
        self.layout(model)
        self._ensure_shared()
        index = self.names.reference(model)
        self._ensure(f"creating the reference index of {model!r}", index, reference_index_body())
        upload, uploaded_at = uuid.uuid4().hex, datetime.now(UTC)
        columns = [c for c in table.column_names if c != "version"]
        rows = table.select(columns)
        for start in range(0, rows.num_rows, REFERENCE_CHUNK):
            chunk = rows.slice(start, REFERENCE_CHUNK).to_pylist()
            ops = reference_operations(index, version, upload, start, chunk)
            _raise_failures("storing reference rows", bulk_failures(self.client.bulk("storing reference rows", ops)))
        call = self.client.call
        call("refreshing the reference rows", lambda es: es.indices.refresh(index=index))
        info = ReferenceInfo(model, version, table.num_rows, columns, uploaded_at)
        document = reference_info_document(info, upload)
        call(
            "switching to the new reference",
            lambda es: es.index(
                index=self.names.references, id=reference_info_id(model, version), document=document, refresh="wait_for"
            ),
        )
        stale = stale_reference_rows(version, upload)
        call(
            "deleting replaced reference rows",
            lambda es: es.delete_by_query(index=index, body=stale, conflicts="proceed", refresh=True),
        )
        return info

    def stash_halves(self, halves: Sequence[PendingHalf]) -> None:
        if not halves:
            return
        self._ensure_shared()
        ops = pending_operations(self.names.pending, halves)
        items = self.client.bulk("stashing CloudEvents halves", ops, refresh=True)
        kept = [item for item in items if item_status(item) != 409]  # 409: the first half logged stays
        _raise_failures("stashing CloudEvents halves", bulk_failures(kept))

    def take_pending(self, older_than: datetime | None = None) -> list[PendingHalf]:
        cutoff = older_than or datetime(1970, 1, 1, tzinfo=UTC)
        halves = []
        for hit in self.client.search_all("reading pending halves", self.names.pending, pending_search):
            src = hit["_source"]
            received = parse_time(src["received_at"])
            assert received is not None
            halves.append(PendingHalf(src["key"], src["model"], src["kind"], received, src["body"]))
        kinds: dict[tuple[str, str], set[str]] = {}
        for h in halves:
            kinds.setdefault((h.model, h.key), set()).add(h.kind)
        return [h for h in halves if h.received_at < cutoff or len(kinds[(h.model, h.key)]) > 1]

    def settle_pending(self, halves: Sequence[PendingHalf], done: Sequence[DoneExchange]) -> None:
        """One bulk request: delete the halves, index the done records (not atomic across documents; a retry
        after a partial failure is safe, both operations being idempotent)."""
        ops = pending_delete_operations(self.names.pending, halves) + done_operations(self.names.pending, done)
        if not ops:
            return
        self._ensure_shared()
        items = self.client.bulk("settling pending halves", ops, refresh=True)
        _raise_failures("settling pending halves", bulk_failures(items, missing_ok=True))

    def done_exchange(self, model: str, key: str) -> DoneExchange | None:
        source = self.client.get_source("reading a done exchange", self.names.pending, pending_id(model, DONE, key))
        return None if source is None else done_from_source(source)

    def forget_done(self, before: datetime) -> None:
        index, body = self.names.pending, forget_done_query(before)
        self.client.call(
            "forgetting done exchanges",
            lambda es: es.delete_by_query(index=index, body=body, conflicts="proceed", refresh=True),
            allow=[NOT_FOUND],
        )

    def complete_events(self, batches: Sequence[EventBatch]) -> list[AppendResult]:
        """Replace the stored documents by id (``_update_by_query`` on the data stream, whose backing indices take
        no direct update), then ``create`` them all: the ones no longer stored are appended, the rest are 409s."""
        results = []
        for batch in batches:
            spec = self._spec(batch.model)
            lines = operations(bulk_lines(spec, bulk_events(self.layout(batch.model), batch.table), prefix=self.prefix))
            documents = {orjson.loads(action)["create"]["_id"]: orjson.loads(doc) for action, doc in lines}
            if not documents:
                results.append(AppendResult(batch.model, 0, 0))
                continue
            reply = self.client.request(
                f"completing events of {batch.model!r}",
                "update_by_query",
                index=self.names.events(batch.model),
                body=complete_events_body(documents),
                conflicts="proceed",
                refresh=True,
            )
            updated = int(reply.get("updated", 0)) if reply else 0
            appended = self.append_events([batch])[0].inserted
            results.append(AppendResult(batch.model, updated + appended, 0))
        return results

    # -- reads --------------------------------------------------------------------------------------
    def read_events(self, model: str, query: EventQuery) -> list[dict[str, Any]]:
        layout = self.layout(model)
        limit = max(0, query.limit)
        hits = (
            list(
                self.client.search_all(
                    f"reading events of {model!r}",
                    self.names.events(model),
                    lambda after: event_search(query, after, size=min(limit, MAX_RESULT_WINDOW) or 1),
                    limit=limit,
                )
            )
            if limit
            else []
        )
        labels = self._labels(model, label_ids_for(hits))
        return [event_from_source(layout, h["_source"], label_for(h["_source"], labels)) for h in hits]

    def _labels(self, model: str, ids: list[str]) -> dict[str, Any]:
        """Label documents by ``_id`` (none when the model has no labels yet)."""
        found: dict[str, Any] = {}
        index = self.names.labels(model)
        for start in range(0, len(ids), MAX_RESULT_WINDOW):
            body = label_lookup(ids[start : start + MAX_RESULT_WINDOW])
            response = self.client.request(
                f"reading labels of {model!r}", "mget", index=index, body=body, allow=[NOT_FOUND]
            )
            found.update(labels_by_id(response))
        return found

    def labels_for(self, model: str, hits: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The label documents that may belong to event ``hits`` (for :mod:`sustain.backends.elasticsearch.sources`)."""
        return self._labels(model, label_ids_for(hits))

    def count_events(self, model: str) -> int:
        self.layout(model)
        stream = self.names.events(model)
        response = self.client.call(
            f"counting events of {model!r}", lambda es: es.count(index=stream), allow=[NOT_FOUND]
        )
        return 0 if response is None else int(response["count"])

    def refresh_events(self, model: str) -> None:
        """Make every stored event of ``model`` visible to searches now (tests and one-shot commands)."""
        stream = self.names.events(model)
        self.client.call(f"refreshing events of {model!r}", lambda es: es.indices.refresh(index=stream))

    def reference_info(self, model: str) -> list[ReferenceInfo]:
        self.layout(model)
        hits = self.client.search_all(
            f"reading reference info of {model!r}",
            self.names.references,
            lambda after: reference_info_search(model, after),
        )
        return [_reference_info(h["_source"]) for h in hits]

    def read_reference(self, model: str, version: str) -> pa.Table | None:
        layout = self.layout(model)
        spec = self._spec(model)
        current = self._current_reference(model, version)
        if current is None:
            return None
        rows = [
            h["_source"]["values"]
            for h in self.client.search_all(
                f"reading the reference of {model!r}",
                self.names.reference(model),
                lambda after: reference_rows_search(version, current, after),
            )
        ]
        return reference_table(layout, spec.label.kind if spec.label else None, rows)

    def _current_reference(self, model: str, version: str) -> str | None:
        what = f"reading reference info of {model!r}"
        source = self.client.get_source(what, self.names.references, reference_info_id(model, version))
        return None if source is None else str(source["upload"])

    def _spec(self, model: str) -> ModelSpec:
        spec = self._specs.get(model)
        if spec is None:
            raise NotFound(f"model {model!r} is not registered")
        return spec


def _reference_info(source: dict[str, Any]) -> ReferenceInfo:
    uploaded = parse_time(source["uploaded_at"])
    assert uploaded is not None
    return ReferenceInfo(source["model"], source["version"], int(source["rows"]), list(source["columns"]), uploaded)
