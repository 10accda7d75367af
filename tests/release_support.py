"""Real parts for the release pipeline's tests and benchmark: an MLflow tracking server on loopback (sqlite,
proxied artifacts, webhooks allowed to reach loopback), the demo's churn model registered in it the way a data
scientist would, and an ASGI app served on a free port from a thread."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[1]
MODEL = "churn"

CHURN_SPEC = """
models:
  - name: churn
    description: Will a subscriber cancel? (release tests)
    features:
      tenure_months: {kind: numeric, range: [0, 120]}
      monthly_spend: {kind: numeric, range: [0, 500]}
      support_calls: {kind: numeric, range: [0, 30]}
      plan: {kind: categorical, categories: [basic, standard, premium]}
      autopay: boolean
    outputs:
      prediction: {kind: class_label, classes: [stay, churn]}
    label: {kind: class_label, classes: [stay, churn], positive_class: churn}
    windows: [10s, 1h]
"""


class MlflowServer:
    """``mlflow server`` on sqlite with proxied artifacts, on a free loopback port (20-60 s to start here)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mlflow-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts(self) -> Path:
        return self.workdir / "artifacts"

    def start(self, timeout: float = 180.0) -> MlflowServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_CACHE_TTL": "1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job workers: fewer processes
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        argv = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes to it for its lifetime
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not start in {timeout:g} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers the server started, if any outlived it
        self.proc.wait(10)


def _churn() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sustain_release_churn_model", REPO / "examples/demo/churn_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def register_churn(
    uri: str,
    data_dir: Path,
    *,
    name: str = MODEL,
    seed: int = 1,
    drifted: bool = False,
    rows: int = 2000,
    with_example: bool = True,
    rename_example: bool = False,
    log_training: bool = True,
    log_evaluation: bool = True,
    metrics: dict[str, float] | None = None,
    test_files: dict[str, str] | None = None,
) -> str:
    """Train the demo churn model on made-up customers and register it, as a data scientist following the
    standards would (signature and example, training and evaluation data logged); return the version.

    ``rename_example`` logs an example (and so a signature) whose column names the model was not trained on:
    the version registers, but its example cannot be predicted.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    churn = _churn()
    frame, truth = churn.customers(rows, drifted=drifted, seed=seed)
    model = churn.train(frame, truth)
    holdout, holdout_truth = churn.customers(500, drifted=drifted, seed=seed + 1000)
    data_dir.mkdir(parents=True, exist_ok=True)
    training_path = data_dir / f"train-{name}-{seed}.parquet"
    holdout_path = data_dir / f"holdout-{name}-{seed}.parquet"
    frame.assign(label=truth).to_parquet(training_path)
    holdout.assign(label=holdout_truth).to_parquet(holdout_path)
    example = frame.head(5)
    if rename_example:
        example = example.rename(columns={"tenure_months": "tenure"})
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name("release-tests") is None and not uri.startswith("http"):
        # without a server, artifacts would land in ./mlruns of whatever directory the tests run from
        mlflow.create_experiment("release-tests", artifact_location=(data_dir / "artifacts").as_uri())
    mlflow.set_experiment("release-tests")
    # MLflow and pandas warn while logging (a dataset source resolvable two ways, pandas 3 deprecations): those
    # are the data scientist's side, not sustain's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run() as run:
            accuracy = float((model.predict(frame) == truth).mean())
            mlflow.log_metrics({"accuracy": accuracy, **(metrics or {})})
            if log_training:
                training = from_pandas(
                    frame.assign(label=truth), source=str(training_path), targets="label", name="training"
                )
                mlflow.log_input(training, context="training")
            if log_evaluation:
                evaluation = from_pandas(
                    holdout.assign(label=holdout_truth), source=str(holdout_path), targets="label", name="holdout"
                )
                mlflow.log_input(evaluation, context="evaluation")
            for file_name, text in (test_files or {}).items():
                path = data_dir / f"{run.info.run_id}-{file_name}"
                path.write_text(text)
                mlflow.log_artifact(str(path), "model_tests")
            signature = None
            if rename_example:  # the signature follows the example, so it is the example that fails
                from mlflow.models import infer_signature

                signature = infer_signature(example, model.predict(frame.head(5)))
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                input_example=example if with_example else None,
                signature=signature,
            )
    return str(info.registered_model_version)


def serving_rows(n: int, *, seed: int = 5, drifted: bool = False) -> list[dict[str, Any]]:
    frame, _ = _churn().customers(n, drifted=drifted, seed=seed)
    return list(frame.to_dict(orient="records"))


class AsgiThread:
    """An ASGI app served by uvicorn from a daemon thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AsgiThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the ASGI app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class TcpProxy:
    """A loopback TCP forwarder that can be switched off: a registry that goes down and comes back."""

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # the registry is down: the connection is dropped at once
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.listener.close()


class Requests:
    """``total`` prediction requests sent through a gateway by ``workers`` clients, counted by status and by the
    version that answered (while promotions and rollbacks happen elsewhere)."""

    def __init__(self, invocations_url: str, total: int, workers: int = 4) -> None:
        from collections import Counter

        self.url = invocations_url
        self.total = total
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._issued = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def done(self) -> int:
        return sum(self.statuses.values())

    def _send(self) -> None:
        rows = serving_rows(1, seed=11)
        with httpx.Client(timeout=60) as client:
            while True:
                with self._lock:
                    if self._issued >= self.total:
                        return
                    self._issued += 1
                try:
                    r = client.post(self.url, json={"dataframe_records": rows})
                    status, version = r.status_code, r.headers.get("x-sustain-version", "?")
                except httpx.HTTPError:
                    status, version = 0, "?"
                with self._lock:
                    self.statuses[status] += 1
                    self.versions[version] += 1

    def join(self, timeout: float = 600) -> None:
        for thread in self._threads:
            thread.join(timeout)
