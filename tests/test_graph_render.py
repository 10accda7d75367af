"""Every example graph renders for every target; every manifest passes its schema (strictly), Seldon's admission
rules and kubernetes-validate. Model URIs are resolved through a real MLflow registry."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sustain.deploy_pipeline.graph import (
    TARGETS,
    MlflowResolver,
    StaticResolver,
    admission_errors,
    helm_chart,
    load_graph,
    load_graph_text,
    render,
    render_chart,
    render_target,
    single_model_graph,
)
from sustain.deploy_pipeline.graph.model import GraphError
from tests.graph_models import Registry
from tests.graph_schemas import problems

pytestmark = pytest.mark.timeout(900)  # the first test also starts an MLflow server and trains three models
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "graphs"
NAMES = ("single", "transformer", "ab", "ensemble", "canary")


@pytest.fixture(scope="module")
def resolver(graph_registry: Registry) -> MlflowResolver:
    return MlflowResolver(graph_registry.url)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", NAMES)
def test_every_example_renders_and_validates(resolver: MlflowResolver, name: str, target: str) -> None:
    path = EXAMPLES / f"{name}.yaml"
    rendering = render_target(load_graph(path, resolver=resolver), target, resolver, source_text=path.read_text())
    assert rendering.manifests
    for manifest in rendering.manifests:
        assert problems(manifest) == [], (manifest["kind"], manifest["metadata"]["name"])
    for sdep in by_kind(rendering.manifests, "SeldonDeployment"):
        assert admission_errors(sdep) == []


def test_mlflow_nodes_point_at_the_registry_download_uri(resolver: MlflowResolver, graph_registry: Registry) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(graph_registry.url)
    version = client.get_model_version_by_alias("churn-tree", "challenger").version
    expected = client.get_model_version_download_uri("churn-tree", version)
    manifests = render(load_graph(EXAMPLES / "canary.yaml"), "seldon", resolver)
    (sdep,) = by_kind(manifests, "SeldonDeployment")
    main, canary, shadow = sdep["spec"]["predictors"]
    assert (main["traffic"], canary["traffic"], shadow["shadow"]) == (90, 10, True)
    assert canary["graph"]["implementation"] == "MLFLOW_SERVER" and canary["graph"]["modelUri"] == expected
    assert main["graph"]["logger"] == {"mode": "all", "url": "http://sustain:8000/v1/cloudevents?model=churn"}
    assert main["graph"]["parameters"] == [{"name": "xtype", "type": "STRING", "value": "DataFrame"}]


def test_the_helm_chart_renders_the_same_seldon_deployment(resolver: MlflowResolver) -> None:
    for name in NAMES:
        graph = load_graph(EXAMPLES / f"{name}.yaml")
        (sdep,) = by_kind(render(graph, "seldon", resolver), "SeldonDeployment")
        files = helm_chart(graph, resolver)
        assert {"Chart.yaml", "values.yaml", "templates/_helpers.tpl", "templates/seldondeployment.yaml"} <= set(files)
        (rendered,) = by_kind(render_chart(files, release=graph.name, namespace="models"), "SeldonDeployment")
        assert rendered["spec"] == sdep["spec"]
        assert rendered["metadata"]["labels"] == {
            "app.kubernetes.io/name": graph.name,
            "app.kubernetes.io/instance": graph.name,
            "app.kubernetes.io/version": rendered["metadata"]["labels"]["app.kubernetes.io/version"],
            "app.kubernetes.io/managed-by": "Helm",
            "helm.sh/chart": f"{graph.name}-0.1.0",
        }
        assert rendered["metadata"]["namespace"] == "models"
    graph = load_graph(EXAMPLES / "canary.yaml")
    files = helm_chart(graph, resolver)
    values = {
        "predictors": {
            "main": {
                "traffic": 50,
                "replicas": 3,
                "nodes": {"score": {"modelUri": "s3://b/m", "loggerUrl": "http://x"}},
            },
            "canary": {
                "traffic": 50,
                "replicas": 1,
                "nodes": {"score": {"modelUri": "s3://b/c", "loggerUrl": "http://x"}},
            },
            "shadow": {"replicas": 1, "nodes": {"score": {"modelUri": "s3://b/s", "loggerUrl": "http://x"}}},
        }
    }
    (sdep,) = by_kind(render_chart(files, release="r2", values=values), "SeldonDeployment")
    assert sdep["metadata"]["name"] == "r2" and sdep["spec"]["predictors"][0]["replicas"] == 3
    assert [p["graph"]["modelUri"] for p in sdep["spec"]["predictors"]] == ["s3://b/m", "s3://b/c", "s3://b/s"]
    assert admission_errors(sdep) == [] and problems(sdep) == []


def test_the_chart_renderer_refuses_what_it_cannot_read() -> None:
    files = {"Chart.yaml": "name: c\nversion: 0.1.0\n", "templates/x.yaml": "a: {{ .Values.a | upper }}\n"}
    with pytest.raises(GraphError, match="does not understand"):
        render_chart(files, release="r", values={"a": "b"})


def test_target_shapes(resolver: MlflowResolver) -> None:
    ab = render(load_graph(EXAMPLES / "ab.yaml"), "kserve", resolver)
    (ig,) = by_kind(ab, "InferenceGraph")
    assert ig["spec"]["nodes"]["root"]["routerType"] == "Splitter"
    assert [s["weight"] for s in ig["spec"]["nodes"]["root"]["steps"]] == [50, 50]
    ensemble = render(load_graph(EXAMPLES / "ensemble.yaml"), "kserve", resolver)
    nodes = by_kind(ensemble, "InferenceGraph")[0]["spec"]["nodes"]
    assert nodes["mean-members"]["routerType"] == "Ensemble" and nodes["root"]["routerType"] == "Sequence"
    single = render(load_graph(EXAMPLES / "canary.yaml"), "kserve", resolver)
    main = by_kind(single, "InferenceService")[0]
    assert main["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert main["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow"}
    v2 = render(load_graph(EXAMPLES / "canary.yaml"), "seldon-v2", resolver)
    (experiment,) = by_kind(v2, "Experiment")
    assert experiment["spec"]["candidates"] == [
        {"name": "churn-release", "weight": 90},
        {"name": "churn-release-canary", "weight": 10},
    ]
    assert experiment["spec"]["mirror"] == {"name": "churn-release-shadow", "percent": 100}
    chain = render(load_graph(EXAMPLES / "transformer.yaml"), "seldon-v2", resolver)
    (pipeline,) = by_kind(chain, "Pipeline")
    assert pipeline["spec"]["steps"] == [
        {"name": "churn-prep-prep"},
        {"name": "churn-prep-score", "inputs": ["churn-prep-prep.outputs"]},
    ]
    assert pipeline["spec"]["output"] == {"steps": ["churn-prep-score"]}


def test_a_single_model_graph_renders_for_the_release_pipeline() -> None:
    resolver = StaticResolver({"models:/fraud/3": "s3://mlflow/1/models/m-3/artifacts"})
    graph = single_model_graph("fraud", "models:/fraud/3", namespace="models", monitor_url="http://sustain.ops:8000")
    manifests = render(graph, "seldon", resolver)
    assert [m["kind"] for m in manifests] == ["Secret", "ConfigMap", "Service", "SeldonDeployment"]
    sdep = manifests[-1]
    assert sdep["spec"]["predictors"][0]["graph"]["envSecretRefName"] == "fraud-rclone"
    assert all(problems(m) == [] for m in manifests)


@pytest.mark.parametrize(
    ("target", "words"),
    [("kserve", "router r has no KServe equivalent"), ("seldon-v2", "router r has no Seldon Core v2 equivalent")],
)
def test_what_a_target_cannot_express_is_refused_with_the_line(target: str, words: str) -> None:
    nodes = "  r: {router: epsilon_greedy}\n  a: {model: s3://b/a}\n  b: {model: s3://b/b}\n"
    text = f"name: g\nnodes:\n{nodes}edges: [r -> a, r -> b]\n"
    graph = load_graph_text(text, source="g.yaml")
    with pytest.raises(GraphError, match=rf"g\.yaml:3: {words}"):
        render(graph, target, StaticResolver())
    sdep = render(graph, "seldon", StaticResolver())[-1]
    assert sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"].startswith(
        "seldonio/mab_epsilon_greedy:"
    )


def test_code_nodes_need_an_image_in_a_cluster() -> None:
    text = "name: g\nnodes:\n  p: {transformer: {code: units:Prep}}\n  a: {model: s3://b/a}\nedges: [p -> a]\n"
    with pytest.raises(GraphError, match=r"g\.yaml:3: node p runs code, and a cluster needs an image"):
        render(load_graph_text(text, source="g.yaml"), "seldon", StaticResolver())
    v2 = text.replace("name: g\n", "name: g\nprotocol: v2\ncode: {image: acme/g:1}\n")
    with pytest.raises(GraphError, match="speaks the seldon protocol only"):
        render(load_graph_text(v2, source="g.yaml"), "seldon", StaticResolver())


GOOD: dict[str, Any] = {
    "apiVersion": "machinelearning.seldon.io/v1",
    "kind": "SeldonDeployment",
    "metadata": {"name": "x"},
    "spec": {
        "protocol": "seldon",
        "predictors": [
            {
                "name": "main",
                "traffic": 90,
                "graph": {"name": "m", "implementation": "MLFLOW_SERVER", "modelUri": "s3://b/m"},
            },
            {
                "name": "canary",
                "traffic": 10,
                "graph": {"name": "m", "implementation": "MLFLOW_SERVER", "modelUri": "s3://b/c"},
            },
        ],
    },
}


def broken(change: Any) -> dict[str, Any]:
    sdep = copy.deepcopy(GOOD)
    change(sdep["spec"])
    return sdep


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s["predictors"][1].update(traffic=20), "Traffic must sum to 100"),
        (lambda s: s["predictors"].__setitem__(1, {**s["predictors"][0]}), "Duplicate predictor name"),
        (lambda s: s["predictors"][1]["graph"].pop("modelUri"), "modelUri required"),
        (lambda s: s["predictors"][0]["graph"].pop("implementation"), "Can't find container"),
        (lambda s: s["predictors"][0]["graph"].update(logger={"url": "http://x"}), "No logger mode"),
        (lambda s: s["predictors"].pop(1) and s["predictors"][0].update(shadow=True), "Shadow can not exist"),
        (
            lambda s: (
                s["predictors"].append({**s["predictors"][1], "name": "s1", "shadow": True})
                or s["predictors"].append({**s["predictors"][1], "name": "s2", "shadow": True})
            ),
            "Multiple shadows",
        ),
        (lambda s: s.update(protocol="tensorflow"), "does not handle tensorflow protocol"),
        (lambda s: s["predictors"][0]["graph"].update(implementation="ONNX_SERVER"), "No entry in predictors map"),
    ],
)
def test_the_admission_rules_refuse_what_the_webhook_refuses(change: Any, words: str) -> None:
    assert admission_errors(GOOD) == []
    errors = admission_errors(broken(change))
    assert any(words in e for e in errors), errors


def test_the_strict_schema_catches_a_misspelt_field() -> None:
    sdep = copy.deepcopy(GOOD)
    sdep["spec"]["predictors"][0]["graph"]["children"] = [{"name": "c", "modelURI": "s3://b/c"}]
    assert any("modelURI" in p for p in problems(sdep))
    assert problems(GOOD) == []
