"""A model's place in Redis: registered once with its partition count, one consumer group per partition.

The partition count is fixed when a model is first registered (by a client or a unit): a key must always hash
to the same stream, or its order would be lost. Asking for another count later is an error. The commands are
queued on a pipeline and their replies read by the functions below, so the asyncio client shares them.
"""

from __future__ import annotations

from typing import Any

import redis

from sustain.errors import ConfigError
from sustain.inference.errors import QueueUnavailable
from sustain.inference.keys import DEFAULT_PARTITIONS, GROUP, MODELS, ModelKeys, check_partitions


def queue_meta(pipe: Any, keys: ModelKeys, partitions: int | None) -> None:
    check_partitions(partitions)
    pipe.hsetnx(keys.meta, "partitions", partitions or DEFAULT_PARTITIONS)
    pipe.hget(keys.meta, "partitions")
    pipe.sadd(MODELS, keys.model)


def partitions_from(replies: list[Any], keys: ModelKeys, partitions: int | None) -> int:
    actual = int(replies[1])
    if partitions is not None and partitions != actual:
        raise ConfigError(
            f"model {keys.model!r} is registered with {actual} partitions, not {partitions}: a key must keep "
            "its partition, so the count cannot change while requests may be queued",
            field="partitions",
        )
    return actual


def queue_groups(pipe: Any, keys: ModelKeys, partitions: int) -> None:
    for stream in keys.streams(partitions):
        pipe.xgroup_create(stream, GROUP, id="0", mkstream=True)


def check_groups(replies: list[Any], keys: ModelKeys) -> None:
    for reply in replies:
        if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
            raise QueueUnavailable(f"cannot create the consumer group of {keys.model!r}: {reply}")


def register_model(client: redis.Redis, keys: ModelKeys, partitions: int | None = None) -> int:
    """Record ``keys.model`` with ``partitions`` (the first registration wins) and make sure every partition's
    stream and consumer group exist; return the model's partition count."""
    try:
        pipe = client.pipeline(transaction=False)
        queue_meta(pipe, keys, partitions)
        actual = partitions_from(pipe.execute(), keys, partitions)
        pipe = client.pipeline(transaction=False)
        queue_groups(pipe, keys, actual)
        check_groups(pipe.execute(raise_on_error=False), keys)
    except redis.RedisError as exc:
        raise QueueUnavailable(f"Redis refused to register model {keys.model!r}: {exc}") from exc
    return actual
