"""The local runner follows Seldon Core v1's executor (``executor/predictor/predictor_process.go``, release 1.19):
one test per semantic case of the README's table. Code nodes run in-process; CloudEvents go to a real HTTP
receiver, exactly as the executor's logger sends them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from sustain.deploy_pipeline.graph import load_graph_text
from sustain.deploy_pipeline.graph.runner import GraphRunner, RunnerOptions, create_runner_app
from tests.graph_schemas import oip_problems
from tests.graph_units import CALLS
from tests.helpers import Receiver

U = "tests.graph_units"
ROW = {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}


@contextmanager
def running(text: str, **options: Any) -> Iterator[tuple[TestClient, GraphRunner, Receiver]]:
    """Serve the graph ``text`` (``U:Class`` names a class of tests/graph_units.py), logging to a receiver."""
    CALLS.clear()
    graph = load_graph_text(text.replace("U:", f"{U}:"), source="graph.yaml")
    with Receiver() as receiver:
        runner = GraphRunner(graph, RunnerOptions(sustain_url=receiver.url, seed=options.pop("seed", 3), **options))
        with TestClient(create_runner_app(runner)) as client:
            yield client, runner, receiver


def logged(client: TestClient, runner: GraphRunner, receiver: Receiver) -> list[tuple[str, str, Any]]:
    """(request|response|feedback, node, payload) of every CloudEvent sent, in the order they were queued."""
    assert client.portal is not None
    client.portal.call(runner.settle)
    out = []
    for r in receiver.requests:
        headers = {k.lower(): v for k, v in ce_headers(r).items()}
        kind = headers["ce-type"].rsplit(".", 1)[-1]
        out.append((kind, headers["ce-modelid"], orjson.loads(r["body"])))  # type: ignore[arg-type]
    return out


def ce_headers(request: dict[str, object]) -> dict[str, str]:
    headers = request["headers"]
    assert isinstance(headers, dict)
    return {str(k): str(v) for k, v in headers.items()}


def data(body: dict[str, Any]) -> Any:
    return body["data"].get("ndarray") or body["data"]["tensor"]["values"]


def predict(client: TestClient, body: Any = ROW, **headers: str) -> Any:
    return client.post("/api/v1.0/predictions", content=orjson.dumps(body), headers=headers)


def test_1_transformer_feeds_its_output_to_the_model() -> None:
    text = "name: g\nnodes:\n  t: {transformer: {code: U:AddOne}}\n  m: {model: {code: U:Double}}\nedges: [t -> m]\n"
    with running(text) as (client, *_):
        reply = predict(client)
    assert reply.status_code == 200 and data(reply.json()) == [[4.0, 6.0]]
    assert CALLS["Double"] == [[[2.0, 3.0]]]


def test_2_a_model_with_a_child_chains_its_prediction() -> None:
    text = "name: g\nnodes:\n  a: {model: {code: U:Double}}\n  b: {model: {code: U:Triple}}\nedges: [a -> b]\n"
    with running(text) as (client, *_):
        assert data(predict(client).json()) == [[6.0, 12.0]]


def test_3_an_output_transformer_runs_after_its_children() -> None:
    nodes = "  o: {output_transformer: {code: U:Negate}}\n  m: {model: {code: U:Double}}\n"
    text = f"name: g\nnodes:\n{nodes}edges: [o -> m]\n"
    with running(text) as (client, *_):
        assert data(predict(client).json()) == [[-2.0, -4.0]]
    assert CALLS["Negate"] == [[[2.0, 4.0]]]


def test_4_several_children_without_a_combiner_return_the_first_childs_output() -> None:
    text = (
        "name: g\nnodes:\n  t: {transformer: {code: U:AddOne}, output: first_child}\n"
        "  a: {model: {code: U:Double}}\n  b: {model: {code: U:Triple}}\nedges: [t -> a, t -> b]\n"
    )
    with running(text) as (client, runner, receiver):
        assert data(predict(client).json()) == [[4.0, 6.0]]  # Double's, although Triple ran too
        nodes = {node for _, node, _ in logged(client, runner, receiver)}
    assert CALLS["Triple"] == [[[2.0, 3.0]]] and nodes == {"t", "a", "b"}


def test_5_a_combiner_gets_its_childrens_outputs_in_child_order() -> None:
    text = (
        "name: g\nnodes:\n  s: {combiner: {code: U:Sum}}\n  a: {model: {code: U:Double}}\n"
        "  b: {model: {code: U:Triple}}\nedges: [s -> b, s -> a]\n"
    )
    with running(text) as (client, *_):
        assert data(predict(client).json()) == [[5.0, 10.0]]
    assert CALLS["Sum"] == [[[[3.0, 6.0]], [[2.0, 4.0]]]]


def test_6_a_router_runs_only_the_child_it_names() -> None:
    text = (
        "name: g\nnodes:\n  r: {router: {code: U:RouteByFirstValue}}\n  a: {model: {code: U:Double}}\n"
        "  b: {model: {code: U:Triple}}\nedges: [r -> a, r -> b]\n"
    )
    with running(text) as (client, runner, receiver):
        reply = predict(client, {"data": {"ndarray": [[1, 5]]}})
        assert data(reply.json()) == [[3.0, 15.0]] and "Double" not in CALLS
        assert {node for _, node, _ in logged(client, runner, receiver)} == {"r", "b"}


def test_7_route_minus_one_runs_all_children_and_returns_the_first() -> None:
    text = (
        "name: g\nnodes:\n  r: {router: {code: U:RouteByFirstValue}}\n  a: {model: {code: U:Double}}\n"
        "  b: {model: {code: U:Triple}}\nedges: [r -> a, r -> b]\n"
    )
    with running(text) as (client, *_):
        assert data(predict(client, {"data": {"ndarray": [[-1, 5]]}}).json()) == [[-2.0, 10.0]]
    assert CALLS["Triple"] == [[[-1, 5]]]


def test_8_route_minus_two_returns_the_request_without_calling_a_child() -> None:
    text = (
        "name: g\nnodes:\n  r: {router: {code: U:RouteByFirstValue}}\n  a: {model: {code: U:Double}}\n"
        "  b: {model: {code: U:Triple}}\nedges: [r -> a, r -> b]\n"
    )
    with running(text) as (client, *_):
        assert predict(client, {"data": {"ndarray": [[-2, 5]]}}).json() == {"data": {"ndarray": [[-2, 5]]}}
    assert not CALLS


def test_9_random_abtest_draws_child_0_with_probability_ratio_a() -> None:
    text = (
        "name: g\nnodes:\n  r: {router: {ab: {ratio: 0.3}}}\n  a: {model: {code: U:Double}}\n"
        "  b: {model: {code: U:Triple}}\nedges: [r -> a, r -> b]\n"
    )
    with running(text, seed=11) as (client, *_):
        answers = [data(predict(client).json())[0][0] for _ in range(200)]
    share = answers.count(2.0) / len(answers)
    assert set(answers) == {2.0, 3.0} and 0.2 < share < 0.4  # 200 seeded draws at ratioA 0.3


def test_10_the_first_failing_child_fails_the_node_and_logs_no_response() -> None:
    text = (
        "name: g\nnodes:\n  s: {combiner: {code: U:Sum}}\n  a: {model: {code: U:Double}}\n"
        "  f: {model: {code: U:Fails}}\nedges: [s -> a, s -> f]\n"
    )
    with running(text) as (client, runner, receiver):
        reply = predict(client)
        events = logged(client, runner, receiver)
    assert reply.status_code == 500
    assert reply.json()["status"] == {
        "code": 500,
        "info": "node f: RuntimeError: this model is broken",
        "status": "FAILURE",
    }
    assert ("request", "f") in {(k, n) for k, n, _ in events} and ("response", "f") not in {
        (k, n) for k, n, _ in events
    }
    assert "Sum" not in CALLS


def test_11_each_node_logs_its_pairs_under_one_request_id() -> None:
    text = "name: g\nnodes:\n  t: {transformer: {code: U:AddOne}}\n  m: {model: {code: U:Double}}\nedges: [t -> m]\n"
    puid = str(uuid.uuid4())
    with running(text) as (client, runner, receiver):
        reply = predict(client, **{"Seldon-Puid": puid})
        events = logged(client, runner, receiver)
        requests = receiver.requests
    assert reply.headers["Seldon-Puid"] == puid
    assert {ce_headers(r)["Ce-Requestid"] for r in requests} == {puid}
    pairs = sorted((node, kind, data(body)) for kind, node, body in events)
    assert pairs == [
        ("m", "request", [[2.0, 3.0]]),
        ("m", "response", [[4.0, 6.0]]),
        ("t", "request", [[1.0, 2.0]]),  # its own call...
        ("t", "request", [[2.0, 3.0]]),  # ...and its children's: the executor logs a node with children twice
        ("t", "response", [[2.0, 3.0]]),
        ("t", "response", [[4.0, 6.0]]),
    ]


def test_12_cloudevent_headers_are_the_executors() -> None:
    text = "name: churn\nnamespace: models\nnodes:\n  m: {model: {code: U:Double}}\nmonitor: {model: churn}\n"
    with running(text) as (client, runner, receiver):
        predict(client)
        logged(client, runner, receiver)
        first = receiver.requests[0]
    headers = ce_headers(first)
    assert first["path"] == "/v1/cloudevents?model=churn"
    fixed = ("Ce-Specversion", "Ce-Modelid", "Ce-Inferenceservicename", "Ce-Namespace", "Ce-Endpoint", "Ce-Protocol")
    assert [headers[k] for k in fixed] == ["1.0", "m", "churn", "models", "main", "seldon"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Ce-Type"] in ("io.seldon.serving.inference.request", "io.seldon.serving.inference.response")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", headers["Ce-Time"])
    assert uuid.UUID(headers["Ce-Id"]) and headers["Ce-Source"].startswith("http://")


def test_13_v2_chains_outputs_into_inputs_and_speaks_the_open_inference_protocol() -> None:
    text = "name: g\nnodes:\n  a: {model: {code: U:Double}}\n  b: {model: {code: U:Triple}}\nedges: [a -> b]\n"
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    assert oip_problems(body, "inference_request") == []
    with running(text) as (client, runner, receiver):
        reply = client.post("/v2/models/g/infer", json=body)
        events = logged(client, runner, receiver)
        bad = client.post(
            "/v2/models/g/infer", json={"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1]}]}
        )
    assert reply.status_code == 200 and oip_problems(reply.json(), "inference_response") == []
    assert reply.json()["outputs"][0]["data"] == [6.0, 12.0] and reply.json()["id"] == "r1"
    (b_request,) = [body for kind, node, body in events if (kind, node) == ("request", "b")]
    assert "inputs" in b_request and "outputs" not in b_request  # ChainKFserving renamed them
    assert bad.status_code == 400 and oip_problems(bad.json(), "inference_error_response") == []


def test_14_a_missing_method_passes_the_data_through() -> None:
    text = "name: g\nnodes:\n  t: {transformer: {code: U:NoMethods}}\n  m: {model: {code: U:Double}}\nedges: [t -> m]\n"
    with running(text) as (client, *_):
        assert data(predict(client).json()) == [[2.0, 4.0]]


def test_15_feedback_is_logged_per_node_and_routed_by_the_response_meta() -> None:
    text = (
        "name: g\nnodes:\n  r: {router: {code: U:RouteByFirstValue}}\n  a: {model: {code: U:Learns}}\n"
        "  b: {model: {code: U:Learns}}\nedges: [r -> a, r -> b]\n"
    )
    feedback = {
        "request": ROW,
        "response": {"data": {"ndarray": [[1]]}, "meta": {"routing": {"r": 1}}},
        "truth": {"data": {"ndarray": [[1]]}},
        "reward": 1.0,
    }
    with running(text) as (client, runner, receiver):
        reply = client.post("/api/v1.0/feedback", json=feedback)
        events = logged(client, runner, receiver)
    assert reply.status_code == 200
    assert sorted((kind, node) for kind, node, _ in events) == [("feedback", "b"), ("feedback", "r")]
    assert CALLS["Learns.feedback"] == [[1.0, {"data": {"ndarray": [[1]]}}]]
    assert CALLS["RouteByFirstValue.feedback"] == [[1.0, 1]]


def test_16_canary_split_and_shadow_mirror_log_under_their_predictor() -> None:
    text = (
        "name: g\nnodes:\n  m: {model: s3://models/a}\n"
        "traffic: {canary: {model: s3://models/b, percent: 25}, shadow: s3://models/c}\n"
    )
    graph = load_graph_text(text)
    runner = GraphRunner(graph, RunnerOptions(seed=5))
    runner.traffic = [("main", 75), ("canary", 25)]
    draws = [runner.choose() for _ in range(400)]
    assert 0.18 < draws.count("canary") / 400 < 0.32 and set(draws) == {"main", "canary"}
    assert [name for name, *_ in graph.predictors()] == ["main", "canary", "shadow"]


def test_17_routing_injection_adds_the_routes_taken_to_meta() -> None:
    text = (
        "name: g\nnodes:\n  r: {router: {code: U:RouteByFirstValue}}\n  a: {model: {code: U:Double}}\n"
        "  b: {model: {code: U:Triple}}\nedges: [r -> a, r -> b]\n"
    )
    with running(text, inject_routing=True) as (client, *_):
        reply = predict(client, {"data": {"ndarray": [[1, 5]]}})
    assert reply.json()["meta"]["routing"] == {"r": 1, "b": -1}


@pytest.mark.parametrize("path", ["/api/v1.0/predictions", "/v2/models/g/infer"])
def test_18_a_body_that_is_not_json_is_a_400_in_the_protocols_shape(path: str) -> None:
    text = "name: g\nnodes:\n  m: {model: {code: U:Double}}\n"
    with running(text) as (client, *_):
        reply = client.post(path, content=b"{nope")
    assert reply.status_code == 400
    body = reply.json()
    assert ("status" in body) if path.startswith("/api") else (oip_problems(body, "inference_error_response") == [])
