"""Where a model's requests, results and bookkeeping live in Redis, and which partition a request goes to.

Every key of one model carries the model name in braces (``aiu:{churn}:req:3``): a Redis Cluster hashes
only the part in braces, so all keys of a model sit in one slot, where one ``XREADGROUP`` can read every
stream and one script can answer a whole batch.

>>> keys = ModelKeys("churn")
>>> keys.stream(3), keys.dead_letters, keys.lease(3), keys.result("r-1")
('aiu:{churn}:req:3', 'aiu:{churn}:dlq', 'aiu:{churn}:lease:3', 'aiu:{churn}:res:r-1')
>>> partition_of("customer-42", 16)
5
>>> ModelKeys("no spaces")
Traceback (most recent call last):
...
sustain.errors.ValidationError: model name 'no spaces' may hold only letters, digits, '_', '-' and '.'
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from sustain.errors import ConfigError, ValidationError

PREFIX = "aiu"
GROUP = "aiu"  # the one consumer group of every request stream
MODELS = f"{PREFIX}:models"  # a set of every model name a client or unit has registered
DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 1024
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def check_model_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(f"model name {name!r} may hold only letters, digits, '_', '-' and '.'", field="model")
    return name


def check_partitions(partitions: int | None) -> None:
    if partitions is not None and not 1 <= partitions <= MAX_PARTITIONS:
        raise ConfigError(f"partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}", field="partitions")


def partition_of(key: str, partitions: int) -> int:
    """The partition of a request key: CRC-32 of its UTF-8 bytes, stable across processes and languages."""
    return zlib.crc32(key.encode()) % partitions


@dataclass(frozen=True)
class ModelKeys:
    """The Redis keys of one model."""

    model: str

    def __post_init__(self) -> None:
        check_model_name(self.model)

    @property
    def base(self) -> str:
        return f"{PREFIX}:{{{self.model}}}"

    def stream(self, partition: int) -> str:
        return f"{self.base}:req:{partition}"

    def streams(self, partitions: int) -> list[str]:
        return [self.stream(p) for p in range(partitions)]

    def lease(self, partition: int) -> str:
        return f"{self.base}:lease:{partition}"

    @property
    def meta(self) -> str:
        """A hash with the model's partition count (fixed when the model is first registered)."""
        return f"{self.base}:meta"

    @property
    def dead_letters(self) -> str:
        return f"{self.base}:dlq"

    @property
    def units(self) -> str:
        """A sorted set of unit names, scored by the time until which each counts as alive (ms since the epoch)."""
        return f"{self.base}:units"

    def result(self, request_id: str) -> str:
        """The answer to one request: set once (``SET NX``) with an expiry."""
        return f"{self.base}:res:{request_id}"

    def reply(self, client_id: str) -> str:
        """A client's notification list: units push the ids they answered, the client pops them."""
        return f"{self.base}:reply:{client_id}"

    def partition_of_stream(self, stream: str) -> int:
        return int(stream.rsplit(":", 1)[1])
