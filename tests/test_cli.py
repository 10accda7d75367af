"""The `sustain` command: sentences and exit codes, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import ServerProcess, wait_for, write_spec


def run(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sustain.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_validate_ok_and_bad(tmp_path: Path) -> None:
    good = run("validate", str(write_spec(tmp_path)), "--json")
    assert good.returncode == 0 and json.loads(good.stdout)["models"] == ["churn", "price"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: m\n    features: {x: {kind: numbr}}\n")
    result = run("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3: models[0].features.x.kind" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_serve_refuses_public_address_without_tokens(tmp_path: Path) -> None:
    result = run("serve", "--host", "0.0.0.0", "--store", f"duckdb:///{tmp_path}/x.duckdb")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reports_a_bad_spec_and_a_bad_store(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{name: m, features: {}}]\n")
    result = run("serve", "--config", str(bad), "--store", f"duckdb:///{tmp_path}/x.duckdb")
    assert result.returncode == 2 and "at least 1" in result.stderr and "Traceback" not in result.stderr
    result = run("serve", "--store", "mongodb://x")
    assert result.returncode == 3 and "supported schemes: duckdb" in result.stderr


def test_reference_upload_over_http_and_into_a_store(tmp_path: Path) -> None:
    csv = tmp_path / "ref.csv"
    csv.write_text("size,rooms,value,label\n50,2,100,110\n80,3,150,140\n")
    with ServerProcess(tmp_path, write_spec(tmp_path)) as server:
        result = run("reference", "upload", str(csv), "--model", "price", "--version", "2", "--url", server.url)
        assert result.returncode == 0, result.stderr
        assert "2 rows" in result.stdout
        refs = httpx.get(f"{server.url}/v1/models/price/reference").json()["references"]
        assert refs[0]["version"] == "2"
        wrong = run("reference", "upload", str(csv), "--model", "nope", "--url", server.url)
        assert wrong.returncode == 2 and "'nope' is not registered" in wrong.stderr
    down = run("reference", "upload", str(csv), "--model", "price", "--url", "http://127.0.0.1:9")
    assert down.returncode == 3 and "cannot reach" in down.stderr
    offline = run(
        "reference",
        "upload",
        str(csv),
        "--model",
        "price",
        "--store",
        f"duckdb:///{tmp_path}/o.duckdb",
        "--config",
        str(write_spec(tmp_path)),
        "--json",
    )
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["rows"] == 2


def test_version_and_help() -> None:
    result = run("version")
    assert result.returncode == 0 and result.stdout.startswith("sustain ")
    assert run("--help").returncode == 0
    assert run("reference", "upload", "--help").returncode == 0
    unknown = run("frobnicate")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_make_run_demo_traffic_gets_its_reference_profiled(tmp_path: Path) -> None:
    """`make run` serves examples/sustain.yaml with --demo-traffic: drift must be computed, not 'insufficient'."""
    config = Path(__file__).resolve().parent.parent / "examples" / "sustain.yaml"
    env = {"SUSTAIN_TRANSFORM_INTERVAL": "0.5", "SUSTAIN_INDICATOR_INTERVAL": "0.5"}
    with ServerProcess(tmp_path, config, env=env, args=["--demo-traffic"]) as server:

        def judged() -> list[dict]:
            params = {"indicator": "drift", "latest": "true"}
            docs = httpx.get(f"{server.url}/v1/models/churn/indicators", params=params).json()["indicators"]
            return [d for d in docs if d["feature"] is not None and d["status"] != "insufficient"]

        assert wait_for(judged, timeout=60, what="a drift value on the demo traffic")
