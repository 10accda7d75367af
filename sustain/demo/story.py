"""``sustain demo``: the product's story in about three minutes, on the embedded default.

A scikit-learn churn model (``examples/demo``) is trained on made-up customers and registered in a local
MLflow registry (sqlite, no server), as the standards ask: a signature and an example, the training data
logged with ``mlflow.log_input``. sustain releases it by itself: checked, tested in a fresh process, packaged,
served by a real MLflow scoring server behind sustain's gateway, with monitoring attached from the training
data, and promoted (the demo's policy is automatic). Traffic goes through the gateway, which logs every
request and response; true labels follow two seconds later. Then the customers drift, the drift alert fires,
and the retrain action calls a local trainer that retrains on the recent labelled events and registers
version 2. The registry poll finds it, the pipeline checks and tests it against the champion, serves it as
the candidate and promotes it; traffic moves to it, and the model's drift alert resolves on the new version's windows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import secrets
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from sustain.errors import ConfigError
from sustain.loopback import free_port

MODEL = "churn-demo"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo"
Say = Callable[[str], None]


def _examples() -> ModuleType:
    path = EXAMPLES / "churn_model.py"
    if not path.exists():
        raise ConfigError(f"the demo needs {path} (run it from a clone of the sustain repository)")
    spec = importlib.util.spec_from_file_location("sustain_demo_churn_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Registry:
    """The local MLflow registry (sqlite), quiet."""

    directory: Path
    versions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)
        import mlflow

        uri = f"sqlite:///{self.directory / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        with contextlib.redirect_stderr(io.StringIO()):
            # Artifacts next to the registry, not in ./mlruns of whatever directory the demo was started from.
            if mlflow.get_experiment_by_name("sustain-demo") is None:
                mlflow.create_experiment("sustain-demo", artifact_location=(self.directory / "artifacts").as_uri())
            mlflow.set_experiment("sustain-demo")

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.directory / 'mlflow.db'}"

    def register(self, model: Any, frame: Any, labels: Any, metrics: dict[str, float], holdout: Any = None) -> str:
        """Log and register ``model`` the way the release standards ask: an input example (so a signature), the
        training data logged as a dataset with a source sustain can read, and a holdout to test it on."""
        import mlflow
        from mlflow.data.pandas_dataset import from_pandas

        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        n = len(self.versions) + 1
        # MLflow reports each registration on stderr and warns while logging; the demo tells the story itself.
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            with mlflow.start_run():
                mlflow.log_metrics(metrics)
                training = frame.assign(label=labels)
                training.to_parquet(data / f"training-{n}.parquet")
                source = str(data / f"training-{n}.parquet")
                mlflow.log_input(from_pandas(training, source=source, targets="label"), context="training")
                if holdout is not None:
                    held = holdout[0].assign(label=holdout[1])
                    held.to_parquet(data / f"holdout-{n}.parquet")
                    source = str(data / f"holdout-{n}.parquet")
                    mlflow.log_input(from_pandas(held, source=source, targets="label"), context="evaluation")
                info = mlflow.sklearn.log_model(
                    model, name="model", registered_model_name=MODEL, input_example=frame.head(5)
                )
        version = str(info.registered_model_version)
        self.versions.append(version)
        return version


class Trainer:
    """The retrain receiver: verifies the signed request, retrains on recent labelled events, registers."""

    def __init__(self, sustain_url: str, secret: bytes, registry: Registry, examples: ModuleType, say: Say) -> None:
        self.sustain_url = sustain_url
        self.secret = secret
        self.registry = registry
        self.examples = examples
        self.say = say
        self.requests = 0
        self.done = threading.Event()
        self.version: str | None = None
        self.model: Any = None
        trainer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from sustain.alerting.signing import verify

                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if not verify(trainer.secret, dict(self.headers.items()), body):
                    self.send_response(401)
                    self.end_headers()
                    return
                trainer.requests += 1
                self.send_response(202)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"accepted": true}')
                if trainer.requests == 1:
                    threading.Thread(target=trainer.retrain, args=(json.loads(body),), daemon=True).start()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def retrain(self, request: dict[str, Any]) -> None:
        import pandas as pd

        alert = request.get("alert", {})
        self.say(f"trainer: signature verified; alert {str(alert.get('id', ''))[:8]} asks to retrain {MODEL}")
        # Today's customers: the labelled events since the alert fired (labels come 2 s after their requests).
        since = datetime.fromisoformat(alert["started_at"])
        labelled: list[dict[str, Any]] = []
        deadline = time.monotonic() + 40
        while len(labelled) < 1200 and time.monotonic() < deadline:
            time.sleep(1.0)
            params: dict[str, str | int] = {"limit": 10_000, "since": since.isoformat()}
            events = httpx.get(f"{self.sustain_url}/v1/models/{MODEL}/events", params=params, timeout=30).json()
            labelled = [e for e in events["events"] if e.get("label")]
        recent = labelled[:3000]  # newest first
        frame = pd.DataFrame([e["features"] for e in recent])
        labels = [e["label"]["value"] for e in recent]
        # The newest fifth is held out: it is what today's customers look like, the test the new version must pass.
        held = len(frame) // 5
        train_frame, train_labels = frame.iloc[held:], labels[held:]
        model = self.examples.train(train_frame, train_labels)
        truth = pd.Series(labels[:held]).to_numpy()
        accuracy = float((model.predict(frame.iloc[:held]) == truth).mean())
        self.model = model
        metrics = {"accuracy_recent": accuracy, "trained_on": float(len(train_frame))}
        holdout = (frame.iloc[:held], labels[:held])
        self.version = self.registry.register(model, train_frame, train_labels, metrics, holdout)
        cut = len(train_frame)
        self.say(
            f"trainer: retrained on {cut:,} labelled events since the alert (accuracy on the newest {held:,}: "
            f"{accuracy:.3f}); "
            f"registered {MODEL} version {self.version} in MLflow"
        )
        self.done.set()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _start_service(directory: Path, port: int, registry: Registry) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from sustain.api.app import build_context, create_app
    from sustain.settings import Settings

    settings = Settings(
        store=f"duckdb:///{directory / 'sustain.duckdb'}",
        port=port,
        config=str(EXAMPLES / "sustain.yaml"),
        transform_interval=1.0,
        indicator_interval=1.0,
        registry=registry.uri,
        release_dir=str(directory / "releases"),
        release_poll=1.0,
    )
    ctx = build_context(settings)
    app = create_app(settings, context=ctx)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, thread, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise ConfigError(f"the demo's sustain service did not start on port {port}")


def follow_release(url: str, version: str, say: Say, timeout: float = 240.0) -> dict[str, Any]:
    """Say each stage of the release of ``version`` as it ends; return the release once it has ended."""
    told = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/releases/{MODEL}/{version}", timeout=10)
        if response.status_code == 200:
            release: dict[str, Any] = response.json()
            ended = [s for s in release["stages"] if s["outcome"] != "running"]
            for stage in ended[told:]:
                mark = "✓" if stage["outcome"] == "passed" else "✗"
                took = f"{stage['seconds']:.1f} s"
                say(f"release of version {version}: {mark} {stage['stage']} in {took}: {stage['reason']}")
            told = len(ended)
            stuck = release["state"] == "deployed" and "promotion failed" in release["reason"]
            if release["state"] in ("promoted", "rejected", "failed") or stuck:
                return release
        time.sleep(0.3)
    raise ConfigError(f"the release of {MODEL} version {version} did not end in {timeout:g} s")


class Traffic(threading.Thread):
    """Customers' requests through sustain's serving gateway (which logs them), with true labels 2 s later."""

    def __init__(self, url: str, examples: ModuleType) -> None:
        super().__init__(daemon=True)
        from sustain import Logger

        self.url = url
        self.examples = examples
        self.drifted = False
        self.stop = threading.Event()
        self.logger = Logger(url, MODEL, flush_interval=0.2, spool=False)  # labels only: the gateway logs events
        self.answered: Counter[str] = Counter()
        self.failed = 0
        self.version = ""

    def run(self) -> None:
        pending: list[tuple[float, str, str]] = []
        batch = 0
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                batch += 1
                frame, truth = self.examples.customers(60, drifted=self.drifted, seed=10_000 + batch)
                rid = f"b{batch}"
                try:
                    response = client.post(
                        f"{self.url}/serving/{MODEL}/invocations",
                        json={"dataframe_records": frame.to_dict(orient="records")},
                        headers={"x-request-id": rid},
                    )
                except httpx.HTTPError:
                    response = None
                if response is None or response.status_code != 200:
                    self.failed += 1
                else:
                    self.version = response.headers.get("x-sustain-version", "?")
                    self.answered[self.version] += len(frame)
                    due = time.monotonic() + 2.0
                    pending.extend((due, f"{rid}-{i}", str(label)) for i, label in enumerate(truth))
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    _, key, label = pending.pop(0)
                    self.logger.label(key, label)
                self.stop.wait(0.3)
        self.logger.close(timeout=5)


def _latest(url: str, version: str) -> dict[str, Any]:
    docs = httpx.get(
        f"{url}/v1/models/{MODEL}/indicators",
        params={"latest": "true", "window": "10s", "version": version},
        timeout=10,
    ).json()
    found: dict[str, Any] = {}
    for d in docs["indicators"]:
        if d["indicator"] == "drift" and d["feature"] is None:
            found["drift"] = d
        elif d["indicator"] == "label_metrics" and d["metric"] == "accuracy":
            found["accuracy"] = d
        elif d["indicator"] == "estimated_performance" and d["metric"] == "accuracy":
            found["estimated"] = d
    return found


def _describe(found: dict[str, Any]) -> str:
    drift, accuracy, estimated = found.get("drift"), found.get("accuracy"), found.get("estimated")
    parts = []
    if drift and drift["value"] is not None:
        drifted = ", ".join(drift["details"].get("drifted", [])) or "none"
        parts.append(f"drift share {drift['value']:.2f} (drifted: {drifted})")
    if estimated and estimated["value"] is not None:
        parts.append(f"estimated accuracy {estimated['value']:.3f}")
    if accuracy and accuracy["value"] is not None:
        parts.append(f"accuracy from labels {accuracy['value']:.3f}")
    return "; ".join(parts) or "waiting for the first window"


def run_demo(
    port: int | None, directory: Path | None, say: Say, keep_serving: bool = False, max_seconds: float = 300.0
) -> dict[str, Any]:
    """Run the story; return a summary (dashboard URL, alert id, the versions and how the release went).

    ``max_seconds`` bounds the waits on a very busy machine; the story itself takes about three minutes."""
    logging.getLogger("sustain").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
    deadline = started + max_seconds
    work = directory or Path(tempfile.mkdtemp(prefix="sustain-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    examples = _examples()
    try:
        import mlflow  # noqa: F401 - only to fail early with a sentence
    except ImportError:
        message = "the demo registers models in MLflow: pip install 'sustain[mlflow]' (make run does)"
        raise ConfigError(message) from None
    say(f"working in {work}")
    registry = Registry(work)
    frame, truth = examples.customers(4000, seed=1)
    model = examples.train(frame, truth)
    accuracy = float((model.predict(frame) == truth).mean())
    version = registry.register(model, frame, truth, {"accuracy_train": accuracy}, examples.customers(1000, seed=2))
    say(
        f"trained {MODEL} on 4,000 made-up customers (accuracy {accuracy:.3f}); MLflow registered version "
        f"{version} with its signature, an input example and its training data"
    )
    secret = secrets.token_hex(16)
    port = port or free_port()
    os.environ["SUSTAIN_DEMO_SECRET"] = secret
    trainer = Trainer(f"http://127.0.0.1:{port}", secret.encode(), registry, examples, say)
    os.environ["SUSTAIN_DEMO_TRAINER"] = trainer.url
    server, thread, url = _start_service(work, port, registry)
    say(f"sustain is running: dashboard {url}/models/{MODEL}   releases {url}/releases   API {url}/docs")
    mark = time.monotonic()
    httpx.post(f"{url}/v1/releases/{MODEL}/{version}", timeout=60).raise_for_status()
    first = follow_release(url, version, say, timeout=deadline - time.monotonic())
    if first["state"] != "promoted":
        raise ConfigError(f"version {version} was not released: {first['reason']}")
    say(f"version {version} is in production {time.monotonic() - mark:.1f} s after the release began")
    traffic = Traffic(url, examples)
    traffic.start()
    say(f"streaming customers through the gateway ({url}/serving/{MODEL}/invocations); labels 2 s later")
    summary: dict[str, Any] = {"dashboard": f"{url}/models/{MODEL}", "directory": str(work), "first_version": version}
    try:
        _watch(url, version, 10.0, say)
        say("the customers change: more support calls, richer plans, and high spend now means staying")
        traffic.drifted = True
        alert = _wait_for_alert(url, version, say, deadline=deadline)
        summary["alert"] = alert["id"]
        say(f"ALERT {alert['rule']} fired ({alert['severity']}): {alert['summary']}")
        if not trainer.done.wait(timeout=max(5.0, deadline - time.monotonic())):
            raise ConfigError("the trainer did not finish retraining in time")
        registered = time.monotonic()
        attempts = httpx.get(f"{url}/v1/alerts/{alert['id']}").json()["attempts"]
        retrain = [a for a in attempts if a["action"] == "retrain"]
        if retrain:
            say(f"the alert records the retrain action: {retrain[-1]['detail']}")
        new_version = trainer.version
        assert new_version is not None
        summary["new_version"] = new_version
        today, today_truth = examples.customers(5000, drifted=True, seed=7)
        before = float((model.predict(today) == today_truth).mean())
        after = float((trainer.model.predict(today) == today_truth).mean())
        summary["accuracy_before"], summary["accuracy_after"] = round(before, 3), round(after, 3)
        say(
            f"on 5,000 of today's customers: version {version} is right {before:.1%} of the time, "
            f"version {new_version} {after:.1%}"
        )
        say(f"the registry poll finds version {new_version}; the release pipeline takes it from there")
        second = follow_release(url, new_version, say, timeout=deadline - time.monotonic())
        if second["state"] != "promoted":
            raise ConfigError(f"version {new_version} was not promoted: {second['reason']}")
        summary["release_seconds"] = round(time.monotonic() - registered, 1)
        say(f"version {new_version} is the champion {summary['release_seconds']} s after it was registered")
        _wait_for_traffic(traffic, new_version, say, deadline)
        _wait_for_resolution(url, alert["id"], new_version, say, deadline)
        summary["alert_resolved"] = True
        summary["served"] = dict(traffic.answered)
        summary["failed_requests"] = traffic.failed
        summary["seconds"] = round(time.monotonic() - started, 1)
        say(
            f"done in {summary['seconds']}s: dashboard {summary['dashboard']}  releases {url}/releases  alert "
            f"{summary['alert'][:8]} resolved; {MODEL} version {new_version} serves, version {version} is kept warm"
        )
        if keep_serving:
            say("still serving; press Ctrl-C to stop")
            while True:
                time.sleep(3600)
        return summary
    finally:
        traffic.stop.set()
        traffic.join(10)
        trainer.close()
        server.should_exit = True
        thread.join(60)  # the service stops the scoring servers it started


def _wait_for_traffic(traffic: Traffic, version: str, say: Say, deadline: float) -> None:
    before = traffic.answered[version]
    while time.monotonic() < deadline:
        if traffic.version == version and traffic.answered[version] > before:
            rows = sum(traffic.answered.values())
            say(
                f"traffic moved: the gateway answers with version {version}; {rows:,} rows served so far, "
                f"{traffic.failed} requests failed"
            )
            return
        time.sleep(0.3)
    raise ConfigError(f"the gateway never answered with version {version}")


def _wait_for_resolution(url: str, alert_id: str, version: str, say: Say, deadline: float) -> None:
    last = time.monotonic()
    while time.monotonic() < deadline:
        alert = httpx.get(f"{url}/v1/alerts/{alert_id}", timeout=10).json()
        if alert["status"] == "resolved":
            say(f"the drift alert resolved ({alert_id[:8]}): the model in production fits today's customers")
            return
        if time.monotonic() - last >= 4:
            say(f"version {version}, latest 10 s window: {_describe(_latest(url, version))}")
            last = time.monotonic()
        time.sleep(0.5)
    raise ConfigError("the drift alert did not resolve in time; is the machine very busy?")


def _watch(url: str, version: str, seconds: float, say: Say) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(4.0, max(0.0, end - time.monotonic())))
        say(f"version {version}, latest 10 s window: {_describe(_latest(url, version))}")


def _wait_for_alert(url: str, version: str, say: Say, deadline: float) -> dict[str, Any]:
    last = 0.0
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{url}/v1/alerts", params={"model": MODEL, "status": "firing"}).json()["alerts"]
        if alerts:
            return dict(alerts[0])
        if time.monotonic() - last >= 4:
            say(f"version {version}, latest 10 s window: {_describe(_latest(url, version))}")
            last = time.monotonic()
        time.sleep(0.5)
    raise ConfigError("no alert fired in time; is the machine very busy?")
