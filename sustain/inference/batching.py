"""The items a unit holds (read, not yet answered), and how a batch is taken from them.

An item is *waiting* until a batch takes it, then *in flight* until its batch is done (answered, failed or
abandoned). At most one item per key is in flight, the oldest one of that key, so a key's items reach the
backend one after the other in the order they were submitted, however many batches are at the backend at
once. Items without a key have no such limit.

>>> from sustain.inference.messages import Item
>>> def item(n, key):
...     return Item("s", 0, b"%d-0" % n, f"r{n}", key, b"{}", None, read_at=float(n), payload={})
>>> buffer = Buffer()
>>> buffer.add([item(1, "a"), item(2, "a"), item(3, "b"), item(4, None)])
>>> buffer.ready, buffer.oldest_ready_at
(3, 1.0)
>>> first = buffer.take(10)
>>> [i.request_id for i in first], buffer.ready, len(buffer)
(['r1', 'r3', 'r4'], 0, 4)
>>> buffer.done(first)
>>> [i.request_id for i in buffer.take(10)]
['r2']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from sustain.inference.messages import Item


class Buffer:
    """Waiting items in the order they were read, the keys in flight, and the counts a batcher and a draining
    partition need."""

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._waiting_per_key: Counter[object] = Counter()
        self._in_flight: set[object] = set()
        self._ready = 0
        self._per_partition: Counter[int] = Counter()  # waiting and in flight

    def add(self, items: Iterable[Item]) -> None:
        for item in items:
            key = item.order_key
            if not self._waiting_per_key[key] and key not in self._in_flight:
                self._ready += 1
            self._waiting_per_key[key] += 1
            self._items.append(item)
            self._per_partition[item.partition] += 1

    def __len__(self) -> int:
        """Items held: waiting or in flight."""
        return sum(self._per_partition.values())

    @property
    def waiting(self) -> int:
        return len(self._items)

    @property
    def ready(self) -> int:
        """How many items a batch could take now: one per key that has none in flight."""
        return self._ready

    @property
    def oldest_ready_at(self) -> float | None:
        """When the oldest item a batch could take now was queued (or read, when that is not known)."""
        if not self._ready:
            return None
        for item in self._items:
            if item.order_key not in self._in_flight:
                return item.queued_at
        return None

    def count(self, partition: int) -> int:
        return self._per_partition[partition]

    def take(self, n: int) -> list[Item]:
        """The ``n`` oldest ready items (at most one per key): from now on in flight, until :meth:`done`."""
        batch: list[Item] = []
        rest: list[Item] = []
        taken = self._in_flight
        items = self._items
        for position, item in enumerate(items):
            key = item.order_key
            if key in taken:
                rest.append(item)
                continue
            taken.add(key)
            batch.append(item)
            self._ready -= 1
            left = self._waiting_per_key[key] - 1
            if left:
                self._waiting_per_key[key] = left
            else:
                del self._waiting_per_key[key]
            if len(batch) == n:
                rest.extend(items[position + 1 :])
                break
        self._items = rest
        return batch

    def done(self, batch: Sequence[Item]) -> None:
        """A batch is finished with: its keys may send their next items."""
        for item in batch:
            key = item.order_key
            self._in_flight.discard(key)
            if self._waiting_per_key[key]:
                self._ready += 1
            self._forget_partition(item.partition)

    def requeue(self, batch: Sequence[Item]) -> None:
        """A batch could not be finished (Redis failed): its items wait again, first, as the oldest of their keys."""
        for item in batch:
            self._in_flight.discard(item.order_key)
            self._waiting_per_key[item.order_key] += 1
            self._ready += 1
        self._items[:0] = batch

    def drop_partition(self, partition: int) -> list[Item]:
        """Remove the waiting items of a partition whose lease was lost (another unit will answer them); its
        items in flight stay counted until their batch is done."""
        dropped = [i for i in self._items if i.partition == partition]
        if not dropped:
            return dropped
        self._items = [i for i in self._items if i.partition != partition]
        for item in dropped:
            key = item.order_key
            left = self._waiting_per_key[key] - 1
            if left:
                self._waiting_per_key[key] = left
            else:
                del self._waiting_per_key[key]
                if key not in self._in_flight:
                    self._ready -= 1
            self._forget_partition(partition)
        return dropped

    def _forget_partition(self, partition: int) -> None:
        left = self._per_partition[partition] - 1
        if left > 0:
            self._per_partition[partition] = left
        else:
            del self._per_partition[partition]
