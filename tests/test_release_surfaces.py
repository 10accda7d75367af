"""The release pipeline as users reach it: a real ``sustain serve --registry`` on a live MLflow server, which
registers its own webhook; the HTTP API with its scopes, the CLI, /metrics, and the releases page in Chromium.

The MLflow registered model is ``churn-surfaces``; the spec maps it onto sustain's model ``churn`` with
``release.registered_model``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import Watched, chromium
from tests.helpers import ServerProcess, wait_for, write_spec
from tests.release_support import CHURN_SPEC, MlflowServer, register_churn, serving_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REGISTERED = "churn-surfaces"
READ, ADMIN, SECRET = "surfaces-read", "surfaces-admin", "surfaces-webhook-secret"
SPEC = CHURN_SPEC.replace(
    "windows: [10s, 1h]", f"windows: [10s, 1h]\n    release: {{registered_model: {REGISTERED}, canary_percent: 50}}"
)


@dataclass
class Served:
    mlflow: MlflowServer
    sustain: ServerProcess
    data: Path

    def register(self, **options: Any) -> str:
        return register_churn(self.mlflow.url, self.data, name=REGISTERED, **options)

    def get(self, path: str, token: str = READ, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.sustain.url}{path}", params=params, headers=_auth(token), timeout=60)

    def post(self, path: str, token: str = ADMIN) -> httpx.Response:
        return httpx.post(f"{self.sustain.url}{path}", headers=_auth(token), timeout=300)

    def state(self, version: str) -> str | None:
        response = self.get(f"/v1/releases/churn/{version}")
        return response.json()["state"] if response.status_code == 200 else None

    def ended(self, version: str, timeout: float = 600) -> dict[str, Any]:
        wait_for(
            lambda: self.state(version) in ("deployed", "promoted", "rejected", "failed"),
            timeout=timeout,
            what=f"the release of version {version}",
        )
        body: dict[str, Any] = self.get(f"/v1/releases/churn/{version}").json()
        return body

    def cli(self, *args: str, token: str = ADMIN) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "sustain.cli", *args, "--url", self.sustain.url, "--token", token]
        return subprocess.run(argv, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("surfaces")
    env = {
        "SUSTAIN_READ_TOKENS": READ,
        "SUSTAIN_ADMIN_TOKENS": ADMIN,
        "SUSTAIN_MLFLOW_WEBHOOK_SECRET": SECRET,
        "SUSTAIN_RELEASE_DIR": str(root / "releases"),
    }
    args = ["--registry", mlflow_server.url, "--release-poll", "0"]
    with ServerProcess(root, write_spec(root, SPEC), env=env, args=args) as sustain:
        yield Served(mlflow_server, sustain, root / "data")
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    for hook in client.list_webhooks():
        if hook.url.startswith(sustain.url):
            client.delete_webhook(hook.webhook_id)


def test_a_version_registered_in_mlflow_is_released_by_the_running_service(served: Served) -> None:
    first = served.register(seed=21)
    release = served.ended(first)  # MLflow's webhook, to the webhook sustain serve registered itself
    assert release["state"] == "deployed" and release["trigger"].startswith("webhook ")
    assert release["roles"] == ["challenger"] and release["model"] == "churn"
    deliveries = served.get("/v1/hooks/mlflow/deliveries", token=ADMIN).json()["deliveries"]
    assert any(d["outcome"] == "accepted" and d["version"] == first for d in deliveries)
    promoted = served.cli("promote", "churn")
    assert promoted.returncode == 0, promoted.stderr
    assert f"churn version {first} is the champion" in promoted.stdout
    answer = httpx.post(
        f"{served.sustain.url}/serving/churn/invocations",
        json={"dataframe_records": serving_rows(2)},
        headers=_auth(READ),
        timeout=60,
    )
    assert answer.status_code == 200 and answer.headers["x-sustain-version"] == first
    again = served.cli("release", "churn", first)
    assert again.returncode == 0 and f"churn version {first} is already promoted" in again.stdout
    metrics = served.get("/metrics").text
    assert f'sustain_serving_version{{model="churn",role="champion"}} {float(first)}' in metrics
    assert 'sustain_gateway_requests{model="churn",version="' + first + '"}' in metrics


def test_the_cli_follows_a_release_and_exits_1_with_the_reason_when_it_is_rejected(served: Served) -> None:
    version = served.register(seed=22, with_example=False)
    served.ended(version)
    shown = served.cli("release", "churn", version)  # a rejected version may be released again: same verdict
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "✗ checked" in shown.stdout and "✗ signature: the model was logged without a signature" in shown.stdout
    assert f"churn version {version} rejected: checked stage: failed standards signature" in shown.stdout
    as_json = served.cli("release", "churn", version, "--json")
    assert as_json.returncode == 1 and '"state": "rejected"' in as_json.stdout and '"attempt": 3' in as_json.stdout
    listed = served.cli("releases", "churn", token=READ)
    assert listed.returncode == 0 and "rejected" in listed.stdout and "champion" in listed.stdout


def test_promoting_and_rolling_back_need_an_admin_token_and_the_webhook_a_signature(served: Served) -> None:
    refused = served.cli("rollback", "churn", token=READ)
    assert refused.returncode == 2 and "needs an admin token" in refused.stderr
    assert served.post("/v1/releases/churn/promote", token=READ).status_code == 403
    unsigned = httpx.post(f"{served.sustain.url}/v1/hooks/mlflow", json={"entity": "model_version"}, timeout=30)
    assert unsigned.status_code == 401 and "not signed" in unsigned.json()["error"]["message"]
    assert served.get("/v1/releases").status_code == 200
    assert httpx.get(f"{served.sustain.url}/v1/releases", timeout=30).status_code == 401
    nothing = served.post("/v1/releases/churn/rollback")
    assert nothing.status_code == 409 and "no previous champion" in nothing.json()["error"]["message"]


def test_the_releases_page_promotes_rolls_back_and_answers_champion_at(
    served: Served, tmp_path_factory: pytest.TempPathFactory
) -> None:
    champion = served.get("/v1/releases/churn/history").json()["aliases"]["champion"]
    candidate = served.register(seed=23, drifted=True)
    assert served.ended(candidate)["state"] == "deployed"
    with chromium(tmp_path_factory.mktemp("chromium-releases")) as context:
        watched = Watched.open(context)
        watched.goto(f"{served.sustain.url}/releases?token={ADMIN}")
        page = watched.page
        assert page.text_content('[data-testid="role-champion"]') == f"version {champion}"
        assert page.text_content('[data-testid="role-challenger"]') == f"version {candidate}"
        row = page.locator(f'[data-testid="release-row"][data-version="{candidate}"]')
        assert row.locator('[data-testid="state"]').get_attribute("data-state") == "deployed"
        stages = row.locator("[data-stage]")
        assert [stages.nth(i).get_attribute("data-stage") for i in range(stages.count())] == [
            "registered",
            "checked",
            "tested",
            "packaged",
            "deployed",
        ]
        page.click('[data-testid="promote"]')
        watched.wait_state("ready", loads=2)
        assert page.text_content('[data-testid="role-champion"]') == f"version {candidate}"
        assert page.text_content('[data-testid="role-previous_champion"]') == f"version {champion}"
        assert "Promote: churn version " + candidate in (page.text_content('[data-testid="notice"]') or "")
        promoted_at = time.time()
        time.sleep(1.5)  # the alias history holds times to the microsecond; the question is asked within it
        page.click('[data-testid="rollback"]')
        watched.wait_state("ready", loads=3)
        assert page.text_content('[data-testid="role-champion"]') == f"version {champion}"
        moves = page.locator('[data-testid="alias-move"]').count()
        assert moves >= 6
        asked = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(math.ceil(promoted_at)))  # whole seconds: round up
        page.fill('[data-testid="champion-at-input"]', asked)
        page.click("form.champion-at button")
        page.wait_for_selector('[data-testid="champion-at-answer"][data-version]', state="attached")
        assert page.get_attribute('[data-testid="champion-at-answer"]', "data-version") == candidate
        watched.screenshot(Path(__file__).resolve().parents[1] / "test-artifacts" / "releases.png")
        watched.assert_clean()
    history = served.get("/v1/releases/churn/history").json()
    states = [t["state"] for t in history["transitions"] if t["version"] == candidate]
    assert states[-2:] == ["promoted", "rolled_back"]
    at = served.get(
        "/v1/releases/churn/champion", at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(promoted_at + 0.5))
    )
    assert at.json()["version"] == candidate
