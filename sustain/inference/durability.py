"""The Redis settings inference units rely on, and a check of a running server against them.

* ``appendonly yes`` with ``appendfsync everysec``: every write goes to the append-only file, flushed to disk
  once a second. A crash of the Redis process alone (the machine stays up) loses nothing the kernel received;
  a crash of the machine loses at most about the last second of writes: requests submitted then, answers
  written then (their requests are then answered again, once), acknowledgements (answered again, kept once).
* ``maxmemory-policy noeviction``: a full Redis refuses new requests (the client sees an error) rather than
  silently evicting queued requests or answers.

>>> DURABLE["appendfsync"]
'everysec'
>>> redis_server_args()[:4]
['--appendonly', 'yes', '--appendfsync', 'everysec']
"""

from __future__ import annotations

import logging

import redis

log = logging.getLogger("sustain.inference")

DURABLE: dict[str, str] = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}


def redis_server_args() -> list[str]:
    """The settings as ``redis-server`` command-line arguments."""
    return [arg for name, value in DURABLE.items() for arg in (f"--{name}", value)]


def redis_conf() -> str:
    """The settings as ``redis.conf`` lines."""
    return "".join(f"{name} {value}\n" for name, value in DURABLE.items())


def check_durability(client: redis.Redis) -> list[str]:
    """What differs from :data:`DURABLE` on the server, as sentences (empty when all is set, or unreadable:
    managed services often forbid ``CONFIG GET``)."""
    try:
        found = {name: client.config_get(name).get(name) for name in DURABLE}
    except redis.RedisError as exc:
        log.info("cannot read the Redis configuration (%s); assuming it is durable", exc)
        return []
    problems = []
    for name, wanted in DURABLE.items():
        value = found.get(name)
        value = value.decode() if isinstance(value, bytes) else value
        if value != wanted:
            problems.append(f"Redis has {name} {value!r}, units expect {wanted!r}")
    return problems
