"""Compile a graph into KServe resources: an InferenceService per serving node, and an InferenceGraph to chain them.

* MLflow model nodes are InferenceServices with ``modelFormat: mlflow`` and ``protocolVersion: v2`` (KServe
  serves MLflow models through MLServer, V2 only); code nodes run ``code.image`` as a custom predictor container.
* The tree becomes InferenceGraph nodes: a model or transformer with a child is a ``Sequence`` (its response is
  the child's request), an ``ab`` router a ``Splitter`` (weights from the ratio), a combiner an ``Ensemble`` of its
  children followed by the combiner's own service, an output transformer a ``Sequence`` ending with itself.
* A canary sets ``canaryTrafficPercent`` on the replaced model's InferenceService, whose ``storageUri`` becomes the
  canary's: KServe routes the rest to the last ready revision, the one serving the main model (the main model's
  storage URI is kept in the ``sustain.io/main-storage-uri`` annotation). KServe cannot mirror traffic: a shadow
  becomes its own InferenceService that receives nothing until you mirror to it (a warning says so).
* Every monitored node's InferenceService logs to sustain (``spec.predictor.logger``).

A single-model graph yields one InferenceService and no InferenceGraph.
"""

from __future__ import annotations

from typing import Any

from sustain.deploy_pipeline.graph.model import Graph, GraphError, Node
from sustain.deploy_pipeline.graph.resolve import ModelResolver
from sustain.deploy_pipeline.graph.seldon import code_image, logger_url, node_object_name, object_metadata

ISVC_API = "serving.kserve.io/v1beta1"
GRAPH_API = "serving.kserve.io/v1alpha1"


class _Compiler:
    def __init__(self, graph: Graph, resolver: ModelResolver) -> None:
        self.graph = graph
        self.resolver = resolver
        self.services: list[dict[str, Any]] = []
        self.graph_nodes: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []

    def where(self, node: Node) -> str:
        return f"{self.graph.source}:{node.line}: " if node.line else ""

    def service_name(self, node: str, suffix: str = "") -> str:
        return node_object_name(self.graph, node, suffix)

    def metadata(self, name: str, component: str) -> dict[str, Any]:
        return object_metadata(self.graph, name, component)

    def service(self, node: Node, suffix: str = "", uri: str | None = None, canary: int | None = None) -> str:
        name = self.service_name(node.name, suffix)
        predictor: dict[str, Any] = {}
        meta = self.metadata(name, "inference-service")
        if node.impl.kind == "mlflow":
            download = self.resolver.resolve(uri or node.impl.uri or "").download_uri
            predictor["model"] = {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "storageUri": download}
        else:
            env = [
                {"name": "SUSTAIN_GRAPH_NODE", "value": node.name},
                {"name": "SUSTAIN_GRAPH_KIND", "value": node.kind},
            ]
            code = node.impl.code or (
                "sustain.deploy_pipeline.graph.builtins:AverageCombiner" if node.impl.kind == "average" else None
            )
            if code:
                env.append({"name": "SUSTAIN_GRAPH_CODE", "value": code})
            container = {"name": "kserve-container", "image": code_image(self.graph, node), "env": env}
            predictor["containers"] = [container]
        if canary is not None:
            predictor["canaryTrafficPercent"] = canary
            assert node.impl.uri is not None
            main = self.resolver.resolve(node.impl.uri).download_uri
            meta["annotations"] = {"sustain.io/main-storage-uri": main}
        url = logger_url(self.graph, node.name)
        if url is not None:
            predictor["logger"] = {"mode": "all", "url": url}
        isvc = {"apiVersion": ISVC_API, "kind": "InferenceService", "metadata": meta, "spec": {"predictor": predictor}}
        self.services.append(isvc)
        return name

    def own_service(self, node: Node) -> str:
        g = self.graph
        if g.canary is not None and g.canary.node == node.name:
            return self.service(node, uri=g.canary.uri, canary=g.canary.percent)
        return self.service(node)

    def step(self, name: str) -> dict[str, Any]:
        """The InferenceGraph step that runs the subtree at ``name``."""
        node = self.graph.node(name)
        kind = node.kind
        if kind == "router":
            if node.impl.kind != "ab":
                raise GraphError(
                    f"{self.where(node)}router {name} has no KServe equivalent: an InferenceGraph Splitter takes "
                    "fixed weights and cannot call a router; use an ab router or another target"
                )
            ratio = round(float(node.impl.param("ratio", 0.5)) * 100)
            steps = [self.step(c) for c in node.children]
            steps[0]["weight"], steps[1]["weight"] = ratio, 100 - ratio
            return self.graph_node(name, "Splitter", steps)
        if kind == "combiner":
            ensemble = self.graph_node(f"{name}-members", "Ensemble", [self.step(c) for c in node.children])
            own = {"name": name, "serviceName": self.service(node), "data": "$response"}
            return self.graph_node(name, "Sequence", [ensemble, own])
        if node.children and len(node.children) > 1:
            self.warnings.append(
                f"{self.where(node)}KServe: node {name} keeps only its first child {node.children[0]} "
                "(a Sequence cannot run the others for their side effects)"
            )
        own = {"name": name, "serviceName": self.own_service(node)}
        if not node.children:
            return own
        child = {**self.step(node.children[0]), "data": "$response"}
        steps = [child, {**own, "data": "$response"}] if kind == "output_transformer" else [own, child]
        return self.graph_node(name, "Sequence", steps)

    def graph_node(self, name: str, router: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
        self.graph_nodes[name] = {"routerType": router, "steps": steps}
        return {"name": name, "nodeName": name}

    def shadow(self) -> None:
        g = self.graph
        if g.shadow is None:
            return
        name = self.service(g.node(g.shadow.node), "shadow", uri=g.shadow.uri)
        self.warnings.append(
            f"KServe cannot mirror traffic: the shadow model is InferenceService {name}, which receives no requests "
            "until you mirror to it (e.g. an Istio VirtualService mirror)"
        )


def kserve_resources(graph: Graph, resolver: ModelResolver) -> tuple[list[dict[str, Any]], list[str]]:
    """InferenceServices (and the InferenceGraph of a graph with more than one node), and warnings."""
    c = _Compiler(graph, resolver)
    root = graph.node(graph.root)
    if len(graph.nodes) == 1:
        c.own_service(root)
        c.shadow()
        return c.services, c.warnings
    top = c.step(graph.root)
    nodes = dict(c.graph_nodes)
    if "nodeName" in top:  # the root of an InferenceGraph must be called root
        nodes["root"] = nodes.pop(top["nodeName"])
    else:
        nodes["root"] = {"routerType": "Sequence", "steps": [top]}
    c.shadow()
    ig = {"apiVersion": GRAPH_API, "kind": "InferenceGraph", "metadata": c.metadata(graph.name, "inference-graph")}
    ig["spec"] = {"nodes": nodes}
    return [*c.services, ig], c.warnings
