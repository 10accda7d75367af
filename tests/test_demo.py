"""`sustain demo` as the README runs it: the retrained version is released by itself, promoted, serves the
traffic, and the drift alert resolves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(900)  # about three minutes; more on a busy machine, where it releases two versions
def test_demo_ends_with_the_new_version_promoted_and_the_alert_resolved(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sustain.cli", "demo", "--dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["first_version"] == "1" and summary["new_version"] == "2"
    assert summary["accuracy_after"] > summary["accuracy_before"] + 0.1
    assert "ALERT drift-retrain fired" in result.stdout
    assert "trainer: retrained on" in result.stdout and "registered churn-demo version 2" in result.stdout
    for stage in ("checked", "tested", "packaged", "deployed", "promoted"):
        assert f"release of version 2: ✓ {stage} in" in result.stdout, stage
    assert "traffic moved: the gateway answers with version 2" in result.stdout
    assert summary["alert_resolved"] is True and summary["failed_requests"] == 0
    assert summary["served"]["1"] > 0 and summary["served"]["2"] > 0
    assert (tmp_path / "mlflow.db").exists() and "Traceback" not in result.stderr
