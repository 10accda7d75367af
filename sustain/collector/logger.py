"""The client logger: log from the model's process without ever slowing it down.

>>> log = Logger("http://127.0.0.1:9", "churn", "3", spool=False, flush_interval=60)
>>> log.log({"age": 41, "plan": "pro"}, {"prediction": "stay"}, request_id="r-1")
>>> log.stats.enqueued
1
>>> log.close(timeout=0)

``log()`` only appends to an in-memory queue (a few hundred nanoseconds) and
never raises. A background thread batches by size and time, sends, retries
with backoff, and when the collector is unreachable writes batches to a disk
spool that it replays, in order, once the collector is back. Every event gets
its id before the first send, so replays store nothing twice (the collector
recognises an id for ``retention.dedup``, an hour by default). While the
collector is away it is probed again every ``max_backoff`` seconds at most.

What can be lost, exactly:

* ``close()``, leaving a ``with`` block, and a normal interpreter exit (the exit
  hook calls ``close(exit_timeout)``) lose nothing: whatever is not delivered by
  then — the queue, and the batch the sender is still waiting on — is written to
  the spool, and delivered by the next Logger of this model on this machine.
* A SIGKILL, a crash of the interpreter or a power loss lose what is only in
  memory: the events ``log()`` queued that no batch has taken to the collector
  or the spool yet (normally at most ``flush_interval`` seconds or
  ``batch_size`` events of traffic; up to ``max_queue`` while the collector is
  slower than the model), and the batch in flight, which the collector may or
  may not have stored. Spooled batches survive.
* With ``spool=False``, or a full or unwritable spool, whatever would have gone
  to the spool is lost; ``log()`` past ``max_queue`` queued events drops the
  event. Every such loss, event or label, is counted in ``stats.dropped``.

Memory is bounded by ``max_queue`` events.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import orjson

from sustain.collector.spool import Spool, default_spool_dir

log = logging.getLogger("sustain.logger")

F = TypeVar("F", bound=Callable[..., Any])


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7) from the OS's random source (safe across fork)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class LoggerStats:
    """Counts since the logger started; ``dropped`` counts every event and label lost (spool off, full or
    failing, or the queue full)."""

    enqueued: int = 0
    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    retries: int = 0
    labels_sent: int = 0
    last_error: str | None = None
    rejections: list[str] = field(default_factory=list)


@dataclass
class _Held:
    """A batch the sender took from the queue: delivered, spooled or dropped exactly once (``settled``)."""

    kind: str
    body: bytes
    count: int
    settled: bool = False


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Logger:
    """Send a model's events and labels to a sustain collector."""

    def __init__(
        self,
        url: str,
        model: str,
        version: str | None = None,
        *,
        token: str | None = None,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        spool: bool = True,
        spool_dir: str | Path | None = None,
        max_spool_bytes: int = 1 << 30,
        timeout: float = 10.0,
        retries_before_spool: int = 2,
        max_backoff: float = 4.0,
        exit_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.version = None if version is None else str(version)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.retries_before_spool = retries_before_spool
        self.max_backoff = max_backoff
        self.stats = LoggerStats()
        self._events: deque[tuple[Any, ...]] = deque()
        self._labels: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._busy = False
        self._closing = False
        self._offline_until = 0.0
        self._backoff = 0.0
        self._stats_lock = threading.Lock()
        # Guards what the sender holds (taking a batch, settling it) against close() spilling it.
        self._hold_lock = threading.Lock()
        self._held: _Held | None = None
        self.exit_timeout = exit_timeout
        headers = {"Content-Type": "application/json", "User-Agent": "sustain-logger"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self._spool: Spool | None = None
        if spool:
            try:
                self._spool = Spool(Path(spool_dir) if spool_dir else default_spool_dir(model), max_spool_bytes)
            except OSError as exc:
                log.warning("sustain logger: cannot use the spool directory (%s); events may be dropped", exc)
        self._thread = threading.Thread(target=self._run, name=f"sustain-logger-{model}", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        # At exit: up to exit_timeout to deliver, then everything left (the batch in flight too) is spooled.
        self._atexit = lambda: (lambda s: s.close(timeout=s.exit_timeout) if s is not None else None)(ref())
        atexit.register(self._atexit)

    # -- the hot path -------------------------------------------------------------------------
    def log(
        self,
        features: Mapping[str, Any],
        outputs: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        latency_ms: float | None = None,
        tags: Mapping[str, Any] | None = None,
        event_id: str | None = None,
        timestamp: float | None = None,
        error: str | None = None,
        version: str | None = None,
    ) -> None:
        """Queue one event. Never blocks on I/O and never raises."""
        try:
            queue = self._events
            if len(queue) >= self.max_queue:
                self._overflow(1)
                return
            queue.append(
                (
                    time.time() if timestamp is None else timestamp,
                    dict(features),
                    None if outputs is None else dict(outputs),
                    request_id,
                    latency_ms,
                    tags,
                    event_id,
                    error,
                    version,
                )
            )
            self.stats.enqueued += 1
            if len(queue) % self.batch_size == 0:
                self._wake.set()  # once per full batch: setting an Event costs a lock and a futex wake
        except Exception as exc:  # the model's code must never see a logging failure
            self.stats.last_error = f"log() failed: {exc!r}"

    def label(self, request_id: str, label: Any, *, timestamp: float | None = None) -> None:
        """Queue the true label of an earlier request (joined by request id)."""
        self._queue_label({"request_id": request_id, "label": label, "timestamp": timestamp or time.time()})

    def label_event(self, event_id: str, label: Any, *, timestamp: float | None = None) -> None:
        self._queue_label({"event_id": event_id, "label": label, "timestamp": timestamp or time.time()})

    def _queue_label(self, item: dict[str, Any]) -> None:
        try:
            if len(self._labels) >= self.max_queue:
                self._overflow(1)
                return
            self._labels.append(item)
        except Exception as exc:
            self.stats.last_error = f"label() failed: {exc!r}"

    def _overflow(self, n: int) -> None:
        """The queue is full: spill to disk from the sender (never here), or count the loss."""
        self._wake.set()
        with self._stats_lock:
            self.stats.dropped += n

    # -- conveniences ---------------------------------------------------------------------------
    @overload
    def watch(self, fn: F, *, output: str = ..., request_id: Callable[..., str | None] | None = ...) -> F: ...

    @overload
    def watch(
        self, fn: None = None, *, output: str = ..., request_id: Callable[..., str | None] | None = ...
    ) -> Callable[[F], F]: ...

    def watch(
        self,
        fn: F | None = None,
        *,
        output: str = "prediction",
        request_id: Callable[..., str | None] | None = None,
    ) -> F | Callable[[F], F]:
        """Decorate a predict function: its input (a dict, keyword arguments or a DataFrame) and result are
        logged with the measured latency. Exceptions are logged as errors and re-raised unchanged."""

        def decorate(func: F) -> F:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                error = None
                result = None
                try:
                    result = func(*args, **kwargs)
                    return result
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    raise
                finally:
                    self._log_call(args, kwargs, result, error, started, output, request_id)

            return wrapper  # type: ignore[return-value]

        return decorate(fn) if fn is not None else decorate

    def _log_call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        error: str | None,
        started: float,
        output: str,
        request_id: Callable[..., str | None] | None,
    ) -> None:
        try:
            latency = (time.perf_counter() - started) * 1000
            rid = request_id(*args, **kwargs) if request_id is not None else None
            inputs = args[0] if args else kwargs
            if hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):
                outputs = None if result is None else _column_outputs(result, output, len(inputs))
                self.log_frame(inputs, outputs, latency_ms=latency / max(len(inputs), 1), error=error)
                return
            outs = (
                result if isinstance(result, Mapping) else ({output: _scalar(result)} if result is not None else None)
            )
            self.log(dict(inputs), outs, request_id=rid, latency_ms=latency, error=error)
        except Exception as exc:
            self.stats.last_error = f"watch() could not log a call: {exc!r}"

    def log_frame(
        self,
        frame: Any,
        outputs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        request_ids: Sequence[str] | str | None = None,
        timestamps: Sequence[float] | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
    ) -> int:
        """Log every row of a pandas DataFrame; ``outputs`` as columns ({name: values}) or one mapping per row.
        ``request_ids`` may name a column of ``frame``. Returns how many rows were queued."""
        try:
            ids: Sequence[Any] | None = request_ids if not isinstance(request_ids, str) else list(frame[request_ids])
            if isinstance(request_ids, str):
                frame = frame.drop(columns=[request_ids])
            rows: list[dict[str, Any]] = frame.to_dict(orient="records")
            n = len(rows)
            per_row: list[dict[str, Any] | None]
            if outputs is None:
                per_row = [None] * n
            elif isinstance(outputs, Mapping):
                cols = {k: list(v) for k, v in outputs.items()}
                per_row = [{k: _scalar(v[i]) for k, v in cols.items()} for i in range(n)]
            else:
                per_row = [dict(o) for o in outputs]
            now = time.time()
            for i, row in enumerate(rows):
                self.log(
                    row,
                    per_row[i],
                    request_id=None if ids is None else str(ids[i]),
                    latency_ms=latency_ms,
                    timestamp=now if timestamps is None else timestamps[i],
                    error=error,
                )
            return n
        except Exception as exc:
            self.stats.last_error = f"log_frame() failed: {exc!r}"
            return 0

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._events) + len(self._labels)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything logged so far is stored by the collector. False on timeout: what is left
        stays queued or spooled and is still delivered later."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._events and not self._labels and not self._busy and not self._spool_pending():
                return True
            if self._closing or (deadline is not None and time.monotonic() >= deadline):
                return False
            self._wake.set()
            time.sleep(0.01)

    def _spool_pending(self) -> bool:
        return self._spool is not None and len(self._spool) > 0

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush for up to ``timeout`` seconds, stop the sender, and spool whatever is not delivered by then,
        the batch the sender may still be waiting on included: nothing logged is lost (it is counted in
        ``stats.dropped`` when the spool is off or full)."""
        if self._closing:
            return
        if timeout:
            self.flush(timeout)
        with self._hold_lock:
            self._closing = True  # from here on the sender takes nothing more from the queues
        self._wake.set()
        self._thread.join(timeout=min(max(timeout or 0, 0.1), 1.0))
        with self._hold_lock:
            held = self._held
            if held is not None and not held.settled:
                self._spool_held(held)  # still in flight: if it was stored after all, the replay is a duplicate
        self._spill_all()
        self._client.close()
        atexit.unregister(self._atexit)

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> LoggerStats:
        return replace(self.stats, rejections=list(self.stats.rejections))

    # -- the sender thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._busy = True
            try:
                self._cycle()
            except Exception as exc:  # keep sending whatever happens; what it held goes to the spool
                self.stats.last_error = f"sender: {exc!r}"
                log.exception("sustain logger sender failed; continuing")
                held = self._held
                if held is not None:
                    self._to_spool(held)
                time.sleep(0.1)
            finally:
                self._busy = False

    def _cycle(self) -> None:
        if time.monotonic() < self._offline_until:
            self._spill_if_crowded()
            return
        if self._spool_pending() and not self._replay():
            self._spill_if_crowded()
            return
        while self._events or self._labels:
            if len(self._events) > self.max_queue // 2 and self._spool is not None:
                self._spill_if_crowded(keep=self.max_queue // 4)  # the collector is slower than the model
            for kind, queue in (("labels", self._labels), ("events", self._events)):
                if not queue:
                    continue
                held = self._take(kind)
                if held is None or not self._deliver(held):
                    return

    def _take(self, kind: str) -> _Held | None:
        """The next batch of ``kind``, held by the sender until it is settled; None once closing."""
        with self._hold_lock:
            if self._closing:
                return None
            items: list[dict[str, Any]] = self._take_events() if kind == "events" else self._take_labels()
            self._held = _Held(kind, _dumps(items), len(items))
            return self._held

    def _settle(self, held: _Held) -> bool:
        """Mark ``held`` done; False when it already was (close() spooled it meanwhile)."""
        with self._hold_lock:
            if held.settled:
                return False
            held.settled = True
            if self._held is held:
                self._held = None
            return True

    def _take_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        batch = []
        queue = self._events
        for _ in range(min(len(queue), limit or self.batch_size)):
            ts, features, outputs, rid, latency, tags, event_id, error, version = queue.popleft()
            event: dict[str, Any] = {"event_id": event_id or uuid7(), "timestamp": ts, "features": features}
            if outputs is not None:
                event["outputs"] = outputs
            if rid is not None:
                event["request_id"] = rid
            if latency is not None:
                event["latency_ms"] = latency
            if tags is not None:
                event["tags"] = tags
            if error is not None:
                event["error"] = error
            v = version or self.version
            if v is not None:
                event["version"] = v
            batch.append(event)
        return batch

    def _take_labels(self) -> list[dict[str, Any]]:
        return [self._labels.popleft() for _ in range(min(len(self._labels), self.batch_size))]

    def _deliver(self, held: _Held) -> bool:
        """Send a batch, retrying a little; spool it if the collector stays away. False means offline."""
        for attempt in range(self.retries_before_spool + 1):
            try:
                self._send(held.kind, held.body)
                self._settle(held)
                self._backoff = 0.0
                return True
            except _Retryable as exc:
                self.stats.last_error = str(exc)
                if attempt < self.retries_before_spool:
                    self.stats.retries += 1
                    time.sleep(exc.retry_after or min(0.05 * 2**attempt, 1.0))
                    continue
                self._go_offline(exc.retry_after)
        self._to_spool(held)
        return False

    def _go_offline(self, retry_after: float | None) -> None:
        """Wait before probing the collector again: backing off, but never longer than ``max_backoff`` (so a
        collector that is back is found within seconds), unless it asked for more with Retry-After."""
        self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
        wait = retry_after if retry_after is not None else self._backoff * (0.5 + 0.5 * random.random())
        self._offline_until = time.monotonic() + wait

    def _send(self, kind: str, body: bytes) -> None:
        try:
            response = self._client.post(f"/v1/models/{self.model}/{kind}", content=body)
        except httpx.HTTPError as exc:
            raise _Retryable(f"collector unreachable: {exc!r}") from exc
        status = response.status_code
        reply = _json(response)
        if status in (200, 207) or (status == 422 and "items" in reply):
            if kind == "events":
                self.stats.sent += reply.get("accepted", 0)
                self.stats.duplicates += reply.get("duplicates", 0)
            else:
                self.stats.labels_sent += reply.get("accepted", 0)
            rejected = reply.get("rejected", 0)
            if rejected:
                self.stats.rejected += rejected
                for item in reply.get("items", [])[:3]:
                    error = item.get("error", {})
                    self._note_rejection(f"{error.get('field')}: {error.get('reason')}")
                log.warning("sustain collector rejected %d %s: %s", rejected, kind, self.stats.rejections[-1:])
            return
        if status == 413:
            self._split_and_send(kind, body)
            return
        if status in (400, 415, 422):
            # The collector will never take this batch as it is: count it, do not retry it forever.
            n = len(orjson.loads(body))
            self.stats.rejected += n
            self._note_rejection(f"whole batch refused ({status}): {reply.get('error', response.text[:200])}")
            log.warning("sustain collector refused a batch of %d %s: %s", n, kind, self.stats.rejections[-1])
            return
        retry_after = response.headers.get("retry-after")
        raise _Retryable(
            f"collector answered {status}: {response.text[:200]}",
            float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
        )

    def _note_rejection(self, reason: str) -> None:
        self.stats.rejections = [*self.stats.rejections, reason][-20:]

    def _split_and_send(self, kind: str, body: bytes) -> None:
        items = orjson.loads(body)
        if len(items) <= 1:
            self.stats.rejected += len(items)
            self._note_rejection("an item is larger than the collector's body limit")
            return
        half = len(items) // 2
        self._send(kind, _dumps(items[:half]))
        self._send(kind, _dumps(items[half:]))

    def _replay(self) -> bool:
        """Send spooled batches oldest first; False (and offline) when the collector is still away."""
        assert self._spool is not None
        for path in self._spool.pending():
            body = self._spool.read(path)
            if body is None:
                continue
            kind = Spool.kind_of(path)
            try:
                self._send(kind, body)
            except _Retryable as exc:
                self.stats.last_error = str(exc)
                self._go_offline(exc.retry_after)
                return False
            self._spool.remove(path)
            if kind == "events":
                self.stats.replayed += len(orjson.loads(body))
            self._spill_if_crowded()
        self._backoff = 0.0
        return True

    def _to_spool(self, held: _Held) -> None:
        """Spool (or count as dropped) a batch the sender holds, unless close() already did."""
        with self._hold_lock:
            if held.settled:
                return
            self._spool_held(held)

    def _spool_held(self, held: _Held) -> None:
        """Write ``held`` to the spool, or count its items as dropped; the caller holds ``_hold_lock``."""
        held.settled = True
        if self._held is held:
            self._held = None
        written = False
        if self._spool is not None:
            try:
                written = self._spool.write(held.kind, held.body)
            except OSError as exc:
                self.stats.last_error = f"cannot write to the spool: {exc}"
        if written:
            if held.kind == "events":
                self.stats.spooled += held.count
            return
        with self._stats_lock:
            self.stats.dropped += held.count
        log.warning(
            "sustain logger dropped %d %s (spool %s)",
            held.count,
            held.kind,
            "full or failing" if self._spool else "off",
        )

    def _spill_if_crowded(self, keep: int = 0) -> None:
        """Keep memory bounded by moving full batches to the spool (while offline, or falling behind)."""
        if self._spool is None:
            return
        while len(self._events) >= max(self.batch_size, keep):
            held = self._take("events")
            if held is None:
                return
            self._to_spool(held)
        if len(self._labels) >= self.batch_size:
            held = self._take("labels")
            if held is not None:
                self._to_spool(held)

    def _spill_all(self) -> None:
        """At close, after the sender stopped taking: everything still queued goes to the spool."""
        with self._hold_lock:
            while self._events:
                events = self._take_events()
                self._spool_held(_Held("events", _dumps(events), len(events)))
            while self._labels:
                labels = self._take_labels()
                self._spool_held(_Held("labels", _dumps(labels), len(labels)))


def _default(value: Any) -> Any:
    """numpy and other foreign values: plain Python where possible, else their text (the collector
    then counts a type error instead of the whole batch failing to serialise)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _scalar(value: Any) -> Any:
    """numpy scalars and arrays become plain Python values orjson can send."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def _column_outputs(result: Any, output: str, n: int) -> dict[str, list[Any]]:
    if isinstance(result, Mapping):
        return {k: list(_scalar(v)) for k, v in result.items()}
    values = _scalar(result)
    if isinstance(values, Iterable) and not isinstance(values, str | bytes):
        values = list(values)
    return {output: values if isinstance(values, list) and len(values) == n else [values] * n}
