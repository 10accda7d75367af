"""Writing answers: each request is answered once, its client is told, and only then is its entry acknowledged.

One pipeline per batch: ``SET aiu:res:{id} answer NX EX ttl`` for every item (a redelivered item that was
already answered keeps its first answer), ``RPUSH`` of the answered ids to each waiting client's list, then
``XACK`` and ``XDEL`` of the entries. Redis runs a pipeline's commands in order, so an entry is never
acknowledged before its answer is stored; a unit that dies in between leaves the entry pending, and the unit
that takes it over finds the answer already there. Deleting acknowledged entries keeps each stream as long as
its backlog, and (deleted only once acknowledged) keeps ``XINFO GROUPS``'s ``lag`` exact.

A dead letter is an ``XADD`` to ``aiu:{model}:dlq`` with the request and its error, and the error as the answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis

from sustain.inference.keys import GROUP, ModelKeys, reply_key, result_key
from sustain.inference.messages import Item, encode_answer


class Answers:
    def __init__(self, client: redis.Redis, keys: ModelKeys, *, ttl: int, dead_letter_maxlen: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl = ttl
        self.dead_letter_maxlen = dead_letter_maxlen

    def answer(self, items: Sequence[Item], predictions: Sequence[Any]) -> list[bool]:
        """Store each prediction unless the request was answered before; True for the items answered now."""
        pipe = self.client.pipeline(transaction=False)
        for item, prediction in zip(items, predictions, strict=True):
            pipe.set(result_key(item.request_id), encode_answer(prediction=prediction), nx=True, ex=self.ttl)
        self._notify_and_ack(pipe, items)
        replies = pipe.execute()
        return [bool(reply) for reply in replies[: len(items)]]

    def dead_letter(self, items: Sequence[Item], errors: Sequence[str]) -> list[bool]:
        """Move items to the dead-letter stream with their error, which is also their answer."""
        pipe = self.client.pipeline(transaction=False)
        for item, error in zip(items, errors, strict=True):
            if item.request_id:
                pipe.set(result_key(item.request_id), encode_answer(error=error), nx=True, ex=self.ttl)
        for item, error in zip(items, errors, strict=True):
            fields: dict[str, Any] = {
                "id": item.request_id,
                "p": item.raw_payload,
                "error": error,
                "deliveries": item.deliveries,
                "stream": item.stream,
                "entry": item.entry_id,
            }
            if item.key is not None:
                fields["k"] = item.key
            pipe.xadd(self.keys.dead_letters, fields, maxlen=self.dead_letter_maxlen, approximate=True)  # type: ignore[arg-type]
        self._notify_and_ack(pipe, items)
        replies = pipe.execute()
        answered = iter(replies)
        return [bool(next(answered)) if item.request_id else False for item in items]

    def _notify_and_ack(self, pipe: redis.client.Pipeline, items: Sequence[Item]) -> None:
        waiting: dict[str, list[str]] = defaultdict(list)
        entries: dict[str, list[bytes]] = defaultdict(list)
        for item in items:
            if item.reply_to and item.request_id:
                waiting[item.reply_to].append(item.request_id)
            entries[item.stream].append(item.entry_id)
        for client_id, ids in waiting.items():
            pipe.rpush(reply_key(client_id), *ids)
            pipe.expire(reply_key(client_id), self.ttl)
        for stream, entry_ids in entries.items():
            pipe.xack(stream, GROUP, *entry_ids)
            pipe.xdel(stream, *entry_ids)
