"""Units against a real Redis server and a real HTTP model: batching, order per key, bisecting, dead letters,
a backend that is down for a while, and a dead unit's requests taken over."""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from sustain.inference import InferenceClient, InferenceFailed, Unit, status
from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, UnitConfig
from sustain.inference.keys import GROUP, ModelKeys
from sustain.inference.metrics import UnitMetrics
from tests.helpers import wait_for
from tests.inference.model_server import Behaviour, ModelServer
from tests.inference.redis_server import RedisServer, dead_letters


def config(server: RedisServer, backend: str, kind: str = "mlflow", **overrides: Any) -> UnitConfig:
    binding = ModelBinding("toy", BackendConfig(kind, backend, model="toy"))
    base = UnitConfig(
        server.url, (binding,), batch=BatchPolicy(max_batch_size=16, max_wait_ms=5), partitions=4, lease_ttl=1.0
    )
    return replace(base, **overrides)


def submit(client: InferenceClient, rows: list[dict[str, Any]], keys: Sequence[str | None] | None = None) -> list[str]:
    return client.submit_many(rows, keys)


def test_every_request_answered_once_in_batches_with_one_item_per_key(redis_server: RedisServer) -> None:
    with ModelServer() as model, InferenceClient(redis_server.url, "toy", partitions=4) as client:
        keys = [f"k{i % 10}" for i in range(300)]
        ids = submit(client, [{"x": i, "tag": i} for i in range(300)], keys)
        with Unit(config(redis_server, model.url)):
            answers = client.answers(ids, timeout=60)
        assert len(answers) == 300
        assert all(answers[rid].prediction["y"] == 2 * i for i, rid in enumerate(ids))
        assert len(model.calls) < 300 / 4  # batched
        for call in model.calls:
            call_keys = [keys[tag] for tag in call.tags]
            assert len(set(call_keys)) == len(call_keys), "two items of one key in one call"
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, rid in enumerate(ids):
            by_key[keys[i]].append(answers[rid].prediction["call"])
        for key, calls in by_key.items():
            assert calls == sorted(calls) and len(set(calls)) == len(calls), f"{key} answered out of order"
        done = status(redis_server.client(), ["toy"])[0]
        assert (done.backlog, done.pending, done.lag, done.dead_letters) == (0, 0, 0, 0)


def test_lanes_overlap_batches_of_different_keys_but_never_two_of_one_key(redis_server: RedisServer) -> None:
    with ModelServer(Behaviour(delay=0.2)) as model, InferenceClient(redis_server.url, "toy", partitions=1) as client:
        keys = ["a", "a", "a", "b", "b", "b"]
        ids = submit(client, [{"x": i, "tag": i} for i in range(6)], keys)
        cfg = config(redis_server, model.url, partitions=1, batch=BatchPolicy(max_batch_size=1, max_wait_ms=0))
        with Unit(replace(cfg, concurrency=2)):
            answers = client.answers(ids, timeout=60)
    assert len(answers) == 6
    calls = {call.tags[0]: call for call in model.calls}
    for key in ("a", "b"):
        mine = sorted((calls[i] for i in range(6) if keys[i] == key), key=lambda c: c.started)
        assert [c.tags[0] for c in mine] == [i for i in range(6) if keys[i] == key], f"{key} out of order"
        assert all(later.started >= earlier.ended for earlier, later in itertools.pairwise(mine)), f"{key} overlapped"
    together = [(x, y) for x in calls.values() for y in calls.values() if x.started < y.started < x.ended]
    assert together, "two lanes never had a call at the backend at the same time"


def test_a_poisoned_item_is_isolated_by_bisecting_while_its_batch_mates_are_answered(
    redis_server: RedisServer,
) -> None:
    size = 16
    with ModelServer() as model, InferenceClient(redis_server.url, "toy", partitions=1) as client:
        rows = [{"x": i, "tag": i, "poison": i == 11} for i in range(size)]
        ids = submit(client, rows)
        metrics = UnitMetrics()
        with Unit(config(redis_server, model.url, partitions=1, max_deliveries=3), metrics=metrics):
            answers = client.answers(ids, timeout=60)
            with pytest.raises(InferenceFailed, match="400"):
                client.result(ids[11], timeout=5)
        assert all(answers[rid].prediction["y"] == 2 * i for i, rid in enumerate(ids) if i != 11)
        with_poison = [c for c in model.calls if 11 in c.tags]
        first_alone = next(n for n, c in enumerate(with_poison, 1) if c.tags == [11])
        assert with_poison[0].tags == list(range(size))
        assert first_alone == math.ceil(math.log2(size)) + 1
        assert [c.tags for c in with_poison[first_alone:]] == [[11], [11]]  # tried alone until 3 deliveries
        dead = dead_letters(redis_server, "toy")
        assert len(dead) == 1
        fields = dead[0][1]
        assert fields[b"id"].decode() == ids[11] and b"400" in fields[b"error"] and fields[b"deliveries"] == b"3"
        sample = metrics.registry.get_sample_value
        assert sample("sustain_aiu_items_total", {"model": "toy", "outcome": "dead_letter"}) == 1
        assert sample("sustain_aiu_items_total", {"model": "toy", "outcome": "answered"}) == size - 1
        assert sample("sustain_aiu_dead_letters", {"model": "toy"}) == 1


def test_an_unavailable_backend_is_waited_for_and_nothing_is_dead_lettered(redis_server: RedisServer) -> None:
    with (
        ModelServer(Behaviour(unavailable=4)) as model,
        InferenceClient(redis_server.url, "toy", partitions=4) as client,
    ):
        ids = submit(client, [{"x": i, "tag": i} for i in range(40)])
        with Unit(config(redis_server, model.url)):
            answers = client.answers(ids, timeout=60)
        assert len(answers) == 40 and all(a.error is None for a in answers.values())
        assert [c.status for c in model.calls[:4]] == [503] * 4
        assert status(redis_server.client(), ["toy"])[0].dead_letters == 0


def test_a_dead_units_pending_requests_are_taken_over_in_order(redis_server: RedisServer) -> None:
    r = redis_server.client()
    keys = ModelKeys("toy")
    with ModelServer() as model, InferenceClient(redis_server.url, "toy", partitions=1) as client:
        ids = submit(client, [{"x": i, "tag": i} for i in range(20)], ["same-key"] * 20)
        # A unit that read ten requests, held the partition, and died without answering any.
        r.xreadgroup(GROUP, "dead-unit", {keys.stream(0): ">"}, count=10)
        r.set(keys.lease(0), "dead-unit", px=800)
        started = time.monotonic()
        with Unit(config(redis_server, model.url, partitions=1, lease_ttl=1.0, min_idle=0.5)):
            answers = client.answers(ids, timeout=60)
        assert time.monotonic() - started >= 0.5  # not before the lease expired
        assert [answers[rid].prediction["y"] for rid in ids] == [2 * i for i in range(20)]
        assert [c.tags for c in model.calls] == [[i] for i in range(20)]  # one key: one at a time, in order
        assert r.xinfo_groups(keys.stream(0))[0]["pending"] == 0


def test_v2_and_seldon_backends_through_a_unit(redis_server: RedisServer) -> None:
    for kind in ("v2", "seldon"):
        with ModelServer() as model, InferenceClient(redis_server.url, f"toy-{kind}", partitions=4) as client:
            ids = submit(client, [{"x": float(i), "tag": i} for i in range(30)])
            binding = ModelBinding(f"toy-{kind}", BackendConfig(kind, model.url))
            with Unit(replace(config(redis_server, model.url), models=(binding,))):
                answers = client.answers(ids, timeout=60)
            assert [answers[rid].prediction for rid in ids] == [2.0 * i for i in range(30)]
            expected = f"/v2/models/toy-{kind}/infer" if kind == "v2" else "/api/v1.0/predictions"
            assert {c.path for c in model.calls} == {expected}


def test_the_asyncio_client(redis_server: RedisServer) -> None:
    import asyncio

    from sustain.inference import AsyncInferenceClient

    async def main(url: str) -> list[Any]:
        async with await AsyncInferenceClient.connect(url, "toy", partitions=4) as client:
            return list(await asyncio.gather(*(client.predict({"x": i}, key=f"k{i % 3}") for i in range(20))))

    with ModelServer() as model, Unit(config(redis_server, model.url)):
        predictions = asyncio.run(main(redis_server.url))
    assert [p["y"] for p in predictions] == [2 * i for i in range(20)]


def test_requests_survive_a_redis_crash_once_flushed(redis_server: RedisServer) -> None:
    with InferenceClient(redis_server.url, "toy", partitions=2) as client:
        submit(client, [{"x": i} for i in range(500)])
    time.sleep(2.5)  # appendfsync everysec: flushed within about a second
    redis_server.kill()
    restarted = RedisServer(redis_server.directory, redis_server.port).start()
    try:
        assert wait_for(lambda: status(restarted.client(), ["toy"])[0].backlog, 10) == 500
    finally:
        restarted.stop()


def test_a_client_with_a_backlog_bound_is_refused_when_the_units_are_behind(redis_server: RedisServer) -> None:
    from sustain.errors import Overloaded

    with InferenceClient(redis_server.url, "toy", partitions=1, max_backlog=3) as client:
        for i in range(3):
            client.submit({"x": i})
        with pytest.raises(Overloaded, match="holds 3 unanswered requests"):
            client.submit({"x": 3})
    assert status(redis_server.client(), ["toy"])[0].backlog == 3


def test_units_share_a_models_partitions_and_the_survivor_takes_them_all(redis_server: RedisServer) -> None:
    with ModelServer() as model:
        first = Unit(config(redis_server, model.url, name="first", lease_ttl=0.6)).start()
        second = Unit(config(redis_server, model.url, name="second", lease_ttl=0.6)).start()
        try:
            held = lambda unit: len(unit.workers[0].leases.held())  # noqa: E731
            wait_for(lambda: held(first) == 2 and held(second) == 2, 30, "two partitions each")
            first.stop()
            wait_for(lambda: held(second) == 4, 30, "the survivor to hold all four")
            assert status(redis_server.client(), ["toy"])[0].units == 1
        finally:
            first.stop()
            second.stop()


def test_a_unit_whose_heartbeat_was_late_lets_go_and_takes_its_partition_back(redis_server: RedisServer) -> None:
    with ModelServer() as model, InferenceClient(redis_server.url, "toy", partitions=1) as client:
        unit = Unit(config(redis_server, model.url, partitions=1, lease_ttl=1.0, min_idle=0.2)).start()
        try:
            worker = unit.workers[0]
            wait_for(lambda: worker.active == {0}, 30, "the partition")
            with worker.leases._lock:  # as if the heartbeat had been held up past the trusted time
                worker.leases._valid_until[0] = 0.0
            ids = client.submit_many([{"x": i} for i in range(10)], ["k"] * 10)
            answers = client.answers(ids, timeout=60)
            assert [answers[i].prediction["y"] for i in ids] == [2 * i for i in range(10)]
        finally:
            unit.stop()
