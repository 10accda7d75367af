"""Bodies and references within their budgets (issue 11, items 6-8): decoded bytes are what count and are held
until the answer, decompression stops at the limit, every gzip member is read, references have a row cap, a
header that is not UTF-8 is a 4xx, and a model name cannot end in a newline."""

from __future__ import annotations

import gzip
import io
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sustain.collector.bodies import decode_content
from sustain.errors import PayloadTooLarge, ValidationError
from tests.conftest import make_client
from tests.helpers import ServerProcess, write_spec
from tests.test_collector_http import ok_event, stored

GZIP = {"content-type": "application/json", "content-encoding": "gzip"}


def test_every_gzip_member_is_read(tmp_path: Path) -> None:
    first = gzip.compress(orjson.dumps([ok_event(i) for i in range(10)]))
    # Two members make one gzip stream (`cat a.gz b.gz`): the second one's events are joined to the first's
    # JSON array only if the decoder reads on; NDJSON makes the join well-formed.
    ndjson = b"".join(orjson.dumps(ok_event(i)) + b"\n" for i in range(10))
    more = b"".join(orjson.dumps(ok_event(i)) + b"\n" for i in range(10, 20))
    with make_client(tmp_path) as c:
        r = c.post(
            "/v1/models/churn/events",
            content=gzip.compress(ndjson) + gzip.compress(more),
            headers={**GZIP, "content-type": "application/x-ndjson"},
        )
        assert r.status_code == 200 and r.json()["accepted"] == 20, r.text
        assert len(stored(c)) == 20
        # a member cut short is an error, not a shorter body
        r = c.post("/v1/models/churn/events", content=first[:-8], headers=GZIP)
        assert r.status_code == 422 and "truncated gzip" in r.json()["error"]["message"]


def test_decompression_stops_at_the_limit() -> None:
    from sustain.collector.bodies import ContentDecoder

    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in ~64 KB
    decoder = ContentDecoder("gzip", 1 << 20)
    with pytest.raises(PayloadTooLarge, match="decoded body"):
        for start in range(0, len(bomb), 4096):
            decoder.feed(bomb[start : start + 4096])
    assert decoder.size <= (1 << 20) + 1  # it never produced more than the limit and one byte
    assert decode_content(gzip.compress(b"ab") + gzip.compress(b"cd") + b"\0\0", "gzip", 10) == b"abcd"
    with pytest.raises(ValidationError, match="not valid gzip"):
        decode_content(b"plain", "gzip", 10)


def test_decoded_bytes_count_against_the_budget_until_the_answer(tmp_path: Path) -> None:
    events = [ok_event(i, tags={"pad": "x" * 200}) for i in range(12)]
    body = gzip.compress(orjson.dumps(events))
    decoded = len(orjson.dumps(events))
    assert len(body) < 400 < decoded
    with make_client(tmp_path, max_inflight_bytes=decoded + decoded // 2) as c:
        ctx = c.app.state.sustain  # type: ignore[attr-defined]
        gate = threading.Event()
        ctx.writer.submit(gate.wait)  # stall the writer: the first request waits for its commit
        answers: list[Any] = []
        first = threading.Thread(
            target=lambda: answers.append(c.post("/v1/models/churn/events", content=body, headers=GZIP))
        )
        first.start()
        deadline = time.monotonic() + 30
        while ctx.writer.pending_events < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        held = ctx.budget.used
        second = c.post("/v1/models/churn/events", content=body, headers=GZIP)
        gate.set()
        first.join(30)
        assert held >= decoded  # the decoded body, held while the request waits for its commit
        assert second.status_code == 429 and "holding" in second.json()["error"]["message"]
        assert answers[0].status_code == 200
        assert ctx.budget.used == 0  # released once answered


def csv_rows(n: int) -> bytes:
    return ("age,income\n" + "".join(f"{i % 90},{i}\n" for i in range(n))).encode()


def test_references_have_a_row_cap(tmp_path: Path) -> None:
    with make_client(tmp_path, max_reference_rows=100) as c:
        ok = c.put("/v1/models/churn/reference", content=csv_rows(100), headers={"content-type": "text/csv"})
        assert ok.status_code == 200 and ok.json()["rows"] == 100
        over = c.put("/v1/models/churn/reference", content=csv_rows(101), headers={"content-type": "text/csv"})
        assert over.status_code == 413 and "more than 100 rows" in over.json()["error"]["message"]
        buffer = io.BytesIO()
        pq.write_table(pa.table({"age": list(range(101))}), buffer)
        parquet = c.put(
            "/v1/models/churn/reference",
            content=buffer.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        assert parquet.status_code == 413
        ndjson = b"".join(orjson.dumps({"age": i}) + b"\n" for i in range(101))
        r = c.put("/v1/models/churn/reference", content=ndjson, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 413
        rows = orjson.dumps([{"age": i} for i in range(101)])
        assert (
            c.put("/v1/models/churn/reference", content=rows, headers={"content-type": "application/json"}).status_code
            == 413
        )
        assert c.get("/v1/models/churn/reference").json()["references"][0]["rows"] == 100


def test_a_header_that_is_not_utf8_is_a_4xx(client) -> None:
    r = client.put(
        "/v1/models/churn/reference", content=b"\xff\xfeage,income\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "columns"
    assert "UTF-8" in r.json()["error"]["message"]
    r = client.put("/v1/models/churn/reference", content=b"age,inc\xe9me\n1,2\n", headers={"content-type": "text/csv"})
    assert r.status_code == 422


def test_a_model_name_cannot_end_in_a_newline(client) -> None:
    r = client.put("/v1/models/churn%0A", json={"features": {"age": "numeric"}})
    assert r.status_code == 422 and "model name" in r.text
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["churn", "price"]


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_gzip_reference_bomb_is_stopped_with_bounded_memory(tmp_path: Path) -> None:
    """64 MiB of decoded CSV in 64 KB on the wire took 3.3 GB before (item 6): now the row cap stops it after
    a million rows, and the server's peak memory stays far below that."""
    bomb = gzip.compress(b"age,income\n" + b"1,2\n" * (16 << 20), compresslevel=9)  # 16.8 M rows, 64 MiB
    with ServerProcess(tmp_path, write_spec(tmp_path)) as server:
        assert server.proc is not None
        before = _peak_rss_mib(server.proc.pid)
        r = httpx.put(
            f"{server.url}/v1/models/churn/reference",
            content=bomb,
            headers={"content-type": "text/csv", "content-encoding": "gzip"},
            timeout=120,
        )
        assert r.status_code == 413 and "1000000 rows" in r.json()["error"]["message"]
        grown = _peak_rss_mib(server.proc.pid) - before
        assert grown < 1024, f"the server's peak memory grew by {grown:.0f} MiB"
        assert httpx.get(f"{server.url}/v1/models/churn/reference").json()["references"] == []
