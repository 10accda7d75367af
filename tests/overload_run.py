"""Four times the sustainable rate against a real ``sustain serve`` (issue 11, item 10), shared by
``tests/test_overload.py`` (which asserts that every acknowledged event is stored once) and
``benchmarks/overload.py`` (which prints the answer times beside the 5 s bound).

The rate two closed-loop senders get acknowledged is measured first; then four times that is offered in an
open loop (batches of 500 events; :mod:`tests.loadgen`), then every refused batch is resent, paced, until it is
acknowledged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa

from sustain.backends.duckdb.store import DuckDBStore
from tests import loadgen
from tests.helpers import ServerProcess

SPEC = loadgen.spec_yaml("load")
BATCH = 500
POST = "/v1/models/load/events"


def batch(rng: np.random.Generator) -> tuple[list[str], bytes]:
    ids = [str(uuid.uuid4()) for _ in range(BATCH)]
    values = rng.normal(0, 1, (BATCH, 8)).round(4)
    events = [
        {
            "event_id": ids[i],
            "features": dict(zip("abcdefgh", map(float, values[i]), strict=True)),
            "outputs": {"score": 0.5},
        }
        for i in range(BATCH)
    ]
    return ids, orjson.dumps(events)


def accepted(answer: loadgen.Answer) -> int:
    reply = orjson.loads(answer.body)
    return int(reply["accepted"]) + int(reply["duplicates"])


async def measure(server: ServerProcess, requests: list[bytes], seconds: float = 10.0) -> float:
    """Events per second the service keeps up with: two closed-loop senders."""
    return await loadgen.sustained_rate(server.port, requests, accepted, connections=2, seconds=seconds)


async def overload(
    server: ServerProcess, requests: list[bytes], interval: float
) -> tuple[list[loadgen.Answer], set[int], list[int]]:
    """The open loop at ``interval``, then the refused requests again, paced, until each is acknowledged.
    Returns every answer, the indexes of the acknowledged requests and those never acknowledged."""
    client = loadgen.Client("127.0.0.1", server.port)
    try:
        offered = await loadgen.open_loop(client, requests, interval)
        answers = [a for _, a in offered.answers]
        acked = {i for i, a in offered.answers if a.status == 200}
        retry = sorted(i for i, a in offered.answers if a.status != 200)
        deadline = time.monotonic() + 300
        while retry and time.monotonic() < deadline:
            answer = await client.send(requests[retry[-1]])  # the same ids: a resend, like the Logger's
            answers.append(answer)
            if answer.status == 200:
                acked.add(retry.pop())
            else:
                await asyncio.sleep(0.2)
    finally:
        client.close()
    return answers, acked, retry


@dataclass
class Run:
    rate: float  # events/s sustained by two closed-loop senders
    offered: float  # events/s offered in the open loop (four times ``rate``)
    answers: list[loadgen.Answer]
    expected: set[str]  # every acknowledged event id (the warm-up's included)
    never: list[int]  # batches never acknowledged

    @property
    def times(self) -> np.ndarray:
        return np.array([a.seconds for a in self.answers])

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.times, q))

    @property
    def refused(self) -> int:
        return [a.status for a in self.answers].count(429)

    def summary(self) -> str:
        return (
            f"sustained {self.rate:.0f} events/s, offered {self.offered:.0f}/s: {len(self.answers)} answers, "
            f"{self.refused} refused (429), p50 {self.quantile(0.5):.2f}s, p99 {self.quantile(0.99):.2f}s, "
            f"max {self.times.max():.2f}s"
        )


def run(server: ServerProcess, rng: np.random.Generator, seconds: float = 20.0) -> Run:
    """Measure the sustainable rate, offer four times it for ``seconds``, resend what was refused."""
    warmup = [batch(rng) for _ in range(8)]
    rate = asyncio.run(measure(server, [loadgen.post_request("127.0.0.1", server.port, POST, b) for _, b in warmup]))
    offered = 4 * rate
    interval = BATCH / offered  # seconds between two requests sent
    batches = [batch(rng) for _ in range(int(seconds / interval) + 1)]
    requests = [loadgen.post_request("127.0.0.1", server.port, POST, body) for _, body in batches]
    answers, acked, never = asyncio.run(overload(server, requests, interval))
    expected = {i for n in acked for i in batches[n][0]} | {i for ids, _ in warmup for i in ids}
    return Run(rate, offered, answers, expected, never)


def stored(server: ServerProcess, expected: set[str]) -> tuple[int, int, int]:
    """(rows, distinct ids, expected ids missing) in the stopped server's store."""
    store = DuckDBStore(server.store)
    try:
        cur = store.cursor()
        total, distinct = cur.execute('SELECT count(*), count(DISTINCT eid) FROM "ev:load"').fetchall()[0]
        cur.register("expected", pa.table({"eid": sorted(expected)}))
        missing = cur.execute(
            'SELECT count(*) FROM expected a WHERE NOT EXISTS (SELECT 1 FROM "ev:load" e WHERE e.eid = a.eid::UUID)'
        ).fetchall()[0][0]
    finally:
        store.close()
    return int(total), int(distinct), int(missing)
