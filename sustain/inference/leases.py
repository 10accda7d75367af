"""Partition leases: each partition of a model is read by one unit at a time, so a key's items stay in order.

A lease is a Redis string ``aiu:{model}:lease:{p}`` holding the unit's name, set with ``NX PX ttl`` and
renewed by a heartbeat thread every third of the ttl. A unit dead for a ttl loses its leases; the others take
them over, and with them the dead unit's pending entries (see :mod:`sustain.inference.recovery`).

A unit trusts a lease only until ``ttl`` after it last asked for it, less a margin, on its own monotonic clock:
a unit paused longer than that (a stop signal, a swapped-out machine) answers nothing for the partition until
it has renewed it, by which time another unit may have taken it over.

The units of a model announce themselves in ``aiu:{model}:units``, scored by the time (ms since the epoch)
until which they count as alive (their last heartbeat plus the ttl), and each aims at its fair share of the
partitions, ``ceil(partitions / live units)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import zlib

import redis

from sustain.inference.keys import ModelKeys

log = logging.getLogger("sustain.inference")

_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
TRUST = 0.8  # trust a lease for this share of its ttl after the request that set or renewed it


class Leases:
    """The partitions of one model this unit holds, renewed in the background."""

    def __init__(self, client: redis.Redis, keys: ModelKeys, partitions: int, me: str, ttl: float) -> None:
        self.client = client
        self.keys = keys
        self.partitions = partitions
        self.me = me
        self.ttl_ms = int(ttl * 1000)
        self._valid_until: dict[int, float] = {}
        self._lock = threading.Lock()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self.live_units = 1

    # -- what the unit asks ---------------------------------------------------------------------------
    def held(self) -> list[int]:
        with self._lock:
            return sorted(self._valid_until)

    def valid(self, partition: int) -> bool:
        with self._lock:
            until = self._valid_until.get(partition)
        return until is not None and time.monotonic() < until

    def fair_share(self) -> int:
        return math.ceil(self.partitions / max(self.live_units, 1))

    def acquire_free(self, want: int) -> list[int]:
        """Try to take up to ``want`` partitions nobody holds, starting at a place of this unit's own."""
        taken: list[int] = []
        start = zlib.crc32(self.me.encode()) % self.partitions
        held = set(self.held())
        for step in range(self.partitions):
            if len(taken) >= want:
                break
            p = (start + step) % self.partitions
            if p in held:
                continue
            asked = time.monotonic()
            if self.client.set(self.keys.lease(p), self.me, nx=True, px=self.ttl_ms):
                with self._lock:
                    self._valid_until[p] = asked + TRUST * self.ttl_ms / 1000
                taken.append(p)
        return taken

    def release(self, partition: int) -> None:
        with self._lock:
            self._valid_until.pop(partition, None)
        try:
            self._release(keys=[self.keys.lease(partition)], args=[self.me])
        except redis.RedisError as exc:  # the lease then expires by itself
            log.warning("could not release lease %s: %s", self.keys.lease(partition), exc)

    def release_all(self) -> None:
        for p in self.held():
            self.release(p)
        with contextlib.suppress(redis.RedisError):
            self.client.zrem(self.keys.units, self.me)

    # -- the heartbeat ----------------------------------------------------------------------------------
    def beat(self) -> list[int]:
        """Renew every held lease and announce this unit; return the partitions whose lease was lost."""
        held = self.held()
        asked = time.monotonic()
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keys.units, {self.me: now_ms + self.ttl_ms})  # scored by when it counts as gone
        pipe.zremrangebyscore(self.keys.units, "-inf", now_ms)
        pipe.zcard(self.keys.units)
        if held:
            self._renew(keys=[self.keys.lease(p) for p in held], args=[self.me, self.ttl_ms], client=pipe)
        replies = pipe.execute()
        self.live_units = int(replies[2])
        renewed = replies[3] if held else []
        lost = [p for p, ok in zip(held, renewed, strict=True) if not ok]
        with self._lock:
            for p, ok in zip(held, renewed, strict=True):
                if ok and p in self._valid_until:
                    self._valid_until[p] = asked + TRUST * self.ttl_ms / 1000
            for p in lost:
                self._valid_until.pop(p, None)
        for p in lost:
            log.warning("unit %s lost the lease of %s", self.me, self.keys.stream(p))
        return lost


class Heartbeat:
    """A daemon thread beating every third of the ttl for every model of a unit, until stopped."""

    def __init__(self, leases: list[Leases], ttl: float) -> None:
        self.leases = leases
        self.interval = ttl / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiu-heartbeat", daemon=True)

    def start(self) -> None:
        for lease in self.leases:
            lease.beat()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for lease in self.leases:
                try:
                    lease.beat()
                except redis.RedisError as exc:
                    log.warning("heartbeat failed (leases expire unless renewed soon): %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
