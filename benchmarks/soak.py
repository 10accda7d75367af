"""Soak: memory stays flat however much history the service has stored (issue 11, item 5).

1. measures the most events/s a real `sustain serve` keeps up with (closed loop, batches of 1,000 events
   with 8 features, fresh ids, each acknowledged durably);
2. ingests at half that rate for ``--minutes`` (10 by default) with a short retention (raw events 2m, dedup
   ids 1m, swept every 15 s) and the store's memory sized for it (``SUSTAIN_STORE_MEMORY=192MiB``), printing
   the server's RSS every 30 s (and its peak over those 30 s, read every second) beside its RSS when idle
   after start-up;
3. prints the last five samples and peaks and how far apart they are (the target: within 10% of each other),
   and how many events were acknowledged against how many the store holds at the end (retention at work).

Before the dedup horizon the same run grew by ~123 bytes per event stored (an index over every event id);
now memory follows the retention horizon, not the history.

Run: .venv/bin/python benchmarks/soak.py [--minutes 10]        (about minutes + 1)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sustain.backends.duckdb.store import DuckDBStore
from tests import loadgen
from tests.helpers import ServerProcess, write_spec

BATCH = 1000
PATH = "/v1/models/soak/events"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def body(rng: np.random.Generator) -> bytes:
    """One batch of fresh events stamped now (retention judges events by their time)."""
    now = time.time()
    values = rng.normal(50, 10, (BATCH, 8)).round(3)
    scores = rng.random(BATCH).round(3)
    return orjson.dumps(
        [
            {
                "event_id": str(uuid.uuid4()),
                "timestamp": now,
                "features": dict(zip("abcdefgh", map(float, values[i]), strict=True)),
                "outputs": {"score": float(scores[i])},
            }
            for i in range(BATCH)
        ]
    )


def accepted(answer: loadgen.Answer) -> int:
    return int(orjson.loads(answer.body)["accepted"])


async def max_rate(server: ServerProcess, rng: np.random.Generator, seconds: float) -> float:
    # fresh ids throughout (a repeated id is a duplicate, and duplicates take the slower path)
    requests = [loadgen.post_request("127.0.0.1", server.port, PATH, body(rng)) for _ in range(int(seconds * 40))]
    return await loadgen.sustained_rate(server.port, requests, accepted, connections=4, seconds=seconds)


async def soak(
    server: ServerProcess, rng: np.random.Generator, rate: float, minutes: float, every: float
) -> tuple[list[float], list[float], int, int]:
    """Ingest at ``rate`` events/s for ``minutes``; RSS every ``every`` seconds. Returns the samples and the
    peaks of each interval (MiB), the events acknowledged and the requests refused."""
    assert server.proc is not None
    client = loadgen.Client("127.0.0.1", server.port)
    interval = BATCH / rate
    acked = refused = 0
    samples: list[float] = []
    peaks: list[float] = []
    peak = 0.0
    next_read = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: bytes) -> None:
        nonlocal acked, refused
        answer = await client.send(request)
        if answer.status == 200:
            acked += accepted(answer)
        else:
            refused += 1

    start = time.monotonic()
    end = start + minutes * 60
    next_sample = start + every
    sent = 0
    print(f"{'minute':>7} {'RSS MiB':>8} {'peak MiB':>9} {'acknowledged':>13} {'refused':>8}", flush=True)
    while time.monotonic() < end:
        delay = start + sent * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(loadgen.post_request("127.0.0.1", server.port, PATH, body(rng))))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        if time.monotonic() >= next_read:
            peak = max(peak, rss_mib(server.proc.pid))
            next_read += 1.0
        if time.monotonic() >= next_sample:
            samples.append(rss_mib(server.proc.pid))
            peaks.append(max(peak, samples[-1]))
            peak = 0.0
            minute = (time.monotonic() - start) / 60
            print(f"{minute:7.1f} {samples[-1]:8.0f} {peaks[-1]:9.0f} {acked:13,} {refused:8,}", flush=True)
            next_sample += every
    await asyncio.gather(*tasks)
    client.close()
    return samples, peaks, acked, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--retention", default="2m", help="retention.events of the soaked model")
    parser.add_argument("--dedup", default="1m", help="retention.dedup of the soaked model")
    parser.add_argument("--measure", type=float, default=20.0, help="seconds to measure the maximum rate")
    parser.add_argument("--rate", type=float, help="soak at this many events/s (no maximum measured)")
    parser.add_argument(
        "--store-memory",
        default="192MiB",
        help="SUSTAIN_STORE_MEMORY of the server (DuckDB's memory limit; the service's default is 1GiB)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="sustain-soak-") as tmp:
        workdir = Path(tmp)
        spec = loadgen.spec_yaml("soak", f"retention: {{events: {args.retention}, dedup: {args.dedup}}}")
        env = {"SUSTAIN_RETENTION_INTERVAL": "15", "SUSTAIN_STORE_MEMORY": args.store_memory}
        server = ServerProcess(workdir, write_spec(workdir, spec), env=env).start()
        try:
            assert server.proc is not None
            time.sleep(2)
            idle = rss_mib(server.proc.pid)
            if args.rate:
                rate = args.rate
                print(f"soaking at {rate:,.0f} events/s (given), for {args.minutes:g} minutes", end="")
            else:
                top = asyncio.run(max_rate(server, rng, args.measure))
                rate = top / 2
                print(
                    f"maximum: {top:,.0f} events/s acknowledged; soaking at half, {rate:,.0f} events/s, for "
                    f"{args.minutes:g} minutes",
                    end="",
                )
            print(f" (retention: events {args.retention}, dedup {args.dedup}; store memory {args.store_memory})")
            print(f"baseline: RSS {idle:.0f} MiB idle after start-up", flush=True)
            samples, peaks, acked, refused = asyncio.run(soak(server, rng, rate, args.minutes, args.every))
        finally:
            server.stop()
        errors = [line for line in server.log_path.read_text(errors="replace").splitlines() if "Error" in line]
        store = DuckDBStore(server.store)
        try:
            kept = store.count_events("soak")
        finally:
            store.close()
    print()
    print(f"RSS idle {idle:.0f} MiB; first sample {samples[0]:.0f} MiB, peak of the first interval {peaks[0]:.0f} MiB")
    for name, series in (("samples", samples), ("peaks", peaks)):
        last = series[-5:]
        spread = (max(last) - min(last)) / min(last) if last else float("nan")
        print(
            f"last five {name}: {', '.join(f'{s:.0f}' for s in last)} MiB, {spread:.1%} apart "
            f"({'within' if spread <= 0.10 else 'NOT within'} 10%)"
        )
    print(
        f"events acknowledged {acked:,} ({refused:,} requests refused); held by the store at the end {kept:,} "
        f"(retention keeps {args.retention} of them)"
    )
    print(f"server log: {len(errors)} lines naming an error{': ' + errors[0] if errors else ''}")


if __name__ == "__main__":
    main()
