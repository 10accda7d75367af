"""Submit requests to a model's units and wait for their answers.

>>> import fakeredis
>>> client = InferenceClient(fakeredis.FakeRedis(), "churn")
>>> request_id = client.submit({"age": 41, "plan": "pro"}, key="customer-7")
>>> client.result(request_id, timeout=0.05)
Traceback (most recent call last):
...
sustain.inference.errors.ResultTimeout: no answer to request ... of 'churn' within 0.05s
>>> client.close()

A request with a key goes to the key's partition, so the key's requests are answered in the order submitted;
without a key it goes round the partitions. ``submit`` returns once Redis has the request. Units tell the
client which requests they answered through a list of its own (``aiu:{model}:reply:{client id}``), so ``result`` waits
on that list instead of polling, and still looks at the answer itself at least once a second.

With ``max_backlog``, a submit to a partition holding that many unanswered requests raises
:class:`~sustain.errors.Overloaded` instead of queueing (the units cannot keep up).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis

from sustain.collector.logger import uuid7
from sustain.errors import Overloaded
from sustain.inference.errors import InferenceFailed, QueueUnavailable, ResultTimeout
from sustain.inference.keys import ModelKeys, partition_of
from sustain.inference.messages import Answer, decode_answer, request_fields
from sustain.inference.streams import check_groups, partitions_from, queue_groups, queue_meta

# XADD unless the stream already holds ARGV[1] entries; the fields follow as name, value pairs.
BOUNDED_XADD = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""
WAKE_EVERY = 1.0  # look at the answer itself at least this often, whatever the notifications say
MAX_NOTED = 100_000


class ClientCore:
    """What the sync and asyncio clients share: where a request goes, what it holds, what its answer means."""

    def __init__(self, model: str, *, client_id: str | None, notify: bool, max_backlog: int | None) -> None:
        self.keys = ModelKeys(model)
        self.id = client_id or f"{os.getpid()}-{os.urandom(6).hex()}"
        self.notify = notify
        self.max_backlog = max_backlog
        self.partitions = 0
        self._round = itertools.count()
        self._noted: set[str] = set()

    @property
    def model(self) -> str:
        return self.keys.model

    def request(self, payload: Mapping[str, Any], key: str | None) -> tuple[str, str, dict[str, bytes | str]]:
        """(request id, stream, fields) of a new request."""
        request_id = uuid7()
        partition = partition_of(key, self.partitions) if key is not None else next(self._round) % self.partitions
        fields = request_fields(request_id, payload, key=key, reply_to=self.id if self.notify else None)
        return request_id, self.keys.stream(partition), fields

    def bounded_args(self, fields: Mapping[str, bytes | str]) -> list[Any]:
        return [self.max_backlog, *itertools.chain.from_iterable(fields.items())]

    def overloaded(self, stream: str) -> Overloaded:
        return Overloaded(
            f"{stream} holds {self.max_backlog} unanswered requests: the units of {self.model!r} are behind"
        )

    def note(self, ids: Iterable[bytes | str]) -> None:
        if len(self._noted) > MAX_NOTED:
            self._noted.clear()  # nobody waits for those: result() still finds answers by looking
        self._noted.update(i.decode() if isinstance(i, bytes) else i for i in ids)

    def timeout(self, request_id: str, timeout: float) -> ResultTimeout:
        return ResultTimeout(f"no answer to request {request_id} of {self.model!r} within {timeout:g}s")


def unwrap(request_id: str, answer: Answer) -> Any:
    if answer.error is not None:
        raise InferenceFailed(f"request {request_id} failed: {answer.error}")
    return answer.prediction


class InferenceClient(ClientCore):
    """A synchronous client (thread-safe). ``target`` is a Redis URL or a redis-py client."""

    def __init__(
        self,
        target: str | redis.Redis,
        model: str,
        *,
        partitions: int | None = None,
        client_id: str | None = None,
        notify: bool = True,
        max_backlog: int | None = None,
    ) -> None:
        super().__init__(model, client_id=client_id, notify=notify, max_backlog=max_backlog)
        self.redis = redis.Redis.from_url(target, socket_connect_timeout=5) if isinstance(target, str) else target
        self._owns = isinstance(target, str)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._popping = False
        self._bounded = self.redis.register_script(BOUNDED_XADD)
        with _translated("register the model"):
            pipe = self.redis.pipeline(transaction=False)
            queue_meta(pipe, self.keys, partitions)
            self.partitions = partitions_from(pipe.execute(), self.keys, partitions)
            pipe = self.redis.pipeline(transaction=False)
            queue_groups(pipe, self.keys, self.partitions)
            check_groups(pipe.execute(raise_on_error=False), self.keys)

    # -- submitting ---------------------------------------------------------------------------------------
    def submit(self, payload: Mapping[str, Any], key: str | None = None) -> str:
        """Queue one request (a mapping of field to value); return its id."""
        request_id, stream, fields = self.request(payload, key)
        with _translated("submit a request"):
            if self.max_backlog is None:
                self.redis.xadd(stream, fields)  # type: ignore[arg-type]
            elif self._bounded(keys=[stream], args=self.bounded_args(fields)) is None:
                raise self.overloaded(stream)
        return request_id

    def submit_many(self, payloads: Sequence[Mapping[str, Any]], keys: Sequence[str | None] | None = None) -> list[str]:
        """Queue many requests in one round trip (no backlog bound); return their ids in order."""
        requests = [self.request(p, None if keys is None else keys[i]) for i, p in enumerate(payloads)]
        with _translated("submit requests"):
            pipe = self.redis.pipeline(transaction=False)
            for _, stream, fields in requests:
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            pipe.execute()
        return [request_id for request_id, _, _ in requests]

    # -- waiting --------------------------------------------------------------------------------------------
    def result(self, request_id: str, timeout: float = 30.0) -> Any:
        """The prediction for ``request_id``; InferenceFailed if it was dead-lettered, ResultTimeout if no
        answer came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with _translated("read an answer"):
                raw = self.redis.get(self.keys.result(request_id))
            if raw is not None:
                self._noted.discard(request_id)
                return unwrap(request_id, decode_answer(cast(bytes, raw)))
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.timeout(request_id, timeout)
            self._wait_for(request_id, min(left, WAKE_EVERY))

    def predict(self, payload: Mapping[str, Any], key: str | None = None, timeout: float = 30.0) -> Any:
        """Submit and wait: the prediction for one request."""
        return self.result(self.submit(payload, key), timeout)

    def answers(self, request_ids: Sequence[str], timeout: float = 60.0) -> dict[str, Answer]:
        """The answers to many requests, as they come, until all are there or ``timeout`` passes (then the
        mapping holds those answered)."""
        deadline = time.monotonic() + timeout
        waiting = set(request_ids)
        found: dict[str, Answer] = {}
        look = list(waiting)
        while waiting:
            for start in range(0, len(look), 1000):
                chunk = look[start : start + 1000]
                with _translated("read answers"):
                    values = self.redis.mget([self.keys.result(i) for i in chunk])
                for request_id, raw in zip(chunk, values, strict=True):
                    if raw is not None and request_id in waiting:
                        found[request_id] = decode_answer(raw)
                        waiting.discard(request_id)
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            noted = self._pop_notes(min(left, WAKE_EVERY))
            look = [i for i in noted if i in waiting] if noted else list(waiting)
        self._noted.difference_update(found)
        return found

    def _wait_for(self, request_id: str, seconds: float) -> None:
        """Wait until ``request_id`` may be answered: one thread pops the notifications, the others sleep."""
        with self._changed:
            if request_id in self._noted:
                return
            if self._popping:
                self._changed.wait(seconds)
                return
            self._popping = True
        try:
            self.note(self._pop_notes(seconds))
        finally:
            with self._changed:
                self._popping = False
                self._changed.notify_all()

    def _pop_notes(self, seconds: float) -> list[str]:
        key = self.keys.reply(self.id)
        with _translated("wait for answers"):
            first = self.redis.blpop([key], timeout=max(seconds, 0.01))
            if first is None:
                return []
            more = self.redis.lpop(key, 10_000) or []
        return [_text(first[1]), *(_text(i) for i in cast(list[bytes], more))]

    def close(self) -> None:
        if self._owns:
            self.redis.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _translated:
    """Turn redis-py errors into QueueUnavailable naming what was being done."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, redis.RedisError):
            raise QueueUnavailable(f"cannot {self.doing}: Redis failed ({exc})") from exc
