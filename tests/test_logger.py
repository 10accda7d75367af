"""The client Logger against a real collector on loopback: nothing lost, nothing twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from sustain import Logger
from tests.helpers import ServerProcess, write_spec


def count(server: ServerProcess) -> tuple[int, int]:
    events = httpx.get(f"{server.url}/v1/models/churn/events", params={"limit": 10000}).json()["events"]
    return len(events), len({e["event_id"] for e in events})


def request_ids(server: ServerProcess) -> list[str]:
    events = httpx.get(f"{server.url}/v1/models/churn/events", params={"limit": 10000}).json()["events"]
    return [e["request_id"] for e in events]


def test_logs_events_and_labels(server: ServerProcess, tmp_path: Path) -> None:
    with Logger(server.url, "churn", "3", spool_dir=tmp_path / "spool", flush_interval=0.05) as log:
        for i in range(2500):
            log.log(
                {"age": 20 + i % 50, "plan": "pro"},
                {"prediction": "stay", "proba": [0.9, 0.1]},
                request_id=f"r{i}",
                latency_ms=1.5,
            )
        log.label("r7", "churn")
        assert log.flush(30)
        assert log.stats.sent == 2500 and log.stats.dropped == 0 and log.stats.labels_sent == 1
    events = httpx.get(f"{server.url}/v1/models/churn/events", params={"request_id": "r7"}).json()["events"]
    assert events[0]["label"]["value"] == "churn" and events[0]["version"] == "3"
    assert count(server) == (2500, 2500)


def test_decorator_and_dataframe(server: ServerProcess, tmp_path: Path) -> None:
    log = Logger(server.url, "churn", spool_dir=tmp_path / "spool", flush_interval=0.05)

    @log.watch(request_id=lambda features: features.get("id"))
    def predict(features: dict) -> dict:
        return {"prediction": "churn" if features["age"] > 50 else "stay"}

    @log.watch
    def fails(features: dict) -> str:
        raise RuntimeError("model exploded")

    assert predict({"age": 60, "id": "dec-1"}) == {"prediction": "churn"}
    with pytest.raises(RuntimeError, match="exploded"):
        fails({"age": 1})

    frame = pd.DataFrame(
        {"age": np.arange(5, dtype=np.int64), "plan": ["pro"] * 5, "rid": [f"df{i}" for i in range(5)]}
    )
    assert log.log_frame(frame, {"prediction": np.array(["stay"] * 5)}, request_ids="rid") == 5

    @log.watch
    def batch_predict(df: pd.DataFrame) -> np.ndarray:
        return np.array(["stay"] * len(df))

    batch_predict(pd.DataFrame({"age": [1.0, 2.0], "plan": ["basic", "pro"]}))
    assert log.flush(30)
    log.close()
    events = httpx.get(f"{server.url}/v1/models/churn/events", params={"limit": 100}).json()["events"]
    by_rid = {e["request_id"]: e for e in events}
    assert by_rid["dec-1"]["outputs"]["prediction"] == "churn" and by_rid["dec-1"]["latency_ms"] >= 0
    assert by_rid["df3"]["features"]["age"] == 3.0 and by_rid["df3"]["outputs"]["prediction"] == "stay"
    assert any(e["error"] == "RuntimeError: model exploded" for e in events)
    assert len(events) == 1 + 1 + 5 + 2


def test_collector_outage_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, write_spec(tmp_path)).start()
    log = Logger(server.url, "churn", spool_dir=tmp_path / "spool", flush_interval=0.05, max_backoff=0.5)
    logged = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal logged
        while not stop.is_set():
            for _ in range(50):
                log.log({"age": 1.0}, request_id=f"o{logged}")
                logged += 1
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(1.0)
    server.stop()
    time.sleep(4.0)  # the model keeps logging while the collector is down
    during = logged
    server.start()
    time.sleep(1.0)
    stop.set()
    producer.join()
    assert log.flush(60), log.stats
    log.close()
    assert log.stats.spooled > 0 and log.stats.replayed > 0 and log.stats.dropped == 0, log.stats
    rids = request_ids(server)
    server.stop()
    assert logged > during > 0
    assert len(rids) == logged and len(set(rids)) == logged


def test_spool_survives_the_process_and_replays_are_idempotent(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    server = ServerProcess(tmp_path, write_spec(tmp_path))
    down = Logger(server.url, "churn", spool_dir=spool, flush_interval=0.05)  # nothing listens yet
    for i in range(700):
        down.log({"age": float(i)}, request_id=f"s{i}")
    assert not down.flush(1.0)
    down.close(timeout=0)
    files = sorted(spool.glob("*.json"))
    assert files, "events were spooled to disk"
    copies = [(f.name, f.read_bytes()) for f in files]
    server.start()
    try:
        for _ in range(2):  # replay the same spool twice
            up = Logger(server.url, "churn", spool_dir=spool, flush_interval=0.05)
            assert up.flush(30)
            up.close()
            for name, data in copies:
                (spool / name).write_bytes(data)
        rids = request_ids(server)
        assert len(rids) == 700 and len(set(rids)) == 700
    finally:
        server.stop()


def test_without_spool_losses_are_counted(tmp_path: Path) -> None:
    log = Logger("http://127.0.0.1:9", "churn", spool=False, max_queue=100, flush_interval=0.05, retries_before_spool=0)
    for i in range(300):
        log.log({"age": float(i)})
    log.close(timeout=1.0)
    assert log.stats.enqueued + log.stats.dropped >= 300
    assert log.stats.dropped == 300 and log.stats.sent == 0


def test_log_never_raises(tmp_path: Path) -> None:
    log = Logger("http://127.0.0.1:9", "churn", spool=False, flush_interval=60)
    log.log(None)  # type: ignore[arg-type]
    log.log({"age": object()})
    assert log.stats.last_error and "log() failed" in log.stats.last_error
    log.close(timeout=0)


def test_oversized_batches_are_split(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, write_spec(tmp_path), env={"SUSTAIN_MAX_BODY_BYTES": "20000"}).start()
    try:
        log = Logger(server.url, "churn", spool_dir=tmp_path / "spool", flush_interval=0.05, batch_size=1000)
        for i in range(1000):
            log.log({"age": float(i), "note": "x" * 50}, request_id=f"big{i}")
        assert log.flush(30), log.stats
        log.close()
        assert len(set(request_ids(server))) == 1000
    finally:
        server.stop()


def test_foreign_values_become_type_errors_not_lost_batches(server: ServerProcess, tmp_path: Path) -> None:
    log = Logger(server.url, "churn", spool_dir=tmp_path / "spool", flush_interval=0.05)
    log.log({"age": np.float32(3.5), "plan": object()}, request_id="odd")
    assert log.flush(10)
    log.close()
    (e,) = httpx.get(f"{server.url}/v1/models/churn/events", params={"request_id": "odd"}).json()["events"]
    assert e["features"]["age"] == 3.5 and e["features"]["plan"].startswith("<object")
