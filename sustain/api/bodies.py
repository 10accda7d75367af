"""Read a request body within its limit and the service's in-flight budget, decoding it as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request

from sustain.collector.bodies import ContentDecoder, Hold, InflightBudget, too_large

HOLDS = "sustain.holds"  # scope key: the budget holds of a request, released when it is answered
DEADLINE = "sustain.deadline"  # scope key: when (time.monotonic) a write request must have reached the writer


def deadline_of(request: Request) -> float | None:
    """When this request must have reached the writer (admission control), or None for no deadline."""
    value = request.scope.get(DEADLINE)
    return None if value is None else float(value)


def request_hold(request: Request, budget: InflightBudget) -> Hold:
    """A budget hold that lives as long as the request (the guard middleware releases it)."""
    hold = budget.hold()
    holds: list[Hold] | None = request.scope.get(HOLDS)
    if holds is None:
        raise RuntimeError("read_body needs the RequestGuard middleware of create_app (it releases the budget)")
    holds.append(hold)
    return hold


async def read_body(request: Request, limit: int, budget: InflightBudget) -> bytes:
    """The whole body, gzip or deflate decoded, at most ``limit`` bytes on the wire and decoded.

    Compressed input is decoded chunk by chunk, so a gzip bomb stops at ``limit`` decoded bytes (413) and the
    memory held counts against the in-flight budget until the request is answered (429 past it).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    decoder = ContentDecoder(request.headers.get("content-encoding", "identity"), limit)
    hold = request_hold(request, budget)
    hold.grow(int(declared) if declared and declared.isdigit() else min(limit, 1 << 20))
    body = bytearray()
    wire = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        wire += len(chunk)
        if wire > limit:
            raise too_large(wire, limit)
        body += decoder.feed(chunk)
        hold.grow_to(len(body))
    body += decoder.finish()
    return bytes(body)
