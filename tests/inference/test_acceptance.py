"""The issue's acceptance test: 100,000 requests over 1,000 keys through 3 unit processes (``sustain aiu serve
--units 3``) with 5 SIGKILLs of units at random, while 10 planted poison items fail every batch they are in.

Checked afterwards, from Redis and from the model server's log of every call:
* every request is answered, once (one answer key each, nothing else), and right (``y = 2x``);
* no key's answers come out of order (the calls that answered a key's requests are increasing in its sequence);
* the dead letters are exactly the poison items;
* each poison item is isolated in at most ceil(log2 b) + 1 calls of the unit that isolated it, b being the size
  of its first batch there, and all its batch-mates are answered.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path

import pytest
import redis

from sustain.inference import InferenceClient, status
from tests.helpers import free_port, wait_for
from tests.inference.model_server import read_calls
from tests.inference.processes import alive, children_of, sustain_aiu
from tests.inference.redis_server import RedisServer, dead_letters

KEYS, PER_KEY, UNITS, KILLS, POISONS, MAX_BATCH = 1000, 100, 3, 5, 10, 64
TOTAL = KEYS * PER_KEY


def backlog_under(r: redis.Redis, threshold: float) -> bool:
    return status(r, ["acceptance"])[0].backlog <= threshold


def gone(pid: int, parent: int) -> bool:
    return not alive(pid) or pid not in children_of(parent)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_100k_requests_1k_keys_3_units_5_kills(redis_server: RedisServer, tmp_path: Path) -> None:
    rng = random.Random(15)
    port = free_port()
    calls_log = tmp_path / "calls.jsonl"
    model = subprocess.Popen([sys.executable, "-m", "tests.inference.model_server", str(port), str(calls_log)])
    client = InferenceClient(redis_server.url, "acceptance", partitions=16)
    poison = set(rng.sample(range(TOTAL), POISONS))
    units = sustain_aiu(
        "serve", "--redis", redis_server.url, "--model", "acceptance", "--backend", f"http://127.0.0.1:{port}",
        "--units", str(UNITS), "--max-batch", str(MAX_BATCH), "--max-wait-ms", "5", "--lease-ttl", "2",
        "--min-idle", "1", "--max-deliveries", "5", "--name", "acc",
        log=tmp_path / "units.log",
    )  # fmt: skip
    kills: list[int] = []
    try:
        wait_for(lambda: len(children_of(units.pid)) == UNITS, 60, "three unit processes")
        rows, keys = [], []
        for i in range(TOTAL):  # the keys take turns: request i is the (i // KEYS)-th of key i % KEYS
            rows.append({"x": i, "tag": i, "poison": i in poison})
            keys.append(f"key-{i % KEYS}")
        ids: list[str] = []
        for start in range(0, TOTAL, 5000):
            ids += client.submit_many(rows[start : start + 5000], keys[start : start + 5000])
        r = redis_server.client()
        for n in range(KILLS):  # a kill each time another ~13% of the requests are answered
            threshold = TOTAL * (1 - 0.1 - 0.13 * n)
            wait_for(partial(backlog_under, r, threshold), 300, f"backlog under {threshold}")
            victim = rng.choice(children_of(units.pid))
            os.kill(victim, signal.SIGKILL)
            kills.append(victim)
            wait_for(partial(gone, victim, units.pid), 30, "the kill")
            wait_for(lambda: len(children_of(units.pid)) == UNITS, 60, "the supervisor to start a unit again")
        answers = client.answers(ids, timeout=600)
        wait_for(lambda: status(r, ["acceptance"])[0].backlog == 0, 60, "an empty backlog")
        final = status(r, ["acceptance"])[0]
    finally:
        units.send_signal(signal.SIGTERM)
        try:
            units.wait(60)
        except subprocess.TimeoutExpired:
            units.kill()
        model.terminate()
        model.wait(10)
        client.close()

    assert len(kills) == KILLS
    assert len(answers) == TOTAL, f"{TOTAL - len(answers)} requests unanswered"
    result_keys = sum(1 for _ in r.scan_iter("aiu:{acceptance}:res:*", count=10_000))
    assert result_keys == TOTAL  # one answer per request, nothing else
    failed = {i for i, rid in enumerate(ids) if answers[rid].error is not None}
    assert failed == poison
    assert all(answers[rid].prediction["y"] == 2 * i for i, rid in enumerate(ids) if i not in poison)

    dead = dead_letters(redis_server, "acceptance")
    assert sorted(fields[b"id"].decode() for _, fields in dead) == sorted(ids[i] for i in poison)
    assert final.dead_letters == POISONS and final.pending == 0 and final.lag == 0

    calls = read_calls(calls_log)
    assert {c.number for c in calls} == set(range(1, len(calls) + 1))
    last_try = {tag: c.number for c in calls for tag in c.tags if tag in poison}
    by_key: dict[int, list[int]] = defaultdict(list)  # key -> the call that answered each of its requests, in order
    for i, rid in enumerate(ids):
        by_key[i % KEYS].append(last_try[i] if i in poison else answers[rid].prediction["call"])
    for key, numbers in by_key.items():
        assert all(a < b for a, b in itertools.pairwise(numbers)), f"key-{key} answered out of order"

    for tag in poison:
        with_it = [c for c in calls if tag in c.tags]
        alone = next(c for c in with_it if c.tags == [tag])
        episode = [c for c in with_it if c.agent == alone.agent and c.number <= alone.number]
        assert len(episode) <= math.ceil(math.log2(len(episode[0].tags))) + 1, [len(c.tags) for c in episode]
        mates = set(episode[0].tags) - {tag}
        assert mates and all(answers[ids[m]].error is None for m in mates if m not in poison)

    batch_sizes = [len(c.tags) for c in calls]
    print(f"\n{len(calls)} backend calls, mean batch {sum(batch_sizes) / len(calls):.1f}, max {max(batch_sizes)}")


def test_children_are_found(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children_of(os.getpid())
    finally:
        child.kill()
        child.wait()
