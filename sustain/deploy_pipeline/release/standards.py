"""The standards a registered version must meet before any of its code runs (the ``checked`` stage).

Each standard is a :class:`Check` that names itself, says what it found, and when it fails, how to fix it.
They read only the downloaded model folder and the run's metadata.
"""

from __future__ import annotations

from sustain.deploy_pipeline.release.datasets import DataSource
from sustain.deploy_pipeline.release.mlflow_registry import RunInfo
from sustain.deploy_pipeline.release.model_folder import ModelFolder, unpinned_requirements
from sustain.spec.release import ReleaseSettings
from sustain.store.releases import Check


def _skipped(name: str) -> Check:
    return Check(name, True, f"not required (release.standards.{name}: false)", skipped=True)


def check_standards(
    folder: ModelFolder, run: RunInfo | None, settings: ReleaseSettings, training: DataSource | None
) -> list[Check]:
    standards = settings.standards
    checks = [
        _signature(folder) if standards.signature else _skipped("signature"),
        _input_example(folder) if standards.input_example else _skipped("input_example"),
        _requirements(folder) if standards.pinned_requirements else _skipped("pinned_requirements"),
        _training_data(run, training) if standards.training_data else _skipped("training_data"),
        _metrics(run, standards.required_metrics),
        _size(folder, standards.max_size_mb),
    ]
    return checks


def _signature(folder: ModelFolder) -> Check:
    inputs = folder.signature_inputs()
    if not inputs:
        return Check(
            "signature",
            False,
            "the model was logged without a signature, so requests cannot be checked against its inputs",
            "log it with an input example (log_model(..., input_example=X)) or signature=infer_signature(X, y)",
        )
    names = [str(c.get("name", "")) for c in inputs if c.get("name")]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return Check("signature", True, f"{len(inputs)} inputs" + (f": {shown}" if shown else ""))


def _input_example(folder: ModelFolder) -> Check:
    if folder.serving_example_path() is None:
        return Check(
            "input_example",
            False,
            "the model has no serving input example to test it with",
            "log it with log_model(..., input_example=a few rows of training data)",
        )
    return Check("input_example", True, "serving_input_example.json is present")


def _requirements(folder: ModelFolder) -> Check:
    lines = folder.requirements()
    if lines is None:
        return Check(
            "pinned_requirements",
            False,
            "the model has no requirements.txt, so its environment cannot be rebuilt",
            "log it with MLflow >= 2, which writes requirements.txt, or pass pip_requirements=[...]",
        )
    loose = unpinned_requirements(lines)
    if loose:
        return Check(
            "pinned_requirements",
            False,
            f"{len(loose)} requirement(s) are not pinned: {', '.join(loose[:5])}",
            "pin every package with == (pip_requirements=['scikit-learn==1.5.2', ...])",
        )
    return Check("pinned_requirements", True, f"{len([x for x in lines if x.strip()])} requirements, all pinned")


def _training_data(run: RunInfo | None, training: DataSource | None) -> Check:
    if training is not None:
        return Check("training_data", True, f"{training.what} at {training.uri}")
    logged = [d for d in run.datasets] if run is not None else []
    found = (
        f"the run logged {len(logged)} dataset(s) but none with a source that can be downloaded"
        if logged
        else "the run logged no training dataset"
    )
    return Check(
        "training_data",
        False,
        f"{found}, so monitoring has nothing to compare production with",
        "mlflow.log_input(mlflow.data.from_pandas(df, source='<path or s3:// URI of the file>'), context='training'), "
        "or declare release.reference (artifact: or path:) in the monitor spec",
    )


def _metrics(run: RunInfo | None, required: list[str]) -> Check:
    if not required:
        return Check("required_metrics", True, "none required", skipped=True)
    have = run.metrics if run is not None else {}
    missing = [m for m in required if m not in have]
    if missing:
        return Check(
            "required_metrics",
            False,
            f"the run did not log {', '.join(missing)}",
            f"mlflow.log_metric({missing[0]!r}, value) in the training run",
        )
    return Check("required_metrics", True, ", ".join(f"{m}={have[m]:.4g}" for m in required))


def _size(folder: ModelFolder, budget_mb: float) -> Check:
    size_mb = folder.size_bytes() / 1e6
    if size_mb > budget_mb:
        return Check(
            "size",
            False,
            f"the model's artifacts take {size_mb:.1f} MB, over the budget of {budget_mb:g} MB",
            "shrink the model, or raise release.standards.max_size_mb",
            value=size_mb,
        )
    return Check("size", True, f"{size_mb:.2f} MB of {budget_mb:g} MB", value=size_mb)
