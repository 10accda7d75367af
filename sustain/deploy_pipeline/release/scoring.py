"""One MLflow scoring server process per served version: ``mlflow models serve --env-manager local`` on a
loopback port, in a process group of its own (the CLI starts uvicorn as a child; both stop together)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.deploy_pipeline.release.gates import child_env
from sustain.loopback import ADDRESS_IN_USE, free_port, group_listens

log = logging.getLogger("sustain.release")
PORT_ATTEMPTS = 3  # a port it chose, taken before the server bound it: start again on a fresh one


class ScoringServer:
    """The scoring server of one model version."""

    def __init__(
        self, model: str, version: str, model_dir: Path, log_dir: Path, *, port: int | None = None, workers: int = 1
    ) -> None:
        self.model = model
        self.version = version
        self.model_dir = model_dir
        self.log_path = log_dir / "serve.log"
        self.port = port or free_port()
        self.port_chosen = port is None
        self.workers = workers
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        argv = [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            str(self.model_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-w",
            str(self.workers),
            "--env-manager",
            "local",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            out = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it for its lifetime
            self._log_start = out.seek(0, os.SEEK_END)
            try:
                self._proc = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True
                )
            except OSError as exc:
                raise TargetFailed(f"cannot start the scoring server of {self.model} {self.version}: {exc}") from exc
            finally:
                out.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def healthy(self, timeout: float = 2.0) -> bool:
        if not self.alive():
            return False
        try:
            return httpx.get(f"{self.url}/ping", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float) -> None:
        """Block until ``/ping`` answers from this server's own process group (not from whoever took its port);
        on a crash or a timeout, stop it and raise naming the log's last lines."""
        deadline = time.monotonic() + timeout
        attempts = 1
        while time.monotonic() < deadline:
            if not self.alive():
                if self.port_chosen and attempts < PORT_ATTEMPTS and ADDRESS_IN_USE in self.output().lower():
                    attempts += 1
                    log.warning(
                        "port %d was taken before %s %s bound it; trying another", self.port, self.model, self.version
                    )
                    self.port = free_port()
                    self.start()
                    continue
                code = None if self._proc is None else self._proc.returncode
                self.stop()
                raise TargetFailed(
                    f"the scoring server of {self.model} version {self.version} exited ({code}) while starting: "
                    f"{self.log_tail()}"
                )
            if self.healthy(timeout=1.0) and self._listener_is_own():
                return
            time.sleep(0.2)
        self.stop()
        raise TargetFailed(
            f"the scoring server of {self.model} version {self.version} was not ready after {timeout:g} s: "
            f"{self.log_tail()}"
        )

    def _listener_is_own(self) -> bool:
        assert self._proc is not None
        return group_listens(self.port, self._proc.pid) is not False

    def output(self) -> str:
        """What the current process wrote to the log."""
        with contextlib.suppress(OSError), open(self.log_path, "rb") as out:
            out.seek(self._log_start)
            return out.read().decode(errors="replace")
        return ""

    def log_tail(self, lines: int = 3) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip().splitlines()
            return " / ".join(text[-lines:]) or "(no output)"
        return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def kill(self) -> None:
        """Kill the whole process group at once (tests use it to play a crash)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)

    def restart(self, timeout: float) -> None:
        self.stop(grace=2.0)
        self.restarts += 1
        log.warning(
            "restarting the scoring server of %s version %s (restart %d)", self.model, self.version, self.restarts
        )
        self.start()
        self.wait_ready(timeout)
