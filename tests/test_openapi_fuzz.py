"""Schemathesis fuzzes every operation of /openapi.json against a real `sustain serve`: no answer is a 5xx.

The fuzzer lives in a venv of its own (tests/schemathesis/setup_venv.sh, which `make test` runs). The run is
bounded twice: a fixed number of examples per operation with a fixed seed, and a timeout on the process.
Admin operations are open here (no tokens, loopback), so specs, silences and hooks are fuzzed too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, write_spec

ROOT = Path(__file__).resolve().parents[1]
SCHEMATHESIS = ROOT / ".cache" / "schemathesis-venv" / "bin" / "schemathesis"
CONFIG = ROOT / "tests" / "schemathesis" / "schemathesis.toml"
EXAMPLES = 25  # per operation and phase
TIMEOUT = 900  # seconds for the whole run, whatever the machine's load


def test_fuzzing_the_openapi_schema_finds_no_server_error(tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail("Schemathesis is not installed: run `bash tests/schemathesis/setup_venv.sh` (make test does)")
    with ServerProcess(tmp_path, write_spec(tmp_path)) as server:
        command = [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "7",
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--request-timeout",
            "60",
            "--no-color",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
        log = server.log_path.read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "Traceback" not in log, log[-5000:]
    assert " 0 generated" not in done.stdout and "passed" in done.stdout
