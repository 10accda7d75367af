"""Units against a real MLflow scoring server (``mlflow models serve``), with every inference monitored by a real
``sustain serve``: the monitoring comes for free, from the payloads and predictions the units see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sustain.inference import InferenceClient, InferenceFailed, Unit
from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, MonitorConfig, UnitConfig
from tests.helpers import ServerProcess, wait_for, write_spec
from tests.inference.mlflow_serving import FEATURES, ScoringServer, train_and_log
from tests.inference.redis_server import RedisServer, dead_letters

SPEC = """
models:
  - name: scorer
    features: {x0: numeric, x1: numeric, x2: numeric, x3: numeric}
    outputs:
      prediction: {kind: regression}
"""


@pytest.fixture(scope="module")
def scoring_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoringServer]:
    directory = tmp_path_factory.mktemp("mlflow")
    with ScoringServer(train_and_log(directory), directory) as server:
        yield server


def rows(n: int) -> list[dict[str, float]]:
    return [{name: round(((i * 7 + j * 3) % 11 - 5) / 2.5, 2) for j, name in enumerate(FEATURES)} for i in range(n)]


@pytest.mark.timeout(600)
def test_units_batch_to_mlflow_and_every_inference_reaches_the_collector(
    scoring_server: ScoringServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    payloads: list[dict[str, Any]] = list(rows(300))
    payloads.insert(123, {"x0": "not a number", "x1": 0.0, "x2": 0.0, "x3": 0.0})
    direct = httpx.post(
        f"{scoring_server.url}/invocations",
        json={"dataframe_split": {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in rows(300)]}},
        timeout=60,
    ).json()["predictions"]
    with ServerProcess(tmp_path, write_spec(tmp_path, SPEC)) as sustain:
        monitor = MonitorConfig(sustain.url, spool_dir=str(tmp_path / "spool"))
        binding = ModelBinding("scorer", BackendConfig("mlflow", scoring_server.url), monitor)
        config = UnitConfig(redis_server.url, (binding,), batch=BatchPolicy(64, 5), max_deliveries=2)
        with InferenceClient(redis_server.url, "scorer") as client:
            ids = client.submit_many(payloads, [f"customer-{i % 30}" for i in range(len(payloads))])
            with Unit(config):
                answers = client.answers(ids, timeout=300)
                with pytest.raises(InferenceFailed, match="not a number"):
                    client.result(ids[123], timeout=10)
        good = [rid for i, rid in enumerate(ids) if i != 123]
        assert [answers[rid].prediction for rid in good] == direct
        assert [fields[b"id"].decode() for _, fields in dead_letters(redis_server, "scorer")] == [ids[123]]

        def stored() -> list[dict[str, Any]] | None:
            body = httpx.get(f"{sustain.url}/v1/models/scorer/events", params={"limit": 1000}, timeout=10).json()
            return body["events"] if body["count"] == len(payloads) else None

        events = wait_for(stored, 60, "every inference in the collector")
    by_request = {e["request_id"]: e for e in events}
    assert set(by_request) == set(ids)
    first = by_request[ids[0]]
    assert {f: first["features"][f] for f in FEATURES} == payloads[0]
    assert first["outputs"]["prediction"] == direct[0]
    assert "not a number" in str(by_request[ids[123]]["error"])


def test_the_mlflow_backend_sends_what_the_scoring_server_reads(scoring_server: ScoringServer) -> None:
    from sustain.inference.backends import open_backend
    from sustain.inference.errors import BackendRejected

    backend = open_backend(BackendConfig("mlflow", scoring_server.url))
    try:
        assert backend.predict(
            [{"x0": 2.0, "x1": 2.0, "x2": 0.0, "x3": 0.0}, {"x0": -2.0, "x1": -2, "x2": 0, "x3": 0}]
        ) == [
            1,
            0,
        ]
        with pytest.raises(BackendRejected, match="400"):  # a missing field goes as null, which this model refuses
            backend.predict([{"x0": 2.0, "x1": 2.0, "x2": 0.0, "x3": 0.0}, {"x0": -2.0, "x1": -2.0}])
    finally:
        backend.close()
