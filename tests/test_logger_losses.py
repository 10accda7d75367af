"""The Logger loses nothing on close() or exit and counts every loss (issue 11, item 9), against collectors that
misbehave for real: one that accepts connections and never answers, one that is down and comes back."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from sustain import Logger
from tests.helpers import ServerProcess, free_port, wait_for, write_spec


class Silent:
    """A TCP server on loopback that accepts connections, reads what comes and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.received = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            self.connections.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.received += len(data)

    def close(self) -> None:
        self._stop.set()
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


def spooled_events(spool: Path) -> list[dict]:
    events: list[dict] = []
    for path in sorted(spool.glob("*-events.json")):
        events.extend(orjson.loads(path.read_bytes()))
    return events


def test_close_spools_the_batch_the_sender_is_waiting_on(silent: Silent, tmp_path: Path) -> None:
    """5,000 events to a collector that never answers, close(1): all 5,000 are spooled (1,000 were lost)."""
    spool = tmp_path / "spool"
    log = Logger(silent.url, "churn", spool_dir=spool, flush_interval=0.05, timeout=10.0)
    for i in range(5000):
        log.log({"age": float(i)}, request_id=f"c{i}")
    wait_for(lambda: silent.received > 0, what="the sender to be waiting on its first batch")
    log.close(timeout=1.0)
    ids = [e["request_id"] for e in spooled_events(spool)]
    assert sorted(ids) == sorted(f"c{i}" for i in range(5000))
    assert log.stats.dropped == 0 and log.stats.spooled == 5000


def test_every_loss_is_counted_without_a_spool(silent: Silent) -> None:
    log = Logger(silent.url, "churn", spool=False, flush_interval=0.05, timeout=10.0)
    for i in range(5000):
        log.log({"age": float(i)})
    log.label("r1", "churn")
    wait_for(lambda: silent.received > 0, what="the sender to be waiting on its first batch")
    log.close(timeout=0.5)
    assert log.stats.dropped == 5001 and log.stats.sent == 0  # the batch in flight and the label too


def test_a_spool_that_cannot_be_written_counts_the_loss(silent: Silent, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    log = Logger(silent.url, "churn", spool_dir=spool, flush_interval=0.05, timeout=10.0)
    for i in range(300):
        log.log({"age": float(i)})
    wait_for(lambda: silent.received > 0, what="the sender to be waiting on its first batch")
    shutil.rmtree(spool)
    spool.write_text("")  # the spool directory is gone and a file stands in its way: writing a batch fails
    log.close(timeout=0.5)
    assert log.stats.dropped == 300 and log.stats.spooled == 0


EXITING = """
import sys
from sustain import Logger
log = Logger(sys.argv[1], "churn", spool_dir=sys.argv[2], flush_interval=0.05, timeout=10.0, exit_timeout=1.0)
for i in range(3000):
    log.log({"age": float(i)}, request_id=f"x{i}")
print("logged", flush=True)
"""


def test_a_normal_exit_spools_what_was_not_delivered(silent: Silent, tmp_path: Path) -> None:
    """The exit hook waits exit_timeout, then spools everything, the batch in flight included: the sender's
    worst case (retries x timeout) no longer decides what an exit loses."""
    spool = tmp_path / "spool"
    script = tmp_path / "exiting.py"
    script.write_text(EXITING)
    done = subprocess.run(
        [sys.executable, str(script), silent.url, str(spool)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ids = {e["request_id"] for e in spooled_events(spool)}
    assert ids == {f"x{i}" for i in range(3000)}


def test_the_collector_is_probed_again_within_max_backoff(tmp_path: Path) -> None:
    port = free_port()
    log = Logger(f"http://127.0.0.1:{port}", "churn", spool_dir=tmp_path / "spool", flush_interval=0.05)
    for _ in range(30):  # a long outage: many failed attempts in a row
        log._go_offline(None)
        assert log._offline_until - time.monotonic() <= log.max_backoff
    log.close(timeout=0)


def test_back_after_an_outage_everything_arrives_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, write_spec(tmp_path))
    log = Logger(server.url, "churn", spool_dir=tmp_path / "spool", flush_interval=0.05, timeout=5.0)
    for i in range(2000):
        log.log({"age": float(i)}, request_id=f"o{i}")
    wait_for(lambda: log.stats.spooled >= 2000, what="the events to be spooled while nothing listens")
    time.sleep(log.max_backoff * 2)  # the outage goes on: the Logger backs off as far as it will
    server.start()
    try:
        assert log.flush(60), log.stats
        log.close()
        events = httpx.get(f"{server.url}/v1/models/churn/events", params={"limit": 10_000}).json()["events"]
        assert sorted(e["request_id"] for e in events) == sorted(f"o{i}" for i in range(2000))
        assert log.stats.dropped == 0
    finally:
        server.stop()
