"""SIGKILL the server in the middle of ingest, 20 times: every acknowledged event survives, none twice."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from sustain.backends.duckdb.store import DuckDBStore
from tests.helpers import ServerProcess, write_spec


@pytest.mark.timeout(1800)  # twenty server starts: minutes on a loaded machine
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, write_spec(tmp_path))
    acked: set[str] = set()
    sent_batches = 0
    rng = random.Random(7)
    unacked: list[list[dict]] = []
    next_id = 0

    def new_batch() -> list[dict]:
        nonlocal next_id
        batch = [{"event_id": f"k{next_id + i}", "features": {"age": float(i)}} for i in range(200)]
        next_id += 200
        return batch

    for _round in range(20):
        server.start()
        stop = threading.Event()

        def pump(stop: threading.Event = stop) -> None:
            nonlocal sent_batches
            with httpx.Client(base_url=server.url, timeout=5) as client:
                while not stop.is_set():
                    batch = unacked.pop() if unacked else new_batch()
                    try:
                        r = client.post("/v1/models/churn/events", json=batch)
                    except httpx.HTTPError:
                        unacked.append(batch)  # no answer: not acknowledged, send again after the restart
                        return
                    sent_batches += 1
                    assert r.status_code == 200, r.text
                    acked.update(e["event_id"] for e in batch)

        workers = [threading.Thread(target=pump) for _ in range(2)]
        before = sent_batches
        for w in workers:
            w.start()
        # Kill mid-ingest, not before ingest starts: a busy machine may take seconds to answer the first batch.
        deadline = time.monotonic() + 60
        while sent_batches < before + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.2, 0.8))
        server.kill()
        stop.set()
        for w in workers:
            w.join(10)

    assert sent_batches > 40 and len(acked) > 8000
    store = DuckDBStore(server.store)
    try:
        ids = pa.table({"event_id": sorted(acked)})
        cur = store._cursor()
        cur.register("acked", ids)
        missing = cur.execute(
            'SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM "ev:churn" e WHERE e.event_id = a.event_id)'
        ).fetchall()[0][0]
        total, distinct = cur.execute('SELECT count(*), count(DISTINCT event_id) FROM "ev:churn"').fetchall()[0]
        cur.unregister("acked")
    finally:
        store.close()
    assert missing == 0
    assert total == distinct >= len(acked)
