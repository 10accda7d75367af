"""A unit process: a worker thread per model it serves, one heartbeat for their leases, metrics on a port.

>>> from sustain.inference.config import BackendConfig, ModelBinding, UnitConfig
>>> config = UnitConfig("redis://127.0.0.1:1", (ModelBinding("churn", BackendConfig("mlflow", "http://m:5001")),))
>>> Unit(config, connect_timeout=0.2)
Traceback (most recent call last):
...
sustain.inference.errors.QueueUnavailable: cannot reach Redis at redis://127.0.0.1:1: ...
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import replace
from types import FrameType

import redis

from sustain.inference.backends import Backend, open_backend
from sustain.inference.config import ModelBinding, UnitConfig
from sustain.inference.durability import check_durability
from sustain.inference.errors import QueueUnavailable
from sustain.inference.leases import Heartbeat
from sustain.inference.metrics import UnitMetrics
from sustain.inference.queues import ModelStatus, status
from sustain.inference.worker import ModelWorker

log = logging.getLogger("sustain.inference")


def connect(url: str, *, connect_timeout: float = 5.0) -> redis.Redis:
    """A Redis client for ``url``, checked with a PING."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise QueueUnavailable(f"cannot reach Redis at {url}: {exc}") from exc
    return client


class Unit:
    """Serve ``config.models`` until stopped. ``backends`` overrides the configured backend of a model (a
    Python object in the same process, for tests and benchmarks)."""

    def __init__(
        self,
        config: UnitConfig,
        *,
        backends: Mapping[str, Backend] | None = None,
        metrics: UnitMetrics | None = None,
        connect_timeout: float = 5.0,
        grace: float = 10.0,
    ) -> None:
        self.config = config
        self.grace = grace
        self.client = connect(config.redis_url, connect_timeout=connect_timeout)
        for problem in check_durability(self.client):
            log.warning("%s: a Redis crash may lose queued requests (see the README)", problem)
        self.stopping = threading.Event()
        self.metrics = metrics
        given = dict(backends or {})
        self._opened: list[Backend] = []
        self.workers: list[ModelWorker] = []
        for binding in config.models:
            backend = given.get(binding.model) or self._open(binding)
            self.workers.append(ModelWorker(self.client, binding, config, backend, self.stopping, metrics))
        self.heartbeat = Heartbeat([w.leases for w in self.workers], config.lease_ttl)
        self._threads: list[threading.Thread] = []
        self._stopped = False
        if metrics is not None:
            metrics.watch_queues(self.queues)

    def _open(self, binding: ModelBinding) -> Backend:
        agent = (("user-agent", f"sustain-aiu/{self.config.name} pid/{os.getpid()}"),)
        backend = open_backend(replace(binding.backend, model=binding.backend.model or binding.model, headers=agent))
        self._opened.append(backend)
        return backend

    def queues(self) -> list[ModelStatus]:
        return status(self.client, [w.model for w in self.workers])

    def start(self) -> Unit:
        self.heartbeat.start()
        for worker in self.workers:
            thread = threading.Thread(target=worker.run, args=(self.grace,), name=f"aiu-{worker.model}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop reading, answer what is held (up to the grace period), release the leases. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.stopping.set()
        for thread in self._threads:
            thread.join(self.grace + 30)
        self.heartbeat.stop()
        for backend in self._opened:
            backend.close()
        self.client.close()

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT (or a worker thread dies), then stop cleanly."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not self.stopping.wait(0.5):
                if not self.alive:
                    log.error("a worker thread of unit %s died; stopping", self.config.name)
                    break
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Unit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
