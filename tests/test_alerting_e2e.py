"""End to end on a real server: normal traffic → no alert; drift → the alert fires on the first drifted window once
it is final, the trainer receives exactly one signed retrain request, the alert shows the outcome; traffic back to
normal → the alert resolves."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from sustain.alerting.signing import verify
from sustain.spec.loader import load_config_text
from sustain.synthetic import SyntheticModel
from tests.helpers import Receiver, ServerProcess, wait_for

SPEC = """
models:
  - name: fraud
    features:
      amount: {kind: numeric, range: [0, 10000]}
      age: numeric
      hour: numeric
      channel: {kind: categorical, categories: [web, app, shop]}
    outputs:
      score: probability
    windows: [5s, 1h]
    late_arrival: 1s
    indicators:
      - type: drift
        params: {alpha: 0.001}
      - type: traffic
    alerts:
      - name: drift-retrain
        window: 5s
        severity: critical
        when: {indicator: drift, feature: any, status: alert}
        actions: [retrain, note]
        resolve_after: 1
    actions:
      retrain: {type: retrain, url: "RECEIVER/retrain", secret: "${SUSTAIN_SECRET_RETRAIN}", retries: 2}
      note: {type: log}
"""


class Traffic:
    """Sends batches of events every 0.25 s until stopped; ``drift`` can be switched on and off."""

    def __init__(self, url: str, model: SyntheticModel) -> None:
        self.url = url
        self.model = model
        self.drift: dict[str, float] | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                drift = self.drift
                r = client.post("/v1/models/fraud/events", json=self.model.events(150, drift))
                assert r.status_code == 200, r.text
                self.stop.wait(0.25)


def alerts(url: str) -> list[dict]:
    return httpx.get(f"{url}/v1/alerts", params={"model": "fraud"}).json()["alerts"]


def test_drift_fires_one_signed_retrain_and_resolves(tmp_path: Path) -> None:
    with Receiver() as trainer:
        spec_file = tmp_path / "sustain.yaml"
        spec_file.write_text(SPEC.replace("RECEIVER", trainer.url))
        spec = load_config_text(SPEC).model("fraud")
        assert spec is not None
        model = SyntheticModel(spec, seed=8)
        reference = tmp_path / "ref.parquet"
        pq.write_table(pa.table(model.reference(5000)), reference)
        env = {
            "SUSTAIN_TRANSFORM_INTERVAL": "1",
            "SUSTAIN_INDICATOR_INTERVAL": "1",
            "SUSTAIN_SECRET_RETRAIN": "trainer-key",
        }
        server = ServerProcess(tmp_path, spec_file, env=env).start()
        traffic = Traffic(server.url, model)
        try:
            upload = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sustain.cli",
                    "reference",
                    "upload",
                    str(reference),
                    "--model",
                    "fraud",
                    "--url",
                    server.url,
                ],
                capture_output=True,
                text=True,
            )
            assert upload.returncode == 0, upload.stderr
            traffic.thread.start()
            time.sleep(7)  # more than a whole 5 s window of normal traffic
            assert alerts(server.url) == []
            traffic.drift = {"amount": 2.0, "age": -2.0}
            # Rules judge final windows: the first drifted 5 s window, once closed and past its 1 s late-arrival
            # delay. How fast is measured in benchmarks/trust.py, not asserted here (a busy machine is slow).
            fired = wait_for(lambda: alerts(server.url), timeout=120)
            (alert,) = fired
            assert alert["window"] == "5s" and alert["window_start"] is not None
            assert alert["status"] == "firing" and alert["severity"] == "critical"
            assert {e["feature"] for e in alert["evidence"]} >= {"amount"}
            time.sleep(4)  # keep drifting: the rule is evaluated again and again, one retraining only
            wait_for(lambda: trainer.requests, timeout=60)
            assert len(trainer.requests) == 1
            (request,) = trainer.requests
            assert request["path"] == "/retrain"
            assert verify(b"trainer-key", request["headers"], request["body"])  # type: ignore[arg-type]
            payload = json.loads(request["body"])  # type: ignore[arg-type]
            assert payload["alert"]["model"] == "fraud" and payload["event"] == "firing"

            def outcome() -> list[dict]:
                detail = httpx.get(f"{server.url}/v1/alerts/{alert['id']}").json()
                return [a for a in detail["attempts"] if a["action"] == "retrain"]

            (attempt,) = wait_for(outcome, timeout=60)
            assert attempt["ok"] and "answered 200" in attempt["detail"]
            traffic.drift = None
            resolved = wait_for(lambda: [a for a in alerts(server.url) if a["status"] == "resolved"], timeout=120)
            assert resolved[0]["id"] == alert["id"]
            cli = subprocess.run(
                [sys.executable, "-m", "sustain.cli", "alerts", "--url", server.url, "--json"],
                capture_output=True,
                text=True,
            )
            assert cli.returncode == 0 and json.loads(cli.stdout)[0]["status"] == "resolved"
        finally:
            traffic.stop.set()
            if traffic.thread.is_alive():
                traffic.thread.join(10)
            server.stop()
        assert len(trainer.requests) == 1
