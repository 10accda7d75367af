"""Test helpers: a real `sustain serve` process on loopback, free ports, spec files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sustain.loopback import ADDRESS_IN_USE, process_listens
from sustain.loopback import free_port as free_port  # re-exported: the tests import it from here

CHURN_YAML = """
models:
  - name: churn
    features:
      age: {kind: numeric, range: [18, 100]}
      income: numeric
      plan: {kind: categorical, categories: [basic, pro, enterprise]}
      active: boolean
      note: text
    outputs:
      prediction: {kind: class_label, classes: [stay, churn]}
      proba: {kind: class_scores, classes: [stay, churn]}
    label: {kind: class_label, classes: [stay, churn]}
    windows: [1m, 1h]
  - name: price
    features:
      size: numeric
      rooms: numeric
    outputs:
      value: {kind: regression}
    label: {kind: regression}
"""


T = TypeVar("T")

# How many times longer than on a quiet machine a wait may last before a test gives up. Waits end as soon as
# their condition holds, so patience costs nothing when things work; it keeps a loaded machine from failing them.
PATIENCE = float(os.environ.get("SUSTAIN_TEST_PATIENCE", "4"))


def wait_for(predicate: Callable[[], T | None], timeout: float = 30.0, what: str = "the condition") -> T:
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout * PATIENCE
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout * PATIENCE:g}s waiting for {what}")


def put_parquet_reference(client: Any, model: str, version: str, table: Any) -> httpx.Response:
    """Upload a pyarrow table as the model's reference, as Parquet (``client`` is an httpx client or a TestClient)."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return client.put(
        f"/v1/models/{model}/reference",
        params={"version": version},
        content=buffer.getvalue(),
        headers={"content-type": "application/vnd.apache.parquet"},
    )


def write_spec(directory: Path, text: str = CHURN_YAML) -> Path:
    path = directory / "sustain.yaml"
    path.write_text(text)
    return path


class ServerProcess:
    """`python -m sustain.cli serve` in a child process, on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        config: Path | None,
        store: str | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.store = store or f"duckdb:///{workdir / 'sustain.duckdb'}"
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"server-{self.port}.log"
        self.port_retries = 2

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 30.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "sustain.cli", "serve", "--port", str(self.port), "--store", self.store]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        cmd += self.args
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it for its lifetime
        started_at = log.tell()
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait * PATIENCE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.log_path.read_bytes()[started_at:].decode(errors="replace")
                if ADDRESS_IN_USE in output.lower() and self.port_retries > 0:
                    self.port_retries -= 1  # someone took the port after free_port(): start again on another
                    self.port = free_port()
                    return self.start(wait)
                raise RuntimeError(f"server exited with {self.proc.returncode}: {output[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200 and (
                    process_listens(self.port, self.proc.pid) is not False  # not a stranger holding the port
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Receiver:
    """A real HTTP server on loopback that records every request (webhook tests).

    ``statuses`` are answered in order (the last one repeats); ``delay`` seconds are slept before answering.
    """

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, object]] = []
        self.statuses = list(statuses or [200])
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
