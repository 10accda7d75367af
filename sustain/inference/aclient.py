"""The asyncio client: the same requests, streams and answers as :class:`InferenceClient`, with ``await``.

>>> import asyncio, fakeredis
>>> async def main():
...     client = await AsyncInferenceClient.connect(fakeredis.FakeAsyncRedis(), "churn")
...     request_id = await client.submit({"age": 41}, key="customer-7")
...     try:
...         await client.result(request_id, timeout=0.05)
...     finally:
...         await client.close()
>>> asyncio.run(main())
Traceback (most recent call last):
...
sustain.inference.errors.ResultTimeout: no answer to request ... of 'churn' within 0.05s
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
import redis.asyncio

from sustain.inference.client import BOUNDED_XADD, WAKE_EVERY, ClientCore, unwrap
from sustain.inference.errors import QueueUnavailable
from sustain.inference.messages import decode_answer
from sustain.inference.streams import check_groups, partitions_from, queue_groups, queue_meta


class AsyncInferenceClient(ClientCore):
    """Make one with ``await AsyncInferenceClient.connect(url_or_client, model)``."""

    def __init__(
        self,
        target: redis.asyncio.Redis,
        model: str,
        *,
        client_id: str | None = None,
        notify: bool = True,
        max_backlog: int | None = None,
        owns: bool = False,
    ) -> None:
        super().__init__(model, client_id=client_id, notify=notify, max_backlog=max_backlog)
        self.redis = target
        self._owns = owns
        self._bounded = target.register_script(BOUNDED_XADD)
        self._changed = asyncio.Condition()
        self._popping = False

    @classmethod
    async def connect(
        cls,
        target: str | redis.asyncio.Redis,
        model: str,
        *,
        partitions: int | None = None,
        client_id: str | None = None,
        notify: bool = True,
        max_backlog: int | None = None,
    ) -> AsyncInferenceClient:
        connection = (
            redis.asyncio.Redis.from_url(target, socket_connect_timeout=5) if isinstance(target, str) else target
        )
        client = cls(
            connection, model, client_id=client_id, notify=notify, max_backlog=max_backlog, owns=isinstance(target, str)
        )
        try:
            pipe = connection.pipeline(transaction=False)
            queue_meta(pipe, client.keys, partitions)
            client.partitions = partitions_from(await pipe.execute(), client.keys, partitions)
            pipe = connection.pipeline(transaction=False)
            queue_groups(pipe, client.keys, client.partitions)
            check_groups(await pipe.execute(raise_on_error=False), client.keys)
        except redis.RedisError as exc:
            raise QueueUnavailable(f"cannot register model {model!r}: Redis failed ({exc})") from exc
        return client

    async def submit(self, payload: Mapping[str, Any], key: str | None = None) -> str:
        request_id, stream, fields = self.request(payload, key)
        try:
            if self.max_backlog is None:
                await self.redis.xadd(stream, fields)  # type: ignore[arg-type]
            elif await self._bounded(keys=[stream], args=self.bounded_args(fields)) is None:
                raise self.overloaded(stream)
        except redis.RedisError as exc:
            raise QueueUnavailable(f"cannot submit a request: Redis failed ({exc})") from exc
        return request_id

    async def submit_many(
        self, payloads: Sequence[Mapping[str, Any]], keys: Sequence[str | None] | None = None
    ) -> list[str]:
        requests = [self.request(p, None if keys is None else keys[i]) for i, p in enumerate(payloads)]
        try:
            pipe = self.redis.pipeline(transaction=False)
            for _, stream, fields in requests:
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            await pipe.execute()
        except redis.RedisError as exc:
            raise QueueUnavailable(f"cannot submit requests: Redis failed ({exc})") from exc
        return [request_id for request_id, _, _ in requests]

    async def result(self, request_id: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = await self.redis.get(self.keys.result(request_id))
            except redis.RedisError as exc:
                raise QueueUnavailable(f"cannot read an answer: Redis failed ({exc})") from exc
            if raw is not None:
                self._noted.discard(request_id)
                return unwrap(request_id, decode_answer(cast(bytes, raw)))
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.timeout(request_id, timeout)
            await self._wait_for(request_id, min(left, WAKE_EVERY))

    async def predict(self, payload: Mapping[str, Any], key: str | None = None, timeout: float = 30.0) -> Any:
        return await self.result(await self.submit(payload, key), timeout)

    async def _wait_for(self, request_id: str, seconds: float) -> None:
        async with self._changed:
            if request_id in self._noted:
                return
            if self._popping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), seconds)
                return
            self._popping = True
        try:
            key = self.keys.reply(self.id)
            first = await self.redis.blpop([key], timeout=max(seconds, 0.01))
            if first is not None:
                more = await self.redis.lpop(key, 10_000) or []
                self.note([first[1], *cast(list[bytes], more)])
        except redis.RedisError as exc:
            raise QueueUnavailable(f"cannot wait for answers: Redis failed ({exc})") from exc
        finally:
            async with self._changed:
                self._popping = False
                self._changed.notify_all()

    async def close(self) -> None:
        if self._owns:
            await self.redis.aclose()

    async def __aenter__(self) -> AsyncInferenceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
