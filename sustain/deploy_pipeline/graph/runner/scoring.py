"""MLflow scoring servers on loopback: one ``mlflow models serve --env-manager local`` process per model URI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sustain.deploy_pipeline.graph.model import GraphError

START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScoringServer:
    """One model URI served on a free loopback port; the process's output goes to a log file."""

    def __init__(self, uri: str, log_dir: Path) -> None:
        self.uri = uri
        self.port = free_port()
        self.log_path = log_dir / f"scoring-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        bin_dir = str(Path(sys.executable).parent)  # the server starts uvicorn by name: the venv's bin on PATH
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.uri, "-p", str(self.port)]
        cmd += ["-h", "127.0.0.1", "--env-manager", "local"]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise GraphError(f"the scoring server for {self.uri} exited with {self.proc.returncode}: {tail}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise GraphError(f"the scoring server for {self.uri} was not ready in time; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


class ScoringServers:
    """The scoring servers of a graph, started together (they take seconds each) and stopped together."""

    def __init__(self, uris: list[str], log_dir: Path | None = None, timeout: float = START_TIMEOUT) -> None:
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="sustain-graph-"))
        self.timeout = timeout
        self.servers = {uri: ScoringServer(uri, self.log_dir) for uri in dict.fromkeys(uris)}

    def start(self, progress: Callable[[str], None] | None = None) -> None:
        for server in self.servers.values():
            server.start()
        deadline = time.monotonic() + self.timeout
        try:
            for server in self.servers.values():
                server.wait_ready(deadline)
                if progress is not None:
                    progress(f"{server.uri} ready at {server.url}")
        except BaseException:
            self.stop()
            raise

    def url(self, uri: str) -> str:
        return self.servers[uri].url

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
