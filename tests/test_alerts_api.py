"""Silences and the hook endpoint over HTTP, and the alerts CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from sustain.api.app import create_app
from sustain.settings import Settings
from tests.helpers import CHURN_YAML, Receiver, ServerProcess


def spec_with_actions(tmp_path: Path, receiver_url: str) -> Path:
    data = yaml.safe_load(CHURN_YAML)
    churn = data["models"][0]
    churn["actions"] = {
        "hook": {"type": "webhook", "url": f"{receiver_url}/hook"},
        "retrain": {"type": "retrain", "url": f"{receiver_url}/retrain"},
    }
    churn["alerts"] = [
        {"name": "drift", "when": {"indicator": "drift", "feature": "any", "status": "alert"}, "actions": ["hook"]}
    ]
    path = tmp_path / "sustain.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_silences(tmp_path: Path) -> None:
    with Receiver() as receiver:
        app = create_app(
            Settings(store=f"duckdb:///{tmp_path / 's.duckdb'}", config=str(spec_with_actions(tmp_path, receiver.url)))
        )
        with TestClient(app) as client:
            r = client.post("/v1/silences", json={"model": "churn", "duration": "2h", "reason": "deploy"})
            assert r.status_code == 201
            silence = r.json()
            assert silence["rule"] == "*" and silence["ends_at"] > silence["starts_at"]
            assert [s["id"] for s in client.get("/v1/silences").json()["silences"]] == [silence["id"]]
            bad = client.post("/v1/silences", json={"model": "churn", "reason": "x"})
            assert bad.status_code == 422 and "exactly one of duration or ends_at" in bad.text
            bad = client.post("/v1/silences", json={"model": "churn", "duration": "soon", "reason": "x"})
            assert bad.status_code == 422
            assert (
                client.post("/v1/silences", json={"model": "nope", "duration": "1h", "reason": "x"}).status_code == 404
            )
            past = client.post("/v1/silences", json={"ends_at": "2020-01-01T00:00:00Z", "reason": "x"})
            assert past.status_code == 422 and "already be over" in past.json()["error"]["message"]
            assert client.delete(f"/v1/silences/{silence['id']}").status_code == 200
            assert client.get("/v1/silences").json()["silences"] == []
            assert client.delete("/v1/silences/nope").status_code == 404


def test_hook_endpoint(tmp_path: Path) -> None:
    with Receiver() as receiver:
        app = create_app(
            Settings(store=f"duckdb:///{tmp_path / 'h.duckdb'}", config=str(spec_with_actions(tmp_path, receiver.url)))
        )
        with TestClient(app) as client:
            # ElastAlert2 names the rule: sustain confirms it first; no drift documents yet, so nothing runs
            r = client.post("/v1/hooks/hook", params={"model": "churn", "rule": "drift"}, json={"value": 0.4})
            assert r.status_code == 409 and "does not hold now" in r.json()["error"]["message"]
            # an alert that is not a rule of the spec never runs an action (issue 11: it used to, at once)
            r = client.post("/v1/hooks/retrain", json={"model": "churn", "rule": "external-psi", "value": 0.4})
            assert r.status_code == 404 and r.json()["error"]["field"] == "rule"
            # the rule exists but does not run this action
            r = client.post("/v1/hooks/retrain", json={"model": "churn", "rule": "drift"})
            assert r.status_code == 409 and r.json()["error"]["field"] == "action"
            alerting = client.app.state.sustain.alerting  # type: ignore[attr-defined]
            assert alerting.dispatcher.flush(10)
            assert receiver.requests == []
            assert client.post("/v1/hooks/nope", json={"model": "churn"}).status_code == 404
            assert client.post("/v1/hooks/hook", json={"value": 1}).status_code == 422
            assert (
                client.post(
                    "/v1/hooks/hook",
                    content=b"[1]",
                    headers={"content-type": "application/json"},
                    params={"model": "churn"},
                ).status_code
                == 422
            )


def test_silence_cli_against_a_server(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, spec_with_actions(tmp_path, "http://127.0.0.1:9")) as server:
        run = [sys.executable, "-m", "sustain.cli"]
        made = subprocess.run(
            [
                *run,
                "silence",
                "--model",
                "churn",
                "--for",
                "30m",
                "--reason",
                "maintenance",
                "--url",
                server.url,
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        silence_id = json.loads(made.stdout)["id"]
        listed = subprocess.run([*run, "silences", "--url", server.url], capture_output=True, text=True)
        assert silence_id in listed.stdout and "maintenance" in listed.stdout
        bad = subprocess.run(
            [*run, "silence", "--for", "forever", "--reason", "x", "--url", server.url], capture_output=True, text=True
        )
        assert bad.returncode == 2 and "not a duration" in bad.stderr and "Traceback" not in bad.stderr
        ended = subprocess.run([*run, "unsilence", silence_id, "--url", server.url], capture_output=True, text=True)
        assert ended.returncode == 0
        none = subprocess.run([*run, "alerts", "--url", server.url], capture_output=True, text=True)
        assert none.returncode == 0 and "no alerts" in none.stdout
