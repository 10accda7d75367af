"""One entry point for every target: ``render(graph, target, resolver)``.

Targets: ``seldon`` (SeldonDeployment v1 with a ConfigMap, a Service and, for S3 models, the rclone Secret),
``seldon-v2`` (Core v2 Models, Pipeline, Experiments), ``kserve`` (InferenceServices and an InferenceGraph) and
``helm`` (a chart; :func:`render` returns what the chart renders with its default values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import yaml

from sustain.deploy_pipeline.graph.admission import admission_errors
from sustain.deploy_pipeline.graph.helm import helm_chart, render_chart
from sustain.deploy_pipeline.graph.kserve import kserve_resources
from sustain.deploy_pipeline.graph.model import Graph, GraphError
from sustain.deploy_pipeline.graph.objects import graph_config_map, predictor_service, rclone_secret
from sustain.deploy_pipeline.graph.resolve import ModelResolver
from sustain.deploy_pipeline.graph.seldon import seldon_deployment
from sustain.deploy_pipeline.graph.seldon_v2 import seldon_v2_resources

Target = Literal["seldon", "seldon-v2", "kserve", "helm"]
TARGETS: tuple[Target, ...] = get_args(Target)


@dataclass
class Rendering:
    """What a target produced: manifests (in apply order), files to write, and warnings for the user."""

    target: Target
    manifests: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _seldon(graph: Graph, resolver: ModelResolver, source_text: str | None) -> list[dict[str, Any]]:
    sdep, s3 = seldon_deployment(graph, resolver)
    problems = admission_errors(sdep)
    if problems:  # a compiler bug, never the user's: the graph checks should have refused it
        raise GraphError(f"the SeldonDeployment would be refused by Seldon's admission webhook: {'; '.join(problems)}")
    objects = [graph_config_map(graph, source_text), predictor_service(graph)]
    if s3:
        objects.insert(0, rclone_secret(graph))
    return [*objects, sdep]


def _storage_warnings(graph: Graph, resolver: ModelResolver) -> list[str]:
    uris = [n.impl.uri for n in graph.mlflow_nodes()] + [v.uri for v in (graph.canary, graph.shadow) if v]
    out = []
    for uri in uris:
        download = resolver.resolve(uri or "").download_uri
        if download.startswith(("mlflow-artifacts:", "file:", "/")):
            out.append(
                f"model {uri} is stored at {download}, which a cluster's storage initializer cannot read; "
                "serve MLflow artifacts from S3 (mlflow server --default-artifact-root s3://...)"
            )
    return out


def render_target(graph: Graph, target: str, resolver: ModelResolver, source_text: str | None = None) -> Rendering:
    """Compile ``graph`` for ``target``; GraphError names the node (and line) that cannot be expressed there."""
    if target not in TARGETS:
        raise GraphError(f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    warnings = list(graph.warnings) + _storage_warnings(graph, resolver)
    if target == "seldon":
        return Rendering("seldon", _seldon(graph, resolver, source_text), warnings=warnings)
    if target == "seldon-v2":
        manifests = [*seldon_v2_resources(graph, resolver), graph_config_map(graph, source_text)]
        warnings.append("Seldon Core v2 logs requests to Kafka, not CloudEvents: bridge its topics to sustain")
        return Rendering("seldon-v2", manifests, warnings=warnings)
    if target == "kserve":
        manifests, more = kserve_resources(graph, resolver)
        return Rendering("kserve", [*manifests, graph_config_map(graph, source_text)], warnings=warnings + more)
    files = helm_chart(graph, resolver, source_text)
    manifests = render_chart(files, release=graph.name, namespace=graph.namespace or "default")
    return Rendering("helm", manifests, files=files, warnings=warnings)


def render(graph: Graph, target: str, resolver: ModelResolver) -> list[dict[str, Any]]:
    """The manifests of ``graph`` for ``target`` (``seldon``, ``seldon-v2``, ``kserve`` or ``helm``)."""
    return render_target(graph, target, resolver).manifests


def manifest_files(rendering: Rendering) -> dict[str, str]:
    """Files to write for a rendering: the chart for helm, one YAML file per manifest otherwise."""
    if rendering.files:
        return dict(rendering.files)
    out: dict[str, str] = {}
    for i, manifest in enumerate(rendering.manifests):
        name = f"{i:02d}-{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        out[name] = yaml.safe_dump(manifest, sort_keys=False, width=1000)
    return out
