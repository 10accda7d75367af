"""Events repeated across a rollover: an ``_id`` is unique only within one backing index of a data stream.

Every event is written with ``create`` and ``_id`` = its event id, so a repeat into the same backing index is
refused with a 409. Once ILM has rolled the data stream over, the new write index does not know the ids of the
older ones and would store a repeat again (elastic/elasticsearch#44794); the transforms would then count the
event twice, unlike the embedded engine, whose key spans all time. Repeats come from client retries and spool
replays, so they are usually minutes old, but one that straddles a rollover is enough.

:class:`BackingIndices` closes the gap in two steps around every bulk write:

* before: the ids of the batch are looked up in the stream's *older* backing indices (one ``ids`` query; none
  while the stream has a single backing index), and the ones found are not sent;
* after: an event created in a backing index that was not the write index when the lookup ran (a rollover
  happened in between) is looked up in the other backing indices too, and deleted again if it was already
  there. Two writers of the same id meet in the same write index, which refuses the second.

The list of backing indices is cached per model and read again (``GET _data_stream/<name>``) whenever a bulk
item lands in an index it does not hold.

>>> ids_search(["e1", "e2"])["query"]
{'ids': {'values': ['e1', 'e2']}}
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from sustain.backends.elasticsearch.client import MAX_RESULT_WINDOW, NOT_FOUND, ESClient, Operation
from sustain.backends.elasticsearch.config import IndexNames


def ids_search(doc_ids: Sequence[str]) -> dict[str, Any]:
    """The documents with one of ``doc_ids`` as ``_id``, without their source."""
    return {
        "query": {"ids": {"values": list(doc_ids)}},
        "size": len(doc_ids),
        "_source": False,
        "track_total_hits": False,
    }


def delete_operations(found: Iterable[tuple[str, str]]) -> list[Operation]:
    """Bulk ``delete`` operations for (index, _id) pairs."""
    import orjson

    return [(orjson.dumps({"delete": {"_index": index, "_id": doc_id}}) + b"\n",) for index, doc_id in found]


class BackingIndices:
    """The backing indices of each model's events data stream, and the lookups that keep ids unique across them."""

    def __init__(self, client: ESClient, names: IndexNames) -> None:
        self.client = client
        self.names = names
        self._backing: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def backing(self, model: str, *, refresh: bool = False) -> list[str]:
        """The stream's backing indices, oldest first (the last one is the write index)."""
        with self._lock:
            if refresh or model not in self._backing:
                stream = self.names.events(model)
                response = self.client.request(
                    f"listing the backing indices of {stream}",
                    "indices.get_data_stream",
                    name=stream,
                    allow=[NOT_FOUND],
                )
                streams = [] if response is None else response.get("data_streams", [])
                self._backing[model] = [i["index_name"] for s in streams for i in s.get("indices", [])]
            return list(self._backing[model])

    def _found(self, indices: Sequence[str], doc_ids: Sequence[str]) -> set[tuple[str, str]]:
        """(index, _id) of the ``doc_ids`` stored in ``indices``."""
        found: set[tuple[str, str]] = set()
        if not indices or not doc_ids:
            return found
        target = ",".join(indices)
        for start in range(0, len(doc_ids), MAX_RESULT_WINDOW):
            body = ids_search(doc_ids[start : start + MAX_RESULT_WINDOW])
            response = self.client.request(
                "looking up event ids in older backing indices", "search", index=target, body=body, allow=[NOT_FOUND]
            )
            hits = [] if response is None else response["hits"]["hits"]
            found |= {(str(h["_index"]), str(h["_id"])) for h in hits}
        return found

    def stored_before(self, model: str, doc_ids: Sequence[str]) -> set[str]:
        """The ``doc_ids`` already stored in an older backing index (the write index refuses its own repeats)."""
        older = self.backing(model)[:-1]
        return {doc_id for _, doc_id in self._found(older, doc_ids)}

    def repeats_after_rollover(self, model: str, created: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Of the (index, _id) just created, those stored in another backing index too (to delete again).

        Only events created outside the write index the lookup used can be such repeats.
        """
        known = self.backing(model)
        moved = [(index, doc_id) for index, doc_id in created if index not in known[-1:]]
        if not moved:
            return []
        current = self.backing(model, refresh=True)
        repeats = []
        for index in sorted({i for i, _ in moved}):
            ids = [doc_id for i, doc_id in moved if i == index]
            others = [name for name in current if name != index]
            elsewhere = {doc_id for _, doc_id in self._found(others, ids)}
            repeats += [(index, doc_id) for doc_id in ids if doc_id in elsewhere]
        return repeats
