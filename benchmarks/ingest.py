"""Ingest throughput and Logger overhead, each beside its baseline, in one run.

1. events/s through a real `sustain serve` (HTTP, batches of 1,000 events x 20 features, durable ack)
   against raw DuckDB Arrow appends of the same rows (one commit per batch, no dedup) in this process;
2. the Logger's per-call cost (p50/p99/p99.9, microseconds) against a bare Python function call,
   at 50,000 calls a second with the Logger's sender thread shipping to the same server meanwhile.

Run: .venv/bin/python benchmarks/ingest.py            (about a minute)
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import ServerProcess

SPEC = """
models:
  - name: bench
    features: {features}
    outputs:
      score: {{kind: probability}}
"""


def make_batches(n_batches: int, batch_size: int, n_features: int, seed: int = 0) -> list[list[dict]]:
    rng = np.random.default_rng(seed)
    now = time.time()
    batches = []
    for b in range(n_batches):
        values = rng.normal(50, 10, (batch_size, n_features)).round(4)
        scores = rng.random(batch_size).round(4)
        batches.append(
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "request_id": f"b{b}-{i}",
                    "timestamp": now - 1 + i * 1e-6,
                    "version": "1",
                    "features": {f"f{j}": float(values[i, j]) for j in range(n_features)},
                    "outputs": {"score": float(scores[i])},
                    "latency_ms": 3.2,
                }
                for i in range(batch_size)
            ]
        )
    return batches


def http_rate(server: ServerProcess, bodies: list[bytes], batch_size: int, clients: int) -> float:
    """Events per second acknowledged by the collector (every reply is checked)."""
    queue = list(range(len(bodies)))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                i = queue.pop()
            conn.request(
                "POST", "/v1/models/bench/events", body=bodies[i], headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200 or orjson.loads(payload)["accepted"] != batch_size:
                failures.append(f"{response.status}: {payload[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"collector failed {len(failures)} batches: {failures[:3]}")
    return len(bodies) * batch_size / elapsed


def raw_duckdb_rate(batches: list[list[dict]], n_features: int, directory: Path) -> tuple[float, float]:
    """Arrow appends of the same rows into a DuckDB file, one commit per batch: without and with a primary key."""
    tables = []
    for batch in batches:
        cols: dict[str, pa.Array] = {
            "event_id": pa.array([e["event_id"] for e in batch]),
            "request_id": pa.array([e["request_id"] for e in batch]),
            "ts": pa.array([int(e["timestamp"] * 1e6) for e in batch], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array([e["latency_ms"] for e in batch], pa.float64()),
        }
        for j in range(n_features):
            cols[f"f{j}"] = pa.array([e["features"][f"f{j}"] for e in batch], pa.float64())
        cols["score"] = pa.array([e["outputs"]["score"] for e in batch], pa.float64())
        tables.append(pa.table(cols))
    rates: list[float] = []
    for pk in ("", " PRIMARY KEY"):
        con = duckdb.connect(str(directory / f"raw{len(rates)}.duckdb"))
        features = ", ".join(f"f{j} DOUBLE" for j in range(n_features))
        id_type = "UUID" if pk else "VARCHAR"
        con.execute(
            f"CREATE TABLE ev (event_id {id_type}{pk}, request_id VARCHAR, ts TIMESTAMPTZ, latency_ms DOUBLE,"
            f" {features}, score DOUBLE)"
        )
        started = time.perf_counter()
        for table in tables:
            con.execute("BEGIN")
            con.register("b", table)
            con.execute("INSERT INTO ev SELECT * FROM b")
            con.unregister("b")
            con.execute("COMMIT")
        rates.append(len(tables) * tables[0].num_rows / (time.perf_counter() - started))
        con.close()
    return rates[0], rates[1]


def logger_overhead(url: str, calls: int, spool_dir: Path) -> tuple[list[float], list[float]]:
    from sustain import Logger

    features = {f"f{j}": 50.0 + j for j in range(20)}
    outputs = {"score": 0.5}

    def bare(
        features: dict, outputs: dict | None = None, *, request_id: str | None = None, latency_ms: float | None = None
    ) -> None:
        return None

    clock = time.perf_counter_ns
    base = []
    for _ in range(calls):
        t0 = clock()
        bare(features, outputs, request_id="r", latency_ms=1.0)
        base.append((clock() - t0) / 1000)
    log = Logger(url, "bench", "1", spool_dir=spool_dir, flush_interval=0.05, max_queue=2 * calls)
    timings = []
    for i in range(calls):
        t0 = clock()
        log.log(features, outputs, request_id="r", latency_ms=1.0)
        timings.append((clock() - t0) / 1000)
        if i % 1000 == 999:
            time.sleep(0.02)  # a busy model: 50,000 predictions a second, with the sender shipping meanwhile
    delivered = log.flush(120)
    log.close()
    if not delivered or log.stats.sent != calls:
        raise SystemExit(f"logger did not deliver everything: {log.stats}")
    return base, timings


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (model replicas)")
    parser.add_argument("--logger-calls", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    batches = make_batches(args.batches, args.batch_size, args.features)
    bodies = [orjson.dumps(b) for b in batches]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        spec = directory / "bench.yaml"
        spec.write_text(SPEC.format(features=json.dumps({f"f{j}": "numeric" for j in range(args.features)})))
        server = ServerProcess(directory, spec).start()
        try:
            warm = make_batches(5, args.batch_size, args.features, seed=99)
            http_rate(server, [orjson.dumps(b) for b in warm], args.batch_size, 1)
            http = statistics.median(http_rate(server, bodies[k::3], args.batch_size, args.clients) for k in range(3))
            base, logged = logger_overhead(server.url, args.logger_calls, directory / "spool")
        finally:
            server.stop()
        raw, raw_pk = raw_duckdb_rate(batches, args.features, directory)

    results = {
        "collector_events_per_s": round(http),
        "raw_duckdb_append_events_per_s": round(raw),
        "raw_duckdb_append_with_pk_events_per_s": round(raw_pk),
        "collector_share_of_raw": round(http / raw, 3),
        "logger_p50_us": round(pct(logged, 50), 2),
        "logger_p99_us": round(pct(logged, 99), 2),
        "logger_p999_us": round(pct(logged, 99.9), 2),
        "bare_call_p50_us": round(pct(base, 50), 2),
        "bare_call_p99_us": round(pct(base, 99), 2),
        "batches": args.batches,
        "batch_size": args.batch_size,
        "features": args.features,
    }
    if args.json:
        print(json.dumps(results))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"ingest: {args.batches} batches x {args.batch_size} events x {args.features} features, "
        f"{args.clients} connections"
    )
    table.add_column("path")
    table.add_column("events/s", justify="right")
    table.add_column("vs raw append", justify="right")
    table.add_row("sustain collector (HTTP, validated, deduplicated, durable ack)", f"{http:,.0f}", f"{http / raw:.0%}")
    table.add_row("raw DuckDB Arrow append, commit per batch", f"{raw:,.0f}", "100%")
    table.add_row("raw DuckDB Arrow append + primary key (dedup)", f"{raw_pk:,.0f}", f"{raw_pk / raw:.0%}")
    calls = Table(title=f"per call, {args.logger_calls:,} calls (microseconds)")
    for col in ("call", "p50", "p99", "p99.9"):
        calls.add_column(col, justify="right" if col != "call" else "left")
    calls.add_row("Logger.log()", *(f"{pct(logged, q):.2f}" for q in (50, 99, 99.9)))
    calls.add_row("bare function call", *(f"{pct(base, q):.2f}" for q in (50, 99, 99.9)))
    console = Console()
    console.print(table)
    console.print(calls)
    console.print(json.dumps(results))


if __name__ == "__main__":
    main()
