"""The indicators core stays free of the service's heavy dependencies (a plugin author's test run needs none)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sustain.indicators
import sustain.transforms

FORBIDDEN = ("fastapi", "starlette", "uvicorn", "elasticsearch", "redis", "kubernetes")


def core_modules() -> list[str]:
    names = []
    for package in (sustain.indicators, sustain.transforms):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            names.append(info.name)
    return names


def test_indicator_core_imports_no_service_dependency() -> None:
    modules = core_modules()
    assert "sustain.indicators.drift" in modules and "sustain.indicators.stats.binned" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "", f"the indicators core imported {found}"


def test_elasticsearch_adapters_import_without_the_client_loaded() -> None:
    code = (
        "import importlib, pkgutil, sys, sustain.backends.elasticsearch as p\n"
        "names = [i.name for i in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names), 'elasticsearch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    count, loaded = out.split()
    assert int(count) >= 10 and loaded == "False"
