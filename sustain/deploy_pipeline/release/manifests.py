"""Kubernetes manifests of a release, from the inference-graph compiler (:mod:`sustain.deploy_pipeline.graph`).

One model version is a graph of one MLflow model node; a candidate beside the champion is the graph's canary (or
shadow) variant. The compiler names Seldon's predictors ``main``, ``canary`` and ``shadow``; here they are
renamed after the model versions they serve, for two reasons: Seldon's request logger then says which version
answered (``Ce-Endpoint``, which sustain reads with ``cloudevents.version_from: endpoint``), and a promotion
only changes traffic weights, so the candidate's pods serve on without a restart.

>>> docs = release_manifests("churn", "churn", {"3": "s3://m/3", "4": "s3://m/4"}, champion="3", candidate="4",
...                          canary_percent=25, namespace="models")
>>> sdep = docs[-1]
>>> [(p["name"], p.get("traffic")) for p in sdep["spec"]["predictors"]]
[('3', 75), ('4', 25)]
>>> sorted({d["kind"] for d in docs})
['ConfigMap', 'Secret', 'SeldonDeployment', 'Service']
"""

from __future__ import annotations

import re
from typing import Any

from sustain.deploy_pipeline.graph import StaticResolver, admission_errors, render_target, single_model_graph
from sustain.deploy_pipeline.graph.model import GraphError
from sustain.deploy_pipeline.release.errors import TargetFailed

DEFAULT_SUSTAIN_URL = "http://sustain.monitoring:8000"
_DNS = re.compile(r"[^a-z0-9-]+")


def resource_name(model: str) -> str:
    """A DNS-1123 label for the model's resources."""
    return (_DNS.sub("-", model.lower()).strip("-") or "model")[:63]


def release_manifests(
    registered_model: str,
    sustain_model: str,
    uris: dict[str, str],
    *,
    champion: str,
    candidate: str | None = None,
    canary_percent: float = 0.0,
    shadow: bool = False,
    namespace: str = "default",
    sustain_url: str = DEFAULT_SUSTAIN_URL,
) -> list[dict[str, Any]]:
    """The manifests that serve ``champion`` (and ``candidate`` beside it), in apply order; ``uris`` maps each
    version to its storage folder (the registry's download URI)."""
    name = resource_name(registered_model)
    model_uri = f"models:/{registered_model}/{champion}"
    mapping = {f"models:/{registered_model}/{v}": uri for v, uri in uris.items()}
    candidate_uri = None if candidate is None or candidate == champion else f"models:/{registered_model}/{candidate}"
    share = min(99, max(1, round(canary_percent)))
    as_shadow = candidate_uri is not None and (shadow or round(canary_percent) == 0)
    try:
        graph = single_model_graph(
            name,
            model_uri,
            namespace=namespace,
            canary_uri=None if as_shadow else candidate_uri,
            canary_percent=share,
            shadow_uri=candidate_uri if as_shadow else None,
            monitor_url=sustain_url.rstrip("/"),
            monitor_model=sustain_model,
        )
        rendering = render_target(graph, "seldon", StaticResolver(mapping))
    except GraphError as exc:
        raise TargetFailed(f"the manifests of {registered_model} cannot be made: {exc.message}") from exc
    versions = {"main": champion, "canary": candidate, "shadow": candidate}
    for manifest in rendering.manifests:
        if manifest["kind"] != "SeldonDeployment":
            continue
        for predictor in manifest["spec"]["predictors"]:
            version = versions.get(predictor["name"])
            if version is not None:
                predictor["name"] = version
                predictor.setdefault("labels", {})["sustain.io/version"] = version
        problems = admission_errors(manifest)
        if problems:
            raise TargetFailed(f"Seldon would refuse the SeldonDeployment of {registered_model}: {'; '.join(problems)}")
    return rendering.manifests
