from __future__ import annotations

import subprocess
import sys

import sustain


def test_dir_lists_the_public_names() -> None:
    """``dir(sustain)`` shows the public API, not the lazy machinery (the names themselves are checked in a fresh
    process by tests/test_architecture.py)."""
    assert dir(sustain) == sorted(sustain.__all__) and "Logger" in dir(sustain)


def test_the_client_import_stays_light() -> None:
    code = (
        "import sys, sustain; from sustain import Logger; "
        "heavy = [m for m in ('fastapi', 'duckdb', 'pyarrow', 'scipy', 'uvicorn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
