"""``sustain aiu serve`` and ``sustain aiu status`` as a user runs them: real processes, a real Redis, a real
model; errors as sentences with exit codes (``--units N`` is exercised by the acceptance test)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx

from sustain.inference import InferenceClient
from tests.helpers import free_port, wait_for
from tests.inference.model_server import ModelServer
from tests.inference.processes import SUSTAIN, sustain_aiu
from tests.inference.redis_server import RedisServer


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SUSTAIN, "aiu", *args], capture_output=True, text=True, timeout=120)


def test_serve_answers_exposes_metrics_and_stops_on_sigterm(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    with ModelServer() as model, InferenceClient(redis_server.url, "toy") as client:
        unit = sustain_aiu(
            "serve", "--redis", redis_server.url, "--model", "toy", "--backend", model.url,
            "--max-batch", "8", "--metrics-port", str(port), log=tmp_path / "unit.log",
        )  # fmt: skip
        try:
            assert [client.predict({"x": i}, key="k", timeout=60)["y"] for i in range(5)] == [0, 2, 4, 6, 8]
            metrics = wait_for(lambda: _scrape(port), 30, "the metrics endpoint")
            assert 'sustain_aiu_items_total{model="toy",outcome="answered"} 5.0' in metrics
            assert 'sustain_aiu_queue_lag{model="toy"} 0.0' in metrics
            assert "sustain_aiu_backend_seconds_bucket" in metrics and "sustain_aiu_batch_size_bucket" in metrics
        finally:
            unit.send_signal(signal.SIGTERM)
            assert unit.wait(60) == 0
        assert redis_server.client().zcard("aiu:{toy}:units") == 0  # it said goodbye
        assert not list(redis_server.client().scan_iter("aiu:{toy}:lease:*"))

    shown = run("status", "--redis", redis_server.url, "--json")
    assert shown.returncode == 0, shown.stderr
    (toy,) = json.loads(shown.stdout)
    assert (toy["model"], toy["lag"], toy["pending"], toy["dead_letters"]) == ("toy", 0, 0, 0)
    table = run("status", "--redis", redis_server.url)
    assert "toy" in table.stdout and "dead letters" in table.stdout


def _scrape(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None


def test_errors_are_sentences_with_exit_codes(redis_server: RedisServer) -> None:
    down = run("status", "--redis", "redis://127.0.0.1:1/0")
    assert down.returncode == 3 and "cannot reach Redis at redis://127.0.0.1:1/0" in down.stderr
    assert "Traceback" not in down.stderr
    for units in ("1", "3"):
        serve = run(
            "serve", "--redis", "redis://127.0.0.1:1/0", "--model", "m", "--backend", "http://x", "--units", units
        )
        assert serve.returncode == 3 and "cannot reach Redis" in serve.stderr and "Traceback" not in serve.stderr
    kind = run("serve", "--redis", redis_server.url, "--model", "m", "--backend", "http://x", "--backend-kind", "grpc")
    assert kind.returncode == 2 and "unknown --backend-kind 'grpc'; known: mlflow, python, seldon, v2" in kind.stderr
    pairs = run("serve", "--redis", redis_server.url, "--model", "a", "--model", "b", "--backend", "http://x",
                "--backend", "http://y", "--backend", "http://z")  # fmt: skip
    assert pairs.returncode == 2 and "one --backend for all models or one per --model (2), not 3" in pairs.stderr
    name = run("serve", "--redis", redis_server.url, "--model", "bad name", "--backend", "http://x")
    assert name.returncode == 2 and "model name 'bad name' may hold only" in name.stderr
    batch = run("serve", "--redis", redis_server.url, "--model", "m", "--backend", "http://x", "--max-batch", "0")
    assert batch.returncode == 2 and "max_batch_size must be at least 1, got 0" in batch.stderr
