from __future__ import annotations

import subprocess
import sys

import sustain


def test_all_names_resolve_and_nothing_else_is_public() -> None:
    for name in sustain.__all__:
        assert getattr(sustain, name) is not None
    assert sorted(sustain.__all__) == sorted(dir(sustain))


def test_the_client_import_stays_light() -> None:
    code = (
        "import sys, sustain; from sustain import Logger; "
        "heavy = [m for m in ('fastapi', 'duckdb', 'pyarrow', 'scipy', 'uvicorn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
