"""Fixtures for a model's own tests, run by the release pipeline (``release.tests`` in the monitor spec).

The pipeline starts ``pytest -p sustain.deploy_pipeline.release.pytest_plugin <tests>`` with the version's model
folder in ``SUSTAIN_RELEASE_MODEL``; a test asks for what it needs::

    def test_churners_are_found(model, serving_example):
        predictions = model.predict(serving_example)
        assert set(predictions) <= {"stay", "churn"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The folder of the model version under test (it holds ``MLmodel``)."""
    value = os.environ.get("SUSTAIN_RELEASE_MODEL")
    if not value:
        pytest.fail("SUSTAIN_RELEASE_MODEL is not set: these fixtures are for tests run by the release pipeline")
    return Path(value)


@pytest.fixture(scope="session")
def model(model_dir: Path) -> Any:
    """The version, loaded as an MLflow pyfunc model."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(model_dir))


@pytest.fixture(scope="session")
def serving_example(model: Any, model_dir: Path) -> Any:
    """The version's serving input example, parsed as the scoring server parses it (usually a DataFrame)."""
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    info = model.metadata.saved_input_example_info or {}
    name = info.get("serving_input_path")
    if not name:
        pytest.skip("the model has no serving input example")
    body = json.loads((model_dir / name).read_text())
    data = {k: v for k, v in body.items() if k in ("dataframe_split", "dataframe_records", "instances", "inputs")}
    return infer_and_parse_data(data, model.metadata.get_input_schema())
