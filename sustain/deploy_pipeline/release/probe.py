"""The tests that run model code, in a fresh process: ``python -m sustain.deploy_pipeline.release.probe PLAN``.

A model is arbitrary code (a pickle, a custom ``PythonModel``); sustain never loads one into its own service.
This module is started once per release with a JSON plan and writes a JSON report beside it:

* ``example`` — the version's serving input example predicted by ``mlflow.models.predict`` (``env_manager``
  ``local``), the way the scoring server will parse it;
* ``latency`` — the example batch predicted ``runs`` times by the loaded model after one warm-up (p50, p95);
* ``predictions`` — named data files (a holdout, the training data) predicted by a model (the candidate or
  the champion), written as JSON lists for the service to score and to profile.

The service keeps one process started ahead (``--wait``: MLflow and pandas imported, no model loaded), so a
release does not wait for those imports; each process serves one release and exits.

Each part fails on its own, with the exception's text, so a report always says which part broke and why.
Only the standard library, MLflow and pandas are imported: the probe runs wherever the model runs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

SERVING_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def _jsonable(predictions: Any) -> list[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return [{str(k): _scalar(v) for k, v in row.items()} for row in predictions.to_dict(orient="records")]
    if isinstance(predictions, pd.Series):
        return [_scalar(v) for v in predictions.tolist()]
    if isinstance(predictions, np.ndarray):
        return [_scalar(v) for v in predictions.tolist()]
    if isinstance(predictions, dict):
        return [{str(k): _scalar(v) for k, v in predictions.items()}]
    return [_scalar(v) for v in list(predictions)]


def _scalar(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value.tolist() if hasattr(value, "tolist") else str(value)
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    return value


def _example(model_dir: str, example: str, out: Path) -> dict[str, Any]:
    import mlflow.models

    target = out / "example_predictions.json"
    mlflow.models.predict(  # type: ignore[no-untyped-call]
        model_uri=model_dir, input_path=example, content_type="json", output_path=str(target), env_manager="local"
    )
    body = json.loads(target.read_text())
    predictions = body.get("predictions", body) if isinstance(body, dict) else body
    return {"ok": True, "rows": len(predictions) if isinstance(predictions, list) else 1, "predictions": predictions}


def _example_frame(model: Any, example: str) -> Any:
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    body = json.loads(Path(example).read_text())
    data = {k: v for k, v in body.items() if k in SERVING_FORMATS}
    return infer_and_parse_data(data, model.metadata.get_input_schema())


def _latency(model: Any, example: str, runs: int) -> dict[str, Any]:
    frame = _example_frame(model, example)
    model.predict(frame)  # warm-up: first calls pay for lazy imports and caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.predict(frame)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"ok": True, "runs": runs, "rows": len(frame), "p50_ms": statistics.median(times), "p95_ms": p95}


def _read(path: str) -> Any:
    import pandas as pd

    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if lower.endswith(".csv"):
        return pd.read_csv(path)
    if lower.endswith((".json", ".jsonl", ".ndjson")):
        return pd.read_json(path, lines=lower.endswith(("l", "ndjson")))
    return pd.read_parquet(path)


def _predict(models: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    model = _loaded(models, job["model"])
    frame = _read(job["data"])
    features = frame.drop(columns=[c for c in job.get("drop", []) if c in frame.columns])
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        features = features[[n for n in schema.input_names() if n in features.columns]]
    predictions = _jsonable(model.predict(features))
    Path(job["out"]).write_text(json.dumps(predictions))
    return {"ok": True, "rows": len(predictions), "path": job["out"]}


def _part(fn: Any, *args: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result: dict[str, Any] = fn(*args)
    except Exception as exc:
        result = {"ok": False, "error": _error(exc)}
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _loaded(models: dict[str, Any], model_dir: str) -> Any:
    import mlflow.pyfunc

    if model_dir not in models:
        models[model_dir] = mlflow.pyfunc.load_model(model_dir)
    return models[model_dir]


def run(plan: dict[str, Any]) -> dict[str, Any]:
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"predictions": {}}
    model_dir, example = plan["model"], plan.get("example")
    models: dict[str, Any] = {}
    if example:
        report["example"] = _part(_example, model_dir, example, out)
        if plan.get("latency_runs"):
            report["latency"] = _part(lambda: _latency(_loaded(models, model_dir), example, int(plan["latency_runs"])))
    for job in plan.get("predict", []):
        report["predictions"][job["name"]] = _part(_predict, models, job)
    return report


def main(argv: list[str]) -> int:
    """``probe PLAN`` runs a plan; ``probe --wait`` imports MLflow and pandas first, then reads the path of its one
    plan from stdin (a process started ahead of the release it serves: fresh, no model loaded yet)."""
    import logging
    import warnings

    warnings.simplefilter("ignore")  # a model's library warnings are not test failures here
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if argv[1] == "--wait":
        # Imported ahead, while no release waits.
        import mlflow.models
        import mlflow.pyfunc.scoring_server  # noqa: F401
        import pandas  # noqa: F401

        line = sys.stdin.readline().strip()
        if not line:
            return 0  # the service closed: no release came
        plan_path = Path(line)
    else:
        plan_path = Path(argv[1])
    plan = json.loads(plan_path.read_text())
    report = run(plan)
    Path(plan["report"]).write_text(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
