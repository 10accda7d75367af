"""The package layering, checked on the source: which sustain packages may import which.

Imports flow one way, from the bottom tier up::

    errors, durations, timestamps, plotly_asset  <-  registry  <-  spec  <-  store, synthetic  <-  settings, transforms,
    collector  <-  indicators  <-  alerting  <-  engine  <-  backends  <-  dashboards, report,
    deploy_pipeline, inference  <-  api  <-  demo  <-  cli

A module may import its own package and any package of a lower tier; packages of one tier stay out of each
other. Imports under ``if TYPE_CHECKING:`` are annotations only and are not counted. Besides, only ``api``
and ``cli`` (and the HTTP servers listed in ``HTTP_SERVERS``) use FastAPI or Starlette, and only
``backends.elasticsearch`` uses the Elasticsearch client.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import sustain

ROOT = Path(sustain.__file__).resolve().parent

TIERS: list[set[str]] = [
    {
        "sustain._lazy",
        "sustain.errors",
        "sustain.durations",
        "sustain.timestamps",
        "sustain.plotly_asset",
        "sustain.loopback",
    },
    {"sustain", "sustain.registry"},
    {"sustain.spec"},
    {"sustain.store", "sustain.synthetic"},
    {"sustain.settings", "sustain.transforms", "sustain.collector"},
    {"sustain.indicators"},
    {"sustain.alerting"},
    {"sustain.engine"},
    {"sustain.backends"},
    {"sustain.dashboards", "sustain.report", "sustain.deploy_pipeline", "sustain.inference"},
    {"sustain.api"},
    {"sustain.demo"},
    {"sustain.cli"},
]

# The one upward edge, and why: the plugin conformance kit runs an indicator on a real embedded pipeline.
ALLOWED_UPWARD = {("sustain.indicators.checks", "sustain.backends")}

# Modules outside api/ and cli/ that serve HTTP themselves (a gateway, a local graph runner).
HTTP_SERVERS: set[str] = {"sustain.deploy_pipeline.graph.runner.app", "sustain.deploy_pipeline.release.gateway"}

WEB_FRAMEWORKS = ("fastapi", "starlette")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (absolute)
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every runtime import in a file, module-level or inside functions; ``if TYPE_CHECKING:`` skipped."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

    def walk(node: ast.AST) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    yield from walk(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, alias.name, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                yield Import(module, target, child.lineno)
                for alias in child.names:  # `from sustain.x import submodule`
                    yield Import(module, f"{target}.{alias.name}", child.lineno)
            yield from walk(child)

    yield from walk(tree)


def unit_of(module: str) -> str:
    """The layering unit of a sustain module: its top-level package (or top-level module)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def tier_of(unit: str) -> int | None:
    for rank, tier in enumerate(TIERS):
        if unit in tier:
            return rank
    return None


def existing_units(root: Path) -> set[str]:
    units = set()
    for path in root.rglob("*.py"):
        units.add(unit_of(module_name(path, root)))
    return units


def violations(root: Path) -> list[str]:
    """Sentences, one per forbidden import found under ``root`` (a ``sustain`` package directory)."""
    found: dict[str, None] = {}  # ordered, once each
    known = existing_units(root)
    for unit in sorted(known):
        if tier_of(unit) is None:
            found.setdefault(f"{unit} is in no tier of tests/test_architecture.py: place it")
    for path in sorted(root.rglob("*.py")):
        for imp in imports_of(path, root):
            where = f"{imp.module} (line {imp.line})"
            top = imp.target.split(".")[0]
            if top in WEB_FRAMEWORKS:
                unit = unit_of(imp.module)
                if unit not in ("sustain.api", "sustain.cli") and imp.module not in HTTP_SERVERS:
                    found.setdefault(f"{where} imports {top}: only api/ and cli/ may use it")
            if top == "elasticsearch" and not imp.module.startswith("sustain.backends.elasticsearch"):
                found.setdefault(f"{where} imports elasticsearch: the client belongs in backends/elasticsearch")
            if top != "sustain":
                continue
            source, target = unit_of(imp.module), unit_of(imp.target)
            if target not in known or source == target:
                continue
            rank_source, rank_target = tier_of(source), tier_of(target)
            if rank_source is None or rank_target is None:
                continue
            if (imp.module, target) in ALLOWED_UPWARD:
                continue
            if rank_target > rank_source:
                found.setdefault(f"{where} imports {target}: {source} may not depend on a higher tier")
            elif rank_target == rank_source:
                found.setdefault(f"{where} imports {target}: {source} and {target} are one tier; keep them apart")
    return list(found)


def test_the_package_layering_holds() -> None:
    problems = violations(ROOT)
    assert problems == [], "\n".join(problems)


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The check is not vacuous: on a copy of the package, one upward import is found and named."""
    copy = tmp_path / "sustain"
    for path in ROOT.rglob("*.py"):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert violations(copy) == []
    drift = copy / "indicators" / "drift.py"
    drift.write_text(drift.read_text(encoding="utf-8") + "\nfrom sustain.api.app import create_app\n")
    store = copy / "store" / "base.py"
    store.write_text(store.read_text(encoding="utf-8") + "\ndef f():\n    import fastapi\n")
    problems = violations(copy)
    assert any("sustain.indicators.drift" in p and "sustain.api" in p for p in problems), problems
    assert any("sustain.store.base" in p and "imports fastapi: only api/ and cli/" in p for p in problems), problems


def test_type_checking_imports_and_relative_imports_are_read_right(tmp_path: Path) -> None:
    pkg = tmp_path / "sustain" / "store"
    pkg.mkdir(parents=True)
    (tmp_path / "sustain" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sustain.api import app\nfrom .y import z\n"
    )
    found = {i.target for i in imports_of(pkg / "x.py", tmp_path / "sustain")}
    assert "sustain.store.y" in found and "sustain.api" not in found


@pytest.mark.parametrize("package", ["sustain", "sustain.indicators"])
def test_every_public_name_imports_in_a_fresh_process(package: str) -> None:
    """Each name in ``__all__`` resolves in a new interpreter, and nothing public is left out of ``__all__``."""
    code = f"""
import __future__, importlib, types
m = importlib.import_module({package!r})
missing = [n for n in m.__all__ if getattr(m, n, None) is None]
extra = sorted(
    n for n, v in vars(m).items()
    if not n.startswith("_") and n not in m.__all__
    and not isinstance(v, (types.ModuleType, __future__._Feature)) and n != "TYPE_CHECKING"
)
star = {{}}
exec("from {package} import *", star)
print(repr((missing, extra, sorted(k for k in star if not k.startswith("__")) == sorted(m.__all__))))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    missing, extra, star_is_all = eval(done.stdout.strip())
    assert missing == [], f"{package}.__all__ names that do not resolve: {missing}"
    assert extra == [], f"public names of {package} missing from __all__: {extra}"
    assert star_is_all
