"""Loopback ports: distinct free ports, who listens on a port, and scoring servers that do not mistake a stranger
holding their port for themselves (the graph runner once sent a shadow's requests to another model's server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sustain.deploy_pipeline.graph.runner.scoring import ScoringServer as GraphScoringServer
from sustain.deploy_pipeline.release.scoring import ScoringServer as ReleaseScoringServer
from sustain.loopback import free_port, free_ports, group_listens, process_listens
from tests.helpers import ServerProcess, write_spec

SAVE_MODEL = """
import sys, warnings
warnings.simplefilter("ignore")
import mlflow, numpy as np
from sklearn.linear_model import LogisticRegression
x = np.random.default_rng(0).normal(size=(200, 2))
mlflow.sklearn.save_model(LogisticRegression().fit(x, x[:, 0] > 0), sys.argv[1])
"""


class Stranger(BaseHTTPRequestHandler):
    """Answers every request with 200 and "stranger", as any server that took the port first might."""

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"stranger")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loopback") / "model"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, "-c", SAVE_MODEL, str(path)], check=True, env=env, timeout=300)
    return path


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(1024 <= p <= 65535 for p in ports)
    assert isinstance(free_port(), int)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="group_listens reads /proc (Linux)")
def test_group_listens_names_the_listening_process_group(stranger: int) -> None:
    own_group = os.getpgid(0)
    assert group_listens(stranger, own_group) is True
    assert group_listens(stranger, own_group + 1_000_000) is False  # no such group holds it
    assert group_listens(free_port(), own_group) is False  # nobody listens there
    assert process_listens(stranger, os.getpid()) is True
    assert process_listens(stranger, 1) is False


def predictions(url: str) -> list[object]:
    body = {"dataframe_split": {"columns": ["0", "1"], "data": [[1.0, 0.0], [-1.0, 0.0]]}}
    reply = httpx.post(f"{url}/invocations", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    answer: list[object] = reply.json()["predictions"]
    return answer


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling a stranger apart reads /proc (Linux)")
def test_graph_scoring_server_moves_off_a_port_a_stranger_holds(model_dir: Path, stranger: int, tmp_path: Path) -> None:
    server = GraphScoringServer(str(model_dir), tmp_path, port=stranger)
    server.start()
    try:
        server.wait_ready(time.monotonic() + 180)
        assert server.port != stranger and server.attempts == 2
        assert predictions(server.url) == [True, False]
    finally:
        server.stop()
    assert "address already in use" in server.log_path.read_text().lower()  # the first attempt's failure


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling a stranger apart reads /proc (Linux)")
def test_release_scoring_server_moves_off_a_port_a_stranger_holds(
    model_dir: Path, stranger: int, tmp_path: Path
) -> None:
    server = ReleaseScoringServer("churn", "1", model_dir, tmp_path)
    server.port = stranger  # as if another process bound the chosen port before the server did
    server.start()
    try:
        server.wait_ready(180)
        assert server.port != stranger
        assert predictions(server.url) == [True, False]
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling a stranger apart reads /proc (Linux)")
def test_release_scoring_server_keeps_a_port_the_user_gave(model_dir: Path, stranger: int, tmp_path: Path) -> None:
    """A port the user chose is theirs to fix: the server fails, naming the log, instead of moving elsewhere."""
    from sustain.deploy_pipeline.release.errors import TargetFailed

    server = ReleaseScoringServer("churn", "1", model_dir, tmp_path, port=stranger)
    server.start()
    with pytest.raises(TargetFailed, match="exited"):
        server.wait_ready(180)
    assert server.port == stranger


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="telling a stranger apart reads /proc (Linux)")
def test_the_tests_sustain_server_moves_off_a_port_a_stranger_holds(stranger: int, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, write_spec(tmp_path))
    server.port = stranger
    with server:
        assert server.port != stranger
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        assert process_listens(server.port, server.proc.pid if server.proc else -1) is True
