"""graph.yaml: the examples load, and every bad graph is refused with its line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sustain.deploy_pipeline.graph import load_graph, load_graph_text, single_model_graph
from sustain.deploy_pipeline.graph.model import GraphError
from sustain.deploy_pipeline.graph.resolve import StaticResolver

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "graphs"
M = "{model: models:/m/1}"


def test_the_examples_load() -> None:
    graphs = {p.stem: load_graph(p) for p in sorted(EXAMPLES.glob("*.yaml"))}
    assert set(graphs) == {"single", "transformer", "ab", "ensemble", "canary"}
    assert [n.name for n in graphs["transformer"].walk()] == ["prep", "score"]
    assert graphs["transformer"].monitored() == {"prep": "churn-prep", "score": "churn"}
    assert graphs["ensemble"].node("mean").children == ("logreg", "tree", "forest")
    release = graphs["canary"]
    assert release.canary is not None and release.canary.percent == 10 and release.shadow is not None
    assert [(name, traffic, shadow) for name, _, traffic, shadow in release.predictors()] == [
        ("main", 90, False),
        ("canary", 10, False),
        ("shadow", None, True),
    ]
    assert all(not g.warnings for g in graphs.values())


def test_a_single_model_graph_for_the_release_pipeline() -> None:
    graph = single_model_graph("fraud", "models:/fraud/3", canary_uri="models:/fraud/4", canary_percent=20)
    assert graph.monitored() == {"fraud": "fraud"}
    assert [(n, t) for n, _, t, _ in graph.predictors()] == [("main", 80), ("canary", 20)]
    with pytest.raises(GraphError, match="DNS label"):
        single_model_graph("Fraud", "models:/fraud/3")


def test_first_child_output_is_accepted_with_a_warning() -> None:
    nodes = f"  a: {{model: models:/m/1, output: first_child}}\n  b: {M}\n  c: {M}\n"
    text = f"name: g\nnodes:\n{nodes}edges: [a -> b, a -> c]\n"
    graph = load_graph_text(text, source="g.yaml")
    assert graph.warnings == (
        "g.yaml:3: node a has 2 children and no combiner: only b's output is returned; c run for their side effects",
    )


BAD = [
    # (graph text, line, words of the reason)
    ("name: g\nnodes:\n  a: {M}\n  b: {M}\nedges:\n  - a -> b\n  - b -> a\n", 7, "closes a cycle: a -> b -> a"),
    (
        "name: g\nnodes:\n  a: {transformer: {code: p.m:C}}\n  b: {M}\n  c: {M}\nedges: [a -> b, a -> c]\n",
        3,
        "has 2 children (b, c) and no combiner",
    ),
    ("name: g\nnodes:\n  a: {model: churn:v1}\n", 3, "is not one MLflow or Seldon can load"),
    ("name: g\nnodes:\n  a: {model: models:/churn}\n", 3, "must read models:/NAME/VERSION"),
    ("name: g\nnodes:\n  a: {M}\nedges:\n  - a -> z\n", 5, "names an unknown node 'z'"),
    (
        "name: g\nnodes:\n  r: {router: ab}\n  a: {M}\n  b: {M}\nedges:\n  - r -> a\n  - r -> b\n  - a -> b\n",
        9,
        "node b would have two parents, r (line 8) and a",
    ),
    ("name: g\nnodes:\n  a: {M}\n  b: {M}\n", 4, "the graph has 2 roots (a, b)"),
    ("name: g\nnodes:\n  r: {router: {code: p.m:R}}\n  a: {M}\nedges: [r -> a]\n", 3, "needs at least two children"),
    (
        "name: g\nnodes:\n  r: {router: ab}\n  a: {M}\n  b: {M}\n  c: {M}\nedges: [r -> a, r -> b, r -> c]\n",
        3,
        "routes between exactly two children",
    ),
    ("name: g\nnodes:\n  avg: {combiner: average}\n", 3, "has no children to combine"),
    ("name: g\nnodes:\n  a: {predictor: x}\n", 3, "unknown key 'predictor' in node a"),
    ("name: g\nnodes:\n  a: {model: models:/m/1, transformer: {code: p.m:C}}\n", 3, "needs exactly one kind"),
    ("name: Churn\nnodes:\n  a: {M}\n", 1, "must be a DNS label"),
    ("name: g\nprotocol: grpc\nnodes:\n  a: {M}\n", 2, "protocol must be one of seldon, v2"),
    (
        "name: g\nnodes:\n  a: {M}\ntraffic:\n  canary: {model: models:/m/2, percent: 150}\n",
        5,
        "percent must be a whole number from 1 to 99",
    ),
    (
        "name: g\nnodes:\n  r: {router: ab}\n  a: {M}\n  b: {M}\nedges: [r -> a, r -> b]\n"
        "traffic:\n  shadow: models:/m/9\n",
        8,
        "must name the node it replaces (MLflow model nodes: a, b)",
    ),
    ("name: g\nnodes:\n  a: {M}\nmonitor: {model: Churn!}\n", 4, "is not a sustain model name"),
    ("name: g\nnodes:\n  a: {M}\nrouting: x\n", 4, "unknown key 'routing'"),
    ("name: g\nnodes:\n  a: {M}\nedges: [a -> a]\n", 4, "points a node at itself"),
    ("name: g\nnodes:\n  a: {model: models:/m/1, output: first_child}\n", 3, "applies to a node with several children"),
    ("name: g\nnodes:\n  a: {M}\n  b: {model: [1\n", 5, "not valid YAML"),
    (
        "name: g\nnodes:\n  a: {transformer: {code: my_pkg.Prep}}\n  b: {M}\nedges: [a -> b]\n",
        3,
        "package.module:Class",
    ),
    ("name: g\nnodes:\n  r: {router: thompson}\n  a: {M}\n  b: {M}\nedges: [r -> a, r -> b]\n", 3, "unknown router"),
    ("name: g\nnodes:\n  a: {M}\n  b: {M}\nedges:\n  - a -> b\n  - a -> b\n", 7, "is written twice"),
    (
        "name: g\nnodes:\n  r: {router: {ab: {ratio: 2}}}\n  a: {M}\n  b: {M}\nedges: [r -> a, r -> b]\n",
        3,
        "between 0 and 1",
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), [(t.replace("{M}", M), line, w) for t, line, w in BAD])
def test_bad_graphs_are_refused_with_their_line(text: str, line: int, words: str) -> None:
    with pytest.raises(GraphError) as caught:
        load_graph_text(text, source="graph.yaml")
    problems = caught.value.details
    assert any(p["line"] == line and words in p["message"] for p in problems), problems
    assert f"graph.yaml:{line}" in caught.value.message


def test_an_unknown_model_is_refused_with_its_line_when_a_registry_is_asked() -> None:
    text = "name: g\nnodes:\n  a: {model: models:/m/1}\n  b:\n    model:\n      uri: models:/m/2\nedges: [a -> b]\n"
    resolver = StaticResolver({"models:/m/1": "s3://models/m/1"})
    with pytest.raises(GraphError) as caught:
        load_graph_text(text, source="graph.yaml", resolver=resolver)
    (problem,) = caught.value.details
    assert problem["line"] == 6 and "'models:/m/2' is not known" in problem["message"]
