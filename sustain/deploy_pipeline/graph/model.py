"""The typed inference graph: nodes, the tree they form, traffic variants and where the logs go.

A :class:`Graph` is what :func:`sustain.deploy_pipeline.graph.loader.load_graph` returns after every check
passed; compilers and the local runner read it and never see YAML. Edges are the tree of Seldon Core's
executor: ``a -> b`` makes ``b`` a child of ``a``. A transformer's child receives its output; an output
transformer is the parent of what it post-processes; a router picks one child; a combiner calls all its
children and merges their outputs.

>>> g = single_model_graph("churn", "models:/churn@champion")
>>> g.root, g.node("churn").kind, g.monitored()
('churn', 'model', {'churn': 'churn'})
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from sustain.errors import SpecError

NodeKind = Literal["model", "transformer", "output_transformer", "router", "combiner"]
ImplKind = Literal["mlflow", "code", "ab", "epsilon_greedy", "average"]
Protocol = Literal["seldon", "v2"]

NODE_KINDS: tuple[NodeKind, ...] = ("model", "transformer", "output_transformer", "router", "combiner")
PROTOCOLS: tuple[Protocol, ...] = ("seldon", "v2")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
CODE_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
SUSTAIN_MODEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_SUSTAIN_URL = "http://sustain:8000"


class GraphError(SpecError):
    """A graph file is invalid; ``details`` lists every problem with its line."""

    code = "graph_invalid"


@dataclass(frozen=True)
class Impl:
    """How a node computes: an MLflow model, user code (a class and/or an image), or a built-in."""

    kind: ImplKind
    uri: str | None = None  # mlflow: the model URI as written (models:/churn@champion)
    code: str | None = None  # code: "package.module:Class", run in-process by the local runner
    image: str | None = None  # code: the image that serves the node in a cluster
    params: tuple[tuple[str, float | int | str], ...] = ()

    def param(self, name: str, default: float | int | str) -> float | int | str:
        return dict(self.params).get(name, default)

    @property
    def is_builtin(self) -> bool:
        return self.kind in ("ab", "epsilon_greedy", "average")


@dataclass(frozen=True)
class Node:
    name: str
    kind: NodeKind
    impl: Impl
    children: tuple[str, ...] = ()
    line: int | None = None
    first_child_output: bool = False  # several children, no combiner: the first child's output (Seldon's rule)


@dataclass(frozen=True)
class Variant:
    """A canary or shadow predictor: the same graph with one MLflow model node's URI replaced."""

    node: str
    uri: str
    percent: int | None = None  # canary only
    line: int | None = None


@dataclass(frozen=True)
class Monitor:
    """Where each node's request logs go: node name -> sustain model, and sustain's base URL."""

    url: str = DEFAULT_SUSTAIN_URL
    models: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Graph:
    name: str
    nodes: Mapping[str, Node]
    root: str
    protocol: Protocol = "seldon"
    namespace: str | None = None
    code_image: str | None = None  # default image of code nodes in a cluster
    code_uri: str | None = None  # Seldon Core v2: where code nodes' MLServer runtimes are stored (<uri>/<node>)
    canary: Variant | None = None
    shadow: Variant | None = None
    monitor: Monitor = field(default_factory=Monitor)
    source: str = "<graph>"
    warnings: tuple[str, ...] = ()

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def walk(self, start: str | None = None) -> Iterator[Node]:
        """Nodes in pre-order (a parent before its children, children in edge order)."""
        node = self.nodes[start or self.root]
        yield node
        for child in node.children:
            yield from self.walk(child)

    def parent(self, name: str) -> str | None:
        return next((n.name for n in self.nodes.values() if name in n.children), None)

    def mlflow_nodes(self) -> list[Node]:
        return [n for n in self.walk() if n.impl.kind == "mlflow"]

    def monitored(self) -> dict[str, str]:
        """Node -> sustain model for every node whose request logs go to sustain."""
        return dict(self.monitor.models)

    def with_model(self, node: str, uri: str) -> Graph:
        """This graph with ``node``'s MLflow model URI replaced (a canary or shadow predictor)."""
        target = self.nodes[node]
        nodes = dict(self.nodes)
        nodes[node] = replace(target, impl=replace(target.impl, uri=uri))
        return replace(self, nodes=nodes, canary=None, shadow=None)

    def predictors(self) -> list[tuple[str, Graph, int | None, bool]]:
        """(predictor name, its graph, traffic percent, shadow) in Seldon's order: main, canary, shadow."""
        main_traffic = 100 - self.canary.percent if self.canary and self.canary.percent else 100
        out: list[tuple[str, Graph, int | None, bool]] = [("main", self, main_traffic, False)]
        if self.canary is not None:
            out.append(("canary", self.with_model(self.canary.node, self.canary.uri), self.canary.percent, False))
        if self.shadow is not None:
            out.append(("shadow", self.with_model(self.shadow.node, self.shadow.uri), None, True))
        return out


def default_monitor_models(nodes: Mapping[str, Node], model: str) -> dict[str, str]:
    """The default node -> sustain model mapping.

    The graph's only model node is monitored as ``model`` itself; every other node as ``<model>-<node>``.
    With several model nodes, each is ``<model>-<node>``.
    """
    model_nodes = [n for n in nodes.values() if n.kind == "model"]
    lone = model_nodes[0].name if len(model_nodes) == 1 else None
    return {name: model if name == lone else f"{model}-{name}" for name in nodes}


def single_model_graph(
    name: str,
    model_uri: str,
    *,
    protocol: Protocol = "seldon",
    namespace: str | None = None,
    canary_uri: str | None = None,
    canary_percent: int = 10,
    shadow_uri: str | None = None,
    monitor_url: str = DEFAULT_SUSTAIN_URL,
    monitor_model: str | None = None,
) -> Graph:
    """A graph of one MLflow model (the release pipeline's package stage), optionally with a canary and a shadow.

    The node is named after the graph; its request logs go to sustain model ``monitor_model`` (default ``name``).
    """
    if not DNS_LABEL.match(name):
        raise GraphError(f"graph name {name!r} must be a DNS label: lowercase letters, digits and '-', at most 63")
    if not 1 <= canary_percent <= 99:
        raise GraphError(f"canary percent must be between 1 and 99, got {canary_percent}")
    node = Node(name=name, kind="model", impl=Impl(kind="mlflow", uri=model_uri))
    nodes = {name: node}
    return Graph(
        name=name,
        nodes=nodes,
        root=name,
        protocol=protocol,
        namespace=namespace,
        canary=Variant(node=name, uri=canary_uri, percent=canary_percent) if canary_uri else None,
        shadow=Variant(node=name, uri=shadow_uri) if shadow_uri else None,
        monitor=Monitor(url=monitor_url, models={name: monitor_model or name}),
        source=f"<single model {name}>",
    )
