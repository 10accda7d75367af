"""Indicators through a real `sustain serve`: reference upload → events → engine → API and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from sustain.spec.loader import load_config_text
from sustain.synthetic import SyntheticModel
from tests.helpers import CHURN_YAML, ServerProcess, put_parquet_reference, wait_for, write_spec


def test_indicators_appear_in_the_api_and_the_cli(tmp_path: Path) -> None:
    spec = load_config_text(CHURN_YAML).model("churn")
    assert spec is not None
    model = SyntheticModel(spec, seed=5)
    reference = tmp_path / "ref.parquet"
    pq.write_table(pa.table(model.reference(5000)), reference)
    env = {"SUSTAIN_TRANSFORM_INTERVAL": "0.5", "SUSTAIN_INDICATOR_INTERVAL": "0.5"}
    server = ServerProcess(tmp_path, write_spec(tmp_path), env=env).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            r = put_parquet_reference(client, "churn", "1", pq.read_table(reference))
        assert r.status_code == 200, r.text
        events = model.events(3000, {"age": 2.0})
        assert httpx.post(f"{server.url}/v1/models/churn/events", json=events, timeout=30).status_code == 200

        def drift_docs():
            body = httpx.get(
                f"{server.url}/v1/models/churn/indicators", params={"latest": "true", "indicator": "drift"}
            ).json()
            docs = [d for d in body["indicators"] if d["window"] == "1h" and d["feature"] == "age"]
            return docs if docs and docs[0]["n"] == 3000 else None

        (age,) = wait_for(drift_docs)
        assert age["status"] == "alert" and age["partial"] is True and age["details"]["reference_version"] == "1"

        def both_windows():  # the 1m and 1h windows are computed in turn: a busy machine may be between them
            body = httpx.get(f"{server.url}/v1/models/churn/indicators", params={"feature": "plan"}).json()
            return body if {d["window"] for d in body["indicators"]} == {"1m", "1h"} else None

        everything = wait_for(both_windows, what="plan's indicators in both windows")
        assert everything["count"] >= 2 and {d["window"] for d in everything["indicators"]} == {"1m", "1h"}
        bad = httpx.get(f"{server.url}/v1/models/churn/indicators", params={"status": "awful"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"
        assert httpx.get(f"{server.url}/v1/models/nope/indicators").status_code == 404

        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "sustain.cli",
                "indicators",
                "churn",
                "--url",
                server.url,
                "--indicator",
                "drift",
                "--window",
                "1h",
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        assert cli.returncode == 0, cli.stderr
        rows = {d["feature"]: d for d in json.loads(cli.stdout)}
        assert rows["age"]["status"] == "alert" and rows[None]["status"] == "alert"
        table = subprocess.run(
            [sys.executable, "-m", "sustain.cli", "indicators", "churn", "--url", server.url],
            capture_output=True,
            text=True,
        )
        assert table.returncode == 0 and "drift" in table.stdout and "alert" in table.stdout
    finally:
        server.stop()
    offline = subprocess.run(
        [
            sys.executable,
            "-m",
            "sustain.cli",
            "indicators",
            "churn",
            "--store",
            server.store,
            "--feature",
            "age",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert offline.returncode == 0, offline.stderr
    assert {d["window"] for d in json.loads(offline.stdout)} == {"1m", "1h"}
    down = subprocess.run(
        [sys.executable, "-m", "sustain.cli", "indicators", "churn", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
    )
    assert down.returncode == 3 and "cannot reach" in down.stderr
