"""Standards, gates and packaging on real MLflow model folders (saved locally; no tracking server needed).

The gates run the real probe in a fresh process and the model's own tests with pytest; the Dockerfile is
linted by hadolint and the SeldonDeployment validated against Seldon's published CRD schema.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sustain.deploy_pipeline.graph import admission_errors
from sustain.deploy_pipeline.release.datasets import training_source
from sustain.deploy_pipeline.release.gates import GateInputs, run_gates
from sustain.deploy_pipeline.release.manifests import release_manifests
from sustain.deploy_pipeline.release.mlflow_registry import DatasetRef, RunInfo
from sustain.deploy_pipeline.release.model_folder import ModelFolder
from sustain.deploy_pipeline.release.package import Bundle, package
from sustain.deploy_pipeline.release.standards import check_standards
from sustain.spec.loader import load_config_text
from sustain.spec.release import ReleaseSettings
from tests.release_support import CHURN_SPEC, _churn

SCHEMAS = Path(__file__).resolve().parents[1] / ".." / "shared" / "schemas" / "seldon"
SPEC = load_config_text(CHURN_SPEC).models[0]


def save_model(path: Path, *, seed: int = 1, drifted: bool = False, example: bool = True, rename: bool = False) -> Path:
    import mlflow.sklearn

    churn = _churn()
    frame, truth = churn.customers(1500, drifted=drifted, seed=seed)
    model = churn.train(frame, truth)
    sample = frame.head(5).rename(columns={"tenure_months": "tenure"}) if rename else frame.head(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own warnings while it logs (pandas 3 deprecations)
        signature = None
        if rename:  # the signature follows the example, so it is the example that fails
            from mlflow.models import infer_signature

            signature = infer_signature(sample, model.predict(frame.head(5)))
        mlflow.sklearn.save_model(model, str(path), input_example=sample if example else None, signature=signature)
    return path


def save_data(path: Path, *, seed: int, drifted: bool = False, rows: int = 600) -> Path:
    frame, truth = _churn().customers(rows, drifted=drifted, seed=seed)
    frame.assign(label=truth).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "good": save_model(root / "good"),
        "drifted": save_model(root / "drifted", seed=2, drifted=True),
        "bare": save_model(root / "bare", example=False),
        "renamed": save_model(root / "renamed", rename=True),
    }


def _by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def test_a_well_logged_model_meets_every_standard(models: dict[str, Path]) -> None:
    run = RunInfo("r1", {"accuracy": 0.8}, (DatasetRef("training", "training", "local", "/data/train.parquet"),))
    settings = ReleaseSettings.model_validate({"standards": {"required_metrics": ["accuracy"]}})
    checks = check_standards(ModelFolder(models["good"]), run, settings, training_source(run, settings))
    assert all(c.ok for c in checks), [c.sentence() for c in checks if not c.ok]
    by = _by_name(checks)
    assert by["signature"].reason.startswith("5 inputs: tenure_months") and by["required_metrics"].reason == (
        "accuracy=0.8"
    )


def test_each_broken_standard_names_itself_and_the_fix(models: dict[str, Path], tmp_path: Path) -> None:
    folder = ModelFolder(models["bare"])
    settings = ReleaseSettings.model_validate({"standards": {"required_metrics": ["auc"], "max_size_mb": 0.001}})
    run = RunInfo("r1", {"accuracy": 0.8}, (DatasetRef("training", "training", "code", None),))
    by = _by_name(check_standards(folder, run, settings, training_source(run, settings)))
    assert not by["signature"].ok and "input_example" in by["signature"].fix
    assert not by["input_example"].ok and "input_example=" in by["input_example"].fix
    assert not by["training_data"].ok and "none with a source that can be downloaded" in by["training_data"].reason
    assert "release.reference" in by["training_data"].fix
    assert not by["required_metrics"].ok and by["required_metrics"].reason == "the run did not log auc"
    assert not by["size"].ok and "over the budget of 0.001 MB" in by["size"].reason
    assert by["pinned_requirements"].ok  # MLflow pins what it writes
    loose = tmp_path / "loose"
    loose.mkdir()
    for item in models["good"].iterdir():
        (loose / item.name).write_bytes(item.read_bytes())
    (loose / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn>=1.4\npandas\n")
    check = _by_name(check_standards(ModelFolder(loose), run, ReleaseSettings(), None))["pinned_requirements"]
    assert not check.ok and check.reason == "2 requirement(s) are not pinned: scikit-learn>=1.4, pandas"
    off = ReleaseSettings.model_validate({"standards": {"signature": False, "training_data": False}})
    skipped = _by_name(check_standards(folder, run, off, None))
    assert skipped["signature"].ok and skipped["signature"].skipped and skipped["training_data"].skipped


def test_the_gates_run_the_model_in_a_fresh_process(models: dict[str, Path], tmp_path: Path) -> None:
    holdout = save_data(tmp_path / "holdout.parquet", seed=50, drifted=True)
    training = save_data(tmp_path / "train.parquet", seed=51, drifted=True, rows=300)
    tests = tmp_path / "model_tests"
    tests.mkdir()
    (tests / "test_model.py").write_text(
        "def test_predicts_known_classes(model, serving_example):\n"
        "    assert set(model.predict(serving_example)) <= {'stay', 'churn'}\n"
    )
    inputs = GateInputs(
        folder=ModelFolder(models["drifted"]),
        settings=ReleaseSettings(),
        workdir=tmp_path / "work",
        spec=SPEC,
        champion=ModelFolder(models["good"]),
        champion_version="1",
        holdout=holdout,
        training=training,
        tests=[tests],
    )
    results = run_gates(inputs)
    by = _by_name(results.checks)
    assert results.passed, [c.sentence() for c in results.checks]
    assert by["example"].reason.startswith("the serving input example (5 rows) predicted in a fresh process")
    assert by["latency"].value is not None and by["latency"].value > 0
    # Trained on drifted customers, the candidate beats the champion on a drifted holdout.
    assert "vs champion version 1" in by["evaluation"].reason and "every threshold holds" in by["evaluation"].reason
    assert by["model_tests"].reason.startswith("1 passed")
    assert results.reference_predictions is not None
    assert len(yaml.safe_load(results.reference_predictions.read_text())) == 300


def test_failing_gates_say_what_failed(models: dict[str, Path], tmp_path: Path) -> None:
    holdout = save_data(tmp_path / "holdout.parquet", seed=60, drifted=False)
    tests = tmp_path / "test_model.py"
    tests.write_text(
        "def test_always_churn(model, serving_example):\n    assert set(model.predict(serving_example)) == {'x'}\n"
    )
    settings = ReleaseSettings.model_validate(
        {"latency_budget_ms": 0.0001, "evaluation": {"thresholds": {"accuracy_score": {"threshold": 0.99}}}}
    )
    inputs = GateInputs(
        folder=ModelFolder(models["drifted"]),
        settings=settings,
        workdir=tmp_path / "work",
        spec=SPEC,
        holdout=holdout,
        tests=[tests],
    )
    by = _by_name(run_gates(inputs).checks)
    assert by["example"].ok and not by["latency"].ok and "budget 0.0001 ms" in by["latency"].reason
    assert not by["evaluation"].ok and "accuracy_score threshold = 0.99" in by["evaluation"].reason
    assert not by["model_tests"].ok and "1 failed" in by["model_tests"].reason
    assert "test_always_churn" in by["model_tests"].reason
    renamed = GateInputs(folder=ModelFolder(models["renamed"]), settings=ReleaseSettings(), workdir=tmp_path / "r")
    example = _by_name(run_gates(renamed).checks)["example"]
    assert not example.ok and "predicting the serving input example failed" in example.reason
    assert "tenure_months" in example.reason and "mlflow models predict" in example.fix


def _strict(schema: Any) -> Any:
    """Seldon's CRD schema with additionalProperties: false wherever properties are listed (the API server would
    silently prune unknown fields; here they fail)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def seldon_schema() -> Any:
    crd = yaml.safe_load((SCHEMAS / "seldondeployments.machinelearning.seldon.io.v1.yaml").read_text())
    return _strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_the_bundle_holds_a_dockerfile_a_valid_seldondeployment_and_the_monitor_spec(
    models: dict[str, Path], tmp_path: Path
) -> None:
    bundle = Bundle(tmp_path / "churn" / "3")
    shutil.copytree(models["good"], bundle.model)
    checks = _by_name(package(bundle, "churn", "3", SPEC, "s3://mlflow/1/models/m-1/artifacts"))
    assert all(c.ok for c in checks.values()), [c.sentence() for c in checks.values()]
    assert (bundle.dockerfile.parent / "model_dir").is_dir()
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("hadolint")), "--failure-threshold", "error", str(bundle.dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    files = sorted(bundle.manifest_dir.glob("*.yaml"))
    objects = [yaml.safe_load(f.read_text()) for f in files]
    sdep = next(o for o in objects if o["kind"] == "SeldonDeployment")
    jsonschema.Draft7Validator(seldon_schema()).validate(sdep)
    assert sdep["spec"]["predictors"][0]["name"] == "3"  # predictors are named after versions
    assert sdep["spec"]["predictors"][0]["graph"]["modelUri"] == "s3://mlflow/1/models/m-1/artifacts"
    assert bundle.model_uri() == "s3://mlflow/1/models/m-1/artifacts" and "note" not in checks["manifest"].reason
    assert {o["kind"] for o in objects} >= {"SeldonDeployment", "ConfigMap", "Service"}
    spec = load_config_text(bundle.spec.read_text()).models[0]
    assert spec == SPEC


def test_a_candidate_beside_the_champion_is_a_canary_or_a_shadow_predictor_seldon_admits() -> None:
    uris = {"3": "s3://m/3", "4": "s3://m/4"}
    canary = release_manifests("Churn Model", "churn", uris, champion="3", candidate="4", canary_percent=10)[-1]
    jsonschema.Draft7Validator(seldon_schema()).validate(canary)
    assert canary["metadata"]["name"] == "churn-model" and admission_errors(canary) == []
    assert [(p["name"], p.get("traffic")) for p in canary["spec"]["predictors"]] == [("3", 90), ("4", 10)]
    logger = canary["spec"]["predictors"][1]["graph"]["logger"]
    assert logger["url"].endswith("/v1/cloudevents?model=churn")  # the request logs reach sustain's model
    shadow = release_manifests("churn", "churn", uris, champion="3", candidate="4", canary_percent=0)[-1]
    jsonschema.Draft7Validator(seldon_schema()).validate(shadow)
    assert shadow["spec"]["predictors"][1]["shadow"] is True and admission_errors(shadow) == []
    alone = release_manifests("churn", "churn", uris, champion="4")[-1]
    assert [(p["name"], p.get("traffic")) for p in alone["spec"]["predictors"]] == [("4", 100)]
