"""Seldon Core v1 and KServe logger CloudEvents: joined into events, batch rows split, labels from feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

SELDON_REQ = "io.seldon.serving.inference.request"
SELDON_RES = "io.seldon.serving.inference.response"
KSERVE_REQ = "org.kubeflow.serving.inference.request"
KSERVE_RES = "org.kubeflow.serving.inference.response"


def seldon_headers(kind: str, rid: str, **extra) -> dict[str, str]:
    headers = {
        "Ce-Id": f"{rid}-{kind}",
        "Ce-Specversion": "1.0",
        "Ce-Type": kind,
        "Ce-Source": "http://churn-main:8000/",
        "Ce-Requestid": rid,
        "Ce-Inferenceservicename": "churn",
        "Ce-Endpoint": "main",
        "Ce-Modelid": "classifier",
        "Ce-Namespace": "models",
        "content-type": "application/json",
    }
    headers.update(extra)
    return headers


def post(client, headers, payload, **params):
    return client.post("/v1/cloudevents", content=orjson.dumps(payload), headers=headers, params=params)


def events(client) -> list[dict]:
    return client.get("/v1/models/churn/events", params={"limit": 100}).json()["events"]


def test_seldon_pair_becomes_one_event_either_order(client) -> None:
    t0 = "2026-06-01T10:00:00+00:00"
    t1 = "2026-06-01T10:00:00.025000+00:00"
    res = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.2, 0.8]]}, "meta": {}}
    req = {"data": {"names": ["age", "income", "plan", "active", "note"], "ndarray": [[40, 1000, "pro", True, "x"]]}}
    r = post(client, seldon_headers(SELDON_RES, "a1", **{"Ce-Time": t1}), res)
    assert r.status_code == 202 and r.json()["events_stored"] == 0
    assert events(client) == []
    r = post(client, seldon_headers(SELDON_REQ, "a1", **{"Ce-Time": t0}), req)
    assert r.status_code == 202 and r.json()["events_stored"] == 1
    (e,) = events(client)
    assert e["request_id"] == "a1" and e["version"] == "main"
    assert e["features"]["age"] == 40.0 and e["features"]["plan"] == "pro"
    assert e["outputs"]["proba"] == {"stay": 0.2, "churn": 0.8}
    assert e["outputs"]["prediction"] == "churn"  # argmax of the scores
    assert e["latency_ms"] == pytest.approx(25.0)
    assert e["timestamp"] == "2026-06-01T10:00:00Z"
    # a replayed pair is stored once
    post(client, seldon_headers(SELDON_REQ, "a1", **{"Ce-Time": t0}), req)
    post(client, seldon_headers(SELDON_RES, "a1", **{"Ce-Time": t1}), res)
    assert len(events(client)) == 1


def test_seldon_batch_rows_split_and_unnamed_columns_follow_spec_order(client) -> None:
    req = {
        "data": {"ndarray": [[20, 1, "basic", False, "a"], [30, 2, "pro", True, "b"], [40, 3, "enterprise", True, "c"]]}
    }
    res = {"data": {"tensor": {"shape": [3, 2], "values": [0.9, 0.1, 0.5, 0.5, 0.1, 0.9]}}}
    post(client, seldon_headers(SELDON_REQ, "b1"), req)
    post(client, seldon_headers(SELDON_RES, "b1"), res)
    got = {e["request_id"]: e for e in events(client)}
    assert set(got) == {"b1-item-0", "b1-item-1", "b1-item-2"}
    assert got["b1-item-2"]["features"]["plan"] == "enterprise"
    assert got["b1-item-0"]["outputs"]["proba"]["stay"] == 0.9


def test_kserve_v1_and_v2(client) -> None:
    v1 = {"instances": [{"age": 50, "plan": "pro"}, {"age": 60, "plan": "basic"}]}
    h = {
        "Ce-Id": "k1",
        "Ce-Specversion": "1.0",
        "Ce-Type": KSERVE_REQ,
        "Ce-Source": "kserve",
        "Ce-Inferenceservicename": "churn",
        "content-type": "application/json",
    }
    post(client, h, v1)
    post(client, {**h, "Ce-Type": KSERVE_RES}, {"predictions": ["churn", "stay"]})
    v2_req = {
        "inputs": [
            {"name": "age", "shape": [1], "datatype": "FP32", "data": [33]},
            {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
        ]
    }
    v2_res = {"outputs": [{"name": "proba", "shape": [1, 2], "datatype": "FP32", "data": [[0.4, 0.6]]}]}
    post(client, {**h, "Ce-Id": "k2"}, v2_req)
    post(client, {**h, "Ce-Id": "k2", "Ce-Type": KSERVE_RES}, v2_res)
    got = {e["request_id"]: e for e in events(client)}
    assert got["k1-item-0"]["features"]["age"] == 50.0 and got["k1-item-1"]["outputs"]["prediction"] == "stay"
    assert got["k2"]["features"] == {"age": 33.0, "income": None, "plan": "pro", "active": None, "note": None}
    assert got["k2"]["outputs"]["proba"]["churn"] == 0.6
    assert got["k2"]["version"] == "1"  # no endpoint header: the spec's default version


def test_seldon_feedback_becomes_labels(client) -> None:
    post(client, seldon_headers(SELDON_REQ, "f1"), {"data": {"ndarray": [[20, 1, "basic", False, "a"]]}})
    post(client, seldon_headers(SELDON_RES, "f1"), {"data": {"ndarray": [[0.3, 0.7]]}})
    r = post(
        client,
        seldon_headers("io.seldon.serving.feedback", "f1"),
        {"request": {}, "response": {}, "truth": {"data": {"ndarray": [["stay"]]}}, "reward": 1},
    )
    assert r.status_code == 200, r.text
    assert events(client)[0]["label"]["value"] == "stay"


def test_request_without_response_is_stored_after_the_join_timeout(client) -> None:
    post(client, seldon_headers(SELDON_REQ, "lonely"), {"data": {"ndarray": [[20, 1, "basic", False, "a"]]}})
    assert events(client) == []
    collector = client.app.state.sustain.collector
    stored = client.portal.call(collector.complete_pending, datetime.now(UTC) + timedelta(minutes=5))
    assert stored == 1
    (e,) = events(client)
    assert e["error"] == "no response was logged for this request" and e["outputs"]["prediction"] is None


@pytest.mark.parametrize(
    ("drop", "change", "status", "field"),
    [
        ("Ce-Specversion", {}, 422, "Ce-Specversion"),
        (None, {"Ce-Specversion": "0.3"}, 422, "Ce-Specversion"),
        ("Ce-Type", {}, 422, "Ce-Type"),
        (None, {"Ce-Type": "com.example.other"}, 422, "Ce-Type"),
        ("Ce-Id", {}, 422, "Ce-Id"),
        ("Ce-Source", {}, 422, "Ce-Source"),
        (None, {"Ce-Time": "noon"}, 422, "Ce-Time"),
        (None, {"Ce-Inferenceservicename": "unknown-svc"}, 404, "Ce-Inferenceservicename"),
    ],
)
def test_bad_cloudevent_headers(client, drop, change, status, field) -> None:
    headers = seldon_headers(SELDON_REQ, "x1", **change)
    if drop:
        headers.pop(drop)
    r = post(client, headers, {"data": {"ndarray": [[1, 2, "pro", True, "a"]]}})
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field


def test_bad_cloudevent_payloads(client) -> None:
    h = seldon_headers(SELDON_REQ, "p1")
    assert (
        post(client, h, {"data": {"ndarray": [[1, 2]]}})
        .json()["error"]["message"]
        .startswith("request rows have 2 columns")
    )
    assert post(client, h, {"something": 1}).json()["error"]["field"] == "body"
    r = client.post("/v1/cloudevents", content=b"{nope", headers=h)
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]
    assert post(client, h, {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3]}}}).status_code == 422
    # the model can be named explicitly
    assert (
        post(
            client,
            seldon_headers(SELDON_REQ, "p2", **{"Ce-Inferenceservicename": "svc"}),
            {"data": {"ndarray": [[1, 2, "pro", True, "a"]]}},
            model="churn",
        ).status_code
        == 202
    )
