"""The release pipeline's figures, each beside a baseline measured in the same run.

A live MLflow tracking server (sqlite, its start not counted) and a real ``sustain serve --registry`` that
registers its own MLflow webhook. For the demo's churn model:

1. registration → candidate serving: from the moment MLflow has created the version to the moment the gateway
   answers with it (webhook, standards, tests in a fresh process, evaluation against the champion, packaging,
   a scoring server started, monitoring attached). Baseline: ``mlflow models serve`` of the same model folder,
   from its start to its first answer (serving with no checks at all);
2. promote and rollback, as the CLI's HTTP call sees them (aliases moved in MLflow, routes switched, history
   recorded). Baseline: one ``set_registered_model_alias`` call to the same MLflow server;
3. failed requests among 1,000 sent through the gateway by 4 clients while promote and rollback happen.

Run: .venv/bin/python benchmarks/release.py            (about three minutes, plus MLflow's start)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import ServerProcess, wait_for, write_spec
from tests.release_support import CHURN_SPEC, MlflowServer, Requests, register_churn, serving_rows

SECRET = "benchmark-secret"


def _answers_with(url: str, version: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        r = httpx.post(f"{url}/serving/churn/invocations", json={"dataframe_records": serving_rows(1)}, timeout=10)
        return r.status_code == 200 and r.headers.get("x-sustain-version") == version
    return False


def registration_to_serving(
    mlflow: MlflowServer, sustain: ServerProcess, data: Path, seed: int, drifted: bool
) -> float:
    """Seconds from the version's creation in MLflow to the gateway answering with it (the candidate share is
    100% here, so the first answer after deployment comes from it)."""
    from mlflow import MlflowClient

    version = register_churn(mlflow.url, data, seed=seed, drifted=drifted)
    created = MlflowClient(mlflow.url).get_model_version("churn", version).creation_timestamp / 1000
    wait_for(lambda: _answers_with(sustain.url, version), 900, f"version {version} serving")
    seconds = time.time() - created
    state = httpx.get(f"{sustain.url}/v1/releases/churn/{version}", timeout=30).json()
    stages = ", ".join(f"{s['stage']} {s['seconds']:.1f}" for s in state["stages"])
    print(f"  version {version}: {seconds:.1f} s ({stages})", flush=True)
    return seconds


def plain_serve(model_dir: Path) -> float:
    """Seconds for ``mlflow models serve`` of the same model folder to answer its first request."""
    from sustain.deploy_pipeline.release.scoring import ScoringServer

    server = ScoringServer("churn", "baseline", model_dir, model_dir.parent / "baseline")
    started = time.monotonic()
    server.start()
    try:
        server.wait_ready(600)
        httpx.post(f"{server.url}/invocations", json={"dataframe_records": serving_rows(1)}, timeout=60)
        return time.monotonic() - started
    finally:
        server.stop()


def switch_under_traffic(sustain: ServerProcess, total: int = 1000) -> tuple[float, float, Counter[int]]:
    requests = Requests(f"{sustain.url}/serving/churn/invocations", total)
    wait_for(lambda: requests.done >= total // 4, 600, "traffic before the promotion")
    started = time.monotonic()
    httpx.post(f"{sustain.url}/v1/releases/churn/promote", timeout=300).raise_for_status()
    promote = time.monotonic() - started
    wait_for(lambda: requests.done >= total * 6 // 10, 600, "traffic before the rollback")
    started = time.monotonic()
    httpx.post(f"{sustain.url}/v1/releases/churn/rollback", timeout=300).raise_for_status()
    rollback = time.monotonic() - started
    requests.join()
    return promote, rollback, requests.statuses


def alias_call(mlflow: MlflowServer, version: str, repeat: int = 5) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow.url)
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        client.set_registered_model_alias("churn", "benchmark", version)
        times.append(time.monotonic() - started)
    client.delete_registered_model_alias("churn", "benchmark")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests sent during promote and rollback")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sustain-bench-release-"))
    print(f"working in {root}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    started = time.monotonic()
    mlflow = MlflowServer(root / "mlflow").start()
    print(f"MLflow server started in {time.monotonic() - started:.1f} s (not counted)", flush=True)
    spec = CHURN_SPEC.replace("windows: [10s, 1h]", "windows: [10s, 1h]\n    release: {canary_percent: 100}")
    env = {"SUSTAIN_MLFLOW_WEBHOOK_SECRET": SECRET, "SUSTAIN_RELEASE_DIR": str(root / "releases")}
    try:
        with ServerProcess(
            root, write_spec(root, spec), env=env, args=["--registry", mlflow.url, "--release-poll", "0"]
        ) as sustain:
            print("registration -> candidate serving (webhook, every stage, a scoring server, monitoring):", flush=True)
            first = registration_to_serving(mlflow, sustain, root / "data", seed=1, drifted=False)
            httpx.post(f"{sustain.url}/v1/releases/churn/1/promote", timeout=300).raise_for_status()
            second = registration_to_serving(mlflow, sustain, root / "data", seed=2, drifted=True)
            baseline_serve = plain_serve(root / "releases" / "churn" / "1" / "model")
            promote, rollback, statuses = switch_under_traffic(sustain, args.requests)
            alias = alias_call(mlflow, "1")
    finally:
        mlflow.stop()
    failed = sum(n for status, n in statuses.items() if status != 200)
    rows = [
        ("registration -> candidate serving, first version", f"{first:.1f} s", f"{baseline_serve:.1f} s", "<= 60 s"),
        ("registration -> candidate serving, vs a champion", f"{second:.1f} s", f"{baseline_serve:.1f} s", "<= 60 s"),
        ("promote (aliases, route switch, history)", f"{promote:.2f} s", f"{alias:.2f} s", "<= 2 s"),
        ("rollback (one alias flip back, route switch)", f"{rollback:.2f} s", f"{alias:.2f} s", "<= 2 s"),
        (f"failed requests of {sum(statuses.values()):,} during both", str(failed), "-", "0"),
    ]
    print()
    print(f"{'':52} {'sustain':>10} {'baseline':>10} {'target':>9}")
    for name, ours, base, target in rows:
        print(f"{name:52} {ours:>10} {base:>10} {target:>9}")
    print(
        "\nbaselines: `mlflow models serve` of the same model from start to first answer; one MLflow "
        f"set_registered_model_alias call (median of 5). Load average at the end {os.getloadavg()[0]:.1f}."
    )


if __name__ == "__main__":
    main()
