"""One model inside a unit: read its partitions, batch, call the backend once per batch, answer, acknowledge.

The loop, in one thread per model:

1. every third of the lease ttl, balance: take free partitions up to the fair share, or drain the extra ones
   (read nothing new from them, answer what is held, then release the lease);
2. take over newly leased partitions (:mod:`sustain.inference.recovery`);
3. send a batch when the policy says so (:class:`~sustain.inference.config.BatchPolicy`), else read more with
   ``XREADGROUP ... >``: blocking while nothing is held, polling each millisecond while a batch fills.

A batch holds at most one item per key and is finished (answered, failed or abandoned) before the next one
is taken, so a key never has two items in flight. A rejected batch is split in halves, each sent on its
own, down to the single bad item: that item is tried again (re-claimed, one more delivery) until it has been
delivered ``max_deliveries`` times, then dead-lettered; its batch-mates are answered meanwhile.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, cast

import redis

from sustain.inference.answers import Answers
from sustain.inference.backends import Backend
from sustain.inference.batching import Buffer
from sustain.inference.config import ModelBinding, UnitConfig
from sustain.inference.errors import BackendRejected, BackendTimeout, BackendUnavailable
from sustain.inference.keys import GROUP, ModelKeys
from sustain.inference.leases import Leases
from sustain.inference.messages import Item
from sustain.inference.metrics import UnitMetrics
from sustain.inference.monitor import Monitor
from sustain.inference.recovery import claim_orphans, read_own_pending
from sustain.inference.streams import register_model

log = logging.getLogger("sustain.inference")

MAX_BLOCK_MS = 100  # the longest a read blocks, so leases, stops and balancing are looked at often
MAX_BACKOFF = 2.0
POLL_MS = 1  # how often a unit looks for more requests while a batch fills


class ModelWorker:
    def __init__(
        self,
        client: redis.Redis,
        binding: ModelBinding,
        config: UnitConfig,
        backend: Backend,
        stopping: threading.Event,
        metrics: UnitMetrics | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.policy = config.batch
        self.model = binding.model
        self.me = config.name
        self.keys = ModelKeys(binding.model)
        self.partitions = register_model(client, self.keys, config.partitions)
        self.leases = Leases(client, self.keys, self.partitions, config.name, config.lease_ttl)
        self.backend = backend
        self.stopping = stopping
        self.metrics = metrics
        self.monitor = Monitor(binding.monitor, binding.model) if binding.monitor else None
        self.answers = Answers(client, self.keys, ttl=config.result_ttl, dead_letter_maxlen=config.dead_letter_maxlen)
        self.buffer = Buffer()
        self.active: set[int] = set()
        self.recovering: set[int] = set()
        self.draining: set[int] = set()
        self.backend_calls = 0
        self._next_balance = 0.0
        self._next_recovery = 0.0
        self._failures = 0
        self._finish_by: float | None = None

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, grace: float = 10.0) -> None:
        """Serve until ``stopping`` is set, then answer what is held for up to ``grace`` seconds and let go."""
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                    self._failures = 0
                except redis.RedisError as exc:
                    self._pause(f"Redis failed ({exc}); retrying")
            self._finish(grace)
        finally:
            self.leases.release_all()
            if self.monitor is not None:
                self.monitor.close()

    def step(self) -> None:
        now = time.monotonic()
        if now >= self._next_balance:
            self._next_balance = now + self.config.lease_ttl / 3
            self.balance()
        self.forget_lost()
        if self.recovering and now >= self._next_recovery:
            self._next_recovery = now + min(0.25, self.config.claim_idle_ms / 4000)
            self.recover()
        size = self._dispatch_size(now)
        if size:
            self.dispatch(self.buffer.take(size))
        else:
            self.read(self._block_ms(now))

    def _dispatch_size(self, now: float) -> int:
        oldest = self.buffer.oldest_read_at
        if oldest is None:
            return 0
        if len(self.buffer) >= self.config.max_inflight or not self.active:
            return min(self.buffer.ready, self.policy.max_batch_size)  # nothing more can come: send what is ready
        return self.policy.dispatch_size(self.buffer.ready, (now - oldest) * 1000)

    def _block_ms(self, now: float) -> int:
        oldest = self.buffer.oldest_read_at
        if oldest is None:
            return MAX_BLOCK_MS
        left = self.policy.max_wait_ms - (now - oldest) * 1000
        return max(1, min(MAX_BLOCK_MS, math.ceil(left)))

    def read(self, block_ms: int) -> None:
        streams, count = self._wanted()
        if not streams:
            self.stopping.wait(block_ms / 1000)
            return
        if len(self.buffer) == 0:  # nothing to send: block until a request comes (an XADD wakes us at once)
            reply = self.client.xreadgroup(GROUP, self.me, streams, count=count, block=block_ms)
        else:
            # A batch is filling: look without blocking, then wait a millisecond. Redis ends a BLOCK's timeout
            # only on its server clock (hz 10: up to 100 ms late), far coarser than max_wait_ms.
            reply = self.client.xreadgroup(GROUP, self.me, streams, count=count)
            if not reply:
                self.stopping.wait(min(block_ms, POLL_MS) / 1000)
        self._take_in(reply)

    def _wanted(self) -> tuple[dict[Any, Any], int]:
        """The streams to read and how many entries from each, so that at most ``max_inflight`` are held."""
        room = self.config.max_inflight - len(self.buffer)
        if room <= 0 or not self.active or self._finish_by is not None:
            return {}, 0
        streams: dict[Any, Any] = {self.keys.stream(p): ">" for p in sorted(self.active)}
        return streams, max(1, min(self.policy.max_batch_size, math.ceil(room / len(streams))))

    def _read_too(self, pipe: Any) -> None:
        """Queue a non-blocking read of new entries on ``pipe`` (sent with a batch's answers)."""
        streams, count = self._wanted()
        if streams:
            pipe.xreadgroup(GROUP, self.me, streams, count=count)
        else:
            pipe.echo(b"")

    def _take_in(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return
        now = time.monotonic()
        for stream, entries in reply:
            name = stream.decode() if isinstance(stream, bytes) else stream
            partition = self.keys.partition_of_stream(name)
            self.buffer.add(Item.from_entry(name, partition, eid, fields, read_at=now) for eid, fields in entries)

    # -- partitions ----------------------------------------------------------------------------------------
    def balance(self) -> None:
        serving = self.active | self.recovering
        share = self.leases.fair_share()
        if len(serving) < share and self.draining:
            back = sorted(self.draining)[: share - len(serving)]
            self.draining.difference_update(back)
            self.active.update(back)
        elif len(serving) < share:
            self.recovering.update(self.leases.acquire_free(share - len(serving)))
        elif len(serving) > share and self.active:
            extra = sorted(self.active, key=self.buffer.count)[: len(serving) - share]
            self.active.difference_update(extra)
            self.draining.update(extra)
        for p in sorted(self.draining):
            if self.buffer.count(p) == 0:
                self.draining.discard(p)
                self.leases.release(p)
        if self.metrics is not None:
            self.metrics.partitions.labels(self.model).set(len(self.active | self.recovering | self.draining))

    def forget_lost(self) -> None:
        """Let go of partitions whose lease may have expired (the heartbeat was late or failed): their held
        items stay pending, for whoever takes the partition next (this unit too) to answer."""
        for p in sorted(self.active | self.recovering | self.draining):
            if not self.leases.valid(p):
                dropped = self.buffer.drop_partition(p)
                log.warning("unit %s let go of %s (%d items held)", self.me, self.keys.stream(p), len(dropped))
                self.active.discard(p)
                self.recovering.discard(p)
                self.draining.discard(p)
                self.leases.release(p)  # if it is still ours, free it now rather than renew what nobody reads

    def recover(self) -> None:
        for p in sorted(self.recovering):
            stream = self.keys.stream(p)
            if not claim_orphans(self.client, stream, self.me, self.config.claim_idle_ms):
                continue
            items = read_own_pending(self.client, stream, p, self.me)
            worn = [i for i in items if i.deliveries > self.config.max_deliveries]
            if worn:
                self.dead_letter(worn, [f"delivered {i.deliveries} times without an answer" for i in worn])
            self.buffer.add(i for i in items if i.deliveries <= self.config.max_deliveries)
            self.recovering.discard(p)
            self.active.add(p)

    # -- a batch -------------------------------------------------------------------------------------------
    def dispatch(self, batch: list[Item]) -> None:
        broken = [i for i in batch if i.error is not None]
        if broken:
            self.dead_letter(broken, [cast(str, i.error) for i in broken])
        stack: list[tuple[list[Item], int]] = [([i for i in batch if i.error is None], 0)]
        while stack and self._running():
            items, timeouts = stack.pop()
            items = [i for i in items if self.leases.valid(i.partition)]  # another unit answers the rest
            if not items:
                continue
            error = self._call(items, timeouts, stack)
            if error is None:
                continue
            if len(items) > 1:
                half = len(items) // 2
                stack.append((items[half:], 0))
                stack.append((items[:half], 0))
            else:
                self._retry_or_dead_letter(items[0], error, stack)

    def _call(self, items: list[Item], timeouts: int, stack: list[tuple[list[Item], int]]) -> str | None:
        """Send one batch: answer it, or push it back to be sent again, or return why it was rejected."""
        started = time.perf_counter()
        self.backend_calls += 1
        outcome = "ok"
        try:
            predictions = self.backend.predict([i.payload for i in items])
        except BackendTimeout as exc:
            outcome = "unavailable"
            if timeouts + 1 >= self.config.max_deliveries:
                return exc.message  # it hangs on this batch every time: look for a bad item in it
            stack.append((items, timeouts + 1))
            self._pause(exc.message)
            return None
        except BackendUnavailable as exc:
            outcome = "unavailable"
            stack.append((items, timeouts))
            self._pause(exc.message)
            return None
        except BackendRejected as exc:
            outcome = "rejected"
            return exc.message
        finally:
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.backend_seconds.labels(self.model, outcome).observe(seconds)
                self.metrics.batch_size.labels(self.model).observe(len(items))
        self._failures = 0
        first, more = self.answers.answer(items, predictions, then=self._read_too)
        self._take_in(more)
        if self.metrics is not None:
            answered = sum(first)
            self.metrics.items.labels(self.model, "answered").inc(answered)
            if answered < len(items):
                self.metrics.items.labels(self.model, "duplicate").inc(len(items) - answered)
        if self.monitor is not None:
            self.monitor.answered(items, predictions, first, seconds * 1000)
        return None

    def _retry_or_dead_letter(self, item: Item, error: str, stack: list[tuple[list[Item], int]]) -> None:
        if item.deliveries >= self.config.max_deliveries:
            self.dead_letter([item], [error])
            return
        # One more delivery, counted by Redis (XCLAIM increments it), so a unit that dies here does not reset it.
        claimed = self.client.xclaim(item.stream, GROUP, self.me, 0, [item.entry_id], justid=False)
        if claimed:
            item.deliveries += 1
            stack.append(([item], 0))

    def dead_letter(self, items: list[Item], errors: list[str]) -> None:
        first = self.answers.dead_letter(items, errors)
        for item, error in zip(items, errors, strict=True):
            log.warning("dead letter %s of %s: %s", item.request_id, self.model, error)
        if self.metrics is not None:
            self.metrics.items.labels(self.model, "dead_letter").inc(len(items))
        if self.monitor is not None:
            self.monitor.failed(items, errors, first)

    # -- stopping --------------------------------------------------------------------------------------------
    def _running(self) -> bool:
        if self._finish_by is None:
            return not self.stopping.is_set()
        return time.monotonic() < self._finish_by

    def _pause(self, why: str) -> None:
        self._failures += 1
        seconds = min(MAX_BACKOFF, 0.05 * 2 ** min(self._failures - 1, 10))
        log.warning("%s: %s (waiting %.2fs)", self.model, why, seconds)
        if self._finish_by is None:
            self.stopping.wait(seconds)
        else:
            time.sleep(max(0.0, min(seconds, self._finish_by - time.monotonic())))

    def _finish(self, grace: float) -> None:
        """Answer the items held (nothing new is read) for up to ``grace`` seconds; the rest stay pending."""
        self._finish_by = time.monotonic() + grace
        try:
            while self.buffer.ready and self._running():
                self.forget_lost()
                self.dispatch(self.buffer.take(self.policy.max_batch_size))
        except redis.RedisError as exc:
            log.warning("%s: could not answer every held item before stopping: %s", self.model, exc)
        if len(self.buffer):
            log.warning("%s: %d items left pending for another unit", self.model, len(self.buffer))
