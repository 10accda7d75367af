"""`sustain graph validate | render | serve | apply`: sentences and exit codes, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.graph_schemas import problems

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "graphs"
STORAGE = "name: churn\nnodes:\n  score: {model: s3://mlflow/1/models/m-1/artifacts}\nmonitor: {model: churn}\n"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "MLFLOW_TRACKING_URI")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sustain.cli", "graph", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
    )


def test_validate_prints_the_graph_or_every_problem_with_its_line(tmp_path: Path) -> None:
    good = run("validate", str(EXAMPLES / "transformer.yaml"))
    assert good.returncode == 0, good.stderr
    assert "churn-prep" in good.stdout and "valid graph of 2 nodes" in good.stdout
    deep = tmp_path / ("a-folder-name-long-enough-to-push-the-sentence-past-eighty-columns-" * 2) / "transformer.yaml"
    deep.parent.mkdir()
    deep.write_text((EXAMPLES / "transformer.yaml").read_text())
    long_line = run("validate", str(deep))
    assert f"ok: {deep} is a valid graph of 2 nodes" in long_line.stdout.splitlines(), long_line.stdout  # unwrapped
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: g\nnodes:\n  a: {model: models:/m/1}\n  b: {model: models:/m/2}\nedges:\n  - a -> b\n  - b -> a\n"
    )
    result = run("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:7: edge b -> a closes a cycle: a -> b -> a" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    missing = run("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_render_writes_manifests_and_charts(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(STORAGE)
    out = tmp_path / "out"
    result = run("render", str(graph), "--target", "seldon", "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    assert [m["kind"] for m in manifests] == ["Secret", "ConfigMap", "Service", "SeldonDeployment"]
    assert all(problems(m) == [] for m in manifests)
    chart = tmp_path / "chart"
    assert run("render", str(graph), "--target", "helm", "--out", str(chart)).returncode == 0
    assert (chart / "Chart.yaml").exists() and (chart / "templates" / "seldondeployment.yaml").exists()
    registered = run("render", str(EXAMPLES / "single.yaml"), "--target", "kserve", "--out", str(out))
    assert registered.returncode == 2 and "set MLFLOW_TRACKING_URI" in registered.stderr


def test_apply_without_kubeconfig_is_a_sentence_and_exit_code_2() -> None:
    result = run("apply", str(EXAMPLES / "single.yaml"))
    assert result.returncode == 2
    assert "KUBECONFIG is not set, so there is no cluster to apply to" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_code_node_it_cannot_import(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        "name: g\nnodes:\n  t: {transformer: {code: nowhere.prep:Prep}}\n  m: {model: s3://b/m}\nedges: [t -> m]\n"
    )
    result = run("serve", str(graph), "--port", "0")
    assert result.returncode == 2 and "cannot import nowhere.prep" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.live_k8s
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a cluster: set KUBECONFIG")
def test_apply_dry_runs_on_a_live_cluster(tmp_path: Path) -> None:
    graph = tmp_path / "graph.yaml"
    graph.write_text(STORAGE)
    result = run("apply", str(graph), "--dry-run", env={"KUBECONFIG": os.environ["KUBECONFIG"]})
    assert result.returncode in (0, 3), result.stderr  # 3: the cluster lacks Seldon's CRD, said in a sentence
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        assert "objects passed the dry-run" in result.stdout
    else:
        assert "install its operator" in result.stderr or "refused" in result.stderr
