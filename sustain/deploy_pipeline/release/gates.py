"""The ``tested`` stage: the version's code runs, in fresh processes, and must pass every gate.

* ``example`` — the serving input example is predicted by ``mlflow.models.predict`` (in :mod:`.probe`);
* ``latency`` — the p95 of predicting the example batch stays within ``release.latency_budget_ms``;
* ``evaluation`` — candidate and ``@champion`` predict the same labelled holdout; their metrics (MLflow's names,
  computed by sustain's own metric code) go through :func:`mlflow.validate_evaluation_results`;
* ``model_tests`` — the model's own pytest tests, with the loaded model as the ``model`` fixture.

The probe also predicts the training data, which becomes the version's reference with its outputs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sustain.deploy_pipeline.release.model_folder import ModelFolder
from sustain.spec import ModelSpec
from sustain.spec.release import GREATER_IS_BETTER, ReleaseSettings
from sustain.store.releases import Check

PROBE_TIMEOUT = 600.0
PROBE_MODULE = "sustain.deploy_pipeline.release.probe"
LATENCY_RUNS = 20


def child_env() -> dict[str, str]:
    """The environment of a child process: this interpreter's ``bin`` first on PATH (``mlflow models serve``
    starts ``uvicorn`` by name, and exits with 127 without it)."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": bin_dir + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1"}


@dataclass
class GateInputs:
    folder: ModelFolder
    settings: ReleaseSettings
    workdir: Path
    spec: ModelSpec | None = None
    champion: ModelFolder | None = None
    champion_version: str | None = None
    holdout: Path | None = None
    training: Path | None = None
    tests: list[Path] = field(default_factory=list)


@dataclass
class GateResults:
    checks: list[Check]
    reference_predictions: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)


def label_column(settings: ReleaseSettings) -> str:
    return settings.evaluation.label or "label"


class ProbeRunner:
    """Starts the probe processes, one per release; with ``warm``, the next one is started ahead, so its imports
    are done before a release needs it."""

    def __init__(self, warm: bool = False) -> None:
        self.warm = warm
        self._next: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        if warm:
            self._next = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", PROBE_MODULE, "--wait"]
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
            start_new_session=True,
        )

    def run(self, plan: Path) -> tuple[int, str]:
        """Run ``plan`` in a fresh process; (exit code, the end of its stderr)."""
        with self._lock:
            proc = self._next if self._next is not None and self._next.poll() is None else self._spawn()
            self._next = None
        try:
            _, err = proc.communicate(f"{plan}\n".encode(), timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return -1, f"the probe process did not finish in {PROBE_TIMEOUT:g} s"
        finally:
            if self.warm:
                with self._lock:
                    if self._next is None:
                        self._next = self._spawn()
        tail = " / ".join(err.decode(errors="replace").strip().splitlines()[-3:])
        return proc.returncode, tail

    def close(self) -> None:
        with self._lock:
            proc, self._next = self._next, None
        if proc is not None:
            _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        proc.communicate(timeout=10)


def run_gates(inputs: GateInputs, probe: ProbeRunner | None = None) -> GateResults:
    report = run_probe(inputs, probe or ProbeRunner())
    checks = [_example(report), _latency(report, inputs.settings.latency_budget_ms)]
    checks.append(evaluation_gate(inputs, report))
    checks.append(model_tests(inputs))
    reference = report.get("predictions", {}).get("reference", {})
    path = Path(reference["path"]) if reference.get("ok") else None
    return GateResults(checks, path, report)


def run_probe(inputs: GateInputs, probe: ProbeRunner) -> dict[str, Any]:
    out = inputs.workdir / "probe"
    out.mkdir(parents=True, exist_ok=True)
    example = inputs.folder.serving_example_path()
    drop = [label_column(inputs.settings)]
    jobs: list[dict[str, Any]] = []
    if inputs.holdout is not None:
        jobs.append(_job("holdout", inputs.folder.path, inputs.holdout, drop, out))
        if inputs.champion is not None:
            jobs.append(_job("champion_holdout", inputs.champion.path, inputs.holdout, drop, out))
    if inputs.training is not None:
        jobs.append(_job("reference", inputs.folder.path, inputs.training, drop, out))
    plan = {
        "model": str(inputs.folder.path),
        "example": str(example) if example else None,
        "latency_runs": LATENCY_RUNS,
        "predict": jobs,
        "out": str(out),
        "report": str(out / "report.json"),
    }
    plan_path = out / "plan.json"
    plan_path.write_bytes(orjson.dumps(plan))
    code, tail = probe.run(plan_path)
    report_path = out / "report.json"
    if code != 0 or not report_path.exists():
        return {"error": f"the probe process exited with {code}: {tail}"}
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    return report


def _job(name: str, model: Path, data: Path, drop: list[str], out: Path) -> dict[str, Any]:
    return {"name": name, "model": str(model), "data": str(data), "drop": drop, "out": str(out / f"{name}.json")}


def _example(report: dict[str, Any]) -> Check:
    if "error" in report:
        return Check("example", False, report["error"], "run the model locally: mlflow models predict -m <model> ...")
    part = report.get("example")
    if part is None:
        return Check("example", False, "there is no input example to predict", "log the model with input_example=...")
    if not part["ok"]:
        return Check(
            "example",
            False,
            f"predicting the serving input example failed: {part['error']}",
            "reproduce with: mlflow models predict -m <model folder> -i serving_input_example.json "
            "-t json --env-manager local",
        )
    return Check("example", True, f"the serving input example ({part['rows']} rows) predicted in a fresh process")


def _latency(report: dict[str, Any], budget_ms: float) -> Check:
    part = report.get("latency")
    if part is None or not part.get("ok"):
        why = part["error"] if part else "no example batch to time"
        return Check("latency", False, f"the latency could not be measured: {why}", "fix the input example first")
    p95 = float(part["p95_ms"])
    reason = f"p95 {p95:.1f} ms (p50 {part['p50_ms']:.1f} ms) for {part['rows']} rows, budget {budget_ms:g} ms"
    if p95 > budget_ms:
        return Check("latency", False, reason, "make prediction faster or raise release.latency_budget_ms", value=p95)
    return Check("latency", True, reason, value=p95)


# -- evaluation -----------------------------------------------------------------------------------
def _predicted_values(predictions: list[Any], spec: ModelSpec | None) -> list[Any]:
    """One predicted value per row: the label/number itself, or the spec's main output when rows are objects."""
    if not predictions or not isinstance(predictions[0], dict):
        return [p[0] if isinstance(p, list) and len(p) == 1 else p for p in predictions]
    names = [o.name for o in spec.outputs if o.kind in ("class_label", "regression")] if spec else []
    keys = list(predictions[0].keys())
    key = next((n for n in [*names, "prediction", "predictions", "label"] if n in keys), keys[0])
    return [p.get(key) for p in predictions]


def is_classifier(spec: ModelSpec | None, truth: list[Any]) -> bool:
    if spec is not None and spec.label is not None:
        return spec.label.kind == "class_label"
    return any(isinstance(v, str | bool) for v in truth[:100])


def holdout_metrics(truth: list[Any], predicted: list[Any], spec: ModelSpec | None) -> dict[str, float]:
    """The candidate's or champion's metrics on the holdout, under MLflow's metric names."""
    from sustain.indicators.metrics import classification_metrics, regression_metrics

    if is_classifier(spec, truth):
        y_true = [_text(v) for v in truth]
        y_pred = [_text(v) for v in predicted]
        declared = spec.label.classes if spec is not None and spec.label is not None else None
        classes = list(declared) if declared else sorted(set(y_true) | set(y_pred))
        if len(classes) < 2:
            classes = [*classes, "__other__"]
        y_pred = [p if p in classes else classes[0] for p in y_pred]
        positive = spec.label.positive_class if spec is not None and spec.label is not None else None
        m = classification_metrics(y_true, y_pred, None, classes, positive)
        names = {
            "accuracy": "accuracy_score",
            "precision": "precision_score",
            "recall": "recall_score",
            "f1": "f1_score",
            "f1_macro": "f1_score_macro",
        }
    else:
        m = regression_metrics([float(v) for v in truth], [float(v) for v in predicted])
        names = {
            "mae": "mean_absolute_error",
            "rmse": "root_mean_squared_error",
            "mape": "mean_absolute_percentage_error",
            "r2": "r2_score",
        }
    return {mlflow_name: float(m[ours]) for ours, mlflow_name in names.items() if m.get(ours) is not None}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def evaluation_gate(inputs: GateInputs, report: dict[str, Any]) -> Check:
    holdout = report.get("predictions", {}).get("holdout")
    if inputs.holdout is None:
        return Check(
            "evaluation",
            True,
            "no holdout to evaluate on",
            "log one with mlflow.log_input(..., context='evaluation') or set release.evaluation.data",
            skipped=True,
        )
    if holdout is None or not holdout.get("ok"):
        why = holdout["error"] if holdout else report.get("error", "the probe did not run")
        return Check("evaluation", False, f"the candidate could not predict the holdout: {why}")
    from sustain.deploy_pipeline.release.datasets import read_frame

    table = read_frame(inputs.holdout)
    column = label_column(inputs.settings)
    if column not in table.column_names:
        return Check(
            "evaluation",
            False,
            f"the holdout has no label column {column!r}",
            "name it label, or set release.evaluation.label",
        )
    truth = table.column(column).to_pylist()
    candidate = holdout_metrics(truth, _predicted_values(_load(holdout["path"]), inputs.spec), inputs.spec)
    baseline: dict[str, float] | None = None
    champion = report.get("predictions", {}).get("champion_holdout")
    if champion is not None:
        if not champion.get("ok"):
            return Check("evaluation", False, f"the champion could not predict the holdout: {champion['error']}")
        baseline = holdout_metrics(truth, _predicted_values(_load(champion["path"]), inputs.spec), inputs.spec)
    return validate(candidate, baseline, inputs.settings, inputs.champion_version, len(truth))


def _load(path: str) -> list[Any]:
    value: list[Any] = orjson.loads(Path(path).read_bytes())
    return value


def validate(
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
    settings: ReleaseSettings,
    champion_version: str | None,
    rows: int,
) -> Check:
    """Apply the thresholds with :func:`mlflow.validate_evaluation_results`."""
    import mlflow
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    primary = "accuracy_score" if "accuracy_score" in candidate else "root_mean_squared_error"
    gates = settings.evaluation.thresholds
    thresholds: dict[str, Any] = {}
    for name, gate in gates.items():
        relative = baseline is not None
        thresholds[name] = MetricThreshold(  # type: ignore[no-untyped-call]
            threshold=gate.threshold,
            min_absolute_change=gate.min_absolute_change if relative else None,
            min_relative_change=gate.min_relative_change if relative else None,
            greater_is_better=gate.greater(name),
        )
    if not gates and baseline is not None and primary in baseline:
        greater = GREATER_IS_BETTER[primary]
        tolerance = settings.evaluation.tolerance
        floor = baseline[primary] - tolerance if greater else baseline[primary] + tolerance
        thresholds[primary] = MetricThreshold(threshold=floor, greater_is_better=greater)  # type: ignore[no-untyped-call]
    vs = f" vs champion version {champion_version} {baseline.get(primary, float('nan')):.4f}" if baseline else ""
    summary = f"{primary} {candidate.get(primary, float('nan')):.4f}{vs} on {rows:,} holdout rows"
    if not thresholds:
        return Check("evaluation", True, f"{summary}; no champion and no thresholds to hold it to", value=None)
    try:
        mlflow.validate_evaluation_results(
            thresholds,
            EvaluationResult(candidate, {}, run_id="sustain"),  # type: ignore[no-untyped-call]
            EvaluationResult(baseline, {}, run_id="sustain") if baseline is not None else None,  # type: ignore[no-untyped-call]
        )
    except ModelValidationFailedException as exc:
        return Check(
            "evaluation",
            False,
            f"{summary}: {exc.message}",
            "improve the model, or change release.evaluation.thresholds",
            value=candidate.get(primary),
        )
    return Check("evaluation", True, f"{summary}: every threshold holds", value=candidate.get(primary))


# -- the model's own tests ----------------------------------------------------------------------------
def model_tests(inputs: GateInputs) -> Check:
    if not inputs.tests:
        return Check("model_tests", True, "the spec names no tests (release.tests)", skipped=True)
    missing = [str(p) for p in inputs.tests if not p.exists()]
    if missing:
        return Check("model_tests", False, f"test paths not found: {', '.join(missing)}", "fix release.tests")
    ini = inputs.workdir / "pytest.ini"
    ini.write_text("[pytest]\n")  # a neutral configuration: not sustain's, not whatever sits above the tests
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-c",
        str(ini),
        "--rootdir",
        str(inputs.workdir),
        "-p",
        "sustain.deploy_pipeline.release.pytest_plugin",
        "-p",
        "no:cacheprovider",
        *[str(p) for p in inputs.tests],
    ]
    env = {**child_env(), "SUSTAIN_RELEASE_MODEL": str(inputs.folder.path)}
    try:
        done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        return Check("model_tests", False, f"the model's tests did not finish in {PROBE_TIMEOUT:g} s")
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    (inputs.workdir / "model_tests.log").write_bytes(done.stdout + done.stderr)
    summary = lines[-1] if lines else f"pytest exited with {done.returncode}"
    if done.returncode != 0:
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))][:3]
        detail = "; ".join(failed) or summary
        return Check("model_tests", False, f"{summary}: {detail}", "run the tests against the model and fix them")
    return Check("model_tests", True, summary.strip("= "))
