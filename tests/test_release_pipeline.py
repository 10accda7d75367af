"""The release pipeline end to end, on a live MLflow tracking server: webhook → checked → tested → packaged →
a candidate served by a real scoring server with monitoring attached → promote and rollback under traffic.

The bad inputs each end in a recorded, explained state with the champion still serving and nothing left
running: a version without a signature, one whose example fails, one whose artifacts are gone, a registry
that is down, a target that fails mid-deploy, duplicate and forged webhook deliveries.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sustain.alerting.signing import signature
from sustain.backends.duckdb.releases import DuckDBReleases
from sustain.backends.duckdb.store import DuckDBStore
from sustain.deploy_pipeline.release import (
    Gateway,
    HttpEventSink,
    HttpMonitoring,
    MlflowRegistry,
    ReleaseOptions,
    ReleaseService,
    TargetFailed,
    targets,
)
from sustain.deploy_pipeline.release.package import Bundle
from sustain.deploy_pipeline.release.targets import TargetContext
from sustain.deploy_pipeline.release.targets.base import Deployment
from sustain.deploy_pipeline.release.targets.local import LocalTarget
from sustain.deploy_pipeline.release.webhooks import EVENTS
from sustain.errors import SustainError
from sustain.spec import ModelSpec
from sustain.store.releases import Release, State
from tests.helpers import ServerProcess, wait_for, write_spec
from tests.release_support import (
    CHURN_SPEC,
    AsgiThread,
    MlflowServer,
    Requests,
    TcpProxy,
    register_churn,
    serving_rows,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

SECRET = "release-tests-secret"
EDGE_SPEC = CHURN_SPEC + CHURN_SPEC.split("models:", 1)[1].replace("name: churn", "name: churn-edge", 1).replace(
    "windows: [10s, 1h]", "windows: [10s, 1h]\n    release: {target: local-broken}"
)
ENDED = {State.DEPLOYED, State.PROMOTED, State.REJECTED, State.FAILED}


class BrokenTarget(LocalTarget):
    """A target that starts the scoring server, then fails before it is ready: a target failing mid-deploy."""

    name = "local-broken"
    started: ClassVar[dict[tuple[str, str], int]] = {}  # the scoring server process each deploy started

    def deploy(self, model: str, version: str, bundle: Bundle) -> Deployment:
        self.prepare(model, version, bundle)
        pid = self._preparing[(model, version)].pid
        assert pid is not None
        self.started[(model, version)] = pid
        raise TargetFailed(f"the node serving {model} version {version} went away during the deploy")


@dataclass
class Stack:
    mlflow: MlflowServer
    proxy: TcpProxy
    sustain: ServerProcess
    service: ReleaseService
    gateway: Gateway
    gateway_url: str
    hooks_url: str
    data: Path

    def register(self, **options: Any) -> str:
        return register_churn(self.mlflow.url, self.data, **options)

    def ended(self, model: str, version: str, timeout: float = 600) -> Release:
        def done() -> Release | None:
            release = self.service.store.get(model, version)
            return release if release is not None and release.state in ENDED else None

        return wait_for(done, timeout=timeout, what=f"the release of {model} {version} to end")

    def predict(self, model: str = "churn") -> httpx.Response:
        return httpx.post(
            f"{self.gateway_url}/{model}/invocations", json={"dataframe_records": serving_rows(1)}, timeout=60
        )

    def mlflow_aliases(self, model: str = "churn") -> dict[str, str]:
        from mlflow import MlflowClient

        return {k: str(v) for k, v in MlflowClient(self.mlflow.url).get_registered_model(model).aliases.items()}


def _hooks(service: ReleaseService) -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            reply = await run_in_threadpool(service.on_webhook, dict(request.headers), body)
        except SustainError as exc:
            return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)
        return JSONResponse(reply, status_code=202)

    return Starlette(routes=[Route("/v1/hooks/mlflow", receive, methods=["POST"])])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("release")
    targets.register("local-broken", BrokenTarget.from_context)
    mlflow = mlflow_server
    proxy = TcpProxy(mlflow.port)
    sustain = ServerProcess(root, write_spec(root, EDGE_SPEC)).start()
    monitoring = HttpMonitoring(sustain.url)
    specs: dict[str, ModelSpec] = {}

    def spec_of(model: str) -> ModelSpec | None:
        if model not in specs:
            found = monitoring.spec(model)
            if found is None:
                return None
            specs[model] = found
        return specs[model]

    gateway = Gateway(sink=HttpEventSink(sustain.url), spec_of=spec_of)
    store = DuckDBReleases(DuckDBStore(f"duckdb:///{root / 'releases.duckdb'}"))
    options = ReleaseOptions(workdir=root / "releases", webhook_secret=SECRET)
    service = ReleaseService(
        store,
        MlflowRegistry(proxy.url),
        monitoring,
        options,
        gateway=gateway,
        specs=lambda: [s for s in (spec_of("churn"), spec_of("churn-edge")) if s is not None],
    )
    try:
        with AsgiThread(gateway.app) as gw, AsgiThread(_hooks(service)) as hooks:
            registry = MlflowRegistry(mlflow.url)
            hook = registry.ensure_webhook("sustain-tests", f"{hooks.url}/v1/hooks/mlflow", SECRET, EVENTS)
            try:
                yield Stack(mlflow, proxy, sustain, service, gateway, gw.url, hooks.url, root / "data")
            finally:
                registry.client.delete_webhook(hook)
    finally:
        service.close()
        targets.unregister("local-broken")
        monitoring.close()
        sustain.stop()
        proxy.close()


def test_a_registered_version_becomes_a_monitored_candidate_and_switches_without_a_failed_request(
    stack: Stack,
) -> None:
    service = stack.service
    first = stack.register(seed=1)
    released = stack.ended("churn", first)
    assert released.state == State.DEPLOYED, released.reason
    assert released.trigger.startswith("webhook ")
    service.promote("churn", first)
    assert stack.predict().headers["x-sustain-version"] == first

    second = stack.register(seed=2, drifted=True)
    candidate = stack.ended("churn", second)
    assert candidate.state == State.DEPLOYED, candidate.reason
    assert [s.stage for s in candidate.stages] == [
        State.REGISTERED,
        State.CHECKED,
        State.TESTED,
        State.PACKAGED,
        State.DEPLOYED,
    ]
    assert all(s.outcome == "passed" and s.ended_at is not None for s in candidate.stages)
    assert f"vs champion version {first}" in candidate.stage(State.TESTED).checks[2].reason  # type: ignore[union-attr]
    assert candidate.reason == "release candidate (@challenger), serving 10% of requests"
    references = httpx.get(f"{stack.sustain.url}/v1/models/churn/reference").json()["references"]
    assert {"version": second, "rows": 2000} in [{"version": r["version"], "rows": r["rows"]} for r in references]
    assert stack.mlflow_aliases() == {"champion": first, "challenger": second}

    requests = Requests(f"{stack.gateway_url}/churn/invocations", 1000)
    wait_for(lambda: requests.done >= 250, timeout=300, what="traffic before the promotion")
    service.promote("churn")
    wait_for(lambda: requests.done >= 600, timeout=300, what="traffic after the promotion")
    service.rollback("churn")
    requests.join()
    assert requests.statuses == {200: 1000}, requests.statuses
    assert requests.versions[first] > 0 and requests.versions[second] > 0
    assert stack.predict().headers["x-sustain-version"] == first
    assert stack.mlflow_aliases() == {"champion": first}

    history = [(t.version, t.state) for t in service.store.transitions("churn") if t.version in (first, second)]
    assert [s for v, s in history if v == second] == [
        State.REGISTERED,
        State.CHECKED,
        State.TESTED,
        State.PACKAGED,
        State.DEPLOYED,
        State.PROMOTED,
        State.ROLLED_BACK,
    ]
    assert [s for v, s in history if v == first][-2:] == [State.PROMOTED, State.PROMOTED]
    moves = service.store.alias_history("churn")
    champion_moves = [e for e in moves if e.alias == "champion"]
    assert [e.version for e in champion_moves] == [first, second, first]
    during = champion_moves[1].at + (champion_moves[2].at - champion_moves[1].at) / 2
    assert service.champion_at("churn", during).version == second  # type: ignore[union-attr]
    assert service.champion_at("churn", champion_moves[0].at - timedelta(seconds=1)) is None
    service.pipeline.flush_tags()
    from mlflow import MlflowClient

    tags = MlflowClient(stack.mlflow.url).get_model_version("churn", second).tags
    assert tags["sustain.stage"] == "rolled_back" and tags["sustain.check.signature"].startswith("passed: 5 inputs")
    events = httpx.get(f"{stack.sustain.url}/v1/models/churn/events", params={"limit": 10_000}).json()["events"]
    assert {e["version"] for e in events} >= {first, second}


def _champion_untouched(stack: Stack, champion: str) -> None:
    assert stack.mlflow_aliases().get("champion") == champion
    assert stack.predict().headers["x-sustain-version"] == champion


def test_a_version_breaking_a_standard_is_rejected_with_its_reason(stack: Stack) -> None:
    champion = stack.mlflow_aliases()["champion"]
    version = stack.register(seed=3, with_example=False)
    release = stack.ended("churn", version)
    assert release.state == State.REJECTED
    assert release.reason.startswith("checked stage: failed standards signature, input_example:")
    checks = {c.name: c for c in release.stage(State.CHECKED).checks}  # type: ignore[union-attr]
    assert "log it with an input example" in checks["signature"].fix
    _champion_untouched(stack, champion)
    stack.service.pipeline.flush_tags()
    from mlflow import MlflowClient

    tags = MlflowClient(stack.mlflow.url).get_model_version("churn", version).tags
    assert tags["sustain.stage"] == "rejected" and tags["sustain.check.signature"].startswith("failed: ")


def test_a_version_whose_example_fails_is_rejected_and_leaves_no_process(stack: Stack) -> None:
    champion = stack.mlflow_aliases()["champion"]
    version = stack.register(seed=4, rename_example=True)
    release = stack.ended("churn", version)
    assert release.state == State.REJECTED and release.reason.startswith("tested stage: failed test")
    assert "predicting the serving input example failed" in release.reason
    local = stack.service.target("local")
    assert isinstance(local, LocalTarget) and local.server("churn", version) is None
    _champion_untouched(stack, champion)


def test_a_version_whose_artifacts_are_gone_is_rejected(stack: Stack) -> None:
    import mlflow

    champion = stack.mlflow_aliases()["champion"]
    from tests.release_support import _churn

    churn = _churn()
    frame, truth = churn.customers(300, seed=5)
    mlflow.set_tracking_uri(stack.mlflow.url)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(churn.train(frame, truth), name="model", input_example=frame.head(3))
    lost = next(stack.mlflow.artifacts.rglob(f"models/{info.model_id}/artifacts"))
    shutil.rmtree(lost)
    version = str(mlflow.register_model(info.model_uri, "churn").version)
    release = stack.ended("churn", version)
    assert release.state == State.REJECTED and release.reason.startswith("checked stage: ")
    assert "missing" in release.reason or "cannot be downloaded" in release.reason
    assert not (Path(stack.service.options.workdir) / "churn" / version / "model").exists()
    _champion_untouched(stack, champion)


def test_a_registry_that_is_down_fails_the_release_which_succeeds_when_retried(stack: Stack) -> None:
    champion = stack.mlflow_aliases()["champion"]
    stack.proxy.up.clear()
    try:
        version = stack.register(seed=6)  # the data scientist reaches MLflow; sustain does not
        release = stack.ended("churn", version)
        assert release.state == State.FAILED
        assert "the MLflow registry at" in release.reason and "does not answer" in release.reason
        _champion_untouched(stack, champion)
    finally:
        stack.proxy.up.set()
    retried = stack.service.release("churn", version)
    assert retried.state == State.DEPLOYED and retried.attempt == 2, retried.reason
    _champion_untouched(stack, champion)


def test_a_target_failing_mid_deploy_leaves_nothing_half_deployed(stack: Stack) -> None:
    version = stack.register(name="churn-edge", seed=7)
    release = stack.ended("churn-edge", version)
    assert release.state == State.FAILED
    assert (
        release.reason == f"deployed stage: the node serving churn-edge version {version} went away during the deploy"
    )
    pid = BrokenTarget.started[("churn-edge", version)]
    broken = stack.service.target("local-broken")
    assert isinstance(broken, LocalTarget) and broken.server("churn-edge", version) is None
    wait_for(lambda: not _running(pid), timeout=60, what=f"the scoring server (pid {pid}) to be stopped")
    assert "churn-edge" not in stack.gateway.routes
    assert "challenger" not in stack.mlflow_aliases("churn-edge")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _delivery(body: bytes, delivery: str, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    stamp = int(time.time()) - age
    return {
        "content-type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": str(stamp),
        "X-MLflow-Signature": signature(secret.encode(), delivery, stamp, body),
    }


def test_duplicate_and_forged_webhooks_are_recorded_and_deploy_nothing(stack: Stack) -> None:
    service = stack.service
    known = max((r for r in service.store.query("churn")), key=lambda r: int(r.version))
    body = (
        b'{"entity": "model_version", "action": "created", "timestamp": "now", '
        b'"data": {"name": "churn", "version": "' + known.version.encode() + b'"}}'
    )
    url = f"{stack.hooks_url}/v1/hooks/mlflow"
    first = httpx.post(url, content=body, headers=_delivery(body, "replayed-1"))
    again = httpx.post(url, content=body, headers=_delivery(body, "replayed-1"))
    assert first.status_code == again.status_code == 202
    assert first.json()["outcome"] == "accepted" and first.json()["reason"].startswith("nothing to do: churn version")
    assert again.json() == {"delivery_id": "replayed-1", "outcome": "duplicate", "reason": "already handled"}
    forged = httpx.post(url, content=body, headers=_delivery(body, "forged-1", secret="guess"))
    stale = httpx.post(url, content=body, headers=_delivery(body, "stale-1", age=3600))
    assert forged.status_code == stale.status_code == 401
    assert "does not match the body" in forged.json()["error"]["message"]
    assert "old, beyond the 300 s allowed" in stale.json()["error"]["message"]
    assert service.store.get("churn", known.version).attempt == known.attempt  # type: ignore[union-attr]
    recorded = {d.delivery_id: d.outcome for d in service.store.deliveries(limit=1000)}
    assert recorded["forged-1"] == recorded["stale-1"] == "rejected"
    assert recorded["replayed-1"] in ("accepted", "duplicate")
    assert any(d.outcome == "accepted" and d.event == "model_version.created" for d in service.store.deliveries())


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")  # MLflow's sqlite store
def test_the_registry_poll_releases_versions_registered_after_it_began(tmp_path: Path) -> None:
    """An MLflow without a server (sqlite): no webhooks, so the poll finds new versions."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = register_churn(uri, tmp_path / "data", seed=8)
    with ServerProcess(tmp_path, write_spec(tmp_path, CHURN_SPEC)) as sustain:
        monitoring = HttpMonitoring(sustain.url)
        gateway = Gateway()
        store = DuckDBReleases(DuckDBStore(f"duckdb:///{tmp_path / 'releases.duckdb'}"))
        service = ReleaseService(
            store, MlflowRegistry(uri), monitoring, ReleaseOptions(workdir=tmp_path / "r"), gateway=gateway
        )
        try:
            assert service.poll_once() == []  # the baseline: what was there before is not released
            after = register_churn(uri, tmp_path / "data", seed=9)
            started = service.poll_once()
            assert [(r.model, r.version, r.trigger) for r in started] == [("churn", after, "registry poll")]
            assert service.poll_once() == []
            assert service.wait("churn", after).state == State.DEPLOYED
            assert store.get("churn", before) is None
            outcomes = {d.delivery_id: d.outcome for d in store.deliveries(limit=100)}
            assert outcomes[f"poll:churn:{before}"] == "ignored" and outcomes[f"poll:churn:{after}"] == "accepted"
        finally:
            service.close()
            monitoring.close()


def test_an_unknown_target_fails_the_release_and_says_which_targets_exist(stack: Stack) -> None:
    context = TargetContext(Path("."), None, {})
    with pytest.raises(SustainError, match="the local target needs sustain's gateway"):
        targets.get("local")(context)
    with pytest.raises(SustainError, match=r"unknown deploy target 'nowhere'; known: .*kubernetes, local"):
        targets.get("nowhere")
