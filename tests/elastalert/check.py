"""Validate ElastAlert2 rule files with the real ElastAlert2 (2.31), offline, in its own Python 3.12 venv.

``setup_venv.sh`` builds ``<repo>/.cache/elastalert-venv``. Two checks need no Elasticsearch:

* ``elastalert-test-rule --config <config> --schema-only <rule>`` for every rule (exit status 0 required): the
  JSON schema of ``elastalert/schema.yaml`` and the option conversion;
* once, :data:`LOADER` through the venv's python: ``load_conf(args)`` then ``conf['rules_loader'].load(conf,
  args)``, which also instantiates every rule type and alerter (required options such as ``http_post2_url``,
  ``metric_agg_type`` values, duplicate names). It reports each rule's name, file, type class and alerter
  classes as JSON.

Run by hand: ``python -m tests.elastalert.check DIR`` validates ``DIR/config.yaml`` and ``DIR/rules/*.yaml``.

>>> problems_of_run(["elastalert-test-rule", "r.yaml"], 0, "", "")
[]
>>> problems_of_run(["elastalert-test-rule", "r.yaml"], 1, "", "Traceback ...\\nEAException: bad\\n{'name': 1}\\n")
['elastalert-test-rule r.yaml exited with 1: EAException: bad']
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / ".cache" / "elastalert-venv"
SETUP = HERE / "setup_venv.sh"
TIMEOUT = 300

# Runs in the ElastAlert2 venv with the working directory of config.yaml (rules_folder is relative to it).
LOADER = """
import argparse, json, os, sys
from elastalert.config import load_conf


def explain(exc):
    # the jsonschema error behind a loader exception, narrowed to the branch of the rule's own type
    while exc is not None:
        if type(exc).__name__ == 'ValidationError' and hasattr(exc, 'schema_path'):
            branches = {}
            for err in exc.context or []:
                branches.setdefault(err.schema_path[0], []).append(err)
            for errs in branches.values():
                if not any(list(e.path) == ['type'] for e in errs):
                    return '; '.join(f"{'.'.join(map(str, e.path)) or 'rule'}: {e.message}" for e in errs)
            return f"{'.'.join(map(str, exc.path)) or 'rule'}: {exc.message}"[:300]
        exc = exc.__cause__ or exc.__context__
    return None


config, out = sys.argv[1], sys.argv[2]
args = argparse.Namespace(config=config, rule=None, debug=False, verbose=False, es_debug=False,
                          es_debug_trace=None, silence=None, start=None, end=None)
try:
    conf = load_conf(args)
    rules = conf['rules_loader'].load(conf, args)
except Exception as exc:
    first = (str(exc).splitlines() or [''])[0]
    report = {"error": f"{type(exc).__name__}: {first}", "detail": explain(exc)}
else:
    report = {
        "rules_folder": os.path.abspath(conf['rules_folder']) if isinstance(conf['rules_folder'], str) else None,
        "rules": [
            {
                "name": rule['name'],
                "file": os.path.abspath(rule['rule_file']),
                "type": type(rule['type']).__name__,
                "alerters": [type(alerter).__name__ for alerter in rule['alert']],
                "urls": [url for alerter in rule['alert'] for url in (getattr(alerter, 'post_url', None) or [])],
            }
            for rule in rules
        ],
    }
with open(out, 'w') as fh:
    json.dump(report, fh)
"""


@dataclass
class Report:
    """What the checks found: ``problems`` (empty when every file is valid) and the rules the loader loaded."""

    problems: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)

    def rule(self, name: str) -> dict[str, Any]:
        """The loaded rule called ``name`` (KeyError when the loader did not load it)."""
        for rule in self.rules:
            if rule["name"] == name:
                return rule
        raise KeyError(name)


def python312() -> str | None:
    """The Python 3.12 interpreter ``setup_venv.sh`` would use, or None when there is none."""
    if not shutil.which("bash"):
        return None
    found = subprocess.run(["bash", str(SETUP), "--print-python"], capture_output=True, text=True, check=False)
    return (found.stdout.strip() or None) if found.returncode == 0 else None


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Build the ElastAlert2 venv unless it is up to date (raises RuntimeError with the script's output)."""
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{SETUP.name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): .*")


def _last_exception(text: str) -> str:
    """The last ``SomeError: message`` line of a traceback (else the last line), at most 300 characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    found = [line for line in lines if _EXCEPTION.match(line)]
    line = (found or lines or ["(no output)"])[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def problems_of_run(command: list[str], returncode: int, stdout: str, stderr: str) -> list[str]:
    """A sentence for a failed command: its exit status and the exception it ended with."""
    if returncode == 0:
        return []
    shown = " ".join(Path(part).name if "/" in part else part for part in command)
    return [f"{shown} exited with {returncode}: {_last_exception(stderr or stdout)}"]


def _run(command: list[str], cwd: Path, shown: list[str] | None = None) -> list[str]:
    try:
        done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return [f"{' '.join(shown or command)} did not finish in {TIMEOUT} s"]
    return problems_of_run(shown or command, done.returncode, done.stdout, done.stderr)


def schema_problems(rule_files: list[Path], config_file: Path) -> list[str]:
    """``elastalert-test-rule --schema-only`` on every rule file, a few at a time."""
    test_rule = str(VENV / "bin" / "elastalert-test-rule")
    cwd = config_file.resolve().parent

    def one(rule: Path) -> list[str]:
        return _run([test_rule, "--config", str(config_file.resolve()), "--schema-only", str(rule.resolve())], cwd)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return [problem for found in pool.map(one, rule_files) for problem in found]


def load_all(rule_files: list[Path], config_file: Path) -> Report:
    """Load every rule of ``config_file``'s rules_folder with ElastAlert2's own loader, as ElastAlert2 starts."""
    report = Report()
    with tempfile.TemporaryDirectory(prefix="elastalert-check-") as tmp:
        out = Path(tmp) / "loaded.json"
        command = [str(venv_python()), "-c", LOADER, str(config_file.resolve()), str(out)]
        report.problems += _run(command, config_file.resolve().parent, ["elastalert-loader", config_file.name])
        if report.problems:
            return report
        loaded = json.loads(out.read_text(encoding="utf-8"))
    if "error" in loaded:
        detail = f" ({loaded['detail']})" if loaded.get("detail") else ""
        report.problems.append(f"ElastAlert2's loader refused the rules: {loaded['error']}{detail}")
        return report
    report.rules = loaded["rules"]
    files = {rule["file"] for rule in report.rules}
    for path in rule_files:
        if str(path.resolve()) not in files:
            report.problems.append(f"{path}: not loaded; is it under rules_folder {loaded['rules_folder']}?")
    given = {str(path.resolve()) for path in rule_files}
    for extra in sorted(files - given):
        report.problems.append(f"{extra}: loaded from rules_folder but not among the files to check")
    return report


def check(rule_files: list[Path], config_file: Path) -> Report:
    """Both checks; the venv must exist (:func:`ensure_venv`)."""
    if not (VENV / "bin" / "elastalert-test-rule").exists():
        return Report([f"no ElastAlert2 venv at {VENV}; run {SETUP.relative_to(REPO)}"])
    problems = schema_problems(rule_files, config_file)
    loaded = load_all(rule_files, config_file)
    return Report(problems + loaded.problems, loaded.rules)


def validate(rule_files: list[Path], config_file: Path) -> list[str]:
    """The problems ElastAlert2 2.31 finds in ``rule_files`` with ``config_file`` (empty: all valid)."""
    return check(rule_files, config_file).problems


def run_on_documents(
    rule_file: Path, config_file: Path, documents: list[dict[str, Any]], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one rule over ``documents`` offline, sending real alerts (``elastalert-test-rule --data --alert``).

    ElastAlert2 does not apply the rule's ``filter`` to such documents, and aggregation rules find nothing
    without Elasticsearch: this exercises document rules (any, frequency) and their alerters.
    """
    with tempfile.TemporaryDirectory(prefix="elastalert-data-") as tmp:
        data = Path(tmp) / "documents.json"
        data.write_text(json.dumps(documents), encoding="utf-8")
        command = [
            str(VENV / "bin" / "elastalert-test-rule"),
            *("--config", str(config_file.resolve()), "--data", str(data), "--alert", str(rule_file.resolve())),
        ]
        return subprocess.run(
            command,
            cwd=config_file.resolve().parent,
            env=_env() | (env or {}),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.elastalert.check DIR  (DIR holds config.yaml and rules/)", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    ensure_venv()
    report = check(sorted((folder / "rules").glob("*.yaml")), folder / "config.yaml")
    for rule in report.rules:
        print(f"{rule['name']}: {rule['type']} -> {', '.join(rule['alerters'])}")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
