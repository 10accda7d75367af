"""Plain Kubernetes objects beside the serving resources: the graph's ConfigMap, the storage Secret, a Service.

* ConfigMap ``<graph>-graph``: the graph file and the node -> sustain model mapping (what an operator reads to
  know where each node's request logs go).
* Secret ``<graph>-rclone``: the rclone settings Seldon's storage initializer reads when models live on S3
  (``RCLONE_CONFIG_S3_*``). Values come from the environment at render time (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``MLFLOW_S3_ENDPOINT_URL``) and are empty when unset: fill them in before applying.
* Service ``<graph>``: a stable in-cluster name for the main predictor's executor (Seldon labels its pods
  ``seldon-app: <graph>-main``), which canary and shadow predictors never receive.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sustain.deploy_pipeline.graph.model import Graph
from sustain.deploy_pipeline.graph.seldon import standard_labels, storage_secret

EXECUTOR_HTTP_PORT = 8000
EXECUTOR_GRPC_PORT = 5001


def _metadata(graph: Graph, name: str, component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": standard_labels(graph, component)}
    if graph.namespace:
        meta["namespace"] = graph.namespace
    return meta


def graph_config_map(graph: Graph, source_text: str | None) -> dict[str, Any]:
    data = {"monitor.json": json.dumps({"url": graph.monitor.url, "models": graph.monitored()}, sort_keys=True)}
    if source_text is not None:
        data["graph.yaml"] = source_text
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(graph, f"{graph.name}-graph", "config"),
        "data": data,
    }


def rclone_secret(graph: Graph) -> dict[str, Any]:
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL", "")
    data = {
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Minio" if endpoint else "AWS",
        "RCLONE_CONFIG_S3_ENV_AUTH": "false",
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "RCLONE_CONFIG_S3_ENDPOINT": endpoint,
    }
    meta = _metadata(graph, storage_secret(graph), "storage-credentials")
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "stringData": data}


def predictor_service(graph: Graph) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(graph, graph.name, "endpoint"),
        "spec": {
            "type": "ClusterIP",
            "selector": {"seldon-app": f"{graph.name}-main"},
            "ports": [
                {"name": "http", "port": EXECUTOR_HTTP_PORT, "targetPort": EXECUTOR_HTTP_PORT, "protocol": "TCP"},
                {"name": "grpc", "port": EXECUTOR_GRPC_PORT, "targetPort": EXECUTOR_GRPC_PORT, "protocol": "TCP"},
            ],
        },
    }
