"""Typed settings of inference units: how to batch, which backend, where to log, how long to wait.

>>> policy = BatchPolicy(max_batch_size=64, max_wait_ms=5, preferred_sizes=(16, 32))
>>> policy.dispatch_size(ready=70, waited_ms=0), policy.dispatch_size(ready=20, waited_ms=0)
(64, 16)
>>> policy.dispatch_size(ready=10, waited_ms=1), policy.dispatch_size(ready=10, waited_ms=5)
(0, 10)
>>> BatchPolicy(max_batch_size=0)
Traceback (most recent call last):
...
sustain.errors.ConfigError: max_batch_size must be at least 1, got 0
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from sustain.errors import ConfigError
from sustain.inference.keys import check_model_name, check_partitions


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{name} must be at least {low:g}, got {value:g}", field=name)


@dataclass(frozen=True)
class BatchPolicy:
    """Triton's dynamic batcher: send ``max_batch_size`` items as soon as they are there, the largest preferred
    size that can be formed right away, or whatever is there once the oldest item has waited ``max_wait_ms``."""

    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    preferred_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _at_least("max_batch_size", self.max_batch_size, 1)
        _at_least("max_wait_ms", self.max_wait_ms, 0)
        for size in self.preferred_sizes:
            if not 1 <= size <= self.max_batch_size:
                raise ConfigError(
                    f"preferred batch size {size} is not between 1 and max_batch_size ({self.max_batch_size})",
                    field="preferred_sizes",
                )
        object.__setattr__(self, "preferred_sizes", tuple(sorted(set(self.preferred_sizes))))

    def dispatch_size(self, ready: int, waited_ms: float) -> int:
        """How many of ``ready`` items to send now (0: wait for more); ``waited_ms`` is the oldest one's wait."""
        if ready <= 0:
            return 0
        if ready >= self.max_batch_size:
            return self.max_batch_size
        fitting = [size for size in self.preferred_sizes if size <= ready]
        if fitting:
            return fitting[-1]
        return ready if waited_ms >= self.max_wait_ms else 0


@dataclass(frozen=True)
class BackendConfig:
    """A serving backend: ``kind`` names a registered backend (``mlflow``, ``seldon``, ``v2``, ``python``), and
    ``target`` is its URL (or ``module:function`` for ``python``). ``model`` is the model's name at the backend
    (the V2 path needs it), by default the unit's model name."""

    kind: str
    target: str
    model: str | None = None
    timeout: float = 30.0
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.target:
            raise ConfigError("a backend needs a target (its URL, or module:function)", field="backend")
        _at_least("backend timeout", self.timeout, 0.001)


@dataclass(frozen=True)
class MonitorConfig:
    """Where a unit logs every inference it makes: a sustain collector, through the client Logger."""

    url: str
    model: str | None = None  # the model's name at the collector; by default the unit's model name
    version: str | None = None
    token: str | None = None
    spool_dir: str | None = None


@dataclass(frozen=True)
class ModelBinding:
    """One model a unit serves: its request streams, its backend, and (optionally) where it is monitored."""

    model: str
    backend: BackendConfig
    monitor: MonitorConfig | None = None

    def __post_init__(self) -> None:
        check_model_name(self.model)


def default_unit_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


@dataclass(frozen=True)
class UnitConfig:
    """Everything one unit process needs. Times are in seconds unless the name says otherwise."""

    redis_url: str
    models: tuple[ModelBinding, ...]
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    partitions: int | None = None  # for a model not registered yet (then DEFAULT_PARTITIONS); must match otherwise
    max_inflight: int = 1024  # items read and not yet answered, per model (backpressure: the stream keeps the rest)
    concurrency: int = 2  # batches of one model at its backend at once
    max_deliveries: int = 5
    lease_ttl: float = 5.0
    min_idle: float | None = None  # how long another unit's pending entry must sit before it is claimed
    result_ttl: int = 24 * 3600
    dead_letter_maxlen: int = 100_000
    name: str = field(default_factory=default_unit_name)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("a unit needs at least one model to serve", field="model")
        names = [m.model for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"a model is listed twice: {', '.join(sorted(names))}", field="model")
        check_partitions(self.partitions)
        _at_least("max_inflight", self.max_inflight, self.batch.max_batch_size)
        _at_least("max_deliveries", self.max_deliveries, 1)
        _at_least("concurrency", self.concurrency, 1)
        _at_least("lease_ttl", self.lease_ttl, 0.1)
        _at_least("result_ttl", self.result_ttl, 1)
        if self.min_idle is not None:
            _at_least("min_idle", self.min_idle, 0)

    @property
    def claim_idle_ms(self) -> int:
        return int(1000 * (self.lease_ttl if self.min_idle is None else self.min_idle))
