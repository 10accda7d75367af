"""The scripts the compose stack runs, run here against the real parts they talk to.

* ``compose/traffic.py``, as the smoke script runs it (``python - ARGS < traffic.py``), against a real
  ``sustain serve``: the reference is uploaded once, events and labels arrive, and drift is switched on;
* ``compose/train_model.py`` with the ``train`` job's arguments against a real ``mlflow server`` (sqlite),
  twice (the second run finds the model), then the ``model`` service's own command line serves it and
  answers ``/ping`` and ``/invocations`` as the units will call it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import compose_file as cf
from tests.helpers import ServerProcess, free_port, wait_for

TOKEN = "compose-test-token"


@pytest.fixture
def sustain_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"SUSTAIN_WRITE_TOKENS": TOKEN, "SUSTAIN_READ_TOKENS": "reader"}
    with ServerProcess(tmp_path, cf.COMPOSE_DIR / "sustain.yaml", env=env) as server:
        yield server


def run_traffic(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    script = (cf.COMPOSE_DIR / "traffic.py").read_text(encoding="utf-8")
    command = [sys.executable, "-", "--url", server.url, "--token", TOKEN, *args]
    return subprocess.run(command, input=script, capture_output=True, text=True, timeout=300, check=False)


def test_traffic_uploads_a_reference_once_and_sends_events_and_labels(sustain_server: ServerProcess) -> None:
    args = ("--seconds", "3", "--rate", "25", "--drift-after", "1", "--reference-rows", "300")
    first = run_traffic(sustain_server, *args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert lines[0] == "reference for churn: uploaded"
    summary: dict[str, Any] = json.loads(lines[-1])
    assert summary["dropped"] == 0 and summary["events"] >= 50 and summary["labels"] == summary["events"]
    assert summary["drift"] == ["monthly_spend", "tenure_months"]

    headers = {"Authorization": f"Bearer {TOKEN}"}
    references = httpx.get(f"{sustain_server.url}/v1/models/churn/reference", headers=headers).json()["references"]
    assert [(r["version"], r["rows"]) for r in references] == [("1", 300)]

    def stored() -> int | None:
        response = httpx.get(
            f"{sustain_server.url}/v1/models/churn/events", params={"limit": 10_000}, headers=headers, timeout=30
        )
        events = response.json()["events"]
        return len(events) if len(events) == summary["events"] else None

    wait_for(stored, timeout=60, what="every event stored")
    second = run_traffic(sustain_server, "--seconds", "1", "--rate", "5")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == "reference for churn: already stored"


def test_traffic_names_an_unknown_model(sustain_server: ServerProcess) -> None:
    done = run_traffic(sustain_server, "--model", "nope", "--seconds", "1")
    assert done.returncode == 2 and "answered 404 for model 'nope'" in done.stderr


# -- the model behind the units ---------------------------------------------------------------------------------------


class Process:
    """A child process on a free port, stopped at the end, with its output in a log file."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str], cwd: Path) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.proc = subprocess.Popen(command, stdout=self.handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.handle.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


@pytest.mark.slow
def test_the_train_job_registers_a_model_the_model_service_serves(tmp_path: Path) -> None:
    services = cf.load()["services"]
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{mlflow_bin.parent}{os.pathsep}{env.get('PATH', '')}"  # the scoring server runs uvicorn from it
    port = free_port()
    tracking = f"http://127.0.0.1:{port}"
    server = Process(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        tmp_path / "mlflow.log",
        env,
        tmp_path,
    )
    model: Process | None = None
    try:
        wait_for(lambda: server.alive() and answers(f"{tracking}/health"), timeout=180, what="mlflow server")
        train = services["train"]
        assert train["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        mount, rest = cf.container_path(train, train["command"][1])
        argv = [sys.executable, str(cf.host_path(mount, rest)), *train["command"][2:], "--rows", "800"]
        job_env = {**env, "MLFLOW_TRACKING_URI": tracking}
        for expected in ("registered 'churn'", "already has version(s) 1"):
            done = subprocess.run(argv, env=job_env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
            assert expected in done.stdout

        serve = services["model"]["command"]
        assert serve[:3] == ["mlflow", "models", "serve"] and "models:/churn/1" in serve
        model_port = free_port()
        argv = replace_option(replace_option(serve, "-p", str(model_port)), "-h", "127.0.0.1")
        model = Process([str(mlflow_bin), *argv[1:]], tmp_path / "model.log", job_env, tmp_path)
        base = f"http://127.0.0.1:{model_port}"
        wait_for(lambda: model.alive() and answers(f"{base}/ping"), timeout=300, what="the model server")
        rows = [[12.0, 80.0, 2.0, "basic", True], [2.0, 150.0, 9.0, "premium", False]]
        columns = ["tenure_months", "monthly_spend", "support_calls", "plan", "autopay"]
        response = httpx.post(
            f"{base}/invocations",
            json={"dataframe_split": {"columns": columns, "data": rows}},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == 2 and set(predictions) <= {"stay", "churn"}
    finally:
        if model is not None:
            model.stop()
        server.stop()
