"""`sustain demo` as the README runs it: it ends with the retraining having happened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_ends_with_a_new_registered_version(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sustain.cli", "demo", "--dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["first_version"] == "1" and summary["new_version"] == "2"
    assert summary["accuracy_after"] > summary["accuracy_before"] + 0.1
    assert "ALERT drift-retrain fired" in result.stdout
    assert "trainer: retrained on" in result.stdout and "registered churn-demo version 2" in result.stdout
    assert (tmp_path / "mlflow.db").exists() and "Traceback" not in result.stderr
