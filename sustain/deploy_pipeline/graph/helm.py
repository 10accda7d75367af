"""A Helm chart that renders the graph's SeldonDeployment, and a tiny renderer for the templates it writes.

The chart (``Chart.yaml``, ``values.yaml``, ``templates/``) follows Seldon's ``seldon-single-model`` chart and
Helm's conventions: names from the release, the labels ``app.kubernetes.io/{name,instance,version,managed-by}``
and ``helm.sh/chart``, and no CRD (the ``seldon-core-operator`` chart installs it). Values hold what an operator
tunes per release: each predictor's traffic and replicas, each node's ``modelUri`` or image, and sustain's URL.

No ``helm`` binary can be installed here, so :func:`render_chart` renders the templates with the few constructs
they use (``.Values`` paths with an optional ``quote``, ``.Release``/``.Chart`` fields, ``include ... | nindent``)
and refuses anything else, so a template it cannot read fails loudly instead of rendering wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from sustain.deploy_pipeline.graph.model import Graph, GraphError
from sustain.deploy_pipeline.graph.objects import graph_config_map, predictor_service, rclone_secret
from sustain.deploy_pipeline.graph.resolve import ModelResolver
from sustain.deploy_pipeline.graph.seldon import seldon_deployment

CHART_VERSION = "0.1.0"
# libyaml when PyYAML has it: pure-Python YAML made a chart cost ~50 ms, ten times everything else together
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_SENTINEL = re.compile(r"'?__VALUE_(\d+)__'?")
_EXPR = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_DEFINE = re.compile(r'\{\{-?\s*define\s+"([^"]+)"\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}', re.DOTALL)


def _key(node: str) -> str:
    """A values key for a node name: Go templates cannot read '-' in a dotted path."""
    return node.replace("-", "_")


class _Templater:
    """Replaces chosen leaves of a manifest with ``.Values`` expressions, collecting the default values."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.exprs: list[str] = []

    def value(self, path: str, default: Any) -> str:
        node = self.values
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = default
        quote = " | quote" if isinstance(default, str) else ""
        self.exprs.append(f"{{{{ .Values.{path}{quote} }}}}")
        return f"__VALUE_{len(self.exprs) - 1}__"

    def dump(self, body: Any, indent: int) -> str:
        text = yaml.dump(body, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=1000)
        text = _SENTINEL.sub(lambda m: self.exprs[int(m.group(1))], text)
        pad = " " * indent
        return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def _templated_units(t: _Templater, unit: dict[str, Any], predictor: str) -> None:
    base = f"predictors.{predictor}.nodes.{_key(unit['name'])}"
    if "modelUri" in unit:
        unit["modelUri"] = t.value(f"{base}.modelUri", unit["modelUri"])
    if "logger" in unit:
        unit["logger"]["url"] = t.value(f"{base}.loggerUrl", unit["logger"]["url"])
    for child in unit.get("children", []):
        _templated_units(t, child, predictor)


def _header(kind: str, api: str, name: str, chart: str) -> str:
    return (
        f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {{{{ .Release.Namespace }}}}\n"
        f'  labels:\n    {{{{- include "{chart}.labels" . | nindent 4 }}}}\n'
    )


def helm_chart(graph: Graph, resolver: ModelResolver, source_text: str | None = None) -> dict[str, str]:
    """The chart's files (path -> text) rendering the same SeldonDeployment as the ``seldon`` target."""
    sdep, s3 = seldon_deployment(graph, resolver)
    chart = graph.name
    t = _Templater()
    spec = sdep["spec"]
    spec["protocol"] = t.value("protocol", spec["protocol"])
    for predictor in spec["predictors"]:
        name = predictor["name"]
        predictor["replicas"] = t.value(f"predictors.{name}.replicas", predictor["replicas"])
        if "traffic" in predictor:
            predictor["traffic"] = t.value(f"predictors.{name}.traffic", predictor["traffic"])
        for component in predictor.get("componentSpecs", []):
            for container in component["spec"]["containers"]:
                container["image"] = t.value(
                    f"predictors.{name}.nodes.{_key(container['name'])}.image", container["image"]
                )
        _templated_units(t, predictor["graph"], name)
    files: dict[str, str] = {}
    release = "{{ .Release.Name }}"
    files["templates/seldondeployment.yaml"] = (
        _header("SeldonDeployment", sdep["apiVersion"], release, chart) + "spec:\n" + t.dump(spec, 2)
    )
    config = graph_config_map(graph, source_text if source_text and "{{" not in source_text else None)
    files["templates/configmap.yaml"] = (
        _header("ConfigMap", "v1", f"{release}-graph", chart) + "data:\n" + t.dump(config["data"], 2)
    )
    service = predictor_service(graph)
    service["spec"]["selector"] = {"seldon-app": f"{release}-main"}
    files["templates/service.yaml"] = _header("Service", "v1", release, chart) + "spec:\n" + t.dump(service["spec"], 2)
    if s3:
        secret = rclone_secret(graph)
        data = {k: t.value(f"storage.{k}", v) for k, v in secret["stringData"].items()}
        files["templates/secret.yaml"] = (
            _header("Secret", "v1", f"{release}-rclone", chart) + "type: Opaque\nstringData:\n" + t.dump(data, 2)
        )
    files["templates/_helpers.tpl"] = (
        f'{{{{- define "{chart}.labels" -}}}}\n'
        "app.kubernetes.io/name: {{ .Chart.Name }}\n"
        "app.kubernetes.io/instance: {{ .Release.Name }}\n"
        "app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}\n"
        "app.kubernetes.io/managed-by: {{ .Release.Service }}\n"
        "helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n"
        "{{- end }}\n"
    )
    files["templates/NOTES.txt"] = (
        "{{ .Release.Name }} is a SeldonDeployment in {{ .Release.Namespace }}.\n"
        "Predictions: POST http://{{ .Release.Name }}.{{ .Release.Namespace }}:8000/api/v1.0/predictions\n"
        "Request logs go to {{ .Values.monitorUrl }}/v1/cloudevents.\n"
    )
    t.values["monitorUrl"] = graph.monitor.url
    chart_meta = {
        "apiVersion": "v2",
        "name": chart,
        "description": f"Inference graph {graph.name}, generated by sustain from {graph.source}",
        "type": "application",
        "version": CHART_VERSION,
        "appVersion": _app_version(graph, resolver),
    }
    files["Chart.yaml"] = yaml.dump(chart_meta, Dumper=_DUMPER, sort_keys=False)
    files["values.yaml"] = yaml.dump(t.values, Dumper=_DUMPER, sort_keys=False, width=1000)
    return dict(sorted(files.items()))


def _app_version(graph: Graph, resolver: ModelResolver) -> str:
    """The registered versions of the graph's models, e.g. ``churn-3`` or ``churn-3.fraud-7``."""
    parts = []
    for node in graph.mlflow_nodes():
        resolved = resolver.resolve(node.impl.uri or "")
        if resolved.name and resolved.version:
            parts.append(f"{resolved.name}-{resolved.version}")
    return ".".join(parts) or "1"


# -- the tiny renderer -----------------------------------------------------------------------------
def _lookup(root: Mapping[str, Any], path: str, where: str) -> Any:
    node: Any = root
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise GraphError(f"{where}: {path} is not set in the values")
        node = node[part]
    return node


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_chart(
    files: Mapping[str, str],
    release: str,
    namespace: str = "default",
    values: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Render the chart's templates like ``helm template RELEASE . -n NAMESPACE`` for the constructs it uses."""
    chart = yaml.load(files["Chart.yaml"], Loader=_LOADER)
    merged: dict[str, Any] = yaml.load(files.get("values.yaml", ""), Loader=_LOADER) or {}
    for key, value in (values or {}).items():
        merged[key] = value
    scope = {
        "Values": merged,
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion", "")},
    }
    defines = {m.group(1): m.group(2) for text in files.values() for m in _DEFINE.finditer(text)}

    def expand(text: str, where: str) -> str:
        out: list[str] = []
        pos = 0
        trim_next = False
        for m in _EXPR.finditer(text):
            chunk = text[pos : m.start()]
            if trim_next:
                chunk = chunk.lstrip()
            if m.group(1):
                chunk = chunk.rstrip()
            out.append(chunk)
            out.append(evaluate(m.group(2), where))
            trim_next = bool(m.group(3))
            pos = m.end()
        tail = text[pos:]
        out.append(tail.lstrip() if trim_next else tail)
        return "".join(out)

    def evaluate(expr: str, where: str) -> str:
        include = re.fullmatch(r'include\s+"([^"]+)"\s+\.\s*\|\s*nindent\s+(\d+)', expr)
        if include:
            body = expand(defines[include.group(1)], where).strip("\n")
            pad = " " * int(include.group(2))
            return "\n" + "\n".join(pad + line for line in body.splitlines())
        field = re.fullmatch(r"\.(Values|Release|Chart)\.([A-Za-z0-9_.]+)(\s*\|\s*quote)?", expr)
        if field is None:
            raise GraphError(f"{where}: the chart renderer does not understand {{{{ {expr} }}}}")
        value = _lookup(scope[field.group(1)], field.group(2), where)
        return json.dumps(_scalar(value)) if field.group(3) else _scalar(value)

    docs: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if not path.startswith("templates/") or not path.endswith((".yaml", ".yml")):
            continue
        rendered = expand(text, path)
        docs.extend(d for d in yaml.load_all(rendered, Loader=_LOADER) if d)
    return docs
