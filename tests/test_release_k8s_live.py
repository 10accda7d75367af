"""The kubernetes target against a live cluster (runs only when KUBECONFIG is set and Seldon's CRD is installed).

Without a cluster the target refuses with a sentence, and its manifests are checked in
tests/test_release_checks.py against Seldon's published CRD schema.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.deploy_pipeline.release.package import Bundle
from sustain.deploy_pipeline.release.seldon import Predictor, resource_name, seldon_deployment
from sustain.deploy_pipeline.release.targets import Routing, TargetContext, targets
from sustain.deploy_pipeline.release.targets.kubernetes import KubernetesTarget


def _bundle(root: Path, version: str) -> Bundle:
    bundle = Bundle(root / version)
    bundle.manifest.parent.mkdir(parents=True)
    sdep = seldon_deployment("live", [Predictor(version, f"s3://sustain-live/models/{version}")])
    bundle.manifest.write_text(yaml.safe_dump(sdep))
    return bundle


def test_without_a_cluster_the_kubernetes_target_refuses_with_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(TargetFailed, match="the kubernetes target needs a cluster: set KUBECONFIG"):
        targets.get("kubernetes")(TargetContext(Path(".")))


def test_the_canary_manifest_gives_the_candidate_its_share(tmp_path: Path) -> None:
    target = KubernetesTarget(namespace="models", logger_url="http://sustain.monitoring:8000/v1/cloudevents")
    target._uris[("churn", "3")] = "s3://m/3"
    target._uris[("churn", "4")] = "s3://m/4"
    sdep = target.manifest("churn", Routing("3", "4", canary_percent=25))
    assert [(p["name"], p["traffic"]) for p in sdep["spec"]["predictors"]] == [("3", 75), ("4", 25)]
    assert sdep["spec"]["predictors"][0]["graph"]["logger"] == {
        "mode": "all",
        "url": "http://sustain.monitoring:8000/v1/cloudevents",
    }
    shadow = target.manifest("churn", Routing("3", "4", canary_percent=25, shadow=True))
    assert shadow["spec"]["predictors"][1]["shadow"] is True
    assert [(p["name"], p.get("traffic")) for p in shadow["spec"]["predictors"]] == [("3", 100), ("4", None)]
    with pytest.raises(TargetFailed, match="version 9 was not deployed through this target"):
        target.manifest("churn", Routing("9"))


@pytest.mark.live_k8s
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs KUBECONFIG (a cluster with Seldon Core v1)")
def test_deploy_promote_and_retire_on_a_live_cluster(tmp_path: Path) -> None:
    namespace = os.environ.get("SUSTAIN_K8S_NAMESPACE", "default")
    model = f"sustain-live-{uuid.uuid4().hex[:6]}"
    target = KubernetesTarget.from_context(TargetContext(tmp_path, None, {"namespace": namespace}))
    resource = target._api()
    try:
        target.deploy(model, "1", _bundle(tmp_path, "1"))
        target.route(model, Routing("1"))
        target.deploy(model, "2", _bundle(tmp_path, "2"))
        target.route(model, Routing("1", "2", canary_percent=20))
        live = target._client.get(
            resource, name=target.manifest(model, Routing("1"))["metadata"]["name"], namespace=namespace
        )
        assert [(p["name"], p["traffic"]) for p in live.to_dict()["spec"]["predictors"]] == [("1", 80), ("2", 20)]
        target.route(model, Routing("2", standby=("1",)))
        target.retire(model, "1")
    finally:
        target._client.delete(resource, name=resource_name(model), namespace=namespace)
