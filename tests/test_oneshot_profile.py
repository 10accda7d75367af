"""`sustain profile REFERENCE` then `sustain drift PROFILE CURRENT`: the same report, without reading the reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_cli_drift import table as drift_table


def table(n: int, seed: int, shift: float = 0.0, flip: bool = False) -> pa.Table:
    """The one-shot report's test data, plus an identifier column."""
    data = drift_table(n, seed, shift, flip).drop(["signup"])
    return data.append_column("user", pa.array([f"u{seed}-{i}" for i in range(n)]))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sustain.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("profile")
    paths = {name: tmp / f"{name}.parquet" for name in ("ref", "big", "small")}
    pq.write_table(table(30_000, 1), paths["ref"], row_group_size=8_000)
    pq.write_table(table(60_000, 2, shift=0.2, flip=True), paths["big"])
    pq.write_table(table(300, 3, shift=0.5), paths["small"])
    paths["profile"] = tmp / "ref.profile.json"
    made = run("profile", str(paths["ref"]), "--out", str(paths["profile"]), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["rows"] == 30_000
    return paths


@pytest.mark.parametrize("current", ["big", "small"])  # calibrated tests, then exact tests on the saved sample
def test_the_profile_gives_the_same_report_as_the_reference(files, current) -> None:
    direct = run("drift", str(files["ref"]), str(files[current]), "--json")
    profiled = run("drift", str(files["profile"]), str(files[current]), "--json")
    assert direct.returncode == profiled.returncode == 1, (direct.stderr, profiled.stderr)
    assert json.loads(profiled.stdout) == json.loads(direct.stdout)
    methods = {r["column"]: r["method"] for r in json.loads(profiled.stdout)}
    assert methods["age"] == ("wasserstein (calibrated)" if current == "big" else "wasserstein+ks")


def test_the_profile_keeps_counts_not_data(files) -> None:
    body = json.loads(files["profile"].read_text())
    columns = {c["name"]: c for c in body["columns"]}
    age = pq.read_table(files["ref"]).column("age").to_numpy()
    edges = np.asarray(columns["age"]["edges"])
    expected = np.bincount(np.searchsorted(edges, age, side="left"), minlength=edges.size + 1)
    assert columns["age"]["counts"] == expected.tolist()
    assert len(columns["age"]["sample"]) == 5_000 and set(columns["age"]["sample"]) <= set(age.tolist())
    trues = int(np.sum(pq.read_table(files["ref"]).column("active")))
    assert columns["active"]["categories"] == {"true": trues, "false": 30_000 - trues}
    assert columns["user"] == {
        "name": "user",
        "kind": "categorical",
        "type": "string",
        "missing": 0,
        "distinct": 30_000,
    }
    rows = {r["column"]: r for r in json.loads(run("drift", str(files["profile"]), str(files["big"]), "--json").stdout)}
    assert "identifier" in rows["user"]["reason"]


def test_columns_the_sides_do_not_share_are_noted(files, tmp_path) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(table(2_000, 4).drop(["visits"]).append_column("new", pa.array(np.ones(2_000))), other)
    result = run("drift", str(files["profile"]), str(other))
    assert "visits: only in the reference" in result.stdout and "new: only in the current file" in result.stdout
    notes = run("drift", str(files["profile"]), str(other), "--bins", "10")
    assert "the profile's 20 bins" in notes.stdout


def good_profile(files: dict[str, Path]) -> dict:
    return json.loads(files["profile"].read_text())


def spoiled(body: dict, where: str, change) -> dict:
    """``body`` with ``change`` applied to the part ``where`` names ("" for the whole, "0" for columns[0])."""
    change(body if where == "" else body["columns"][int(where)])
    return body


@pytest.mark.parametrize(
    ("where", "change", "message"),
    [
        ("", lambda b: b.update(sustain_profile=2), "sustain_profile: this sustain reads profile format 1"),
        ("", lambda b: b.update(rows=-1), "rows: must be a whole number"),
        ("0", lambda c: c.update(kind="text"), "columns[0] (age): kind must be one of"),
        ("0", lambda c: c["edges"].reverse(), "columns[0] (age): edges must be strictly increasing"),
        ("0", lambda c: c["counts"].pop(), "columns[0] (age): 19 edges make 20 bins, not 19"),
        ("3", lambda c: c.pop("categories"), "columns[3] (plan): a categorical or boolean column needs"),
        ("1", lambda c: c.update(colour="red"), "columns[1]: needs name, kind, type and missing"),
    ],
)
def test_a_bad_profile_is_a_sentence_naming_the_field(files, tmp_path, where, change, message) -> None:
    bad = tmp_path / "bad.json"  # recognised as a profile by its first key, not by its name
    bad.write_text(json.dumps(spoiled(good_profile(files), where, change)))
    result = run("drift", str(bad), str(files["small"]))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot use the profile" in result.stderr and message in result.stderr.replace("\n", " ")


def test_profile_command_errors(files, tmp_path) -> None:
    assert "no such file" in run("profile", str(tmp_path / "nope.parquet"), "-o", "x.json").stderr
    wrong = run("profile", str(files["ref"]), "-o", str(tmp_path / "x.txt"))
    assert wrong.returncode == 2 and "a profile is a .json file" in wrong.stderr
    bins = run("profile", str(files["ref"]), "-o", str(tmp_path / "x.json"), "--bins", "1")
    assert bins.returncode == 2 and "--bins must be at least 2" in bins.stderr


def test_a_csv_reference_profiles_too(files, tmp_path) -> None:
    import pyarrow.csv as pacsv

    csv = tmp_path / "ref.csv"
    pacsv.write_csv(pq.read_table(files["ref"]), csv)
    made = run("profile", str(csv), "-o", str(tmp_path / "csv.profile.json"))
    assert made.returncode == 0, made.stderr
    result = run("drift", str(tmp_path / "csv.profile.json"), str(files["big"]), "--json")
    drifted = {r["column"] for r in json.loads(result.stdout) if r["drifted"]}
    assert drifted == {"age", "plan"}


def test_profiling_reports_progress(files) -> None:
    from sustain.report.drift import DriftReport

    seen: list[tuple[str, float]] = []
    made = DriftReport().profile(files["ref"], lambda label, done: seen.append((label, done)))
    assert made.rows == 30_000 and seen[-1] == ("reading the reference", 1.0)
