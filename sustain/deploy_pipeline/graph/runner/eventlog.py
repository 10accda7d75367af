"""Request logging as Seldon Core v1's executor does it (``executor/logger``): CloudEvents in HTTP binary mode.

Each logged payload becomes one POST: the body is the raw payload, the envelope is in headers (the
CloudEvents Go SDK v1 writes them; Go canonicalises their case)::

    Ce-Id: <a new UUID per event>            Ce-Specversion: 1.0
    Ce-Type: io.seldon.serving.inference.request | ...inference.response | io.seldon.serving.feedback
    Ce-Source: <the executor's URL>          Ce-Time: <RFC 3339, nanoseconds, UTC>
    Ce-Modelid: <the graph node>             Ce-Requestid: <Seldon-Puid, the same for every node of a request>
    Ce-Inferenceservicename: <deployment>    Ce-Namespace: <namespace>
    Ce-Endpoint: <predictor>                 Ce-Protocol: seldon | v2
    Content-Type: <the payload's>

Like the executor, logging never slows a prediction: payloads go on a bounded queue (10,000) drained by five
workers with a 60 s HTTP timeout; a failed POST is logged and dropped, and a full queue drops after 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

log = logging.getLogger("sustain.graph.eventlog")

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"
QUEUE_SIZE = 10_000
WORKERS = 5
WRITE_TIMEOUT = 2.0
HTTP_TIMEOUT = 60.0


def rfc3339_nano(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped, ``Z`` for the zone."""
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


@dataclass(frozen=True)
class LogRequest:
    url: str
    body: bytes
    content_type: str
    ce_type: str
    model_id: str
    request_id: str
    endpoint: str


class EventLogger:
    """Sends CloudEvents for one deployment (``service`` in ``namespace``) from ``source``."""

    def __init__(self, service: str, namespace: str, protocol: str, source: str, workers: int = WORKERS) -> None:
        self.service = service
        self.namespace = namespace
        self.protocol = protocol
        self.source = source
        self.queue: asyncio.Queue[LogRequest] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.sent = 0
        self.failed = 0
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]

    async def log(self, request: LogRequest) -> None:
        try:
            await asyncio.wait_for(self.queue.put(request), WRITE_TIMEOUT)
        except TimeoutError:
            self.failed += 1
            log.error("timed out waiting to queue log request: buffer is full")

    def headers(self, r: LogRequest) -> dict[str, str]:
        return {
            "Ce-Id": str(uuid.uuid4()),
            "Ce-Specversion": "1.0",
            "Ce-Type": r.ce_type,
            "Ce-Source": self.source,
            "Ce-Time": rfc3339_nano(datetime.now(UTC)),
            "Ce-Modelid": r.model_id,
            "Ce-Requestid": r.request_id,
            "Ce-Inferenceservicename": self.service,
            "Ce-Namespace": self.namespace,
            "Ce-Endpoint": r.endpoint,
            "Ce-Protocol": self.protocol,
            "Content-Type": r.content_type,
        }

    async def _work(self) -> None:
        assert self._client is not None
        while True:
            r = await self.queue.get()
            try:
                reply = await self._client.post(r.url, content=r.body, headers=self.headers(r))
                if reply.status_code >= 300:
                    self.failed += 1
                    log.error("failed to send cloudevent log to %s: %s %s", r.url, reply.status_code, reply.text[:300])
                else:
                    self.sent += 1
            except httpx.HTTPError as exc:
                self.failed += 1
                log.error("failed to send cloudevent log to %s: %s", r.url, exc)
            finally:
                self.queue.task_done()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued event was sent (or failed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)

    async def close(self, timeout: float = 30.0) -> None:
        await self.drain(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
