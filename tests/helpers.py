"""Test helpers: a real `sustain serve` process on loopback, free ports, spec files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 30.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "sustain.cli", "serve", "--port", str(self.port), "--store", self.store]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        cmd += self.args
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it for its lifetime
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
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
