"""One model inside a unit: read its partitions, batch, send batches to the backend on a few lanes, answer.

The loop, in one thread per model:

1. every third of the lease ttl, balance: take free partitions up to the fair share, or drain the extra ones
   (read nothing new from them, answer what is held, then release the lease);
2. take over newly leased partitions (:mod:`sustain.inference.recovery`);
3. note the batches the lanes have finished;
4. when a lane is free, send a batch if the policy says so (:class:`~sustain.inference.config.BatchPolicy`,
   the wait counted from when Redis took the oldest request); else read more with ``XREADGROUP ... >``:
   blocking while nothing waits, polling each millisecond (or until a lane finishes) while a batch fills.

Up to ``concurrency`` batches are at the backend at once, each sent by a lane thread
(:class:`~sustain.inference.sender.BatchSender`: answers, bisection of rejected batches, dead letters). A key
has at most one item in flight across all lanes (:class:`~sustain.inference.batching.Buffer`), so its items
still reach the backend one after the other, in order.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis

from sustain.inference.answers import Answers
from sustain.inference.backends import Backend
from sustain.inference.batching import Buffer
from sustain.inference.clock import RedisClock
from sustain.inference.config import ModelBinding, UnitConfig
from sustain.inference.keys import GROUP, ModelKeys
from sustain.inference.leases import Leases
from sustain.inference.messages import Item
from sustain.inference.metrics import UnitMetrics
from sustain.inference.monitor import Monitor
from sustain.inference.recovery import claim_orphans, read_own_pending
from sustain.inference.sender import MAX_BACKOFF, BatchSender
from sustain.inference.streams import register_model

log = logging.getLogger("sustain.inference")

MAX_BLOCK_MS = 100  # the longest a read blocks, so leases, stops and balancing are looked at often
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
        self.stopping = stopping
        self.metrics = metrics
        self.monitor = Monitor(binding.monitor, binding.model) if binding.monitor else None
        answers = Answers(client, self.keys, ttl=config.result_ttl, dead_letter_maxlen=config.dead_letter_maxlen)
        self.sender = BatchSender(
            client,
            self.model,
            config,
            backend,
            self.leases,
            answers,
            running=self._running,
            pause=self._pause,
            metrics=metrics,
            monitor=self.monitor,
        )
        self.clock = RedisClock(client)
        self.buffer = Buffer()
        self.active: set[int] = set()
        self.recovering: set[int] = set()
        self.draining: set[int] = set()
        self._lanes = ThreadPoolExecutor(config.concurrency, thread_name_prefix=f"aiu-{self.model}-lane")
        self._sending = 0
        self._finished: queue.SimpleQueue[tuple[list[Item], BaseException | None]] = queue.SimpleQueue()
        self._lane_done = threading.Event()
        self._next_balance = 0.0
        self._next_recovery = 0.0
        self._failures = 0
        self._finish_by: float | None = None

    @property
    def backend_calls(self) -> int:
        return self.sender.backend_calls

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, grace: float = 10.0) -> None:
        """Serve until ``stopping`` is set, then answer what is held for up to ``grace`` seconds and let go."""
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                    self._failures = 0
                except redis.RedisError as exc:
                    self._failures += 1
                    seconds = min(MAX_BACKOFF, 0.05 * 2 ** min(self._failures - 1, 10))
                    log.warning("%s: Redis failed (%s); retrying in %.2fs", self.model, exc, seconds)
                    self._pause(seconds)
            self._finish(grace)
        finally:
            self._lanes.shutdown(wait=True, cancel_futures=True)
            self.leases.release_all()
            if self.monitor is not None:
                self.monitor.close()

    def step(self) -> None:
        self._lane_done.clear()  # before looking, so a lane finishing from now on cuts the next wait short
        now = time.monotonic()
        if now >= self._next_balance:
            self._next_balance = now + self.config.lease_ttl / 3
            self.clock.sync()
            self.balance()
        self.forget_lost()
        if self.recovering and now >= self._next_recovery:
            self._next_recovery = now + min(0.25, self.config.claim_idle_ms / 4000)
            self.recover()
        self._collect()
        size = self._dispatch_size(now)
        if size:
            self._send(self.buffer.take(size))
        else:
            self.read(self._block_ms(now))

    def _dispatch_size(self, now: float) -> int:
        if self._sending >= self.config.concurrency:
            return 0
        oldest = self.buffer.oldest_ready_at
        if oldest is None:
            return 0
        if len(self.buffer) >= self.config.max_inflight or not self.active:
            return min(self.buffer.ready, self.policy.max_batch_size)  # nothing more can come: send what is ready
        return self.policy.dispatch_size(self.buffer.ready, (now - oldest) * 1000)

    def _block_ms(self, now: float) -> int:
        oldest = self.buffer.oldest_ready_at
        if oldest is None or self._sending >= self.config.concurrency:
            return MAX_BLOCK_MS
        left = self.policy.max_wait_ms - (now - oldest) * 1000
        return max(1, min(MAX_BLOCK_MS, math.ceil(left)))

    def read(self, block_ms: int) -> None:
        streams, count = self._wanted()
        if not streams:
            self._lane_done.wait(block_ms / 1000)
            return
        if self.buffer.waiting == 0:  # nothing to send: block until a request comes (an XADD wakes us at once)
            reply = self.client.xreadgroup(GROUP, self.me, streams, count=count, block=block_ms)
        else:
            # A batch is filling, or waits for a lane or a key: look without blocking, then wait a millisecond
            # (less if a lane finishes). Redis ends a BLOCK's timeout only on its server clock (hz 10: up to
            # 100 ms late), far coarser than max_wait_ms.
            reply = self.client.xreadgroup(GROUP, self.me, streams, count=count)
            if not reply:
                self._lane_done.wait(min(block_ms, POLL_MS) / 1000)
        self._take_in(reply)

    def _wanted(self) -> tuple[dict[Any, Any], int]:
        """The streams to read and how many entries from each, so that at most ``max_inflight`` are held."""
        room = self.config.max_inflight - len(self.buffer)
        if room <= 0 or not self.active or self._finish_by is not None:
            return {}, 0
        streams: dict[Any, Any] = {self.keys.stream(p): ">" for p in sorted(self.active)}
        return streams, max(1, min(self.policy.max_batch_size, math.ceil(room / len(streams))))

    def _take_in(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return
        now = time.monotonic()
        for stream, entries in reply:
            name = stream.decode() if isinstance(stream, bytes) else stream
            partition = self.keys.partition_of_stream(name)
            self._hold([Item.from_entry(name, partition, eid, fields, read_at=now) for eid, fields in entries])

    def _hold(self, items: list[Item]) -> None:
        for item in items:
            item.queued_at = self.clock.queued_at(item.entry_id, item.read_at)
        self.buffer.add(items)

    # -- lanes ---------------------------------------------------------------------------------------------
    def _send(self, batch: list[Item]) -> None:
        self._sending += 1
        future = self._lanes.submit(self.sender.send, batch)

        def finished(done: Future[None]) -> None:
            self._finished.put((batch, None if done.cancelled() else done.exception()))
            self._lane_done.set()

        future.add_done_callback(finished)

    def _collect(self) -> None:
        """Free the keys and lanes of the batches the lanes have finished (answered, failed or abandoned). A
        batch cut short by a Redis failure waits again, first (answers are idempotent); its error is raised
        here, for the loop to back off. Any other error is a bug: raised, it stops the unit (its supervisor
        starts another, which takes the pending requests over)."""
        failed: BaseException | None = None
        while True:
            try:
                batch, error = self._finished.get_nowait()
            except queue.Empty:
                break
            self._sending -= 1
            if error is None:
                self.buffer.done(batch)
            else:
                self.buffer.requeue(batch)
                failed = failed or error
        if failed is not None:
            raise failed

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
        """Let go of partitions whose lease may have expired (the heartbeat was late or failed): their waiting
        items stay pending, for whoever takes the partition next (this unit too) to answer; a lane sends no more
        of its items either (:meth:`BatchSender.send` looks at the lease before each call)."""
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
            if self.buffer.count(p):
                continue  # a lane still sends items read before the lease was lost: they go first
            stream = self.keys.stream(p)
            if not claim_orphans(self.client, stream, self.me, self.config.claim_idle_ms):
                continue
            items = read_own_pending(self.client, stream, p, self.me)
            worn = [i for i in items if i.deliveries > self.config.max_deliveries]
            if worn:
                self.sender.dead_letter(worn, [f"delivered {i.deliveries} times without an answer" for i in worn])
            self._hold([i for i in items if i.deliveries <= self.config.max_deliveries])
            self.recovering.discard(p)
            self.active.add(p)

    # -- stopping --------------------------------------------------------------------------------------------
    def _running(self) -> bool:
        if self._finish_by is None:
            return not self.stopping.is_set()
        return time.monotonic() < self._finish_by

    def _pause(self, seconds: float) -> None:
        if self._finish_by is None:
            self.stopping.wait(seconds)
        else:
            time.sleep(max(0.0, min(seconds, self._finish_by - time.monotonic())))

    def _finish(self, grace: float) -> None:
        """Answer the items held (nothing new is read) for up to ``grace`` seconds; the rest stay pending."""
        self._finish_by = time.monotonic() + grace
        try:
            while len(self.buffer) and self._running():
                self._lane_done.clear()
                self._collect()
                self.forget_lost()
                if self._sending < self.config.concurrency and self.buffer.ready:
                    self._send(self.buffer.take(self.policy.max_batch_size))
                else:
                    self._lane_done.wait(max(0.0, min(0.1, self._finish_by - time.monotonic())))
        except redis.RedisError as exc:
            log.warning("%s: could not answer every held item before stopping: %s", self.model, exc)
        self._lanes.shutdown(wait=True)
        try:
            self._collect()
        except Exception as exc:  # stopping anyway: what was not answered stays pending
            log.warning("%s: a batch failed while stopping: %s", self.model, exc)
        if len(self.buffer):
            log.warning("%s: %d items left pending for another unit", self.model, len(self.buffer))
