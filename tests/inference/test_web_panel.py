"""The inference units' queues on the server: ``GET /v1/inference/status``, the gauges at ``/metrics`` and the
panel on the dashboard's overview page (headless Chromium), against a real ``sustain serve --redis``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from sustain.inference import InferenceClient, Unit
from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, UnitConfig
from tests.browser import ARTIFACTS, Watched, chromium, chromium_path
from tests.helpers import ServerProcess, write_spec
from tests.inference.model_server import ModelServer
from tests.inference.redis_server import RedisServer

SPEC = """
models:
  - name: served
    features: {x: numeric}
    outputs: {y: {kind: regression}}
"""


@dataclass
class Queues:
    redis: RedisServer
    server: ServerProcess


@pytest.fixture(scope="module")
def queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queues]:
    """Two models: ``waiting`` has 5 requests and no unit; ``served`` was served, with one poisoned request."""
    chromium_path()
    workdir = tmp_path_factory.mktemp("inference-panel")
    with RedisServer(workdir / "redis") as redis_server, ModelServer() as model:
        with InferenceClient(redis_server.url, "waiting", partitions=2) as client:
            client.submit_many([{"x": i} for i in range(5)])
        with InferenceClient(redis_server.url, "served", partitions=2) as client:
            ids = client.submit_many([{"x": i, "poison": i == 3} for i in range(10)])
            binding = ModelBinding("served", BackendConfig("mlflow", model.url))
            config = UnitConfig(redis_server.url, (binding,), batch=BatchPolicy(16, 5), max_deliveries=1)
            with Unit(config):
                assert len(client.answers(ids, timeout=60)) == 10
        server = ServerProcess(workdir, write_spec(workdir, SPEC), args=["--redis", redis_server.url]).start()
        try:
            yield Queues(redis_server, server)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def test_the_status_route_and_metrics_read_the_queues(queues: Queues) -> None:
    body = httpx.get(f"{queues.server.url}/v1/inference/status", timeout=10).json()
    by_model = {m["model"]: m for m in body["models"]}
    assert by_model["waiting"] == {
        "model": "waiting", "partitions": 2, "lag": 5, "pending": 0, "backlog": 5, "dead_letters": 0, "units": 0
    }  # fmt: skip
    assert (by_model["served"]["lag"], by_model["served"]["backlog"], by_model["served"]["dead_letters"]) == (0, 0, 1)
    metrics = httpx.get(f"{queues.server.url}/metrics", timeout=10).text
    assert 'sustain_aiu_queue_lag{model="waiting"} 5.0' in metrics
    assert 'sustain_aiu_dead_letters{model="served"} 1.0' in metrics


def test_the_overview_page_shows_each_models_queue(queues: Queues, browser: BrowserContext) -> None:
    watched = Watched.open(browser)
    try:
        watched.goto(f"{queues.server.url}/")
        page = watched.page
        assert page.is_visible('[data-testid="inference"]')
        assert page.inner_text('[data-testid="queue-lag-waiting"]') == "5"
        assert page.inner_text('[data-testid="queue-backlog-waiting"]') == "5"
        assert page.inner_text('[data-testid="queue-dead-waiting"]').strip() == "0"
        assert page.inner_text('[data-testid="queue-lag-served"]') == "0"
        assert page.get_attribute('[data-testid="queue-dead-badge-served"]', "data-status") == "alert"
        assert page.inner_text('[data-testid="queue-dead-served"]').split()[-1] == "1"
        watched.screenshot(ARTIFACTS / "overview-inference.png")
        watched.assert_clean()
    finally:
        watched.close()


def test_without_redis_the_route_says_why_and_the_panel_stays_hidden(tmp_path: Path, browser: BrowserContext) -> None:
    with ServerProcess(tmp_path, write_spec(tmp_path, SPEC)) as server:
        response = httpx.get(f"{server.url}/v1/inference/status", timeout=10)
        assert response.status_code == 404
        assert "started without --redis" in response.json()["error"]["message"]
        watched = Watched.open(browser)
        try:
            watched.goto(f"{server.url}/")
            assert not watched.page.is_visible('[data-testid="inference"]')
            watched.assert_clean()
        finally:
            watched.close()
