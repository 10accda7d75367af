"""MLflow scoring servers on loopback: one ``mlflow models serve --env-manager local`` process per model URI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sustain.deploy_pipeline.graph.model import GraphError
from sustain.loopback import ADDRESS_IN_USE, free_port, free_ports, group_listens

START_TIMEOUT = 180.0
PORT_ATTEMPTS = 3  # a port taken between choosing it and the server's bind: start again on a fresh one


class ScoringServer:
    """One model URI served on a free loopback port; the process's output goes to a log file."""

    def __init__(self, uri: str, log_dir: Path, port: int | None = None) -> None:
        self.uri = uri
        self.port = port or free_port()
        self.log_path = log_dir / f"scoring-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.attempts = 0
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        bin_dir = str(Path(sys.executable).parent)  # the server starts uvicorn by name: the venv's bin on PATH
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.uri, "-p", str(self.port)]
        cmd += ["-h", "127.0.0.1", "--env-manager", "local"]
        self.attempts += 1
        with open(self.log_path, "ab") as out:
            self._log_start = out.tell()
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                output = self.output()
                if ADDRESS_IN_USE in output.lower() and self.attempts < PORT_ATTEMPTS:
                    self.port = free_port()
                    self.start()
                    continue
                tail = output[-1500:]
                raise GraphError(f"the scoring server for {self.uri} exited with {self.proc.returncode}: {tail}")
            if self.answers():
                return
            time.sleep(0.25)
        raise GraphError(f"the scoring server for {self.uri} was not ready in time; see {self.log_path}")

    def output(self) -> str:
        """What the current attempt's process wrote."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def answers(self) -> bool:
        """Its ``/ping`` answers and the listener on the port is this server's process group (or /proc is absent),
        not whoever took the port first."""
        try:
            if httpx.get(f"{self.url}/ping", timeout=2.0).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
        assert self.proc is not None
        return group_listens(self.port, self.proc.pid) is not False

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
        unique = list(dict.fromkeys(uris))
        ports = free_ports(len(unique))  # distinct: two servers never race each other for one port
        self.servers = {uri: ScoringServer(uri, self.log_dir, port) for uri, port in zip(unique, ports, strict=True)}

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
