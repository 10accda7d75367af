"""Compile a graph into a Seldon Core v1 ``SeldonDeployment`` (``machinelearning.seldon.io/v1``).

* MLflow model nodes become ``MLFLOW_SERVER`` units whose ``modelUri`` is the registry's download URI (the folder
  holding ``MLmodel``); under the seldon protocol they get ``xtype: DataFrame`` so named columns reach the model.
* Code nodes become containers in ``componentSpecs`` named after the node (the admission webhook wants a
  same-named container for every node without an implementation); ``MODEL_NAME`` and ``SERVICE_TYPE`` tell
  Seldon's Python wrapper which class to serve.
* Built-ins: ``ab`` is the executor's own ``RANDOM_ABTEST`` (no type: a ROUTER type would make the executor call
  a route endpoint instead), ``epsilon_greedy`` is Seldon's ``seldonio/mab_epsilon_greedy`` image, ``average``
  runs sustain's :class:`~sustain.deploy_pipeline.graph.builtins.AverageCombiner` from the code image (the Go
  executor has no average combiner of its own).
* Canary and shadow are extra predictors; every monitored node logs to sustain's ``/v1/cloudevents``.
"""

from __future__ import annotations

from typing import Any

from sustain.deploy_pipeline.graph.model import Graph, GraphError, Node
from sustain.deploy_pipeline.graph.resolve import ModelResolver

API_VERSION = "machinelearning.seldon.io/v1"
SELDON_VERSION = "1.19.0-rc.1"
EPSILON_GREEDY_IMAGE = f"seldonio/mab_epsilon_greedy:{SELDON_VERSION}"
AVERAGE_COMBINER_CLASS = "sustain.deploy_pipeline.graph.builtins.AverageCombiner"
SEED_DEFAULT = 0
TYPES = {
    "model": "MODEL",
    "transformer": "TRANSFORMER",
    "output_transformer": "OUTPUT_TRANSFORMER",
    "router": "ROUTER",
    "combiner": "COMBINER",
}


def standard_labels(graph: Graph, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": graph.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "sustain",
    }


def object_metadata(graph: Graph, name: str, component: str) -> dict[str, Any]:
    """A generated object's metadata: its name, the standard labels and the graph's namespace when it has one."""
    meta: dict[str, Any] = {"name": name, "labels": standard_labels(graph, component)}
    if graph.namespace:
        meta["namespace"] = graph.namespace
    return meta


def node_object_name(graph: Graph, node: str, suffix: str = "") -> str:
    """What a node's own object is called: the graph's name for a graph of one node, else ``graph-node``."""
    base = graph.name if len(graph.nodes) == 1 else f"{graph.name}-{node}"
    return f"{base}-{suffix}" if suffix else base


def logger_url(graph: Graph, node: str) -> str | None:
    """Where ``node`` logs its CloudEvents: sustain's collector, naming the sustain model that follows it."""
    model = graph.monitored().get(node)
    return None if model is None else f"{graph.monitor.url}/v1/cloudevents?model={model}"


def storage_secret(graph: Graph) -> str:
    return f"{graph.name}-rclone"


def code_image(graph: Graph, node: Node) -> str:
    image = node.impl.image or graph.code_image
    if image is None:
        where = f"{graph.source}:{node.line}: " if node.line else ""
        raise GraphError(
            f"{where}node {node.name} runs code, and a cluster needs an image for it: set image on the node "
            "or code.image on the graph"
        )
    return image


def _wrapper_env(class_ref: str, service_type: str) -> list[dict[str, str]]:
    """Environment for Seldon's Python wrapper (s2i ``run``): MODEL_NAME is module.Class."""
    return [
        {"name": "MODEL_NAME", "value": class_ref.replace(":", ".")},
        {"name": "SERVICE_TYPE", "value": service_type},
    ]


class _Predictor:
    def __init__(self, graph: Graph, resolver: ModelResolver) -> None:
        self.graph = graph
        self.resolver = resolver
        self.containers: list[dict[str, Any]] = []
        self.s3 = False

    def unit(self, node: Node) -> dict[str, Any]:
        g = self.graph
        impl = node.impl
        unit: dict[str, Any] = {"name": node.name}
        if impl.kind == "mlflow":
            assert impl.uri is not None
            download = self.resolver.resolve(impl.uri).download_uri
            unit.update(type="MODEL", implementation="MLFLOW_SERVER", modelUri=download)
            if g.protocol == "seldon":
                unit["parameters"] = [{"name": "xtype", "type": "STRING", "value": "DataFrame"}]
            if download.startswith("s3://"):
                unit["envSecretRefName"] = storage_secret(g)
                self.s3 = True
        elif impl.kind == "ab":
            unit["implementation"] = "RANDOM_ABTEST"
            ratio = float(impl.param("ratio", 0.5))
            unit["parameters"] = [{"name": "ratioA", "type": "FLOAT", "value": repr(ratio)}]
        elif impl.kind == "epsilon_greedy":
            unit["type"] = "ROUTER"
            unit["parameters"] = [
                {"name": "n_branches", "type": "INT", "value": str(len(node.children))},
                {"name": "epsilon", "type": "FLOAT", "value": repr(float(impl.param("epsilon", 0.1)))},
                {"name": "seed", "type": "INT", "value": str(int(impl.param("seed", SEED_DEFAULT)))},
            ]
            self.containers.append({"name": node.name, "image": EPSILON_GREEDY_IMAGE})
        elif impl.kind == "average":
            unit["type"] = "COMBINER"
            env = _wrapper_env(AVERAGE_COMBINER_CLASS, "COMBINER")
            self.containers.append({"name": node.name, "image": code_image(g, node), "env": env})
        else:
            unit["type"] = TYPES[node.kind]
            if g.protocol == "v2" and impl.image is None:
                where = f"{g.source}:{node.line}: " if node.line else ""
                raise GraphError(
                    f"{where}node {node.name} is code, and Seldon's Python wrapper speaks the seldon protocol only: "
                    "use protocol seldon, or give the node an image that serves the V2 protocol"
                )
            container: dict[str, Any] = {"name": node.name, "image": code_image(g, node)}
            if impl.code is not None:
                container["env"] = _wrapper_env(impl.code, TYPES[node.kind])
            self.containers.append(container)
        url = logger_url(g, node.name)
        if url is not None:
            unit["logger"] = {"mode": "all", "url": url}
        unit["children"] = [self.unit(g.node(child)) for child in node.children]
        return unit


def seldon_deployment(graph: Graph, resolver: ModelResolver) -> tuple[dict[str, Any], bool]:
    """The SeldonDeployment of ``graph`` and whether it reads models from S3 (then it needs the rclone Secret)."""
    predictors = []
    s3 = False
    for name, variant, traffic, shadow in graph.predictors():
        p = _Predictor(variant, resolver)
        predictor: dict[str, Any] = {"name": name, "replicas": 1, "graph": p.unit(variant.node(variant.root))}
        if shadow:
            predictor["shadow"] = True
        elif traffic is not None:
            predictor["traffic"] = traffic
        if p.containers:
            predictor["componentSpecs"] = [{"spec": {"containers": p.containers}}]
        predictor["labels"] = {"sustain.io/predictor": name}
        predictors.append(predictor)
        s3 = s3 or p.s3
    metadata = object_metadata(graph, graph.name, "inference-graph")
    sdep = {
        "apiVersion": API_VERSION,
        "kind": "SeldonDeployment",
        "metadata": metadata,
        "spec": {"protocol": graph.protocol, "predictors": predictors},
    }
    return sdep, s3
