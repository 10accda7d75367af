"""Inference units, each figure beside its baseline, in one run on one machine.

1. messages/s of one unit process against a backend that does nothing, beside a bare consumer loop doing the
   same Redis work (XREADGROUP COUNT 128, SET NX EX per message, XACK and XDEL per batch) in this process;
2. rows/s through units against a real MLflow scoring server (``mlflow models serve``, two workers), beside
   one HTTP call per request to the same server, and one call of 512 rows (what one caller can get at best);
3. added latency (p50/p99) of requests sent one by one at a steady rate through a unit, against the same
   MLflow server: the time from submit to answer, less the median time of one direct call made at the same
   rate just before (so both see the same machine); the bound is max_wait_ms plus that direct call's p99.

Run: .venv/bin/python benchmarks/aiu.py      (about five minutes: MLflow trains, logs and serves a model first)
     .venv/bin/python benchmarks/aiu.py --no-mlflow   (the first figure only)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sustain.inference import AsyncInferenceClient, InferenceClient, status  # noqa: E402
from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, UnitConfig  # noqa: E402
from sustain.inference.keys import GROUP, ModelKeys  # noqa: E402
from sustain.inference.serve import UnitOptions  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tests.inference.mlflow_serving import FEATURES, ScoringServer, train_and_log  # noqa: E402
from tests.inference.redis_server import RedisServer  # noqa: E402


def noop(rows: Sequence[Any]) -> list[int]:
    """The backend that does nothing."""
    return [0] * len(rows)


def start_unit(
    url: str,
    model: str,
    backend: BackendConfig,
    max_batch: int,
    max_wait_ms: float,
    metrics_port: int | None = None,
    concurrency: int = 2,
) -> subprocess.Popen[bytes]:
    config = UnitConfig(
        url, (ModelBinding(model, backend),), batch=BatchPolicy(max_batch, max_wait_ms), concurrency=concurrency
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    options = UnitOptions(config, grace=1.0, metrics_port=metrics_port).to_json()
    return subprocess.Popen([sys.executable, "-m", "sustain.inference.serve", options], env=env)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Drain = tuple[float, float, float]  # items/s, the units' CPU µs per item, Redis's CPU µs per item


def drain_rate(r: redis.Redis, model: str, total: int, procs: list[subprocess.Popen[bytes]]) -> Drain:
    """Items/s from the first answer to the last (the units' start-up is not counted), and the CPU time the
    units and Redis spent per item meanwhile (on a busy machine the rate says more about the neighbours)."""
    redis_pid = int(r.info("server")["process_id"])
    started = None
    left_at_start = total
    cpu_start = 0.0
    while True:
        backlog = status(r, [model])[0].backlog
        now = time.perf_counter()
        if started is None and backlog < total:
            started, left_at_start = now, backlog
            cpu_start, redis_start = sum(cpu_seconds(p.pid) for p in procs), cpu_seconds(redis_pid)
        if backlog == 0:
            break
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a unit exited")
        time.sleep(0.02)
    assert started is not None
    cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_start
    redis_cpu = cpu_seconds(redis_pid) - redis_start
    return left_at_start / (now - started), cpu / left_at_start * 1e6, redis_cpu / left_at_start * 1e6


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def payloads(n: int) -> list[dict[str, float]]:
    return [{f: round(((i * 7 + j * 3) % 11 - 5) / 2.5, 2) for j, f in enumerate(FEATURES)} for i in range(n)]


def unit_throughput(
    url: str, model: str, backend: BackendConfig, n: int, max_batch: int, units: int = 1, concurrency: int = 2
) -> Drain:
    r = redis.Redis.from_url(url)
    with InferenceClient(url, model, notify=False) as client:
        rows = payloads(n)
        for start in range(0, n, 10_000):
            chunk = rows[start : start + 10_000]
            client.submit_many(chunk, [f"k{i % 1000}" for i in range(start, start + len(chunk))])
    ports = [free_port() for _ in range(units)]
    procs = [start_unit(url, model, backend, max_batch, 5.0, port, concurrency) for port in ports]
    try:
        drained = drain_rate(r, model, n, procs)
        BATCHES[model] = batch_stats(ports)
        return drained
    finally:
        for proc in procs:
            stop(proc)


BATCHES: dict[str, tuple[float, float]] = {}  # model -> (mean batch size, mean backend call in ms) of its last run


def batch_stats(ports: list[int]) -> tuple[float, float]:
    """Mean batch size and mean successful backend call time, from the units' own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"size_sum": 0.0, "size_count": 0.0, "call_sum": 0.0, "call_count": 0.0}
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "sustain_aiu_batch_size_sum":
                    totals["size_sum"] += sample.value
                elif sample.name == "sustain_aiu_batch_size_count":
                    totals["size_count"] += sample.value
                elif sample.name == "sustain_aiu_backend_seconds_sum" and sample.labels.get("outcome") == "ok":
                    totals["call_sum"] += sample.value
                elif sample.name == "sustain_aiu_backend_seconds_count" and sample.labels.get("outcome") == "ok":
                    totals["call_count"] += sample.value
    mean_size = totals["size_sum"] / max(totals["size_count"], 1)
    return mean_size, 1000 * totals["call_sum"] / max(totals["call_count"], 1)


def bare_loop(url: str, n: int, batch: int = 128) -> tuple[float, float]:
    """The same Redis work as a unit, without batching rules, leases or a backend: the floor of the design."""
    r = redis.Redis.from_url(url)
    keys = ModelKeys("bare")
    with InferenceClient(url, "bare", partitions=1, notify=False) as client:
        rows = payloads(n)
        for start in range(0, n, 10_000):
            client.submit_many(rows[start : start + 10_000])
    stream, done = keys.stream(0), 0
    started, cpu = time.perf_counter(), time.process_time()
    while done < n:
        reply: Any = r.xreadgroup(GROUP, "bare", {stream: ">"}, count=batch)
        entries = reply[0][1]
        pipe = r.pipeline(transaction=False)
        for _, fields in entries:
            pipe.set(keys.result(fields[b"id"].decode()), b'{"prediction":0}', nx=True, ex=3600)
        ids = [e[0] for e in entries]
        pipe.xack(stream, GROUP, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
        done += len(entries)
    return n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1e6


def direct_rate(url: str, calls: int, rows: int = 1) -> tuple[float, list[float]]:
    """Rows/s of ``calls`` HTTP calls of ``rows`` rows each, one after the other, and each call's time (s)."""
    times = []
    data = payloads(rows)
    body = {"dataframe_split": {"columns": FEATURES, "data": [[row[f] for f in FEATURES] for row in data]}}
    with httpx.Client(timeout=60) as http:
        for _ in range(calls):
            t = time.perf_counter()
            http.post(f"{url}/invocations", json=body).raise_for_status()
            times.append(time.perf_counter() - t)
    return calls * rows / sum(times), times


def warm_up(url: str, model: str) -> None:
    """Wait until a unit answers (it has started, taken its partitions and connected to the backend)."""
    with InferenceClient(url, model) as client:
        for row in payloads(20):
            client.predict(row, timeout=60)


async def paced(n: int, rate: float, send: Callable[[dict[str, float]], Awaitable[object]]) -> list[float]:
    """Seconds each of ``n`` requests took, started ``rate`` a second whatever the earlier ones are doing."""

    async def one(row: dict[str, float]) -> float:
        t = time.perf_counter()
        await send(row)
        return time.perf_counter() - t

    start, tasks = time.perf_counter(), []
    for i, row in enumerate(payloads(n)):
        tasks.append(asyncio.create_task(one(row)))
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
    return list(await asyncio.gather(*tasks))


async def paced_latencies(url: str, model: str, n: int, rate: float) -> list[float]:
    """Seconds from submit to answer of ``n`` requests sent through units, ``rate`` a second."""
    async with await AsyncInferenceClient.connect(url, model) as client:
        return await paced(n, rate, lambda row: client.predict(row, timeout=60))


async def paced_direct(url: str, n: int, rate: float) -> list[float]:
    """Seconds of ``n`` one-row HTTP calls to the scoring server, started ``rate`` a second."""
    async with httpx.AsyncClient(timeout=60) as http:

        async def call(row: dict[str, float]) -> None:
            body = {"dataframe_split": {"columns": FEATURES, "data": [[row[f] for f in FEATURES]]}}
            (await http.post(f"{url}/invocations", json=body)).raise_for_status()

        return await paced(n, rate, call)


def sequential_latencies(url: str, model: str, n: int) -> list[float]:
    """Seconds from submit to answer of ``n`` requests, each sent once the previous one is answered."""
    times = []
    with InferenceClient(url, model) as client:
        for row in payloads(n):
            t = time.perf_counter()
            client.predict(row, timeout=60)
            times.append(time.perf_counter() - t)
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


def latency_lines(rate: float, direct: list[float], latencies: list[float]) -> list[str]:
    call_p50, call_p99 = pct(direct, 50), pct(direct, 99)
    added = [t - call_p50 for t in latencies]
    p50, p99 = pct(added, 50) * 1000, pct(added, 99) * 1000
    bound = 5 + call_p99 * 1000
    return [
        f"latency at {rate:g} requests/s, --max-wait-ms 5 (target: added p99 <= 5 ms + one call):",
        f"  one direct call per request  p50 {call_p50 * 1000:6.1f} ms   p99 {call_p99 * 1000:6.1f} ms",
        f"  through a unit, end to end   p50 {pct(latencies, 50) * 1000:6.1f} ms   "
        f"p99 {pct(latencies, 99) * 1000:6.1f} ms",
        f"  added by the unit            p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   (bound {bound:.1f} ms: "
        f"{'met' if p99 <= bound else 'not met'})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="messages for the do-nothing backend")
    parser.add_argument("--rows", type=int, default=20_000, help="requests through units to MLflow")
    parser.add_argument("--direct", type=int, default=300, help="one-call-per-request baseline calls")
    parser.add_argument("--latency", type=int, default=1_000, help="requests in the latency run")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s in the do-nothing latency run")
    parser.add_argument(
        "--mlflow-rates", type=float, nargs="+", default=[50.0, 200.0], help="requests/s in the MLflow latency runs"
    )
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiu-bench-"))
    lines: list[str] = []
    with RedisServer(work / "redis") as server:
        url = server.url
        bare = bare_loop(url, args.messages)
        nothing = BackendConfig("python", "benchmarks.aiu:noop")
        runs = {b: unit_throughput(url, f"noop{b}", nothing, args.messages, b) for b in (64, 256)}
        lines.append(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        lines.append(f"do-nothing backend, {args.messages:,} messages (target >= 25,000/s for one unit):")
        for b, (rate, cpu, redis_cpu) in runs.items():
            lines.append(
                f"  one unit, --max-batch {b:<4}    {rate:>8,.0f} msg/s   CPU per message: {cpu:5.1f} µs in the unit, "
                f"{redis_cpu:5.1f} µs in Redis"
            )
        lines.append(
            f"  bare XREADGROUP/SET/XACK loop {bare[0]:>8,.0f} msg/s   CPU per message: {bare[1]:5.1f} µs in the loop"
        )
        proc = start_unit(url, "noop-latency", nothing, 64, 5.0)
        try:
            warm_up(url, "noop-latency")
            alone = sequential_latencies(url, "noop-latency", 200)
            quiet = asyncio.run(paced_latencies(url, "noop-latency", args.latency, args.rate))
        finally:
            stop(proc)
        lines.append(
            f"  latency of 200 requests sent one after the other, --max-wait-ms 5: p50 {pct(alone, 50) * 1000:.1f} ms, "
            f"p99 {pct(alone, 99) * 1000:.1f} ms"
        )
        lines.append(
            f"  added latency at {args.rate:g} requests/s, --max-wait-ms 5: p50 {pct(quiet, 50) * 1000:.1f} ms, "
            f"p99 {pct(quiet, 99) * 1000:.1f} ms (the backend takes no time: this is the unit and Redis)"
        )
        if not args.no_mlflow:
            mlflow_dir = work / "mlflow"
            with ScoringServer(train_and_log(mlflow_dir), mlflow_dir, workers=2) as scoring:
                single, _ = direct_rate(scoring.url, args.direct)
                packed, _ = direct_rate(scoring.url, 20, 512)
                backend = BackendConfig("mlflow", scoring.url)
                shapes = [(64, 1), (512, 1), (512, 2)]
                rates = {
                    run: unit_throughput(url, f"mlflow{run[0]}x{run[1]}", backend, args.rows, *run)[0] for run in shapes
                }
                lines.append(
                    f"MLflow scoring server (2 workers), {args.rows:,} requests (target >= 50x one call per request):"
                )
                lines.append(f"  one HTTP call per request    {single:>10,.0f} rows/s")
                lines.append(
                    f"  one call of 512 rows         {packed:>10,.0f} rows/s  ({packed / single:,.0f}x, at best)"
                )
                for (b, count), rate in rates.items():
                    label = f"{count} unit{'s' if count > 1 else ''}, --max-batch {b}"
                    size, call_ms = BATCHES[f"mlflow{b}x{count}"]
                    lines.append(
                        f"  {label:<28} {rate:>10,.0f} rows/s  ({rate / single:,.0f}x; mean batch {size:.0f}, "
                        f"backend call {call_ms:.1f} ms)"
                    )
                proc = start_unit(url, "latency", backend, 64, 5.0)
                try:
                    warm_up(url, "latency")
                    for rate in args.mlflow_rates:
                        direct = asyncio.run(paced_direct(scoring.url, args.latency, rate))
                        latencies = asyncio.run(paced_latencies(url, "latency", args.latency, rate))
                        lines.extend(latency_lines(rate, direct, latencies))
                finally:
                    stop(proc)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
