"""When Redis took a request, on this process's clock: a stream entry id starts with Redis's milliseconds since
the epoch, and one ``TIME`` call gives the offset between Redis's clock and this process's monotonic clock.

A batch's wait (``max_wait_ms``) counts from then, as Triton's queue delay counts from when a request entered
the queue, so a request that came while the unit was busy is not made to wait again once it is read.

>>> clock = RedisClock(None)
>>> clock.offset = 1_700_000_000.0
>>> clock.queued_at(b"1700000000250-0", read_at=0.5), clock.queued_at(b"1700000000900-3", read_at=0.5)
(0.25, 0.5)
"""

from __future__ import annotations

import time
from typing import Any


class RedisClock:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.offset: float | None = None  # Redis's epoch seconds less this process's monotonic seconds

    def sync(self) -> None:
        before = time.monotonic()
        seconds, micros = self.client.time()
        after = time.monotonic()
        self.offset = seconds + micros / 1e6 - (before + after) / 2

    def queued_at(self, entry_id: bytes, read_at: float) -> float:
        """When the entry was added, never later than when it was read (the clocks are a round trip apart)."""
        if self.offset is None:
            return read_at
        head, _, _ = entry_id.partition(b"-")
        try:
            added = int(head) / 1000 - self.offset
        except ValueError:
            return read_at
        return min(read_at, added)
