"""Read a request body within its limit and the service's in-flight budget, then decode it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request

from sustain.collector.bodies import InflightBudget, decode_content, too_large


async def read_body(request: Request, limit: int, budget: InflightBudget) -> bytes:
    """The whole body (gzip or deflate decoded), enforcing ``limit`` on the wire and decoded."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    with budget.reserve(int(declared) if declared and declared.isdigit() else limit // 4):
        chunks: list[bytes] = []
        size = 0
        stream: AsyncIterator[bytes] = request.stream()
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)
        body = b"".join(chunks)
    return decode_content(body, request.headers.get("content-encoding", "identity"), limit)
