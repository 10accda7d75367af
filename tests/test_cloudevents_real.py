"""CloudEvents as real deployments send them (issue 11, items 11-15).

Headers follow Seldon Core v1's executor logger (``executor/logger/worker.go``: the CloudEvents Go SDK in HTTP
binary mode, one event per node and per request or response, ``Ce-Modelid`` naming the node); V2 bodies follow
MLServer 1.7 (the scikit-learn runtime answers ``predict`` and ``predict_proba``, ``NumpyCodec`` adds a batch
dimension); feedback bodies follow Seldon's feedback examples (one-hot ``truth``).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from sustain.collector import cloudevents as ce_module
from sustain.collector.cloudevents import half_from, parse_cloudevent
from sustain.spec import ModelSpec

REQUEST = "io.seldon.serving.inference.request"
RESPONSE = "io.seldon.serving.inference.response"
FEEDBACK = "io.seldon.serving.feedback"
FEATURES = ["age", "income", "plan", "active", "note"]
_ids = itertools.count()


def executor_headers(
    ce_type: str,
    puid: str,
    node: str,
    *,
    sdep: str = "churn",
    endpoint: str = "main",
    protocol: str = "seldon",
    time: str | None = None,
) -> dict[str, str]:
    """The headers Seldon's executor sends for one logged payload (Go canonicalises their case)."""
    return {
        "Ce-Id": f"0c9e6f5e-{next(_ids):04d}-4f1e-9b7a-3a1c2d4e5f60",
        "Ce-Specversion": "1.0",
        "Ce-Type": ce_type,
        "Ce-Source": "http://0.0.0.0:8000/",
        "Ce-Time": time or "2026-06-01T10:00:00.123456789Z",
        "Ce-Modelid": node,
        "Ce-Requestid": puid,
        "Ce-Inferenceservicename": sdep,
        "Ce-Namespace": "models",
        "Ce-Endpoint": endpoint,
        "Ce-Protocol": protocol,
        "Content-Type": "application/json",
    }


def post(client: Any, headers: dict[str, str], payload: Any) -> Any:
    return client.post("/v1/cloudevents", content=orjson.dumps(payload), headers=headers)


def events(client: Any, model: str = "churn") -> list[dict[str, Any]]:
    reply = client.get(f"/v1/models/{model}/events", params={"limit": 100})
    assert reply.status_code == 200, reply.text
    return sorted(reply.json()["events"], key=lambda e: e["request_id"])


def put_model(client: Any, body: dict[str, Any]) -> None:
    reply = client.put(f"/v1/models/{body['name']}", json=body)
    assert reply.status_code in (200, 201), reply.text


def finish_timeouts(client: Any, minutes: int = 5) -> int:
    collector = client.app.state.sustain.collector
    return int(client.portal.call(collector.complete_pending, datetime.now(UTC) + timedelta(minutes=minutes)))


# -- item 11: V2 multi-output responses and wide named inputs ------------------------------------------------
def mlserver_request(rows: list[list[Any]]) -> dict[str, Any]:
    """A V2 request as MLServer's PandasCodec encodes a DataFrame: a tensor of shape [N, 1] per column."""
    types = {"age": "FP64", "income": "FP64", "plan": "BYTES", "active": "BOOL", "note": "BYTES"}
    inputs = [
        {"name": n, "shape": [len(rows), 1], "datatype": types[n], "data": [r[i] for r in rows]}
        for i, n in enumerate(FEATURES)
    ]
    return {"id": "req-1", "parameters": {"content_type": "pd"}, "inputs": inputs}


def test_v2_multi_output_response_keeps_every_tensor(client) -> None:
    rows = [[30, 1000, "pro", True, "a"], [60, 2000, "basic", False, "b"]]
    response = {  # mlserver_sklearn.SKLearnModel with outputs [predict, predict_proba]
        "model_name": "churn",
        "model_version": "v1",
        "id": "req-1",
        "parameters": {},
        "outputs": [
            {
                "name": "predict",
                "shape": [2, 1],
                "datatype": "BYTES",
                "parameters": {"content_type": "np"},
                "data": ["churn", "stay"],
            },
            {
                "name": "predict_proba",
                "shape": [2, 2],
                "datatype": "FP64",
                "parameters": {"content_type": "np"},
                "data": [0.3, 0.7, 0.9, 0.1],
            },
            {
                "name": "transform",
                "shape": [2, 3],
                "datatype": "FP64",
                "parameters": {"content_type": "np"},
                "data": [1, 2, 3, 4, 5, 6],
            },
        ],
    }
    assert (
        post(client, executor_headers(REQUEST, "m1", "classifier", protocol="v2"), mlserver_request(rows)).status_code
        == 202
    )
    assert post(client, executor_headers(RESPONSE, "m1", "classifier", protocol="v2"), response).status_code == 202
    first, second = events(client)
    assert first["features"]["age"] == 30.0 and first["features"]["plan"] == "pro"
    assert first["outputs"]["prediction"] == "churn" and first["outputs"]["proba"] == {"stay": 0.3, "churn": 0.7}
    assert second["outputs"]["prediction"] == "stay" and second["outputs"]["proba"] == {"stay": 0.9, "churn": 0.1}
    # a tensor no declared output takes is kept under its own name, with all its values
    stored = client.app.state.sustain.store.read_events("churn", ce_module_query("m1-item-1"))[0]
    assert stored["extra"]["outputs"]["transform"] == [4, 5, 6]


def ce_module_query(request_id: str) -> Any:
    from sustain.store.base import EventQuery

    return EventQuery(request_id=request_id)


def test_named_input_of_shape_1_2_is_refused_for_a_number_and_kept_for_an_embedding(client) -> None:
    wide = {"name": "age", "shape": [1, 2], "datatype": "FP64", "data": [33, 34]}
    body = {"inputs": [wide, {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]}]}
    reply = post(client, executor_headers(REQUEST, "w1", "classifier", protocol="v2"), body)
    assert reply.status_code == 422
    message = reply.json()["error"]["message"]
    assert "'age' has 2 values per row (shape [N, 2])" in message and "numeric" in message
    put_model(
        client,
        {
            "name": "vectors",
            "features": {"vec": {"kind": "embedding", "dim": 2}, "size": "numeric"},
            "outputs": {"score": "regression"},
            "cloudevents": {"inference_service": "vec-svc"},
        },
    )
    body = {
        "inputs": [
            {"name": "vec", "shape": [2, 2], "datatype": "FP64", "data": [[0.1, 0.2], [0.3, 0.4]]},
            {"name": "size", "shape": [2], "datatype": "FP64", "data": [5, 6]},
        ]
    }
    headers = executor_headers(REQUEST, "w2", "model", sdep="vec-svc", protocol="v2")
    assert post(client, headers, body).status_code == 202
    reply = {
        "model_name": "model",
        "outputs": [{"name": "output-1", "shape": [2, 1], "datatype": "FP64", "data": [1.5, 2.5]}],
    }
    assert post(client, {**headers, "Ce-Type": RESPONSE}, reply).status_code == 202
    got = events(client, "vectors")
    assert [e["features"]["vec"] for e in got] == [pytest.approx([0.1, 0.2]), pytest.approx([0.3, 0.4])]  # float32
    assert [e["outputs"]["score"] for e in got] == [1.5, 2.5]


# -- item 12: a Seldon graph, each node monitored as a model --------------------------------------------------
GRAPH_SPECS = [
    {
        "name": "churn-prep",
        "features": {
            n: k for n, k in zip(FEATURES, ["numeric", "numeric", "categorical", "boolean", "text"], strict=True)
        },
        "cloudevents": {"inference_service": "churn", "node": "prep"},
    },
]


def test_each_graph_node_is_its_own_model_and_the_second_pair_is_dropped(client) -> None:
    """prep (TRANSFORMER) -> classifier (MODEL), both with a logger, as predictor_process.go logs them."""
    put_model(client, GRAPH_SPECS[0])
    spec = client.get("/v1/models/churn").json()
    spec["cloudevents"] = {"inference_service": "churn", "node": "classifier"}
    put_model(client, spec)
    raw = {"data": {"names": FEATURES, "ndarray": [[150, 1000, "pro", True, "x"]]}}
    clipped = {
        "data": {"names": FEATURES, "ndarray": [[100, 1000, "pro", True, "x"]]},
        "meta": {"requestPath": {"prep": "acme/prep:1"}},
    }
    scores = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.25, 0.75]]}, "meta": {}}
    puid = "d2e4c8a0-1b3f-4c5d-8e9f-0a1b2c3d4e5f"
    logged = [  # the order the executor logs them: prep's own pair, prep's children pair around classifier's pair
        (REQUEST, "prep", raw),
        (RESPONSE, "prep", clipped),
        (REQUEST, "prep", clipped),  # predictChildren: the node logs its transformed message again...
        (REQUEST, "classifier", clipped),
        (RESPONSE, "classifier", scores),
        (RESPONSE, "prep", scores),  # ...and the aggregate of its children: a second pair under Ce-Modelid prep
    ]
    shuffled = [logged[i] for i in (0, 2, 3, 1, 4, 5)]  # five workers post concurrently: order is not kept
    for ce_type, node, body in shuffled:
        reply = post(client, executor_headers(ce_type, puid, node), body)
        assert reply.status_code == 202, reply.text
    (prep,) = events(client, "churn-prep")
    assert prep["request_id"] == puid and prep["features"]["age"] == 150.0 and prep["error"] is None
    assert prep["tags"] == {"node": "prep"}
    (model,) = events(client, "churn")
    assert model["features"]["age"] == 100.0 and model["outputs"]["proba"] == {"stay": 0.25, "churn": 0.75}
    assert model["outputs"]["prediction"] == "churn" and model["version"] == "main"
    # a node no model follows is refused with a sentence naming it
    reply = post(client, executor_headers(REQUEST, puid, "outliers"), raw)
    assert reply.status_code == 404 and "node 'outliers'" in reply.json()["error"]["message"]
    # two models cannot follow one node
    clash = client.put("/v1/models/other", json={**GRAPH_SPECS[0], "name": "other"})
    assert clash.status_code == 409 and "both follow node 'prep'" in clash.json()["error"]["message"]


def test_a_shadow_mirroring_the_same_puid_is_its_own_exchange(client) -> None:
    """Istio mirrors the client's Seldon-Puid to the shadow predictor: same request id and node, other endpoint."""
    request = {"data": {"names": FEATURES, "ndarray": [[40, 1000, "pro", True, "x"]]}}
    for endpoint in ("main", "shadow"):
        post(client, executor_headers(REQUEST, "same-puid", "classifier", endpoint=endpoint), request)
    for endpoint, scores in (("shadow", [[0.9, 0.1]]), ("main", [[0.2, 0.8]])):
        response = {"data": {"names": ["t:0", "t:1"], "ndarray": scores}, "meta": {}}
        post(client, executor_headers(RESPONSE, "same-puid", "classifier", endpoint=endpoint), response)
    got = {e["version"]: e["outputs"]["prediction"] for e in events(client)}
    assert got == {"main": "churn", "shadow": "stay"}


# -- item 13: late halves complete the stored event; the clock starts after parsing ---------------------------
@pytest.mark.parametrize("first", [REQUEST, RESPONSE])
def test_a_half_after_the_join_timeout_completes_the_stored_event(client, first: str) -> None:
    request = {"data": {"names": FEATURES, "ndarray": [[40, 1000, "pro", True, "x"]]}}
    response = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.6, 0.4]]}, "meta": {}}
    bodies = {REQUEST: request, RESPONSE: response}
    second = RESPONSE if first == REQUEST else REQUEST
    times = {REQUEST: "2026-06-01T10:00:00Z", RESPONSE: "2026-06-01T10:00:00.040Z"}
    post(client, executor_headers(first, "late", "classifier", time=times[first]), bodies[first])
    assert finish_timeouts(client) == 1
    (lone,) = events(client)
    missing = "response" if first == REQUEST else "request"
    assert lone["error"] == f"no {missing} was logged for this {'request' if first == REQUEST else 'response'}"
    reply = post(client, executor_headers(second, "late", "classifier", time=times[second]), bodies[second])
    assert reply.status_code == 202 and reply.json()["events_completed"] == 1, reply.text
    (whole,) = events(client)
    assert whole["error"] is None and whole["features"]["age"] == 40.0
    assert whole["outputs"]["prediction"] == "stay" and whole["latency_ms"] == pytest.approx(40.0)
    # a replay of either half is recognised, not stored again
    again = post(client, executor_headers(second, "late", "classifier"), bodies[second])
    assert again.json()["ignored"] and len(events(client)) == 1


def test_the_join_timeout_starts_when_the_half_is_parsed(
    monkeypatch: pytest.MonkeyPatch, churn_spec: ModelSpec
) -> None:
    parsed_at: list[datetime] = []
    read = ce_module.read_payload  # type: ignore[attr-defined]

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        rows = read(*args, **kwargs)
        parsed_at.append(datetime.now(UTC))
        return rows

    monkeypatch.setattr(ce_module, "read_payload", slow_read)
    body = {"data": {"names": FEATURES, "ndarray": [[40, 1000, "pro", True, "x"]] * 5000}}
    headers = {k.lower(): v for k, v in executor_headers(REQUEST, "big", "classifier").items()}  # as HTTP reads them
    ce = parse_cloudevent(headers, body)
    half = half_from(ce, churn_spec)
    assert parsed_at and half.received_at >= parsed_at[-1]


# -- item 14: lone and short responses are marked ------------------------------------------------------------
def test_lone_and_short_responses_are_marked(client) -> None:
    response = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.6, 0.4]]}, "meta": {}}
    post(client, executor_headers(RESPONSE, "alone", "classifier"), response)  # its request was rejected upstream
    finish_timeouts(client)
    (alone,) = events(client)
    assert alone["error"] == "no request was logged for this response" and alone["outputs"]["prediction"] == "stay"
    three = {
        "data": {
            "names": FEATURES,
            "ndarray": [[20, 1, "basic", False, "a"], [30, 2, "pro", True, "b"], [40, 3, "pro", True, "c"]],
        }
    }
    post(client, executor_headers(REQUEST, "short", "classifier"), three)
    post(client, executor_headers(RESPONSE, "short", "classifier"), response)
    got = {e["request_id"]: e for e in events(client)}
    assert got["short-item-0"]["error"] is None and got["short-item-0"]["outputs"]["prediction"] == "stay"
    for i in (1, 2):
        assert got[f"short-item-{i}"]["error"] == "the response has 1 rows for 3 request rows: this row got no output"


# -- item 15: one-hot and class-score truth ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("truth", "label"),
    [
        ({"data": {"ndarray": [[0, 1]]}}, "churn"),  # one-hot, as Seldon's feedback examples send it
        ({"data": {"ndarray": [[0.8, 0.2]]}}, "stay"),  # class scores
        ({"data": {"names": ["churn", "stay"], "ndarray": [[1, 0]]}}, "churn"),  # columns named by class
        ({"data": {"ndarray": [["stay"]]}}, "stay"),  # the label itself
    ],
)
def test_feedback_truth_maps_to_the_class(client, truth: dict[str, Any], label: str) -> None:
    post(client, executor_headers(REQUEST, "f1", "classifier"), {"data": {"ndarray": [[20, 1, "basic", False, "a"]]}})
    post(client, executor_headers(RESPONSE, "f1", "classifier"), {"data": {"ndarray": [[0.3, 0.7]]}})
    feedback = {
        "request": {"data": {"ndarray": [[20, 1, "basic", False, "a"]]}},
        "response": {"data": {"ndarray": [[0.3, 0.7]]}},
        "truth": truth,
        "reward": 1,
    }
    reply = post(client, executor_headers(FEEDBACK, "f1", "classifier"), feedback)
    assert reply.status_code == 200, reply.text
    assert events(client)[0]["label"]["value"] == label


def test_feedback_truth_that_names_no_class_is_refused(client) -> None:
    for truth, words in (
        ({"data": {"ndarray": [[0, 0, 1]]}}, "has 2 label classes (stay, churn)"),
        ({"data": {"ndarray": [[0, 0]]}}, "names no class"),
    ):
        reply = post(client, executor_headers(FEEDBACK, "f2", "classifier"), {"truth": truth, "reward": 0})
        assert reply.status_code == 422 and words in reply.json()["error"]["message"], reply.text
