"""``sustain indicators try``: a plugin on two files, end to end in a subprocess, and every way it can go wrong."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sustain_example_plugin import PredictionEntropy, mean_entropy

from sustain.indicators.checks import SAMPLE_SPEC
from sustain.report.trial import infer_spec, read_table
from sustain.spec import ModelSpec
from sustain.synthetic import SyntheticModel

SPEC = ModelSpec.model_validate(SAMPLE_SPEC)
EXAMPLE = "sustain_example_plugin:PredictionEntropy"

PLUGINS = '''
from sustain.indicators import Indicator, IndicatorValue


class NotAnIndicator:
    pass


class Divides(Indicator):
    name = "divides"

    def compute(self, ctx):
        return [IndicatorValue(None, len(ctx.rows()) / 0)]


class CriesWolf(Indicator):
    """Alerts on every window, even an empty one: the conformance checks must catch it."""

    name = "cries_wolf"

    def __init__(self, level: float = 1.0):
        self.level = level

    def compute(self, ctx):
        yield IndicatorValue(None, self.level * ctx.window.rows, status="alert")


class ShareOfYes(Indicator):
    """The share of labelled events labelled yes."""

    name = "share_of_yes"

    def compute(self, ctx):
        label = ctx.rows(100_000).frame()["label"].dropna()
        yield IndicatorValue("label", float((label == "yes").mean()), n=len(label))
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Parquet reference, a CSV window with some labels missing, a spec file and a plugin file, in one folder."""
    folder = tmp_path_factory.mktemp("try")
    synthetic = SyntheticModel(SPEC, seed=5)
    pq.write_table(pa.table(synthetic.reference(3000)), folder / "reference.parquet")
    current = pd.DataFrame(synthetic.reference(700))
    current.loc[current.index % 4 == 0, "label"] = None
    current.to_csv(folder / "current.csv", index=False)
    spec = {"models": [{**SAMPLE_SPEC, "name": "other"}, {**SAMPLE_SPEC, "name": "churn", "windows": ["1m", "1d"]}]}
    (folder / "sustain.yaml").write_text(json.dumps(spec))
    (folder / "my_plugins.py").write_text(textwrap.dedent(PLUGINS))
    return folder


def sustain(folder: Path, *args: str, script: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "sustain")] if script else [sys.executable, "-m", "sustain.cli"]
    return subprocess.run(
        [*command, "indicators", "try", *args], cwd=folder, capture_output=True, text=True, timeout=600
    )


def fails(done: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    for phrase in phrases:
        assert phrase in done.stderr, done.stderr


def test_the_example_plugin_on_two_files_with_the_checks(files: Path) -> None:
    done = sustain(files, EXAMPLE, "reference.parquet", "current.csv", "--param", "margin=0.05", "--json")
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    assert body["passed"] and body["params"] == {"margin": 0.05, "sample_size": 2000, "min_samples": 50}
    assert body["spec_source"] == "inferred from reference.parquet"
    assert body["window"] == {"events": 700, "reference_rows": 3000}
    names = [c["name"] for c in body["checks"]]
    assert names[0] == "values on these files are well formed" and "check_empty_window_does_not_alert" in names
    assert all(c["passed"] for c in body["checks"]) and len(names) == 9
    # the same numbers straight from the files: every score of the window and of the reference (both fit the sample)
    reference = pq.read_table(files / "reference.parquet").to_pandas()[["proba.no", "proba.yes"]].to_numpy()
    current = pd.read_csv(files / "current.csv")[["proba.no", "proba.yes"]].to_numpy()
    (value,) = body["values"]
    assert value["feature"] == "proba" and value["n"] == 700 and value["status"] == "ok"
    assert value["value"] == pytest.approx(mean_entropy(current), rel=1e-9)
    assert value["threshold"] == pytest.approx(mean_entropy(reference) + 0.05, rel=1e-9)


def test_a_table_by_default(files: Path) -> None:
    done = sustain(files, EXAMPLE, "reference.parquet", "current.csv", "--skip-checks")
    assert done.returncode == 0, done.stderr
    assert "on current.csv (700 events) against reference.parquet (3,000 rows)" in done.stdout
    assert "output proba (class_scores: no, yes)" in done.stdout and "label (class_label)" in done.stdout
    assert "proba" in done.stdout and "checks: 1 of 1 passed" in done.stdout


def test_a_spec_file_a_plugin_file_and_the_joined_labels(files: Path) -> None:
    done = sustain(
        files, "my_plugins.py:ShareOfYes", "reference.parquet", "current.csv", "--spec", "sustain.yaml",
        "--model", "churn", "--skip-checks", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["spec_source"] == "sustain.yaml" and body["spec"]["name"] == "churn"
    (value,) = body["values"]
    labels = pd.read_csv(files / "current.csv")["label"].dropna()
    assert value["n"] == len(labels) == 525 and value["value"] == pytest.approx(float((labels == "yes").mean()))
    several = sustain(files, "my_plugins.py:ShareOfYes", "reference.parquet", "current.csv", "--spec", "sustain.yaml")
    fails(several, 2, "holds 2 models (other, churn); choose one with --model")


def test_a_module_in_the_current_directory_is_found_by_the_console_script(files: Path) -> None:
    done = sustain(files, "my_plugins:CriesWolf", "reference.parquet", "current.csv", "-p", "level=2", script=True)
    fails(done, 1, "check failed: check_empty_window_does_not_alert: an empty window raised an alert")
    assert "1400.0000" in done.stdout  # level=2 times 700 events: the values are shown with the failed check
    assert "checks: 8 of 9 passed" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (["no_such_package:Thing"], 2, "no module named 'no_such_package'"),
        (["my_plugins.py:NotAnIndicator"], 2, "is the class NotAnIndicator, not an Indicator"),
        (["my_plugins.py:Nothing"], 2, "my_plugins.py has no 'Nothing'; the indicator classes it defines: CriesWolf"),
        (["missing.py:Thing"], 2, "missing.py: no such file"),
        (["no_such_indicator"], 2, "unknown indicator 'no_such_indicator'; known: change, drift"),
        ([EXAMPLE, "-p", "margn=0.1"], 2, "has no parameter 'margn'; it takes: margin, sample_size, min_samples"),
        ([EXAMPLE, "-p", "margin"], 2, "write it as NAME=VALUE"),
        (["my_plugins.py:Divides"], 1, "Divides.compute: ZeroDivisionError: division by zero (at "),
    ],
    ids=["no-module", "not-an-indicator", "no-class", "no-file", "unknown-name", "bad-param", "param-form", "raises"],
)
def test_errors_are_sentences_with_exit_codes(files: Path, args: list[str], code: int, phrase: str) -> None:
    fails(sustain(files, *args[:1], "reference.parquet", "current.csv", *args[1:], "--skip-checks"), code, phrase)


def test_files_that_cannot_be_used(files: Path) -> None:
    fails(sustain(files, EXAMPLE, "nothing.parquet", "current.csv"), 2, "nothing.parquet: no such file")
    (files / "broken.parquet").write_bytes(b"PAR1 not really")
    fails(sustain(files, EXAMPLE, "broken.parquet", "current.csv"), 2, "broken.parquet: cannot read the reference")
    pd.DataFrame({"colour": ["red"]}).to_csv(files / "unrelated.csv", index=False)
    fails(sustain(files, EXAMPLE, "reference.parquet", "unrelated.csv", "--skip-checks"), 2, "none of the model's")


def test_indicators_model_still_shows_a_model(tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    shown = subprocess.run(
        [sys.executable, "-m", "sustain.cli", "indicators", "churn", "--store", store],
        capture_output=True,
        text=True,
        timeout=300,
    )
    fails(shown, 1, "model 'churn' is not in the store")
    helped = subprocess.run(
        [sys.executable, "-m", "sustain.cli", "indicators", "--help"], capture_output=True, text=True, timeout=300
    )
    assert helped.returncode == 0 and "show" in helped.stdout and "try" in helped.stdout


def test_the_spec_is_read_off_the_columns() -> None:
    table = pa.table(
        {
            "x": [1.5, 2.5],
            "n": [1, 2],
            "ok": [True, False],
            "city": ["a", "b"],
            "scores.low": [0.1, 0.9],
            "scores.high": [0.9, 0.1],
            "lone.dot": [1.0, 2.0],
            "prediction": [3.2, 1.0],
            "label": [3.0, 1.5],
            "when": pa.array([1, 2], pa.timestamp("s")),
        }
    )
    spec = infer_spec(table)
    assert [(f.name, f.kind) for f in spec.features] == [
        ("x", "numeric"), ("n", "numeric"), ("ok", "boolean"), ("city", "categorical"), ("lone.dot", "numeric"),
    ]  # fmt: skip
    assert [(o.name, o.kind, o.classes) for o in spec.outputs] == [
        ("scores", "class_scores", ["low", "high"]),
        ("prediction", "regression", None),
    ]
    assert spec.label is not None and spec.label.kind == "regression"


def test_csv_is_read_as_an_uploaded_reference_is(tmp_path: Path) -> None:
    """yes/no stay strings (DuckDB's CSV sniffer would make them booleans, unlike the reference upload)."""
    path = tmp_path / "yes.csv"
    path.write_text("x,prediction\n1.0,yes\n2.0,no\n")
    table = read_table(path)
    assert table.column("prediction").to_pylist() == ["yes", "no"]
    assert np.allclose(table.column("x").to_numpy(), [1.0, 2.0])


def test_the_readme_shows_the_example_plugin_as_it_is() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert inspect.getsource(PredictionEntropy) in readme
