"""`sustain drift REFERENCE CURRENT`: the one-shot report, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from sustain.report.drift import DriftReport


def table(n: int, seed: int, shift: float = 0.0, flip: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    p = np.array([0.6, 0.3, 0.1])
    return pa.table(
        {
            "age": rng.normal(40 + shift * 10, 10, n),
            "visits": rng.poisson(3, n).astype(np.int64),
            "income": rng.lognormal(10, 0.5, n),
            "plan": rng.choice(["basic", "pro", "team"], size=n, p=p[::-1] if flip else p),
            "active": rng.random(n) < 0.4,
            "signup": pa.array(np.full(n, np.datetime64("2026-01-01"))),
        }
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sustain.cli", "drift", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "ref": tmp_path / "ref.parquet",
        "same": tmp_path / "same.parquet",
        "drifted": tmp_path / "drifted.parquet",
        "small": tmp_path / "small.parquet",
        "csv_ref": tmp_path / "ref.csv",
        "csv_cur": tmp_path / "cur.csv",
    }
    pq.write_table(table(20_000, 1), paths["ref"])
    pq.write_table(table(50_000, 2), paths["same"])
    pq.write_table(table(50_000, 3, shift=0.3, flip=True), paths["drifted"])
    pq.write_table(table(400, 4, shift=1.0), paths["small"])
    pacsv.write_csv(table(5000, 5).drop(["signup"]), paths["csv_ref"])
    pacsv.write_csv(table(5000, 6, flip=True).drop(["signup"]), paths["csv_cur"])
    return paths


def test_drifted_columns_are_flagged_with_exit_code_1(files) -> None:
    result = run(str(files["ref"]), str(files["drifted"]), "--json")
    assert result.returncode == 1, result.stderr
    rows = {r["column"]: r for r in json.loads(result.stdout)}
    assert {c for c, r in rows.items() if r["drifted"]} == {"age", "plan"}
    for r in rows.values():
        assert set(r) >= {"column", "method", "value", "p_value", "threshold", "n", "drifted"}
        assert r["n"] == 50_000
    assert rows["age"]["method"] == "wasserstein (calibrated)" and rows["plan"]["method"] == "js (calibrated)"
    assert rows["active"]["method"] == "tv (calibrated)"


def test_undrifted_data_exits_0(files) -> None:
    result = run(str(files["ref"]), str(files["same"]), "--json")
    assert result.returncode == 0, result.stderr
    assert not any(r["drifted"] for r in json.loads(result.stdout))


def test_small_files_take_exact_tests(files) -> None:
    rows = {r["column"]: r for r in json.loads(run(str(files["ref"]), str(files["small"]), "--json").stdout)}
    assert rows["age"]["method"] == "wasserstein+ks" and rows["age"]["drifted"]
    assert rows["plan"]["method"] == "js+chi2"
    assert rows["active"]["method"] in ("tv+z", "tv+fisher")


def test_csv_table_output_and_report_file(files, tmp_path) -> None:
    out = tmp_path / "report.json"
    result = run(str(files["csv_ref"]), str(files["csv_cur"]), "--out", str(out))
    assert result.returncode == 1, result.stderr
    assert "drifted: plan" in result.stdout
    report = json.loads(out.read_text())
    assert report["current_rows"] == 5000 and [c["column"] for c in report["columns"] if c["drifted"]] == ["plan"]


def test_columns_option_and_notes(files) -> None:
    rows = json.loads(run(str(files["ref"]), str(files["drifted"]), "--json", "--columns", "visits,income").stdout)
    assert [r["column"] for r in rows] == ["visits", "income"]
    result = run(str(files["ref"]), str(files["same"]))
    assert "signup: type" in result.stdout and "is not compared" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.parquet", "x.parquet"], "no such file"),
        (["{ref}", "{ref}", "--alpha", "2"], "--alpha must be between 0 and 1"),
        (["{ref}", "{ref}", "--correction", "magic"], "--correction must be"),
        (["{ref}", "{ref}", "--method", "energy"], "--method must be"),
        (["{ref}", "{csv_ref}.txt"], "no such file"),
    ],
)
def test_bad_input_is_a_sentence(files, args, message) -> None:
    result = run(*[a.format(ref=files["ref"], csv_ref=files["csv_ref"]) for a in args])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unreadable_file_is_a_sentence(tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    result = run(str(bad), str(bad))
    assert result.returncode == 2 and "cannot read the data" in result.stderr and "Traceback" not in result.stderr


def test_progress_is_reported(files) -> None:
    seen: list[tuple[str, float]] = []
    DriftReport().run(files["ref"], files["drifted"], progress=lambda label, done: seen.append((label, done)))
    labels = [label for label, _ in seen]
    assert "reading the reference" in labels and "scanning the current data" in labels
    assert seen[-1][1] == 1.0


def test_wasserstein_method(files) -> None:
    result = run(str(files["ref"]), str(files["drifted"]), "--json", "--method", "wasserstein")
    assert result.returncode == 1, result.stderr
    rows = {r["column"]: r for r in json.loads(result.stdout)}
    assert rows["age"]["method"] == "wasserstein (calibrated)" and rows["age"]["drifted"]
    assert rows["age"]["value"] == pytest.approx(0.3, abs=0.05)  # the mean moved 3 of sd 10
    assert rows["plan"]["method"] == "js (calibrated)"
    assert not rows["income"]["drifted"] and not rows["visits"]["drifted"]


# -- the fast exit of the console script -------------------------------------------------------------------


def test_fast_exit_leaves_out_and_html_files_complete(files, tmp_path: Path) -> None:
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    result = run(str(files["ref"]), str(files["drifted"]), "--json", "--out", str(out), "--html", str(page))
    assert result.returncode == 1, result.stderr
    assert json.loads(out.read_text()) is not None and json.loads(result.stdout) is not None
    assert page.read_text(encoding="utf-8").rstrip().endswith("</html>")


@pytest.mark.parametrize("reader", ["head -c 20", "(exec 0<&-; sleep 2)"])
def test_a_closed_pipe_ends_quietly(files, reader: str) -> None:
    """`sustain drift ... | head`: no traceback and no 'Exception ignored', whether the reader leaves after a few
    bytes or before anything is written."""
    command = f"{sys.executable} -m sustain.cli drift {files['ref']} {files['drifted']} --json | {reader}"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_main_called_from_python_does_not_end_the_process(files) -> None:
    """Only the console script exits without teardown; `sustain.cli.main` raises SystemExit like any click app."""
    code = (
        "import sys\nfrom sustain.cli import main\n"
        f"try:\n    main(['drift', {str(files['ref'])!r}, {str(files['same'])!r}, '--json'])\n"
        "except SystemExit as exc:\n    print('caught', exc.code, file=sys.stderr)\n"
        "print('still here', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "caught 0" in done.stderr and "still here" in done.stderr, done.stderr
