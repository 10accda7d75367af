"""The collector's HTTP contract: bulk replies, and a clear 4xx for every kind of bad input."""

from __future__ import annotations

import gzip
import threading
import time

import orjson
import pytest

from sustain.errors import ConfigError
from sustain.settings import Settings
from tests.conftest import make_client


def ok_event(i: int = 0, **kw):
    return {"request_id": f"r{i}", "features": {"age": 30 + i, "plan": "pro"}, **kw}


def stored(client, **params) -> list[dict]:
    return client.get("/v1/models/churn/events", params={"limit": 1000, **params}).json()["events"]


def test_valid_batch_is_acknowledged(client) -> None:
    r = client.post("/v1/models/churn/events", json=[ok_event(i) for i in range(10)])
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["rejected"], body["errors"]) == (10, 0, False)
    assert len(stored(client)) == 10


def test_mixed_batch_keeps_valid_items_and_names_each_problem(client) -> None:
    items = [ok_event(0), {"features": {"age": 1}, "latency_ms": "slow"}, ok_event(2), {"featurs": {}}]
    r = client.post("/v1/models/churn/events", json=items)
    assert r.status_code == 207
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == 2
    assert [(i["index"], i["status"], i["error"]["field"]) for i in body["items"]] == [
        (1, 422, "latency_ms"),
        (3, 422, "featurs"),
    ]
    assert {e["request_id"] for e in stored(client)} == {"r0", "r2"}


def test_all_invalid_is_422_and_store_unchanged(client) -> None:
    r = client.post("/v1/models/churn/events", json=[{"features": "x"}, {"nope": 1}])
    assert r.status_code == 422
    assert r.json()["accepted"] == 0
    assert stored(client) == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "field", "text"),
    [
        (b"[{bad", {"content-type": "application/json"}, 422, "body", "not valid JSON"),
        (b"", {"content-type": "application/json"}, 422, "body", "empty"),
        (b"42", {"content-type": "application/json"}, 422, "body", "JSON array"),
        (b"a,b\n1,2", {"content-type": "text/csv"}, 415, None, "not supported"),
        (b"[]", {"content-type": "application/json", "content-encoding": "br"}, 415, None, "Content-Encoding"),
        (b"not gzip", {"content-type": "application/json", "content-encoding": "gzip"}, 422, "body", "gzip"),
    ],
)
def test_malformed_bodies(client, body, headers, status, field, text) -> None:
    r = client.post("/v1/models/churn/events", content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert text in error["message"]
    if field:
        assert error["field"] == field
    assert stored(client) == []


def test_ndjson_bad_line_rejects_only_that_line(client) -> None:
    lines = [orjson.dumps(ok_event(0)), b"{oops", orjson.dumps(ok_event(2))]
    r = client.post(
        "/v1/models/churn/events", content=b"\n".join(lines), headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 207
    item = r.json()["items"][0]
    assert item["index"] == 1 and "line 2 is not valid JSON" in item["error"]["reason"]
    assert len(stored(client)) == 2


def test_gzip_body(client) -> None:
    body = gzip.compress(orjson.dumps([ok_event(i) for i in range(3)]))
    r = client.post(
        "/v1/models/churn/events",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 3


def test_unknown_model_is_404_naming_it(client) -> None:
    r = client.post("/v1/models/nope/events", json=[ok_event()])
    assert r.status_code == 404
    assert "'nope' is not registered" in r.json()["error"]["message"]
    assert client.get("/v1/models/nope/events").status_code == 404


def test_oversized_body_is_413_and_nothing_stored(tmp_path) -> None:
    with make_client(tmp_path, max_body_bytes=1000) as c:
        r = c.post("/v1/models/churn/events", json=[ok_event(i) for i in range(50)])
        assert r.status_code == 413
        assert "over the limit of 1000 bytes" in r.json()["error"]["message"]

        # streamed without a Content-Length: still stopped at the limit
        def chunks():
            for _ in range(50):
                yield b" " * 100

        r = c.post("/v1/models/churn/events", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert stored(c) == []


def test_query_parameters_are_validated(client) -> None:
    r = client.get("/v1/models/churn/events", params={"limit": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    r = client.get("/v1/models/churn/events", params={"since": "last tuesday"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "since"


def test_overload_answers_429_with_retry_after(tmp_path) -> None:
    with make_client(tmp_path, max_pending_events=5) as c:
        ctx = c.app.state.sustain  # type: ignore[attr-defined]
        gate = threading.Event()
        ctx.writer.submit(gate.wait)  # stall the writer
        first = threading.Thread(target=lambda: c.post("/v1/models/churn/events", json=[ok_event(i) for i in range(5)]))
        first.start()
        deadline = time.monotonic() + 5
        while ctx.writer.pending_events < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = c.post("/v1/models/churn/events", json=[ok_event(9)])
        gate.set()
        first.join(5)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert "queue is full" in r.json()["error"]["message"]
        assert {e["request_id"] for e in stored(c)} == {f"r{i}" for i in range(5)}


def test_labels_endpoint(client) -> None:
    client.post("/v1/models/churn/events", json=[ok_event(1)])
    r = client.post(
        "/v1/models/churn/labels",
        json=[
            {"request_id": "r1", "label": "churn"},
            {"request_id": "r2", "event_id": "x", "label": "stay"},
            {"request_id": "r3"},
            {"request_id": "r4", "label": "maybe"},
            {"request_id": "r5", "label": "stay", "colour": 1},
        ],
    )
    assert r.status_code == 207
    fields = [i["error"]["field"] for i in r.json()["items"]]
    assert fields == ["request_id", "label", "label", "colour"]
    assert stored(client)[0]["label"]["value"] == "churn"


def test_labels_for_a_model_without_label(tmp_path) -> None:
    with make_client(tmp_path) as c:
        c.put("/v1/models/nolabel", json={"features": {"x": "numeric"}})
        r = c.post("/v1/models/nolabel/labels", json=[{"request_id": "a", "label": 1}])
        assert r.status_code == 422 and "declares no label" in r.json()["error"]["message"]


def test_spec_api(client) -> None:
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["churn", "price"]
    r = client.put("/v1/models/fraud", json={"features": {"amount": "numeric"}, "windows": ["5m"]})
    assert r.status_code == 201 and r.json()["name"] == "fraud"
    assert client.put("/v1/models/fraud", json={"features": {"amount": "numeric"}}).status_code == 200
    assert client.get("/v1/models/fraud").json()["windows"] == ["1h"]
    r = client.put("/v1/models/fraud", json={"features": {"amount": {"kind": "nope"}}})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "features.amount.kind"
    r = client.put("/v1/models/fraud", json={"name": "other", "features": {"a": "numeric"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = client.put("/v1/models/fraud", json={"features": {"amount": "categorical"}})
    assert r.status_code == 409 and "cannot change type" in r.json()["error"]["message"]
    assert client.post("/v1/models/fraud/events", json=[{"features": {"amount": 5}}]).status_code == 200


def test_reference_upload_formats(client) -> None:
    csv = (
        b"age,plan,active,prediction,proba.stay,proba.churn,label,extra\n"
        b"30,pro,true,stay,0.8,0.2,stay,1\n40,basic,false,churn,0.3,0.7,churn,2\n"
    )
    r = client.put("/v1/models/churn/reference?version=3", content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == 2 and body["ignored_columns"] == ["extra"] and "income" in body["missing_features"]
    r = client.put("/v1/models/churn/reference", json=[{"age": 1, "plan": "pro"}])
    assert r.status_code == 200 and r.json()["version"] == "1"
    r = client.put("/v1/models/churn/reference", files={"file": ("ref.csv", csv, "text/csv")})
    assert r.status_code == 200 and r.json()["rows"] == 2
    r = client.put("/v1/models/churn/reference", json=[{"colour": "red"}])
    assert r.status_code == 422 and "none of the model's features" in r.json()["error"]["message"]
    r = client.put("/v1/models/churn/reference", content=b"age\nold\n", headers={"content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "age"
    versions = [x["version"] for x in client.get("/v1/models/churn/reference").json()["references"]]
    assert versions == ["1", "3"]


def test_health_and_metrics(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    client.post("/v1/models/churn/events", json=[ok_event(1), {"x": 1}])
    text = client.get("/metrics").text
    assert 'sustain_events_ingested_total{model="churn"} 1.0' in text
    assert 'sustain_events_rejected_total{kind="event",model="churn"} 1.0' in text
    assert "sustain_ingest_queue_events" in text and "sustain_commit_seconds_bucket" in text


def test_unknown_route_is_a_json_404(client) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and "see /docs" in r.json()["error"]["message"]


def test_openapi_documents_the_event_shape(client) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/models/{model}/events"]["post"]["requestBody"]["content"]["application/json"]
    assert "features" in body["schema"]["items"]["properties"]


def test_auth_scopes(tmp_path) -> None:
    with make_client(tmp_path, write_tokens=("w1",), read_tokens=("r1",)) as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models").headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/models", headers={"authorization": "Bearer nope"}).status_code == 401
        assert c.get("/v1/models", headers={"authorization": "Basic r1"}).status_code == 401
        assert c.get("/v1/models", headers={"authorization": "Bearer r1"}).status_code == 200
        r = c.post("/v1/models/churn/events", json=[ok_event()], headers={"authorization": "Bearer r1"})
        assert r.status_code == 403 and "may only read" in r.json()["error"]["message"]
        r = c.post("/v1/models/churn/events", json=[ok_event()], headers={"authorization": "Bearer w1"})
        assert r.status_code == 200
        assert c.get("/healthz").status_code == 200  # probes need no token


def test_admin_tokens_include_write_and_read_and_only_they_pass_admin() -> None:
    from sustain.api.auth import check_token
    from sustain.errors import Forbidden
    from sustain.settings import Settings

    settings = Settings(write_tokens=("w1",), read_tokens=("r1",), admin_tokens=("a1",))
    for needed in ("read", "write", "admin"):
        check_token(settings, "Bearer a1", needed)
    check_token(settings, "Bearer w1", "read")
    for token in ("w1", "r1"):
        with pytest.raises(Forbidden, match="needs an admin token"):
            check_token(settings, f"Bearer {token}", "admin")
    assert Settings(admin_tokens=("a1",)).auth_enabled


def test_refuses_to_listen_beyond_loopback_without_tokens() -> None:
    with pytest.raises(ConfigError, match="without authentication"):
        Settings(host="0.0.0.0").check_bind()
    Settings(host="0.0.0.0", write_tokens=("t",)).check_bind()
    Settings(host="::1").check_bind()
