"""Sending one batch to a backend until every item in it is answered, dead-lettered or left to another unit.

A rejected batch is split in halves, each sent on its own, down to the single bad item: that item is tried
again (re-claimed, one more delivery) until it has been delivered ``max_deliveries`` times, then dead-lettered;
its batch-mates are answered meanwhile, so a bad item costs at most ``ceil(log2 batch) + 1`` calls before its
batch-mates have their answers. A backend that is down or times out gets the same batch again after a backoff.

A unit runs one sender per lane (:class:`~sustain.inference.worker.ModelWorker`), each on its own thread: what
a sender touches is either its own batch or safe to share between threads (the Redis client's connection pool,
the metrics, the Logger's queue).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

import redis

from sustain.inference.answers import Answers
from sustain.inference.backends import Backend
from sustain.inference.config import UnitConfig
from sustain.inference.errors import BackendRejected, BackendTimeout, BackendUnavailable
from sustain.inference.keys import GROUP
from sustain.inference.leases import Leases
from sustain.inference.messages import Item
from sustain.inference.metrics import UnitMetrics
from sustain.inference.monitor import Monitor

log = logging.getLogger("sustain.inference")

MAX_BACKOFF = 2.0

Pending = list[tuple[list[Item], int]]  # what is left to send: items and how many times they timed out


class BatchSender:
    def __init__(
        self,
        client: redis.Redis,
        model: str,
        config: UnitConfig,
        backend: Backend,
        leases: Leases,
        answers: Answers,
        *,
        running: Callable[[], bool],
        pause: Callable[[float], None],
        metrics: UnitMetrics | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.config = config
        self.me = config.name
        self.backend = backend
        self.leases = leases
        self.answers = answers
        self.running = running
        self.pause = pause
        self.metrics = metrics
        self.monitor = monitor
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def backend_calls(self) -> int:
        return self._calls

    def send(self, batch: list[Item]) -> None:
        broken = [i for i in batch if i.error is not None]
        if broken:
            self.dead_letter(broken, [cast(str, i.error) for i in broken])
        pending: Pending = [([i for i in batch if i.error is None], 0)]
        failures = 0
        while pending and self.running():
            items, timeouts = pending.pop()
            items = [i for i in items if self.leases.valid(i.partition)]  # another unit answers the rest
            if not items:
                continue
            outcome, error = self._call(items, timeouts, pending)
            if outcome == "unavailable":
                failures += 1
                self.pause(min(MAX_BACKOFF, 0.05 * 2 ** min(failures - 1, 10)))
                continue
            failures = 0
            if error is None:
                continue
            if len(items) > 1:
                half = len(items) // 2
                pending.append((items[half:], 0))
                pending.append((items[:half], 0))
            else:
                self._retry_or_dead_letter(items[0], error, pending)

    def _call(self, items: list[Item], timeouts: int, pending: Pending) -> tuple[str, str | None]:
        """Send one batch: answer it, or push it back to be sent again, or say why it was rejected."""
        started = time.perf_counter()
        with self._lock:
            self._calls += 1
        outcome, error = "ok", None
        try:
            predictions = self.backend.predict([i.payload for i in items])
        except BackendTimeout as exc:
            if timeouts + 1 >= self.config.max_deliveries:
                outcome, error = "rejected", exc.message  # it hangs on this batch every time: look for a bad item
            else:
                outcome = "unavailable"
                pending.append((items, timeouts + 1))
                log.warning("%s: %s", self.model, exc.message)
        except BackendUnavailable as exc:
            outcome = "unavailable"
            pending.append((items, timeouts))
            log.warning("%s: %s", self.model, exc.message)
        except BackendRejected as exc:
            outcome, error = "rejected", exc.message
        finally:
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.backend_seconds.labels(self.model, outcome).observe(seconds)
                self.metrics.batch_size.labels(self.model).observe(len(items))
        if outcome != "ok":
            return outcome, error
        first = self.answers.answer(items, predictions)
        if self.metrics is not None:
            answered = sum(first)
            self.metrics.items.labels(self.model, "answered").inc(answered)
            if answered < len(items):
                self.metrics.items.labels(self.model, "duplicate").inc(len(items) - answered)
        if self.monitor is not None:
            self.monitor.answered(items, predictions, first, seconds * 1000)
        return outcome, None

    def _retry_or_dead_letter(self, item: Item, error: str, pending: Pending) -> None:
        if item.deliveries >= self.config.max_deliveries:
            self.dead_letter([item], [error])
            return
        # One more delivery, counted by Redis (XCLAIM increments it), so a unit that dies here does not reset it.
        claimed = self.client.xclaim(item.stream, GROUP, self.me, 0, [item.entry_id], justid=False)
        if claimed:
            item.deliveries += 1
            pending.append(([item], 0))

    def dead_letter(self, items: list[Item], errors: list[str]) -> None:
        first = self.answers.dead_letter(items, errors)
        for item, error in zip(items, errors, strict=True):
            log.warning("dead letter %s of %s: %s", item.request_id, self.model, error)
        if self.metrics is not None:
            self.metrics.items.labels(self.model, "dead_letter").inc(len(items))
        if self.monitor is not None:
            self.monitor.failed(items, errors, first)
