"""``sustain demo``: the product's story in about a minute, on the embedded default.

A scikit-learn churn model (``examples/demo``) is trained on made-up customers and registered in a local
MLflow registry (sqlite, no server). sustain serves the model's monitor spec; the demo streams its
predictions through the real client Logger, then the customers drift, the drift alert fires, and the retrain
action calls a local trainer that checks the signature, retrains on the recent labelled events it reads back
from sustain, and registers the new version. Traffic then moves to the new version and its accuracy shows in
the label metrics.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from sustain.errors import ConfigError

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    def register(self, model: Any, metrics: dict[str, float]) -> str:
        import mlflow

        # MLflow reports each registration on stderr; the demo tells the story itself.
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            with mlflow.start_run():
                mlflow.log_metrics(metrics)
                info = mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL)
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
        events = httpx.get(f"{self.sustain_url}/v1/models/{MODEL}/events", params={"limit": 10_000}, timeout=30).json()[
            "events"
        ]
        labelled = [e for e in events if e.get("label")]
        recent = labelled[:3000]  # newest first
        frame = pd.DataFrame([e["features"] for e in recent])
        labels = [e["label"]["value"] for e in recent]
        cut = int(len(frame) * 0.8)
        model = self.examples.train(frame.iloc[:cut], labels[:cut])
        accuracy = float((model.predict(frame.iloc[cut:]) == pd.Series(labels[cut:]).to_numpy()).mean())
        self.model = model
        self.version = self.registry.register(model, {"accuracy_recent": accuracy, "trained_on": float(cut)})
        self.say(
            f"trainer: retrained on {cut:,} recent labelled events (accuracy on the rest {accuracy:.3f}); "
            f"registered {MODEL} version {self.version} in MLflow"
        )
        self.done.set()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _start_service(directory: Path, port: int, say: Say) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from sustain.api.app import build_context, create_app
    from sustain.settings import Settings

    settings = Settings(
        store=f"duckdb:///{directory / 'sustain.duckdb'}",
        port=port,
        config=str(EXAMPLES / "sustain.yaml"),
        transform_interval=1.0,
        indicator_interval=1.0,
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


class Traffic(threading.Thread):
    """Streams the model's predictions for made-up customers through the real Logger, with labels 2 s later."""

    def __init__(self, url: str, examples: ModuleType, model: Any, version: str) -> None:
        super().__init__(daemon=True)
        from sustain import Logger

        self.examples = examples
        self.model = model
        self.version = version
        self.drifted = False
        self.stop = threading.Event()
        self.logger = Logger(url, MODEL, version, flush_interval=0.2, spool=False)
        self.sent = 0

    def run(self) -> None:
        pending: list[tuple[float, str, str]] = []
        batch = 0
        while not self.stop.is_set():
            batch += 1
            frame, truth = self.examples.customers(60, drifted=self.drifted, seed=10_000 + batch)
            predicted, scores = self.examples.predict(self.model, frame)
            for i, row in enumerate(frame.to_dict(orient="records")):
                rid = f"{self.version}-{batch}-{i}"
                self.logger.log(
                    row,
                    {"prediction": predicted[i], "proba": scores[i]},
                    request_id=rid,
                    latency_ms=float(3 + (i % 7)),
                    version=self.version,
                )
                pending.append((time.monotonic() + 2.0, rid, str(truth[i])))
            self.sent += len(frame)
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, rid, label = pending.pop(0)
                self.logger.label(rid, label)
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
    """Run the story; return a summary (dashboard URL, alert id, the new version)."""
    logging.getLogger("sustain").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
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
    version = registry.register(model, {"accuracy_train": accuracy})
    say(f"trained {MODEL} on 4,000 made-up customers (accuracy {accuracy:.3f}); MLflow registered version {version}")
    secret = secrets.token_hex(16)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ["SUSTAIN_DEMO_SECRET"] = secret
    trainer = Trainer(url, secret.encode(), registry, examples, say)
    os.environ["SUSTAIN_DEMO_TRAINER"] = trainer.url
    server, server_thread, url = _start_service(work, port, say)
    say(f"sustain is serving {MODEL}: dashboard {url}/models/{MODEL}   API {url}/docs")
    predicted, scores = examples.predict(model, frame)
    reference = frame.assign(prediction=predicted, label=truth)
    reference["proba.stay"] = [s[0] for s in scores]
    reference["proba.churn"] = [s[1] for s in scores]
    r = httpx.put(
        f"{url}/v1/models/{MODEL}/reference",
        params={"version": version},
        content=reference.to_json(orient="records").encode(),
        headers={"content-type": "application/json"},
    )
    r.raise_for_status()
    say(f"uploaded the training data ({len(reference):,} rows) as the reference of version {version}")
    traffic = Traffic(url, examples, model, version)
    traffic.start()
    say("streaming normal traffic: predictions now, true labels two seconds later")
    summary: dict[str, Any] = {"dashboard": f"{url}/models/{MODEL}", "directory": str(work), "first_version": version}
    try:
        _watch(url, version, 15.0, say)
        say("the customers change: more support calls, richer plans, and high spend now means staying")
        traffic.drifted = True
        alert = _wait_for_alert(url, version, say, deadline=started + max_seconds - 30)
        summary["alert"] = alert["id"]
        say(f"ALERT {alert['rule']} fired ({alert['severity']}): {alert['summary']}")
        if not trainer.done.wait(timeout=max(5.0, started + max_seconds - 20 - time.monotonic())):
            raise ConfigError("the trainer did not finish retraining in time")
        attempts = httpx.get(f"{url}/v1/alerts/{alert['id']}").json()["attempts"]
        retrain = [a for a in attempts if a["action"] == "retrain"]
        if retrain:
            say(f"the alert records the retrain action: {retrain[-1]['detail']}")
        traffic.stop.set()
        traffic.join(10)
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
        recent, recent_truth = examples.customers(3000, drifted=True, seed=99)
        predicted, scores = examples.predict(trainer.model, recent)
        ref2 = recent.assign(prediction=predicted, label=recent_truth)
        ref2["proba.stay"], ref2["proba.churn"] = [s[0] for s in scores], [s[1] for s in scores]
        httpx.put(
            f"{url}/v1/models/{MODEL}/reference",
            params={"version": new_version},
            content=ref2.to_json(orient="records").encode(),
            headers={"content-type": "application/json"},
        )
        say(f"traffic moves to version {new_version}, with its own reference")
        traffic = Traffic(url, examples, trainer.model, new_version)
        traffic.drifted = True
        traffic.start()
        _watch(url, new_version, 12.0, say)
        summary["seconds"] = round(time.monotonic() - started, 1)
        say(
            f"done in {summary['seconds']}s: dashboard {summary['dashboard']}  alert {summary['alert'][:8]}  "
            f"{MODEL} version {new_version} registered in {work / 'mlflow.db'}"
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
        server_thread.join(60)  # the service's shutdown stops the engine; the process must not end before it


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
