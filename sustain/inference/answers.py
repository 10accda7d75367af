"""Writing answers: each request is answered once, its client is told, and only then is its entry acknowledged.

One script call per batch, atomic on the server: ``SET aiu:{model}:res:{id} answer NX EX ttl`` for every item
(a redelivered item that was already answered keeps its first answer), ``RPUSH`` of the answered ids to each
waiting client's list (kept to its last 100,000 ids, expiring with the answers), then ``XACK`` and ``XDEL`` of
the entries. A unit that dies before the call leaves its entries pending, and the unit that takes them over
answers them; one that dies after it has nothing left to do. Deleting acknowledged entries keeps each stream
as long as its backlog, and (deleted only once acknowledged) keeps ``XINFO GROUPS``'s ``lag`` exact.

One script call instead of ``SET`` commands: redis-py spends about 25 µs packing each command, more than Redis
spends running it, and a unit does this for every request.

A dead letter is an ``XADD`` to ``aiu:{model}:dlq`` with the request and its error, the error as its answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis

from sustain.inference.keys import GROUP, ModelKeys
from sustain.inference.messages import Item, encode_answer

# KEYS: n answer keys, then s streams, then c reply lists.
# ARGV: ttl, group, n, s, c, the n answers, then per stream its id count and ids, then per list its count and ids.
ANSWER = """
local ttl, group = tonumber(ARGV[1]), ARGV[2]
local n, s, c = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local first = {}
for i = 1, n do
  first[i] = redis.call('SET', KEYS[i], ARGV[5 + i], 'NX', 'EX', ttl) and 1 or 0
end
local a = 6 + n
for k = n + 1, n + s + c do
  local count = tonumber(ARGV[a])
  local ids = {}
  for j = 1, count do ids[j] = ARGV[a + j] end
  a = a + count + 1
  if k <= n + s then
    redis.call('XACK', KEYS[k], group, unpack(ids))
    redis.call('XDEL', KEYS[k], unpack(ids))
  else
    redis.call('RPUSH', KEYS[k], unpack(ids))
    redis.call('LTRIM', KEYS[k], -100000, -1)
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end
return first
"""


class Answers:
    def __init__(self, client: redis.Redis, keys: ModelKeys, *, ttl: int, dead_letter_maxlen: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl = ttl
        self.dead_letter_maxlen = dead_letter_maxlen
        self._answer = client.register_script(ANSWER)

    def answer(self, items: Sequence[Item], predictions: Sequence[Any]) -> list[bool]:
        """Store each prediction unless the request was answered before; True for the items answered now."""
        answers = [encode_answer(prediction=p) for p in predictions]
        pipe = self.client.pipeline(transaction=False)
        self._store(pipe, items, answers)
        return self._answered_now(items, pipe.execute()[0])

    def dead_letter(self, items: Sequence[Item], errors: Sequence[str]) -> list[bool]:
        """Move items to the dead-letter stream with their error, which is also their answer."""
        pipe = self.client.pipeline(transaction=False)
        for item, error in zip(items, errors, strict=True):
            fields: dict[Any, Any] = {
                "id": item.request_id,
                "p": item.raw_payload,
                "error": error,
                "deliveries": item.deliveries,
                "stream": item.stream,
                "entry": item.entry_id,
            }
            if item.key is not None:
                fields["k"] = item.key
            pipe.xadd(self.keys.dead_letters, fields, maxlen=self.dead_letter_maxlen, approximate=True)
        self._store(pipe, items, [encode_answer(error=e) for e in errors])
        return self._answered_now(items, pipe.execute()[-1])

    def _store(self, pipe: Any, items: Sequence[Item], answers: Sequence[bytes]) -> None:
        answered = [(item, answer) for item, answer in zip(items, answers, strict=True) if item.request_id]
        waiting: dict[str, list[str]] = defaultdict(list)
        entries: dict[str, list[bytes]] = defaultdict(list)
        for item in items:
            if item.reply_to and item.request_id:
                waiting[item.reply_to].append(item.request_id)
            entries[item.stream].append(item.entry_id)
        keys: list[Any] = [self.keys.result(item.request_id) for item, _ in answered]
        args: list[Any] = [self.ttl, GROUP, len(answered), len(entries), len(waiting)]
        args += [answer for _, answer in answered]
        for stream, entry_ids in entries.items():
            keys.append(stream)
            args += [len(entry_ids), *entry_ids]
        for client_id, ids in waiting.items():
            keys.append(self.keys.reply(client_id))
            args += [len(ids), *ids]
        self._answer(keys=keys, args=args, client=pipe)

    @staticmethod
    def _answered_now(items: Sequence[Item], reply: Sequence[int]) -> list[bool]:
        first = iter(reply)
        return [bool(next(first)) if item.request_id else False for item in items]
