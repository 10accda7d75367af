"""Inference graphs: a small ``graph.yaml`` becomes Seldon, KServe and Helm resources, and runs locally first.

The functions other modules (the release pipeline's package stage, the CLI) call::

    graph = load_graph("graph.yaml", resolver=MlflowResolver())     # or single_model_graph(name, model_uri, ...)
    manifests = render(graph, "seldon", MlflowResolver())           # list of dicts, in apply order
    chart = helm_chart(graph, MlflowResolver())                     # {path: text}
    apply_manifests(manifests)                                      # needs KUBECONFIG

The local runner lives in :mod:`sustain.deploy_pipeline.graph.runner`; it imports Starlette only when used.
"""

from __future__ import annotations

from sustain.deploy_pipeline.graph.admission import admission_errors
from sustain.deploy_pipeline.graph.apply import apply_manifests
from sustain.deploy_pipeline.graph.helm import helm_chart, render_chart
from sustain.deploy_pipeline.graph.loader import load_graph, load_graph_text
from sustain.deploy_pipeline.graph.model import Graph, GraphError, Node, single_model_graph
from sustain.deploy_pipeline.graph.render import TARGETS, Rendering, render, render_target
from sustain.deploy_pipeline.graph.resolve import MlflowResolver, ModelResolver, ResolvedModel, StaticResolver

__all__ = [
    "TARGETS",
    "Graph",
    "GraphError",
    "MlflowResolver",
    "ModelResolver",
    "Node",
    "Rendering",
    "ResolvedModel",
    "StaticResolver",
    "admission_errors",
    "apply_manifests",
    "helm_chart",
    "load_graph",
    "load_graph_text",
    "render",
    "render_chart",
    "render_target",
    "single_model_graph",
]
