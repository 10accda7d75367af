"""The single writer: serialises every store mutation and groups event commits.

Request handlers hand batches to :meth:`Writer.submit_events` and await the
returned future; the future resolves only after the store committed the batch,
so an acknowledged event is a durable event. While one commit runs, new
batches queue up and the next commit takes all of them at once (group commit),
which keeps throughput high without giving up per-request durability.

The queue is bounded twice, and past either bound a submission fails at once
with :class:`~sustain.errors.Overloaded` (HTTP 429 + Retry-After) instead of
growing memory or making its caller wait: by events (``max_pending_events``) and
by time (``max_queue_seconds``: the events queued ahead, at the commit rate
measured so far, would take longer than that to commit).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sustain.errors import Overloaded, StoreError, SustainError
from sustain.store.base import AppendResult, EventBatch, Store

T = TypeVar("T")

CommitObserver = Callable[[int, float], None]

MEASURED_EVENTS = 2_000


@dataclass
class _Job:
    events: EventBatch | None = None
    fn: Callable[[], Any] | None = None
    weight: int = 0
    future: Future[Any] = field(default_factory=Future)


class Writer:
    """Owns all writes to one store, in one background thread."""

    def __init__(
        self,
        store: Store,
        *,
        max_pending_events: int = 500_000,
        max_commit_events: int = 100_000,
        max_queue_seconds: float | None = None,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self.store = store
        self.max_pending_events = max_pending_events
        self.max_queue_seconds = max_queue_seconds
        self.rate: float | None = None  # events committed per second of commit time, smoothed
        self.max_commit_events = max_commit_events
        self._on_commit = on_commit
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sustain-writer", daemon=True)
        self.commits = 0

    @property
    def pending_events(self) -> int:
        return self._pending

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _enqueue(self, job: _Job) -> Future[Any]:
        with self._cond:
            if self._stopping:
                raise StoreError("the writer is shutting down")
            if job.weight and self._pending > 0:
                if self._pending + job.weight > self.max_pending_events:
                    raise Overloaded(
                        f"ingest queue is full ({self._pending} events waiting to commit); retry shortly",
                        retry_after=1.0,
                    )
                wait = self.expected_wait(job.weight)
                if self.max_queue_seconds is not None and wait > self.max_queue_seconds:
                    raise Overloaded(
                        f"ingest queue is full: {self._pending} events wait to commit, about {wait:.1f}s of work; "
                        "retry shortly",
                        retry_after=max(1.0, wait - self.max_queue_seconds),
                    )
            self._pending += job.weight
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def expected_wait(self, extra: int = 0) -> float:
        """Seconds until the queued events and ``extra`` more would be committed, at the measured rate (0 before
        a commit large enough to measure it)."""
        if not self.rate:
            return 0.0
        return (self._pending + extra) / self.rate

    def submit_events(self, batch: EventBatch) -> Future[AppendResult]:
        return self._enqueue(_Job(events=batch, weight=max(batch.table.num_rows, 1)))

    def submit(self, fn: Callable[[], T], weight: int = 0) -> Future[T]:
        """Run ``fn`` in the writer thread, in order with every other write."""
        return self._enqueue(_Job(fn=fn, weight=weight))

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._jobs.popleft()
            if first.events is None:
                return [first]
            group = [first]
            total = first.weight
            while self._jobs and self._jobs[0].events is not None and total < self.max_commit_events:
                job = self._jobs.popleft()
                group.append(job)
                total += job.weight
            return group

    def _measure(self, events: int, seconds: float) -> None:
        # Small commits are mostly fixed cost and would make the rate look far lower than a long queue
        # (committed in large groups) drains at: only groups of MEASURED_EVENTS or more are measured.
        if events < MEASURED_EVENTS:
            return
        sample = events / max(seconds, 1e-6)
        self.rate = sample if self.rate is None else 0.8 * self.rate + 0.2 * sample

    def _release(self, group: list[_Job]) -> None:
        with self._cond:
            self._pending -= sum(j.weight for j in group)

    def _run(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            try:
                if group[0].events is None:
                    job = group[0]
                    assert job.fn is not None
                    try:
                        job.future.set_result(job.fn())
                    except BaseException as exc:
                        job.future.set_exception(exc)
                    continue
                started = time.perf_counter()
                try:
                    results = self.store.append_events([j.events for j in group if j.events is not None])
                except SustainError as exc:
                    for job in group:
                        job.future.set_exception(exc)
                    continue
                except Exception as exc:
                    error = StoreError(f"commit failed: {exc}")
                    for job in group:
                        job.future.set_exception(error)
                    continue
                self.commits += 1
                seconds = time.perf_counter() - started
                self._measure(sum(j.weight for j in group), seconds)
                if self._on_commit is not None:
                    self._on_commit(sum(r.inserted for r in results), seconds)
                for job, result in zip(group, results, strict=True):
                    job.future.set_result(result)
            finally:
                self._release(group)
