"""`sustain graph serve` end to end: each example graph runs with real MLflow scoring servers, answers what calling
the models directly answers, and a real sustain server stores one monitored event per node per request."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from examples.graphs.units import ClipToTraining
from tests.graph_models import FEATURES, Registry, churn_data
from tests.graph_schemas import oip_problems
from tests.helpers import ServerProcess, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test also starts MLflow and trains
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "graphs"
NODE_MODELS = ("churn", "churn-split", "churn-logreg", "churn-tree", "churn-forest", "churn-mean")
SCORES = "{proba: {kind: class_scores, classes: [stay, churn]}}"
FEATURE_SPEC = "{age: numeric, income: numeric, tenure: numeric}"
SPECS = (
    "models:\n"
    + "".join(
        f"  - {{name: {name}, features: {FEATURE_SPEC}, outputs: {SCORES}, windows: [1h]}}\n" for name in NODE_MODELS
    )
    + f"  - {{name: churn-prep, features: {FEATURE_SPEC}, windows: [1h]}}\n"
)


@pytest.fixture(scope="module")
def sustain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("sustain")
    config = workdir / "sustain.yaml"
    config.write_text(SPECS)
    with ServerProcess(workdir, config) as server:
        yield server


@pytest.fixture(scope="module")
def models(graph_registry: Registry) -> dict[str, Any]:
    """Each registered model loaded in this process, to compare the graph's answers with."""
    import mlflow

    mlflow.set_tracking_uri(graph_registry.url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loading a logged model warns about environments; not the code tested
        return {
            name: mlflow.pyfunc.load_model(f"models:/{name}/1")
            for name in ("churn-logreg", "churn-tree", "churn-forest")
        }


def direct(model: Any, rows: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.predict(pd.DataFrame(rows, columns=FEATURES)), dtype=float)


@contextmanager
def serving(example: str, registry: Registry, sustain: ServerProcess, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.url}
    cmd = [
        sys.executable,
        "-m",
        "sustain.cli",
        "graph",
        "serve",
        str(EXAMPLES / f"{example}.yaml"),
        "--port",
        str(port),
    ]
    cmd += ["--sustain-url", sustain.url, "--seed", "4"]
    log = tmp_path / f"serve-{example}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=300, what=f"the {example} graph to serve")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def seldon(url: str, row: np.ndarray, puid: str) -> np.ndarray:
    body = {"data": {"names": FEATURES, "ndarray": [row.tolist()]}}
    reply = httpx.post(f"{url}/api/v1.0/predictions", json=body, headers={"Seldon-Puid": puid}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Seldon-Puid"] == puid
    return np.asarray(reply.json()["data"]["ndarray"], dtype=float)


def v2(url: str, row: np.ndarray, puid: str) -> np.ndarray:
    inputs = [
        {"name": n, "shape": [1, 1], "datatype": "FP64", "data": [float(v)]} for n, v in zip(FEATURES, row, strict=True)
    ]
    body = {"id": puid, "inputs": inputs}
    assert oip_problems(body, "inference_request") == []
    reply = httpx.post(f"{url}/v2/models/graph/infer", json=body, headers={"Seldon-Puid": puid}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert oip_problems(reply.json(), "inference_response") == []
    (output,) = reply.json()["outputs"]
    return np.asarray(output["data"], dtype=float).reshape(output["shape"])


def stored(sustain: ServerProcess, model: str, puid: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{sustain.url}/v1/models/{model}/events", params={"request_id": puid, "limit": 10}, timeout=30)
    assert reply.status_code == 200, reply.text
    events: list[dict[str, Any]] = reply.json()["events"]
    return events


def rows(n: int) -> np.ndarray:
    x, _ = churn_data(n, seed=21)
    x[0, 0], x[1, 2] = 130.0, 400.0  # outside the training ranges: the transformer clips them
    return x


def run_requests(url: str, data: np.ndarray) -> list[tuple[str, np.ndarray]]:
    answers = []
    for i, row in enumerate(data):
        puid = str(uuid.uuid4())
        answers.append((puid, (seldon if i % 2 == 0 else v2)(url, row, puid)))
    return answers


def expect_events(sustain: ServerProcess, per_request: dict[str, dict[str, list[str]]]) -> None:
    """For every request (puid): each node's model holds exactly one event per predictor (the versions listed)."""

    def complete() -> bool:
        return all(
            sorted(e["version"] for e in stored(sustain, model, puid)) == sorted(versions)
            for puid, expected in per_request.items()
            for model, versions in expected.items()
        )

    wait_for(complete, timeout=120, what="sustain to store one event per node per request")


def test_single_model(graph_registry: Registry, sustain: ServerProcess, models: dict[str, Any], tmp_path: Path) -> None:
    data = rows(4)
    with serving("single", graph_registry, sustain, tmp_path) as url:
        answers = run_requests(url, data)
    for (_, answer), row in zip(answers, data, strict=True):
        np.testing.assert_allclose(answer, direct(models["churn-logreg"], row[None, :]), rtol=1e-9)
    expect_events(sustain, {puid: {"churn": ["main"]} for puid, _ in answers})
    (event,) = stored(sustain, "churn", answers[0][0])
    assert event["error"] is None and event["features"]["age"] == pytest.approx(data[0][0])
    assert event["outputs"]["proba"]["churn"] == pytest.approx(answers[0][1][0][1])


def test_transformer_then_model(
    graph_registry: Registry, sustain: ServerProcess, models: dict[str, Any], tmp_path: Path
) -> None:
    data = rows(4)
    clipped = ClipToTraining().transform_input(data, FEATURES)
    with serving("transformer", graph_registry, sustain, tmp_path) as url:
        answers = run_requests(url, data)
    np.testing.assert_allclose(np.vstack([a for _, a in answers]), direct(models["churn-logreg"], clipped), rtol=1e-9)
    expect_events(sustain, {puid: {"churn-prep": ["main"], "churn": ["main"]} for puid, _ in answers})
    first = answers[0][0]
    assert stored(sustain, "churn-prep", first)[0]["features"]["age"] == 130.0  # what the transformer received
    assert stored(sustain, "churn", first)[0]["features"]["age"] == 90.0  # what the model received


def test_ab_router(graph_registry: Registry, sustain: ServerProcess, models: dict[str, Any], tmp_path: Path) -> None:
    data = rows(12)
    with serving("ab", graph_registry, sustain, tmp_path) as url:
        answers = run_requests(url, data)
    arms: dict[str, str] = {}
    for (puid, answer), row in zip(answers, data, strict=True):
        logreg, tree = direct(models["churn-logreg"], row[None, :]), direct(models["churn-tree"], row[None, :])
        assert np.allclose(answer, logreg) or np.allclose(answer, tree)
        arms[puid] = "churn-logreg" if np.allclose(answer, logreg) else "churn-tree"
    assert set(arms.values()) == {"churn-logreg", "churn-tree"}  # both arms served (seeded)
    expect_events(sustain, {puid: {"churn-split": ["main"], arm: ["main"]} for puid, arm in arms.items()})
    for puid, arm in arms.items():
        other = "churn-tree" if arm == "churn-logreg" else "churn-logreg"
        assert stored(sustain, other, puid) == []


def test_average_over_three_models(
    graph_registry: Registry, sustain: ServerProcess, models: dict[str, Any], tmp_path: Path
) -> None:
    data = rows(4)
    with serving("ensemble", graph_registry, sustain, tmp_path) as url:
        answers = run_requests(url, data)
    expected = np.mean([direct(models[m], data) for m in ("churn-logreg", "churn-tree", "churn-forest")], axis=0)
    np.testing.assert_allclose(np.vstack([a for _, a in answers]), expected, rtol=1e-9)
    nodes = {m: ["main"] for m in ("churn-mean", "churn-logreg", "churn-tree", "churn-forest")}
    expect_events(sustain, {puid: nodes for puid, _ in answers})
    (mean,) = stored(sustain, "churn-mean", answers[0][0])
    assert mean["outputs"]["proba"]["churn"] == pytest.approx(expected[0][1])


def test_canary_and_shadow(
    graph_registry: Registry, sustain: ServerProcess, models: dict[str, Any], tmp_path: Path
) -> None:
    data = rows(16)
    with serving("canary", graph_registry, sustain, tmp_path) as url:
        answers = run_requests(url, data)
    served: dict[str, str] = {}
    for (puid, answer), row in zip(answers, data, strict=True):
        main, canary = direct(models["churn-logreg"], row[None, :]), direct(models["churn-tree"], row[None, :])
        assert np.allclose(answer, main) or np.allclose(answer, canary)
        served[puid] = "main" if np.allclose(answer, main) else "canary"
    assert "main" in served.values()
    # every request: its predictor's event and the shadow's (the mirror keeps the client's Seldon-Puid)
    expect_events(sustain, {puid: {"churn": [predictor, "shadow"]} for puid, predictor in served.items()})
    puid = answers[0][0]
    shadow = next(e for e in stored(sustain, "churn", puid) if e["version"] == "shadow")
    forest = direct(models["churn-forest"], data[:1])
    assert shadow["outputs"]["proba"]["churn"] == pytest.approx(forest[0][1])
