"""The service's front door, one ASGI middleware: who may be answered, how much work is admitted, and the
release of every request's share of the in-flight body budget once it is answered.

* **Loopback only without tokens.** With no token configured, a request that arrived on a network address
  other than loopback is refused (403), however the app was started (``sustain serve`` refuses to bind such an
  address at all; this covers ``uvicorn --factory sustain.api.app:create_app --host 0.0.0.0``).
* **Admission control** (:class:`Admission`) on the requests that change data (POST, PUT, DELETE, PATCH):
  each is answered within ``max_answer_seconds`` or refused with 429 and ``Retry-After``, at once when the
  service is already behind, instead of waiting behind everything that arrived before it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sustain.api.bodies import DEADLINE, HOLDS
from sustain.api.responses import json_response
from sustain.collector.bodies import Hold
from sustain.collector.metrics import ServiceMetrics
from sustain.settings import Settings, is_loopback

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def arrived_beyond_loopback(scope: Scope) -> bool:
    """True when the request came in on a network address that is not loopback.

    ``scope["server"]`` is the local address of the connection; an in-process transport (the test client's
    ``testserver``) or a Unix socket has no IP address there and counts as local.
    """
    server = scope.get("server")
    if not server:
        return False
    host = str(server[0])
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not is_loopback(host.strip("[]"))


class Admission:
    """Admission control for the requests that change data.

    * at most ``limit`` are worked on at once; one more gets 429 at once;
    * each gets a deadline, ``stage_seconds`` after it arrived, by which it must have reached the writer (the
      collector refuses it with 429 past it, having stored nothing);
    * once the service answered 429 (it is behind: a deadline passed, the writer's queue is full), for
      ``SHED_SECONDS`` new requests are refused at once while ``FLOOR`` are still being worked on, so that the
      requests it does take are answered within the bound instead of all of them waiting.
    """

    SHED_SECONDS = 1.0
    FLOOR = 4

    def __init__(self, limit: int, stage_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.stage_seconds = stage_seconds
        self.clock = clock
        self.active = 0
        self.refused = 0
        self.behind_until = 0.0

    def enter(self) -> bool:
        # The event loop is single-threaded: no lock needed between the tests and the increment.
        if self.active >= self.limit or (self.active >= self.FLOOR and self.clock() < self.behind_until):
            self.refused += 1
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1

    def deadline(self) -> float:
        return self.clock() + self.stage_seconds

    def behind(self) -> None:
        self.behind_until = self.clock() + self.SHED_SECONDS


async def _drain(receive: Receive, limit: int = 1 << 20) -> None:
    """Read (and drop) up to ``limit`` bytes of the request body, so that answering before reading it does not
    reset the connection under a client still sending."""
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: ServiceMetrics, admission: Admission) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.settings.auth_enabled and arrived_beyond_loopback(scope):
            self.metrics.refused.labels("auth").inc()
            message = (
                "this service has no tokens configured, so it answers on loopback only; set SUSTAIN_WRITE_TOKENS, "
                "SUSTAIN_READ_TOKENS and SUSTAIN_ADMIN_TOKENS to serve other addresses"
            )
            await _drain(receive)
            await json_response(403, {"error": {"code": "forbidden", "message": message}})(scope, receive, send)
            return
        counted = scope["method"] in WRITES
        if counted and not self.admission.enter():
            self.metrics.refused.labels("overloaded").inc()
            message = "the service is at capacity for requests that change data; retry in a second"
            await _drain(receive)
            body = {"error": {"code": "overloaded", "message": message}}
            await json_response(429, body, {"Retry-After": "1"})(scope, receive, send)
            return
        holds: list[Hold] = []
        scope[HOLDS] = holds
        if counted:
            scope[DEADLINE] = self.admission.deadline()

        async def watch(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 429:
                self.admission.behind()  # refused inside: a deadline passed or the writer's queue is full
            await send(message)

        try:
            await self.app(scope, receive, watch if counted else send)
        finally:
            for hold in holds:
                hold.release()
            if counted:
                self.admission.leave()
