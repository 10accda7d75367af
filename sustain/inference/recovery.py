"""Taking over a partition: first the entries its previous holder left unanswered, then new ones.

A unit that acquires a partition's lease reads nothing new from it until no other consumer owns a pending
entry there. It claims them once they have been idle ``min_idle`` (``XPENDING ... IDLE``, then ``XCLAIM ...
JUSTID``, which counts no delivery): a holder that merely paused has time to notice its lease is gone and
answer nothing. Then it reads its own pending entries back (``XREADGROUP ... 0``), which counts one more
delivery each, in stream order. Claiming everything before reading anything keeps a key's order even when its
entries were delivered at different times (a retried item is re-claimed, which resets its idle time).

A history read returns an entry deleted while pending without fields; it becomes an item with an error (and a
dead letter). redis-py's ``xautoclaim(justid=True)`` drops the cursor, so claims page through ``XPENDING``.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from sustain.inference.keys import GROUP
from sustain.inference.messages import Item

PAGE = 256


def claim_orphans(client: redis.Redis, stream: str, me: str, min_idle_ms: int) -> bool:
    """Claim other consumers' pending entries idle for ``min_idle_ms``; True when none are left to others."""
    start: Any = "-"
    while True:
        rows = client.xpending_range(stream, GROUP, start, "+", PAGE, idle=min_idle_ms)
        theirs: list[Any] = [row["message_id"] for row in rows if _text(cast(bytes, row["consumer"])) != me]
        if theirs:
            client.xclaim(stream, GROUP, me, min_idle_ms, theirs, justid=True)
        if len(rows) < PAGE:
            break
        start = "(" + _text(cast(bytes, rows[-1]["message_id"]))
    summary = client.xpending(stream, GROUP)
    others = [c for c in summary.get("consumers") or [] if _text(c["name"]) != me and int(c["pending"]) > 0]
    return not others


def read_own_pending(client: redis.Redis, stream: str, partition: int, me: str) -> list[Item]:
    """Every entry pending for this consumer on ``stream``, oldest first, with its delivery count."""
    items: list[Item] = []
    last: Any = "0"
    now = time.monotonic()
    while True:
        reply = cast(list[Any], client.xreadgroup(GROUP, me, {stream: last}, count=PAGE))
        entries = reply[0][1] if reply else []
        if not entries:
            break
        for entry_id, fields in entries:
            items.append(Item.from_entry(stream, partition, entry_id, fields, read_at=now))
        last = entries[-1][0]
    if items:
        counts = _delivery_counts(client, stream, me, len(items))
        for item in items:
            item.deliveries = counts.get(item.entry_id, item.deliveries)
    return items


def _delivery_counts(client: redis.Redis, stream: str, me: str, n: int) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    start: Any = "-"
    while len(counts) < n:
        rows = client.xpending_range(stream, GROUP, start, "+", PAGE, consumername=me)
        if not rows:
            break
        for row in rows:
            counts[cast(bytes, row["message_id"])] = int(row["times_delivered"])
        start = "(" + _text(cast(bytes, rows[-1]["message_id"]))
    return counts


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
