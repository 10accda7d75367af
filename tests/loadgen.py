"""A lean HTTP/1.1 load generator for the overload test and the soak benchmark.

A Python HTTP client costs about as much CPU per request as the service spends on it, so on a small machine
httpx measures its own queueing rather than the service's answer times. Here each request is bytes built
once, sent on a kept-alive asyncio connection, and the answer is read by its Content-Length: the client
stays a small fraction of the load it offers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def spec_yaml(model: str, extra: str = "") -> str:
    """The monitor config the overload test and the soak load: one model, eight numeric features and a
    probability, one-minute windows; ``extra`` is more YAML for the model (``retention: {...}``)."""
    features = ", ".join(f"{name}: numeric" for name in "abcdefgh")
    return (
        f"models:\n  - name: {model}\n"
        f"    features: {{{features}}}\n"
        "    outputs: {score: {kind: probability}}\n"
        "    windows: [1m]\n" + (f"    {extra}\n" if extra else "")
    )


def post_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one ``POST path`` with a JSON ``body``."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Answer:
    seconds: float  # from sending the request to reading the whole answer
    status: int  # 0: no answer (the connection failed)
    body: bytes
    error: str = ""  # why there is no answer


class Client:
    """Kept-alive connections to one server; ``send`` may be awaited by many tasks at once."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    def _kept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection kept alive and idle for less than a second (servers close idle ones after a while)."""
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < 1.0:
                return reader, writer
            writer.close()
        return None

    async def send(self, request: bytes) -> Answer:
        started = time.monotonic()
        for attempt in range(2):
            kept = self._kept() if attempt == 0 else None
            reused = kept is not None
            try:
                reader, writer = kept if kept is not None else await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                return Answer(time.monotonic() - started, 0, b"", f"connect: {exc!r}")
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                writer.close()
                if reused:
                    continue  # the server closed a kept-alive connection: once more on a new one
                return Answer(time.monotonic() - started, 0, b"", f"send: {exc!r}")
            status, length, close = _head(head)
            try:
                body = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError) as exc:
                writer.close()
                return Answer(time.monotonic() - started, 0, b"", f"read: {exc!r}")
            if close:
                writer.close()
            else:
                self._idle.append((reader, writer, time.monotonic()))
            return Answer(time.monotonic() - started, status, body)
        return Answer(time.monotonic() - started, 0, b"")

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


def _head(head: bytes) -> tuple[int, int, bool]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"connection" and value.strip().lower() == b"close":
            close = True
    return status, length, close


@dataclass
class Offered:
    """What an open-loop run got: every answer, and which request each was for."""

    answers: list[tuple[int, Answer]] = field(default_factory=list)  # (request index, answer)
    late: float = 0.0  # the most the sender fell behind its schedule, seconds


async def open_loop(client: Client, requests: Sequence[bytes], interval: float) -> Offered:
    """Send ``requests[i]`` at ``i * interval`` seconds, whatever the answers (an open loop)."""
    out = Offered()

    async def one(index: int) -> None:
        out.answers.append((index, await client.send(requests[index])))

    tasks = []
    start = time.monotonic()
    for index in range(len(requests)):
        delay = start + index * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            out.late = max(out.late, -delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return out


async def closed_loop(client: Client, requests: Sequence[bytes], connections: int, seconds: float) -> list[Answer]:
    """``connections`` senders, each sending the next request as soon as the previous one is answered."""
    answers: list[Answer] = []
    deadline = time.monotonic() + seconds
    counter = iter(range(1 << 62))

    async def sender() -> None:
        while time.monotonic() < deadline:
            answers.append(await client.send(requests[next(counter) % len(requests)]))

    await asyncio.gather(*(sender() for _ in range(connections)))
    return answers


def rate_of(answers: Sequence[Answer], events: Callable[[Answer], int], seconds: float) -> float:
    return sum(events(a) for a in answers if a.status == 200) / seconds


async def sustained_rate(
    port: int, requests: Sequence[bytes], events: Callable[[Answer], int], connections: int, seconds: float
) -> float:
    """Events per second a service on ``port`` keeps up with: ``connections`` closed-loop senders for ``seconds``."""
    client = Client("127.0.0.1", port)
    try:
        answers = await closed_loop(client, requests, connections=connections, seconds=seconds)
    finally:
        client.close()
    return rate_of(answers, events, seconds)
