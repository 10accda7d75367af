"""The kubernetes target against a live cluster (runs only when KUBECONFIG is set and Seldon's CRD is installed).

Without a cluster the target refuses with a sentence; the manifests it applies are checked against Seldon's
published CRD schema in tests/test_release_checks.py.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.deploy_pipeline.release.package import Bundle, manifest
from sustain.deploy_pipeline.release.targets import Routing, TargetContext, targets
from sustain.deploy_pipeline.release.targets.kubernetes import KubernetesTarget


def _bundle(root: Path, model: str, version: str) -> Bundle:
    bundle = Bundle(root / model / version)
    assert manifest(bundle, model, None, version, f"s3://sustain-live/models/{version}").ok
    return bundle


def test_without_a_cluster_the_kubernetes_target_refuses_with_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(TargetFailed, match="the kubernetes target needs a cluster: set KUBECONFIG"):
        targets.get("kubernetes")(TargetContext(Path(".")))


def test_the_candidate_joins_as_a_shadow_then_takes_its_share(tmp_path: Path) -> None:
    target = KubernetesTarget(namespace="models", sustain_url="http://sustain.monitoring:8000")
    target._uris[("churn", "3")] = _bundle(tmp_path, "churn", "3").model_uri()
    target._uris[("churn", "4")] = _bundle(tmp_path, "churn", "4").model_uri()
    sdep = target.manifests("churn", Routing("3", "4", canary_percent=25))[-1]
    assert [(p["name"], p.get("traffic")) for p in sdep["spec"]["predictors"]] == [("3", 75), ("4", 25)]
    assert sdep["metadata"]["namespace"] == "models"
    shadow = target.manifests("churn", Routing("3", "4", shadow=True))[-1]
    assert [(p["name"], p.get("shadow", False)) for p in shadow["spec"]["predictors"]] == [("3", False), ("4", True)]
    with pytest.raises(TargetFailed, match=r"version\(s\) 9 were not deployed through this target"):
        target.manifests("churn", Routing("9"))


@pytest.mark.live_k8s
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs KUBECONFIG (a cluster with Seldon Core v1)")
def test_deploy_promote_and_retire_on_a_live_cluster(tmp_path: Path) -> None:
    namespace = os.environ.get("SUSTAIN_K8S_NAMESPACE", "default")
    model = f"sustain-live-{uuid.uuid4().hex[:6]}"
    target = KubernetesTarget.from_context(TargetContext(tmp_path, None, {"namespace": namespace}))
    target.deploy(model, "1", _bundle(tmp_path, model, "1"))
    target.route(model, Routing("1"))
    target.deploy(model, "2", _bundle(tmp_path, model, "2"))
    target.route(model, Routing("1", "2", canary_percent=20))
    target.route(model, Routing("2", standby=("1",)))
    target.retire(model, "1")
    assert target.status()["routes"][model]["champion"] == "2"
