"""A real MLflow scoring server for a tiny scikit-learn model, for the MLflow backend's tests and the benchmark.

Training and logging run in a child process (``python -m tests.inference.mlflow_serving DIR``): MLflow is slow
to import and warns about things sustain's tests treat as errors. The model is a logistic regression on four
features ``x0``..``x3`` (label: ``x0 + x1 > 0``), logged to a sqlite tracking store and an artifact folder in
``DIR``; the scoring server is ``mlflow models serve --env-manager local``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sustain.loopback import group_listens
from tests.helpers import free_port

FEATURES = ["x0", "x1", "x2", "x3"]


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def train_and_log(directory: Path) -> str:
    """Train and log the model (in a child process); return its model URI."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "tests.inference.mlflow_serving", str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(directory),
    )
    if done.returncode != 0:
        raise RuntimeError(f"training failed: {done.stderr[-3000:]}")
    return (directory / "model_uri.txt").read_text().strip()


def _env(directory: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # `mlflow models serve` starts uvicorn from PATH
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_uri(directory),
        "PYTHONWARNINGS": "ignore",
    }


class ScoringServer:
    """``mlflow models serve`` on a free loopback port, until closed."""

    def __init__(self, model_uri: str, directory: Path, workers: int = 1) -> None:
        self.model_uri = model_uri
        self.directory = directory
        self.port = free_port()
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 180.0) -> ScoringServer:
        command = [
            str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", self.model_uri,
            "-h", "127.0.0.1", "-p", str(self.port), "--env-manager", "local", "-w", str(self.workers),
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=_env(self.directory), start_new_session=True
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 200 and (
                    group_listens(self.port, self.proc.pid) is not False  # its own, not a stranger on the port
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.close()
        raise RuntimeError(f"mlflow models serve did not answer /ping: {self.log_path.read_text()[-3000:]}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)  # the server and its uvicorn workers
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)

    def __enter__(self) -> ScoringServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _train(directory: Path) -> None:
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(500, len(FEATURES))), columns=FEATURES)
    label = (frame["x0"] + frame["x1"] > 0).astype(int)
    model = LogisticRegression().fit(frame, label)
    mlflow.set_experiment("aiu")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=frame.head(3))
    (directory / "model_uri.txt").write_text(info.model_uri)


if __name__ == "__main__":
    _train(Path(sys.argv[1]))
