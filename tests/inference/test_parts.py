"""The parts of inference units that need no server: batching, items, backends' requests and replies (the V2
ones checked against the Open Inference Protocol's published schema), configuration, and the client on
fakeredis."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import fakeredis
import jsonschema
import pytest
import yaml

from sustain.errors import ConfigError, ValidationError
from sustain.inference import InferenceClient
from sustain.inference.backends.mlflow import MlflowBackend
from sustain.inference.backends.seldon import SeldonBackend
from sustain.inference.backends.v2 import V2Backend
from sustain.inference.batching import Buffer
from sustain.inference.clock import RedisClock
from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, MonitorConfig, UnitConfig
from sustain.inference.errors import BackendRejected
from sustain.inference.keys import GROUP, ModelKeys, partition_of
from sustain.inference.messages import Item, request_fields
from sustain.inference.queues import status
from sustain.inference.serve import UnitOptions

OIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas" / "open-inference-protocol"


def oip_validator(name: str) -> jsonschema.Draft7Validator:
    document = yaml.safe_load((OIP / "open_inference_rest.yaml").read_text())
    return jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def item(n: int, key: str | None, partition: int = 0) -> Item:
    return Item(f"s{partition}", partition, b"%d-0" % n, f"r{n}", key, b"{}", None, float(n), {})


def test_a_batch_takes_the_oldest_item_of_each_key_and_keeps_the_rest_in_order() -> None:
    buffer = Buffer()
    buffer.add([item(1, "a"), item(2, "a"), item(3, "b"), item(4, "a"), item(5, "c"), item(6, None), item(7, None)])
    assert buffer.ready == 5  # a, b, c and two items without a key
    first = buffer.take(2)
    assert [i.request_id for i in first] == ["r1", "r3"]
    second = buffer.take(10)  # a and b are in flight: their next items wait
    assert [i.request_id for i in second] == ["r5", "r6", "r7"]
    assert buffer.take(10) == []
    assert (buffer.ready, buffer.waiting, len(buffer)) == (0, 2, 7)
    buffer.done(first)
    assert (buffer.ready, buffer.oldest_ready_at) == (1, 2.0)
    third = buffer.take(10)
    assert [i.request_id for i in third] == ["r2"]
    buffer.done(third)
    buffer.done(second)
    assert [i.request_id for i in buffer.take(10)] == ["r4"]
    assert (buffer.waiting, buffer.ready, buffer.oldest_ready_at, len(buffer)) == (0, 0, None, 1)


def test_a_batch_cut_short_waits_again_before_the_later_items_of_its_keys() -> None:
    buffer = Buffer()
    buffer.add([item(1, "a"), item(2, "a"), item(3, "b")])
    batch = buffer.take(10)
    buffer.requeue(batch)
    assert (buffer.ready, buffer.oldest_ready_at) == (2, 1.0)
    assert [i.request_id for i in buffer.take(10)] == ["r1", "r3"]


def test_a_lost_partitions_items_leave_the_buffer() -> None:
    buffer = Buffer()
    buffer.add([item(1, "a", 0), item(2, "a", 1), item(3, "b", 1), item(4, "c", 1)])
    in_flight = buffer.take(1)
    assert [i.request_id for i in buffer.drop_partition(1)] == ["r2", "r3", "r4"]
    assert (buffer.count(1), buffer.count(0), buffer.ready) == (0, 1, 0)
    buffer.done(in_flight)
    assert (len(buffer), buffer.ready) == (0, 0)


def test_the_wait_counts_from_when_redis_took_the_request() -> None:
    clock = RedisClock(None)
    assert clock.queued_at(b"1700000000250-0", read_at=3.0) == 3.0  # not synced yet: when it was read
    clock.offset = 1_700_000_000.0 - 2.0  # Redis's epoch seconds are this process's monotonic seconds + offset
    assert clock.queued_at(b"1700000000250-0", read_at=3.0) == pytest.approx(2.25)
    assert clock.queued_at(b"1700000009000-0", read_at=3.0) == 3.0  # never after it was read
    assert clock.queued_at(b"not-an-id", read_at=3.0) == 3.0


def test_the_batch_policy_is_tritons() -> None:
    policy = BatchPolicy(max_batch_size=32, max_wait_ms=10, preferred_sizes=(8, 16))
    assert policy.dispatch_size(ready=40, waited_ms=0) == 32
    assert policy.dispatch_size(ready=17, waited_ms=0) == 16
    assert policy.dispatch_size(ready=7, waited_ms=9.9) == 0
    assert policy.dispatch_size(ready=7, waited_ms=10) == 7
    assert BatchPolicy(max_wait_ms=0).dispatch_size(ready=1, waited_ms=0) == 1
    with pytest.raises(ConfigError, match="preferred batch size 64"):
        BatchPolicy(max_batch_size=32, preferred_sizes=(64,))


def test_malformed_stream_entries_become_items_with_an_error() -> None:
    assert (
        Item.from_entry("s", 0, b"1-0", None, read_at=0).error == "the stream entry was deleted before it was answered"
    )
    assert Item.from_entry("s", 0, b"1-0", {b"p": b"{}"}, read_at=0).error == "the stream entry has no request id"
    assert Item.from_entry("s", 0, b"1-0", {b"id": b"r", b"p": b"[1]"}, read_at=0).error == (
        "the payload is not a JSON object"
    )
    good = Item.from_entry("s", 0, b"1-0", request_fields("r", {"a": 1}, key="k"), read_at=0)
    assert good.error is None and good.payload == {"a": 1} and good.order_key == "k"
    with pytest.raises(ValidationError, match="mapping"):
        request_fields("r", [1, 2])  # type: ignore[arg-type]


def test_partitions_are_stable_and_spread() -> None:
    counts = [0] * 16
    for i in range(16_000):
        counts[partition_of(f"customer-{i}", 16)] += 1
    assert min(counts) > 800 and partition_of("customer-42", 16) == partition_of("customer-42", 16)


def test_v2_requests_follow_the_open_inference_protocol() -> None:
    backend = V2Backend(BackendConfig("v2", "http://127.0.0.1:1", model="churn"))
    try:
        body = backend.encode(
            [{"age": 41, "plan": "pro", "ok": True, "score": 0.5}, {"age": 7, "plan": "x", "ok": False, "score": 1}]
        )
        oip_validator("inference_request").validate(body)
        assert [i["datatype"] for i in body["inputs"]] == ["INT64", "BYTES", "BOOL", "FP64"]
        with pytest.raises(BackendRejected, match="field 'age' holds NoneType, int"):
            backend.encode([{"age": 41}, {"age": None}])
        outputs = [
            {"name": "p", "shape": [2, 2], "datatype": "FP64", "data": [0.1, 0.9, 0.7, 0.3]},
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["b", "a"]},
        ]
        reply = {"model_name": "churn", "outputs": outputs}
        oip_validator("inference_response").validate(reply)
        assert backend.decode(reply, 2) == [{"p": [0.1, 0.9], "label": "b"}, {"p": [0.7, 0.3], "label": "a"}]
        with pytest.raises(BackendRejected, match="not 3 rows"):
            backend.decode(reply, 3)
    finally:
        backend.close()


def test_mlflow_and_seldon_replies_that_do_not_fit_are_rejected() -> None:
    mlflow = MlflowBackend(BackendConfig("mlflow", "http://127.0.0.1:1"))
    seldon = SeldonBackend(BackendConfig("seldon", "http://127.0.0.1:1"))
    try:
        with pytest.raises(BackendRejected, match="returned 1 predictions for 2 rows"):
            mlflow.decode({"predictions": [1]}, 2)
        with pytest.raises(BackendRejected, match="without a list"):
            mlflow.decode({"oops": 1}, 1)
        with pytest.raises(BackendRejected, match="neither ndarray nor tensor"):
            seldon.decode({"data": {"names": []}}, 1)
        assert seldon.decode({"jsonData": [{"a": 1}]}, 1) == [{"a": 1}]
    finally:
        mlflow.close()
        seldon.close()


def test_a_unreachable_backend_is_unavailable_not_rejected() -> None:
    from sustain.inference.errors import BackendUnavailable

    backend = MlflowBackend(BackendConfig("mlflow", "http://127.0.0.1:1", timeout=2))
    try:
        with pytest.raises(BackendUnavailable, match="cannot be reached"):
            backend.predict([{"a": 1}])
    finally:
        backend.close()


def test_unit_options_travel_as_json_to_child_processes() -> None:
    binding = ModelBinding(
        "churn", BackendConfig("v2", "http://m:8080", headers=(("x-a", "b"),)), MonitorConfig("http://s")
    )
    options = UnitOptions(
        UnitConfig("redis://r", (binding,), batch=BatchPolicy(8, 1, (4,)), name="u"), metrics_port=9000
    )
    again = UnitOptions.from_json(options.to_json())
    assert again == options
    child = again.for_child(2)
    assert (child.config.name, child.metrics_port) == ("u-2", 9002)
    with pytest.raises(ConfigError, match="listed twice"):
        UnitConfig("redis://r", (binding, binding))


def test_the_client_queues_a_request_on_its_keys_partition() -> None:
    r = fakeredis.FakeRedis()
    client = InferenceClient(r, "churn", partitions=4)
    request_id = client.submit({"age": 41}, key="customer-7")
    keys = ModelKeys("churn")
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(keys.stream(partition_of("customer-7", 4))))
    fields = entries[0][1]
    assert fields[b"id"].decode() == request_id and fields[b"k"] == b"customer-7" and fields[b"r"] == client.id.encode()
    ids = client.submit_many([{"x": i} for i in range(8)])  # no key: round the partitions
    assert sorted(r.xlen(keys.stream(p)) for p in range(4)) == [2, 2, 2, 3]
    assert len(set(ids)) == 8
    with pytest.raises(ConfigError, match="registered with 4 partitions, not 8"):
        InferenceClient(r, "churn", partitions=8)
    r.xreadgroup(GROUP, "someone", {keys.stream(0): ">"}, count=1)
    (s,) = status(r, ["churn"])
    assert (s.partitions, s.backlog, s.pending, s.lag, s.dead_letters, s.units) == (4, 9, 1, 8, 0, 0)
