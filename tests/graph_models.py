"""Real MLflow models for the inference-graph tests: three churn classifiers trained here, registered with aliases.

Each model predicts class probabilities (``pyfunc_predict_fn="predict_proba"``) from three named numeric
features, so an average combiner means something. Data are drawn with a fixed seed inside the training ranges
of ``examples/graphs/units.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.helpers import free_port

FEATURES = ["age", "income", "tenure"]
MODELS = ("churn-logreg", "churn-tree", "churn-forest")


def churn_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(18, 90, n), rng.uniform(0, 250_000, n), rng.uniform(0, 120, n)])
    logit = 0.04 * (45 - x[:, 0]) - x[:, 1] / 100_000 + 0.03 * (24 - x[:, 2])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


@dataclass
class Registry:
    """A real ``mlflow server`` (sqlite backend) holding the three registered models."""

    url: str
    proc: subprocess.Popen[bytes]
    root: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_registry(root: Path, timeout: float = 180.0) -> Registry:
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    log = open(root / "mlflow-server.log", "ab")  # noqa: SIM115 - the child writes to it for its lifetime
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((root / "mlflow-server.log").read_text()[-3000:])
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return Registry(url, proc, root)
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError("mlflow server did not start")


def register_models(tracking_uri: str) -> None:
    """Train and register churn-logreg, churn-tree and churn-forest: version 1 of each is the champion, and the
    tree is also the challenger."""
    import mlflow
    import pandas as pd

    with warnings.catch_warnings():  # MLflow and scikit-learn warn while logging; that is setup, not the code tested
        warnings.simplefilter("ignore")
        _train_and_register(mlflow, pd, tracking_uri)


def _train_and_register(mlflow: Any, pd: Any, tracking_uri: str) -> None:
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    mlflow.set_tracking_uri(tracking_uri)
    x, y = churn_data(400, seed=7)
    frame = pd.DataFrame(x, columns=FEATURES)
    estimators = {
        "churn-logreg": make_pipeline(StandardScaler(), LogisticRegression()),
        "churn-tree": DecisionTreeClassifier(max_depth=4, random_state=0),
        "churn-forest": RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0),
    }
    client = MlflowClient(tracking_uri)
    mlflow.set_experiment("graph-tests")
    for name, estimator in estimators.items():
        estimator.fit(frame, y)
        with mlflow.start_run(run_name=name):
            mlflow.sklearn.log_model(
                estimator,
                name="model",
                input_example=frame.head(3),
                registered_model_name=name,
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
        client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias("churn-tree", "challenger", "1")
