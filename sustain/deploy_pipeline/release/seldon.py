"""A SeldonDeployment (``machinelearning.seldon.io/v1``) for one MLflow model: the champion's predictor, and a
candidate's beside it with a canary share of the traffic (or as a shadow).

Predictors are named by the model version, so the request logger's CloudEvents carry the version in
``Ce-Endpoint`` (sustain's ``cloudevents.version_from: endpoint``), and monitoring sees each version apart.

>>> sdep = seldon_deployment(
...     "churn", [Predictor("3", "s3://mlflow/1/models/m-1/artifacts", 90), Predictor("4", "s3://x", 10)],
...     namespace="models", logger_url="http://sustain.monitoring:8000/v1/cloudevents")
>>> [(p["name"], p["traffic"]) for p in sdep["spec"]["predictors"]]
[('3', 90), ('4', 10)]
>>> admission_problems(sdep)
[]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Predictor:
    version: str
    model_uri: str
    traffic: int = 100
    shadow: bool = False


def resource_name(model: str) -> str:
    """A DNS-1123 name for the model's resources."""
    name = _DNS.sub("-", model.lower()).strip("-")
    return name[:63] or "model"


def seldon_deployment(
    model: str,
    predictors: list[Predictor],
    *,
    namespace: str = "default",
    logger_url: str | None = None,
    secret: str | None = None,
    protocol: str = "v2",
) -> dict[str, Any]:
    """The resource; ``protocol: v2`` serves through MLServer's MLflow runtime, which needs no conda build."""
    name = resource_name(model)
    items = []
    for p in predictors:
        graph: dict[str, Any] = {
            "name": name,
            "type": "MODEL",
            "implementation": "MLFLOW_SERVER",
            "modelUri": p.model_uri,
            "children": [],
        }
        if secret:
            graph["envSecretRefName"] = secret
        if logger_url:
            graph["logger"] = {"mode": "all", "url": logger_url}
        predictor: dict[str, Any] = {
            "name": p.version,
            "replicas": 1,
            "graph": graph,
            "labels": {"sustain.io/model": name, "sustain.io/version": p.version},
        }
        if p.shadow:
            predictor["shadow"] = True
        else:
            predictor["traffic"] = p.traffic
        items.append(predictor)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/managed-by": "sustain",
                "app.kubernetes.io/version": next((p.version for p in predictors if not p.shadow), ""),
            },
            "annotations": {"sustain.io/registered-model": model},
        },
        "spec": {"name": name, "protocol": protocol, "predictors": items},
    }


def admission_problems(sdep: dict[str, Any]) -> list[str]:
    """What Seldon's admission webhook would refuse (``seldondeployment_webhook.go``), as sentences."""
    problems = []
    predictors = sdep.get("spec", {}).get("predictors", [])
    names = [p.get("name") for p in predictors]
    if len(set(names)) != len(names):
        problems.append("predictor names must be unique")
    serving = [p for p in predictors if not p.get("shadow")]
    shadows = [p for p in predictors if p.get("shadow")]
    if not serving:
        problems.append("a shadow predictor cannot be the only one")
    if len(shadows) > 1:
        problems.append("at most one predictor may be a shadow")
    if serving and sum(int(p.get("traffic", 0)) for p in serving) != 100:
        problems.append("the traffic of the serving predictors must add up to 100")
    for p in predictors:
        graph = p.get("graph", {})
        if graph.get("implementation") and not graph.get("modelUri"):
            problems.append(f"predictor {p.get('name')!r}: a prepackaged server needs a modelUri")
        if "logger" in graph and not graph["logger"].get("mode"):
            problems.append(f"predictor {p.get('name')!r}: the logger needs a mode")
    return problems
