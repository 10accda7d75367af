"""The collector's logic, independent of HTTP: validate, hand to the writer, report.

Routes in :mod:`sustain.api.collector` are thin wrappers around this class,
so benchmarks and tests can drive ingest without a socket as well as with one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from sustain.collector.bodies import Decoded
from sustain.collector.cloudevents import (
    events_from_pair,
    half_from,
    labels_from_feedback,
    parse_cloudevent,
    resolve_model,
)
from sustain.collector.envelope import ItemError
from sustain.collector.events import parse_events
from sustain.collector.labels import parse_labels
from sustain.collector.metrics import ServiceMetrics
from sustain.collector.reference import ParsedReference, read_table, sniff_format, to_layout
from sustain.durations import parse_duration
from sustain.errors import Conflict, NotFound, Overloaded, ValidationError
from sustain.spec import ModelSpec
from sustain.spec.models import cloudevents_clash
from sustain.store.base import DoneExchange, EventBatch, PendingHalf, ReferenceInfo, Store
from sustain.store.layout import Layout
from sustain.store.writer import Writer

log = logging.getLogger("sustain.collector")
REMEMBER_TIMEOUTS = 10  # a done exchange is remembered for ten join timeouts: late halves complete it meanwhile


def bulk_reply(
    received: int,
    accepted: int,
    duplicates: int,
    errors: list[ItemError],
    took: float,
    invalid_values: int = 0,
) -> tuple[int, dict[str, Any]]:
    """An Elasticsearch-bulk-like summary and the HTTP status: 200 all kept, 207 some, 422 none."""
    body = {
        "took": int(took * 1000),
        "errors": bool(errors),
        "received": received,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": len(errors),
        "invalid_values": invalid_values,
        "items": [e.to_dict() for e in errors],
    }
    if not errors:
        return 200, body
    return (207 if accepted + duplicates > 0 else 422), body


def in_time(deadline: float | None) -> None:
    """Overloaded (429) when ``deadline`` (``time.monotonic``) has passed: the service is behind."""
    if deadline is not None and time.monotonic() > deadline:
        raise Overloaded("the service is behind: this request waited too long to be taken; retry shortly")


class Collector:
    def __init__(
        self,
        store: Store,
        writer: Writer,
        metrics: ServiceMetrics,
        on_reference: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.on_reference = on_reference
        self.writer = writer
        self.metrics = metrics
        self._specs: dict[str, ModelSpec] = {s.name: s for s in store.list_specs()}
        self._layouts: dict[str, Layout] = {n: Layout.of(s) for n, s in self._specs.items()}
        self._pending_lock = asyncio.Lock()
        self._done_forgotten = datetime.now(UTC)

    # -- specs -------------------------------------------------------------------------------
    def spec(self, model: str) -> ModelSpec:
        spec = self._specs.get(model)
        if spec is None:
            known = ", ".join(sorted(self._specs)) or "none yet"
            raise NotFound(
                f"model {model!r} is not registered (registered: {known}); PUT /v1/models/{model} with its spec first",
                field="model",
            )
        return spec

    def specs(self) -> list[ModelSpec]:
        return [self._specs[n] for n in sorted(self._specs)]

    async def put_spec(self, spec: ModelSpec) -> bool:
        """Store ``spec``; True when the model is new. Conflict when another model follows the same graph node."""
        created = spec.name not in self._specs
        clash = cloudevents_clash([s for s in self._specs.values() if s.name != spec.name] + [spec])
        if clash:
            raise Conflict(clash, field="cloudevents.node")
        await asyncio.wrap_future(self.writer.submit(lambda: self.store.put_spec(spec)))
        self._specs[spec.name] = spec
        self._layouts[spec.name] = Layout.of(spec)
        return created

    # -- events ------------------------------------------------------------------------------
    async def ingest_events(
        self, model: str, decoded: Decoded, deadline: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Validate and store events. ``deadline`` (``time.monotonic``): past it, nothing is stored and the
        answer is 429 (admission control: the caller is told at once to come back instead of waiting)."""
        started = time.perf_counter()
        spec = self.spec(model)
        in_time(deadline)
        # Off the event loop, so that it keeps answering (429s included) while batches are validated.
        parsed = await asyncio.to_thread(parse_events, spec, decoded.items, datetime.now(UTC), self._layouts[model])
        for err in parsed.errors:
            if err.index in decoded.line_errors:
                err.field, err.reason = "body", decoded.line_errors[err.index]
        inserted = duplicates = 0
        if parsed.table.num_rows:
            in_time(deadline)
            result = await asyncio.wrap_future(self.writer.submit_events(EventBatch(model, parsed.table)))
            inserted, duplicates = result.inserted, result.duplicates
        self.metrics.ingested.labels(model).inc(inserted)
        if duplicates:
            self.metrics.duplicates.labels(model).inc(duplicates)
        if parsed.errors:
            self.metrics.rejected.labels(model, "event").inc(len(parsed.errors))
        if parsed.invalid_values:
            self.metrics.invalid_values.labels(model).inc(parsed.invalid_values)
        return bulk_reply(
            parsed.received,
            inserted,
            duplicates,
            parsed.errors,
            time.perf_counter() - started,
            parsed.invalid_values,
        )

    # -- labels ------------------------------------------------------------------------------
    async def ingest_labels(
        self, model: str, decoded: Decoded, deadline: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        spec = self.spec(model)
        batch, errors = parse_labels(spec, decoded.items, datetime.now(UTC))
        for err in errors:
            if err.index in decoded.line_errors:
                err.field, err.reason = "body", decoded.line_errors[err.index]
        if batch.table.num_rows:
            in_time(deadline)
            await asyncio.wrap_future(self.writer.submit(lambda: self.store.append_labels([batch])))
        accepted = len(decoded.items) - len(errors)
        self.metrics.labels.labels(model).inc(accepted)
        if errors:
            self.metrics.rejected.labels(model, "label").inc(len(errors))
        return bulk_reply(len(decoded.items), accepted, 0, errors, time.perf_counter() - started)

    # -- reference ---------------------------------------------------------------------------
    async def put_reference(
        self,
        model: str,
        version: str,
        body: bytes,
        content_type: str | None,
        filename: str | None = None,
        max_rows: int | None = None,
    ) -> tuple[ReferenceInfo, ParsedReference]:
        spec = self.spec(model)
        if not version:
            raise ValidationError("version is required: PUT /v1/models/{model}/reference?version=3", field="version")
        fmt = sniff_format(body, content_type, filename)
        table = await asyncio.to_thread(read_table, body, fmt, max_rows)
        return await asyncio.to_thread(self.store_reference, spec, version, table)

    def store_reference(self, spec: ModelSpec, version: str, table: pa.Table) -> tuple[ReferenceInfo, ParsedReference]:
        """Store reference rows for ``version`` and profile them (``on_reference``); blocks until both are done."""
        parsed = to_layout(spec, table)
        info = self.writer.submit(lambda: self.store.put_reference(spec.name, version, parsed.table)).result()
        if self.on_reference is not None:
            self.on_reference(spec.name, version)
        return info, parsed

    # -- CloudEvents ---------------------------------------------------------------------------
    async def cloudevent(
        self, headers: Mapping[str, str], body: bytes, model: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        try:
            payload = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"CloudEvent payload is not valid JSON: {exc}", field="body") from None
        ce = parse_cloudevent(headers, payload)
        spec = resolve_model(ce, self.specs(), model)
        if ce.kind == "feedback":
            labels = labels_from_feedback(ce, spec)
            status, reply = await self.ingest_labels(spec.name, Decoded(labels, {}))
            return status, {"type": ce.type, "model": spec.name, "request_id": ce.request_id, **reply}
        half = half_from(ce, spec)  # stamped once parsed: the join timeout never counts the parsing
        answer: dict[str, Any] = {"type": ce.type, "model": spec.name, "request_id": ce.request_id}
        answer["rows"] = half.body["rows"]
        async with self._pending_lock:
            done = self.store.done_exchange(spec.name, half.key)
            if done is not None:
                completed = await self._late_half(spec, done, half)
                if completed is None:
                    return 202, {**answer, "events_stored": 0, "ignored": "this exchange is already stored"}
                return 202, {**answer, "events_stored": 0, "events_completed": completed}
            await asyncio.wrap_future(self.writer.submit(lambda: self.store.stash_halves([half])))
        return 202, {**answer, "events_stored": await self.complete_pending()}

    async def _late_half(self, spec: ModelSpec, done: DoneExchange, half: PendingHalf) -> int | None:
        """Complete the events an exchange stored from one half, now that the other arrived; None when ``half``
        completes nothing (a replay, or the second pair Seldon's executor logs for a node with children)."""
        if done.missing != half.kind or done.half is None:
            return None
        request, response = (half, done.half) if half.kind == "request" else (done.half, half)
        try:
            events = events_from_pair(spec, request, response)
        except ValidationError as exc:
            log.warning("cannot complete CloudEvents exchange %s of %s: %s", half.key, spec.name, exc.message)
            return None
        parsed = parse_events(spec, events, datetime.now(UTC), self._layouts[spec.name])
        record = DoneExchange(spec.name, half.key, done.done_at)

        def complete() -> int:
            result = self.store.complete_events([EventBatch(spec.name, parsed.table)])[0]
            self.store.settle_pending([], [record])
            return result.inserted

        return await asyncio.wrap_future(self.writer.submit(complete))

    async def complete_pending(self, now: datetime | None = None) -> int:
        """Turn every complete (or timed-out) request/response pair into stored events, and remember each
        exchange for ten join timeouts so that a late half completes its events instead of being lost."""
        async with self._pending_lock:
            now = now or datetime.now(UTC)
            timeouts = {n: parse_duration(s.cloudevents.join_timeout) for n, s in self._specs.items()}
            oldest = now - timedelta(seconds=min(timeouts.values(), default=30.0))
            halves = self.store.take_pending(older_than=oldest)
            pairs: dict[tuple[str, str], dict[str, PendingHalf]] = {}
            for h in halves:
                pairs.setdefault((h.model, h.key), {})[h.kind] = h
            stored = 0
            taken: list[PendingHalf] = []
            done: list[DoneExchange] = []
            for (model_name, key), sides in pairs.items():
                spec = self._specs.get(model_name)
                if spec is None:
                    continue
                request, response = sides.get("request"), sides.get("response")
                complete = request is not None and response is not None
                first = min(h.received_at for h in sides.values())
                if not complete and first > now - timedelta(seconds=timeouts[model_name]):
                    continue
                taken.extend(sides.values())
                missing = None if complete else ("response" if response is None else "request")
                done.append(DoneExchange(model_name, key, now, missing, None if complete else request or response))
                try:
                    events = events_from_pair(spec, request, response)
                except ValidationError as exc:
                    log.warning("dropping CloudEvents exchange %s of %s: %s", key, model_name, exc.message)
                    continue
                _, reply = await self.ingest_events(model_name, Decoded(events, {}))
                stored += reply["accepted"]
                if reply["errors"]:
                    log.warning("CloudEvents exchange %s of %s: %s", key, model_name, reply["items"][:3])
            if taken:
                await asyncio.wrap_future(self.writer.submit(lambda: self.store.settle_pending(taken, done)))
            if now - self._done_forgotten > timedelta(seconds=60):
                remember = REMEMBER_TIMEOUTS * max(timeouts.values(), default=30.0)
                await asyncio.wrap_future(
                    self.writer.submit(lambda: self.store.forget_done(now - timedelta(seconds=remember)))
                )
                self._done_forgotten = now
            return stored
