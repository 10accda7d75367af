"""The service's front door, one ASGI middleware: who may be answered, how much work is admitted, and the
release of every request's share of the in-flight body budget once it is answered.

* **Loopback only without tokens.** With no token configured, a request that arrived on a network address
  other than loopback is refused (403), however the app was started (``sustain serve`` refuses to bind such an
  address at all; this covers ``uvicorn --factory sustain.api.app:create_app --host 0.0.0.0``).
* **Admission control.** At most ``max_write_requests`` requests that change data (POST, PUT, DELETE, PATCH)
  are worked on at once; one more gets 429 with ``Retry-After`` at once, before its body is read. With the
  writer's own bound on queued work (``max_queue_seconds``), an admitted request is answered within seconds
  instead of waiting behind everything that arrived before it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sustain.api.bodies import HOLDS
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
    """Counts the data-changing requests being worked on; refuses one past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0

    def enter(self) -> bool:
        # The event loop is single-threaded: no lock needed between the test and the increment.
        if self.active >= self.limit:
            self.refused += 1
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


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
            await json_response(403, {"error": {"code": "forbidden", "message": message}})(scope, receive, send)
            return
        counted = scope["method"] in WRITES
        if counted and not self.admission.enter():
            self.metrics.refused.labels("overloaded").inc()
            message = (
                f"the service is already working on {self.admission.limit} requests that change data; retry in a second"
            )
            body = {"error": {"code": "overloaded", "message": message}}
            await json_response(429, body, {"Retry-After": "1"})(scope, receive, send)
            return
        holds: list[Hold] = []
        scope[HOLDS] = holds
        try:
            await self.app(scope, receive, send)
        finally:
            for hold in holds:
                hold.release()
            if counted:
                self.admission.leave()
