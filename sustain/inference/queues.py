"""How each model's queues are doing, from ``XINFO GROUPS``, ``XLEN`` and the units' heartbeats.

``lag`` counts entries no unit has read yet, ``pending`` those read and not answered, ``backlog`` both (units
delete an entry once it is answered, so a stream is as long as its backlog), ``dead_letters`` the length of the
dead-letter stream and ``units`` the units alive now. Used by ``sustain aiu status``, the units' ``/metrics``
and the server's ``GET /v1/inference/status``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from sustain.inference.errors import QueueUnavailable
from sustain.inference.keys import GROUP, MODELS, ModelKeys


@dataclass(frozen=True)
class ModelStatus:
    model: str
    partitions: int
    lag: int
    pending: int
    backlog: int
    dead_letters: int
    units: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def models(client: redis.Redis) -> list[str]:
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in client.smembers(MODELS))


def status(client: redis.Redis, names: Iterable[str] | None = None) -> list[ModelStatus]:
    """The status of ``names`` (by default every registered model), in name order."""
    try:
        wanted = sorted(names) if names is not None else models(client)
        return [_model_status(client, ModelKeys(name)) for name in wanted]
    except redis.RedisError as exc:
        raise QueueUnavailable(f"cannot read the inference queues from Redis: {exc}") from exc


def _model_status(client: redis.Redis, keys: ModelKeys) -> ModelStatus:
    stored = client.hget(keys.meta, "partitions")
    partitions = int(stored) if stored is not None else 0
    pipe = client.pipeline(transaction=False)
    for stream in keys.streams(partitions):
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
    pipe.xlen(keys.dead_letters)
    pipe.zcount(keys.units, int(time.time() * 1000), "+inf")
    replies = pipe.execute(raise_on_error=False)
    lag = pending = backlog = 0
    for p in range(partitions):
        length, groups = replies[2 * p], replies[2 * p + 1]
        backlog += length if isinstance(length, int) else 0
        group = _group(groups)
        if group is None:
            continue
        pending += int(group.get("pending") or 0)
        group_lag = group.get("lag")
        # Redis reports no lag when it cannot tell (entries deleted before delivery): count the undelivered then
        lag += int(group_lag) if group_lag is not None else max(length - int(group.get("pending") or 0), 0)
    dead, units = replies[-2], replies[-1]
    return ModelStatus(
        model=keys.model,
        partitions=partitions,
        lag=lag,
        pending=pending,
        backlog=backlog,
        dead_letters=dead if isinstance(dead, int) else 0,
        units=units if isinstance(units, int) else 0,
    )


def _group(groups: Any) -> dict[str, Any] | None:
    if not isinstance(groups, list):
        return None
    for group in groups:
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            return dict(group)
    return None


class QueueReader:
    """The queues of every model on one Redis, read on demand (the server's ``--redis``); connects lazily."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: redis.Redis | None = None

    def read(self) -> list[ModelStatus]:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        return status(self._client)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
