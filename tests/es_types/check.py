"""Check Elasticsearch request bodies against Elastic's published TypeScript API types.

Each body is written as ``const bN: <type> = <json>;`` into one TypeScript file that
imports ``@elastic/elasticsearch/lib/api/types`` (the 8.19 client pinned in
``package.json``), and ``tsc --noEmit --strict --skipLibCheck`` runs once over it.
Excess-property checks make typos fail (``"tiem"`` in ``sync``, an ``"avgg"``
aggregation), wrong value types fail, and so do missing required fields.

The npm packages are installed into ``node_modules`` next to this file on first use
(``npm install --no-audit --no-fund``, under a file lock so parallel test workers
install once).

Usage::

    errors = check_bodies([("Omit<T.IngestPutPipelineRequest, 'id'>", {"processors": []})])
    assert errors == [], "\n".join(errors)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TYPES_MODULE = "@elastic/elasticsearch/lib/api/types"
TSC_FLAGS = ("--noEmit", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "commonjs")
INSTALL_TIMEOUT = 600
TSC_TIMEOUT = 600

_DIAGNOSTIC = re.compile(r"^(?P<file>.+?)\((?P<line>\d+),(?P<col>\d+)\): (?P<message>.*)$")


def tsc_available() -> bool:
    """Whether node, npm and npx are on PATH (the packages themselves are installed on demand)."""
    return all(shutil.which(tool) is not None for tool in ("node", "npm", "npx"))


def _installed() -> bool:
    modules = HERE / "node_modules"
    return (modules / "typescript" / "bin" / "tsc").is_file() and (modules / f"{TYPES_MODULE}.d.ts").is_file()


def ensure_installed() -> None:
    """Install the pinned npm packages next to this file unless they are already there."""
    if _installed():
        return
    with open(HERE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        if done.returncode != 0 or not _installed():
            raise RuntimeError(f"npm install failed in {HERE.name}/ ({done.returncode}):\n{done.stdout}{done.stderr}")


def _render(bodies: Sequence[tuple[str, Any]]) -> tuple[str, list[tuple[int, int, str]], list[str]]:
    """The TypeScript source, each body's (first line, last line, label), and bodies that are not JSON."""
    lines = [f"import type * as T from '{TYPES_MODULE}';", ""]
    spans: list[tuple[int, int, str]] = []
    problems: list[str] = []
    for n, (type_expression, body) in enumerate(bodies):
        label = f"b{n} ({type_expression})"
        try:
            literal = json.dumps(body, indent=2, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            problems.append(f"{label}: not JSON: {exc}")
            continue
        first = len(lines) + 1
        lines.extend(f"const b{n}: {type_expression} = {literal};".split("\n"))
        spans.append((first, len(lines), label))
        lines.append("")
    return "\n".join(lines) + "\n", spans, problems


def _explain(output: str, source_lines: list[str], spans: list[tuple[int, int, str]]) -> list[str]:
    """tsc diagnostics as ``b<N> (<type>) line <L>: <message> | <source line>``, continuation lines kept."""
    errors: list[str] = []
    for raw in output.splitlines():
        match = _DIAGNOSTIC.match(raw)
        if match is None:
            if raw.strip() and errors:
                errors[-1] += " " + raw.strip()
            elif raw.strip():
                errors.append(raw.strip())
            continue
        line = int(match["line"])
        label = next((lab for first, last, lab in spans if first <= line <= last), "header")
        first = next((f for f, last, _ in spans if f <= line <= last), 1)
        text = source_lines[line - 1].strip() if 0 < line <= len(source_lines) else ""
        errors.append(f"{label} line {line - first + 1}: {match['message']} | {text}")
    return errors


def check_bodies(bodies: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """tsc's complaints about ``bodies`` (TypeScript type expression over ``T``, body); empty when all are valid.

    Type expressions name the request types of ``@elastic/elasticsearch``, usually without
    their path parameter, e.g. ``Omit<T.TransformPutTransformRequest, 'transform_id'>``.
    """
    ensure_installed()
    source, spans, problems = _render(bodies)
    handle, name = tempfile.mkstemp(prefix="bodies-", suffix=".ts", dir=HERE)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(source)
        done = subprocess.run(
            ["npx", "--no", "--", "tsc", *TSC_FLAGS, Path(name).name],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=TSC_TIMEOUT,
            check=False,
        )
    finally:
        os.unlink(name)
    if done.returncode == 0:
        return problems
    errors = _explain(done.stdout + done.stderr, source.split("\n"), spans)
    return problems + (errors or [f"tsc exited with {done.returncode} and said nothing"])
