"""Compile a graph into Seldon Core v2 resources (``mlops.seldon.io/v1alpha1``): Models, a Pipeline, Experiments.

Core v2 has no graph executor: a Pipeline is a set of steps, each a Model fed by other steps' outputs. The tree
maps onto it this way:

* a model or transformer feeds its children; a router or combiner passes its own input on to its children;
* an output transformer and a combiner are steps whose inputs are their children's results (a combiner joins
  them, ``inputsJoinType: inner``, each child's ``output-1`` tensor renamed after the child — the name MLServer's
  MLflow runtime gives an array output);
* an ``ab`` router becomes an Experiment over its two children (which must be models without children): the
  pipeline names the first, the Experiment splits its traffic;
* canary and shadow become an Experiment on the replaced model (``candidates`` with weights, ``mirror``).

Core v2 logs to Kafka, not CloudEvents: monitored models get ``logger.percent: 100``, and the Kafka topics
reach sustain through a bridge of your own.
"""

from __future__ import annotations

from typing import Any

from sustain.deploy_pipeline.graph.model import Graph, GraphError, Node
from sustain.deploy_pipeline.graph.resolve import ModelResolver
from sustain.deploy_pipeline.graph.seldon import node_object_name, object_metadata

API_VERSION = "mlops.seldon.io/v1alpha1"


def _where(graph: Graph, node: Node) -> str:
    return f"{graph.source}:{node.line}: " if node.line else ""


class _Compiler:
    def __init__(self, graph: Graph, resolver: ModelResolver) -> None:
        self.graph = graph
        self.resolver = resolver
        self.models: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []

    def model_name(self, node: str, suffix: str = "") -> str:
        return node_object_name(self.graph, node, suffix)

    def metadata(self, name: str, component: str) -> dict[str, Any]:
        return object_metadata(self.graph, name, component)

    def storage(self, node: Node, uri: str | None = None) -> dict[str, Any]:
        g = self.graph
        if node.impl.kind == "mlflow":
            resolved = self.resolver.resolve(uri or node.impl.uri or "")
            return {"storageUri": resolved.download_uri, "requirements": ["mlflow"]}
        if node.impl.kind == "epsilon_greedy" or (node.kind == "router" and node.impl.kind != "ab"):
            raise GraphError(
                f"{_where(g, node)}router {node.name} has no Seldon Core v2 equivalent: pipelines have no router "
                "step; use an ab router (an Experiment) or another target"
            )
        if g.code_uri is None:
            raise GraphError(
                f"{_where(g, node)}node {node.name} runs code; Seldon Core v2 loads it as an MLServer runtime from "
                "storage: set code.uri on the graph (the runtime of each node is read from <uri>/<node>)"
            )
        return {"storageUri": f"{g.code_uri.rstrip('/')}/{node.name}", "requirements": ["python"]}

    def add_model(self, node: Node, suffix: str = "", uri: str | None = None) -> str:
        name = self.model_name(node.name, suffix)
        spec = self.storage(node, uri)
        if node.name in self.graph.monitored():
            spec["logger"] = {"percent": 100}
        self.models.append(
            {"apiVersion": API_VERSION, "kind": "Model", "metadata": self.metadata(name, "model"), "spec": spec}
        )
        return name

    def step(self, node: Node, inputs: list[str] | None, tensor_map: dict[str, str] | None = None) -> str:
        name = self.add_model(node)
        step: dict[str, Any] = {"name": name}
        if inputs:
            step["inputs"] = inputs
        if tensor_map:
            step["tensorMap"] = tensor_map
            step["inputsJoinType"] = "inner"
        self.steps.append(step)
        return name

    def compile(self, name: str, feed: list[str] | None) -> str:
        """Add the steps of the subtree at ``name`` fed by ``feed``; return the step holding its result."""
        g = self.graph
        node = g.node(name)
        kind = node.kind
        if kind == "router":
            if node.impl.kind != "ab":
                self.storage(node)  # raises: no router step in Core v2
            return self.ab_experiment(node, feed)
        if kind in ("model", "transformer"):
            own = self.step(node, feed)
            results = [self.compile(child, [f"{own}.outputs"]) for child in node.children]
            return results[0] if results else own
        results = [self.compile(child, feed) for child in node.children]
        if kind == "combiner":
            tensor_map = {f"{r}.outputs.output-1": r for r in results}
            return self.step(node, [f"{r}.outputs" for r in results], tensor_map)
        # an output transformer post-processes its (first) child's result, or its own input when a leaf
        inputs = [f"{results[0]}.outputs"] if results else feed
        return self.step(node, inputs)

    def ab_experiment(self, node: Node, feed: list[str] | None) -> str:
        g = self.graph
        children = [g.node(c) for c in node.children]
        if any(c.children or c.kind != "model" for c in children):
            raise GraphError(
                f"{_where(g, node)}ab router {node.name}: Seldon Core v2 splits traffic between models with an "
                "Experiment, so both children must be models without children"
            )
        first = self.step(children[0], feed)
        second = self.add_model(children[1])
        ratio = float(node.impl.param("ratio", 0.5))
        weight = round(ratio * 100)
        spec = {
            "default": first,
            "candidates": [{"name": first, "weight": weight}, {"name": second, "weight": 100 - weight}],
        }
        meta = self.metadata(self.model_name(node.name), "experiment")
        self.experiments.append({"apiVersion": API_VERSION, "kind": "Experiment", "metadata": meta, "spec": spec})
        return first

    def release_experiment(self) -> None:
        g = self.graph
        if g.canary is None and g.shadow is None:
            return
        node_name = (g.canary or g.shadow).node  # type: ignore[union-attr]
        node = g.node(node_name)
        main = self.model_name(node_name)
        spec: dict[str, Any] = {"default": main, "candidates": [{"name": main, "weight": 100}]}
        if g.canary is not None:
            canary = self.add_model(g.node(g.canary.node), "canary", g.canary.uri)
            percent = g.canary.percent or 0
            spec["candidates"] = [{"name": main, "weight": 100 - percent}, {"name": canary, "weight": percent}]
        if g.shadow is not None:
            if g.canary is not None and g.shadow.node != g.canary.node:
                raise GraphError(f"{_where(g, node)}canary and shadow must replace the same node for Seldon Core v2")
            spec["mirror"] = {"name": self.add_model(g.node(g.shadow.node), "shadow", g.shadow.uri), "percent": 100}
        meta = self.metadata(f"{main}-release", "experiment")
        self.experiments.append({"apiVersion": API_VERSION, "kind": "Experiment", "metadata": meta, "spec": spec})


def seldon_v2_resources(graph: Graph, resolver: ModelResolver) -> list[dict[str, Any]]:
    """Models, the Pipeline (for graphs of more than one node) and Experiments, in apply order."""
    c = _Compiler(graph, resolver)
    result = c.compile(graph.root, None)
    c.release_experiment()
    out = list(c.models)
    if len(graph.nodes) > 1:
        pipeline = {
            "apiVersion": API_VERSION,
            "kind": "Pipeline",
            "metadata": c.metadata(graph.name, "pipeline"),
            "spec": {"steps": c.steps, "output": {"steps": [result]}},
        }
        out.append(pipeline)
    return out + c.experiments
