"""The local target and the gateway, with real MLflow scoring servers and a real sustain server logging events.

Two versions of the churn model are served by ``mlflow models serve`` processes behind the gateway: requests
split exactly by the canary share, a shadow candidate never answers a caller, a killed process fails no
request and is restarted, and every answered row arrives in sustain as an event of the version that answered.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sustain.deploy_pipeline.release.gateway import Gateway, HttpEventSink, rows_of
from sustain.deploy_pipeline.release.monitoring import HttpMonitoring
from sustain.deploy_pipeline.release.package import Bundle
from sustain.deploy_pipeline.release.targets import Routing
from sustain.deploy_pipeline.release.targets.local import LocalTarget
from sustain.errors import SustainError
from tests.helpers import ServerProcess, wait_for, write_spec
from tests.release_support import CHURN_SPEC, AsgiThread, serving_rows
from tests.test_release_checks import save_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("serving")
    bundles = {}
    for version, drifted in (("1", False), ("2", True)):
        bundle = Bundle(root / "churn" / version)
        save_model(bundle.model, seed=int(version), drifted=drifted)
        bundles[version] = bundle
    with ServerProcess(root, write_spec(root, CHURN_SPEC)) as sustain:
        monitoring = HttpMonitoring(sustain.url)
        spec = monitoring.spec("churn")
        gateway = Gateway(sink=HttpEventSink(sustain.url), spec_of=lambda m: spec if m == "churn" else None)
        target = LocalTarget(gateway, check_interval=0.5)
        try:
            with AsgiThread(gateway.app) as app:
                target.prepare("churn", "2", bundles["2"])  # the candidate starts while the champion does
                for version in ("1", "2"):
                    target.deploy("churn", version, bundles[version])
                yield {"target": target, "gateway": gateway, "url": app.url, "sustain": sustain, "bundles": bundles}
        finally:
            target.close()
            monitoring.close()


def _post(url: str, rows: list[dict[str, Any]], request_id: str | None = None) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    return httpx.post(f"{url}/churn/invocations", json={"dataframe_records": rows}, headers=headers, timeout=60)


def test_requests_split_exactly_by_the_canary_share(served: dict[str, Any]) -> None:
    target: LocalTarget = served["target"]
    target.route("churn", Routing("1", "2", canary_percent=25))
    rows = serving_rows(1)
    versions = Counter(_post(served["url"], rows).headers["x-sustain-version"] for _ in range(40))
    assert versions == {"1": 30, "2": 10}
    target.route("churn", Routing("1"))
    assert {_post(served["url"], rows).headers["x-sustain-version"] for _ in range(5)} == {"1"}


def test_a_shadow_candidate_sees_every_request_and_answers_none(served: dict[str, Any]) -> None:
    target: LocalTarget = served["target"]
    gateway: Gateway = served["gateway"]
    target.route("churn", Routing("1", "2", canary_percent=50, shadow=True))
    before = gateway.counters["churn"].shadowed
    answers = [_post(served["url"], serving_rows(2, seed=i)) for i in range(10)]
    assert {r.headers["x-sustain-version"] for r in answers} == {"1"}
    assert all(len(r.json()["predictions"]) == 2 for r in answers)
    wait_for(lambda: gateway.counters["churn"].shadowed - before == 10, what="ten shadow copies")
    target.route("churn", Routing("1"))


def test_every_answered_row_is_an_event_of_the_version_that_answered(served: dict[str, Any]) -> None:
    target: LocalTarget = served["target"]
    target.route("churn", Routing("1", "2", canary_percent=50))
    rows = serving_rows(3, seed=77)
    first = _post(served["url"], rows, request_id="batch-a")
    second = _post(served["url"], rows[:1], request_id="single-b")
    assert first.status_code == second.status_code == 200
    url = served["sustain"].url

    def events(request_id: str) -> list[dict[str, Any]]:
        reply = httpx.get(f"{url}/v1/models/churn/events", params={"request_id": request_id}).json()
        return list(reply["events"])

    logged = wait_for(lambda: events("batch-a-2") and events("single-b"), what="the served events in sustain")
    assert logged[0]["version"] == second.headers["x-sustain-version"]
    batch = [events(f"batch-a-{i}")[0] for i in range(3)]
    predictions = first.json()["predictions"]
    assert [e["outputs"]["prediction"] for e in batch] == predictions
    assert {e["version"] for e in batch} == {first.headers["x-sustain-version"]}
    assert batch[0]["features"]["plan"] == rows[0]["plan"] and batch[0]["latency_ms"] > 0
    target.route("churn", Routing("1"))


def test_a_dead_version_fails_no_request_and_is_restarted(served: dict[str, Any]) -> None:
    target: LocalTarget = served["target"]
    target.route("churn", Routing("1", "2", canary_percent=50))
    candidate = target.server("churn", "2")
    assert candidate is not None
    pid = candidate.pid
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        rows = serving_rows(1)
        while not stop.is_set():
            r = _post(served["url"], rows)
            statuses[r.status_code] += 1
            versions[r.headers.get("x-sustain-version", "?")] += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_for(lambda: sum(statuses.values()) >= 10, what="traffic before the crash")
        candidate.kill()
        wait_for(lambda: candidate.pid != pid and candidate.healthy(), timeout=240, what="the candidate's restart")
        seen = sum(statuses.values())
        wait_for(lambda: versions["2"] > 0 and sum(statuses.values()) > seen + 10, what="the candidate serving again")
    finally:
        stop.set()
        worker.join(60)
    assert set(statuses) == {200}, statuses
    assert candidate.restarts == 1 and served["gateway"].counters["churn"].failed == 0
    target.route("churn", Routing("1"))


def test_routes_to_unserved_versions_are_refused_and_retiring_a_routed_version_too(served: dict[str, Any]) -> None:
    target: LocalTarget = served["target"]
    with pytest.raises(SustainError, match=r"version\(s\) 9 are not served here"):
        target.route("churn", Routing("9"))
    target.route("churn", Routing("1"))
    with pytest.raises(SustainError, match="still gets traffic"):
        target.retire("churn", "1")
    missing = httpx.post(f"{served['url']}/other/invocations", json={"dataframe_records": []})
    assert missing.status_code == 404 and "no version of model 'other'" in missing.json()["error"]["message"]
    assert set(target.status()["routes"]["churn"]) >= {"champion", "candidate", "answered", "failovers"}


def test_rows_are_read_from_every_mlflow_format() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert rows_of({"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}}) == rows
    assert rows_of({"dataframe_records": rows}) == rows
    assert rows_of({"instances": rows}) == rows
    assert rows_of({"inputs": {"a": [1, 2], "b": ["x", "y"]}}) == rows
    assert rows_of({"instances": [[1, 2], [3, 4]]}) is None and rows_of([1, 2]) is None


def test_each_scoring_server_writes_its_log_in_its_bundle(served: dict[str, Any]) -> None:
    bundles: dict[str, Bundle] = served["bundles"]
    assert all("Uvicorn running" in (b.root / "serve.log").read_text() for b in bundles.values())
