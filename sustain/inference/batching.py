"""The items a unit has read and not yet answered, and how a batch is taken from them.

A batch holds at most one item per key, the oldest one of that key, so a key's items reach the backend one
after the other in the order they were submitted. Items without a key have no such limit.

>>> from sustain.inference.messages import Item
>>> def item(n, key):
...     return Item("s", 0, b"%d-0" % n, f"r{n}", key, b"{}", None, read_at=float(n), payload={})
>>> buffer = Buffer()
>>> buffer.add([item(1, "a"), item(2, "a"), item(3, "b"), item(4, None)])
>>> buffer.ready, buffer.oldest_read_at
(3, 1.0)
>>> [i.request_id for i in buffer.take(10)]
['r1', 'r3', 'r4']
>>> [i.request_id for i in buffer.take(10)]
['r2']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sustain.inference.messages import Item


class Buffer:
    """Items in the order they were read, with the counts a batcher and a draining partition need."""

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._per_key: Counter[object] = Counter()
        self._per_partition: Counter[int] = Counter()

    def add(self, items: Iterable[Item]) -> None:
        for item in items:
            self._items.append(item)
            self._per_key[item.order_key] += 1
            self._per_partition[item.partition] += 1

    def __len__(self) -> int:
        return len(self._items)

    @property
    def ready(self) -> int:
        """How many items a batch could take now: one per distinct key."""
        return len(self._per_key)

    @property
    def oldest_read_at(self) -> float | None:
        """When the oldest item was read (it is always ready: nothing of its key came before it)."""
        return self._items[0].read_at if self._items else None

    def count(self, partition: int) -> int:
        return self._per_partition[partition]

    def take(self, n: int) -> list[Item]:
        """The ``n`` oldest ready items (at most one per key), removed from the buffer."""
        batch: list[Item] = []
        rest: list[Item] = []
        seen: set[object] = set()
        items = self._items
        for position, item in enumerate(items):
            key = item.order_key
            if key in seen:
                rest.append(item)
                continue
            seen.add(key)
            batch.append(item)
            if len(batch) == n:
                rest.extend(items[position + 1 :])
                break
        self._items = rest
        self._forget(batch)
        return batch

    def drop_partition(self, partition: int) -> list[Item]:
        """Remove every item of a partition whose lease was lost (another unit will answer them)."""
        dropped = [i for i in self._items if i.partition == partition]
        if dropped:
            self._items = [i for i in self._items if i.partition != partition]
            self._forget(dropped)
        return dropped

    def _forget(self, items: list[Item]) -> None:
        for item in items:
            key = item.order_key
            left = self._per_key[key] - 1
            if left:
                self._per_key[key] = left
            else:
                del self._per_key[key]
            part = self._per_partition[item.partition] - 1
            if part:
                self._per_partition[item.partition] = part
            else:
                del self._per_partition[item.partition]
