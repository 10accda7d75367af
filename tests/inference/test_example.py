"""``examples/aiu`` as its README runs it: Redis from the shipped redis.conf, ``sustain serve --redis``, two
units with the example's model logging to sustain, and the example's client; the traffic reaches the dashboard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ServerProcess, wait_for
from tests.inference.processes import sustain_aiu
from tests.inference.redis_server import RedisServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aiu"


def test_the_example_serves_through_units_and_its_traffic_is_on_the_dashboard(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE), "SUSTAIN_SPOOL_DIR": str(tmp_path / "spool")}
    with RedisServer(tmp_path / "redis", config=EXAMPLE / "redis.conf") as redis_server:
        assert redis_server.client().config_get("appendonly") == {"appendonly": "yes"}
        server_env = {"SUSTAIN_TRANSFORM_INTERVAL": "0.5", "SUSTAIN_INDICATOR_INTERVAL": "0.5"}
        with ServerProcess(
            tmp_path, EXAMPLE / "sustain.yaml", env=server_env, args=["--redis", redis_server.url]
        ) as sustain:
            units = sustain_aiu(
                "serve", "--redis", redis_server.url, "--model", "churn-aiu", "--backend-kind", "python",
                "--backend", "model:predict", "--units", "2", "--collector", sustain.url, "--model-version", "1",
                log=tmp_path / "units.log", env=env,
            )  # fmt: skip
            try:
                client = subprocess.run(
                    [sys.executable, str(EXAMPLE / "client.py"), "--redis", redis_server.url, "--requests", "500"],
                    capture_output=True, text=True, timeout=300, env=env,
                )  # fmt: skip
                assert client.returncode == 0, client.stderr
                assert "500 answered" in client.stdout and "0 failed" in client.stdout

                def overview() -> dict[str, Any] | None:
                    body = httpx.get(f"{sustain.url}/v1/dashboard/overview", params={"range": "1h"}, timeout=10).json()
                    (model,) = [m for m in body["models"] if m["model"] == "churn-aiu"]
                    return body if model["versions"] and model["versions"][0]["events_last_hour"] == 500 else None

                body = wait_for(overview, 120, "the example's 500 events on the dashboard")
                assert body["inference"] is True
                queues = httpx.get(f"{sustain.url}/v1/inference/status", timeout=10).json()["models"]
                (queue,) = [q for q in queues if q["model"] == "churn-aiu"]
                assert (queue["units"], queue["lag"], queue["pending"], queue["dead_letters"]) == (2, 0, 0, 0)
                events = httpx.get(f"{sustain.url}/v1/models/churn-aiu/events", params={"limit": 1}, timeout=10).json()
                event = events["events"][0]
                assert set(event["features"]) >= {"tenure", "monthly", "plan"} and event["version"] == "1"
                assert event["outputs"]["label"] in ("stay", "churn") and 0 <= event["outputs"]["score"] <= 1
            finally:
                units.send_signal(signal.SIGTERM)
                assert units.wait(60) == 0
