"""The one-shot report's readers and counters: every reader counts the same, and counts exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sustain.report import read as oneshot_read
from sustain.report.bins import COMPARE_MAX, NumericBins, Scratch
from sustain.report.drift import DriftReport, Tally, as_rows, schema_of
from sustain.report.read import DataReadError, ParquetSource, TableSource, categories, numbers, open_source


def messy_table(n: int, seed: int) -> pa.Table:
    """Nulls, NaN, infinities, integers, plain and repeated strings, booleans: what real files hold."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    score[rng.random(n) < 0.01] = np.nan
    score[:3] = [np.inf, -np.inf, 0.0]
    plan = rng.choice(["basic", "pro", "team"], size=n, p=[0.6, 0.3, 0.1]).astype(object)
    plan[rng.random(n) < 0.02] = None
    return pa.table(
        {
            "score": pa.array(score, mask=rng.random(n) < 0.02),
            "visits": pa.array(rng.poisson(3, n), type=pa.int32()),
            "plan": pa.array(plan, type=pa.string()),
            "active": pa.array(rng.random(n) < 0.4, mask=rng.random(n) < 0.01),
        }
    )


def expected_counts(table: pa.Table, bins: dict[str, NumericBins]) -> dict[str, Any]:
    """The same counts computed the plain way, from whole columns."""
    out: dict[str, Any] = {"rows": table.num_rows}
    for name, b in bins.items():
        values = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        finite = values[~np.isnan(values)]
        out[name] = np.bincount(np.searchsorted(b.edges, finite, side="left"), minlength=b.edges.size + 1).tolist()
        out[f"{name}:missing"] = int(values.size - finite.size)
    for name in ("plan", "active"):
        column = table.column(name).to_pylist()
        found: dict[str, int] = {}
        for v in column:
            if v is not None:
                key = ("true" if v else "false") if isinstance(v, bool) else v
                found[key] = found.get(key, 0) + 1
        out[name] = found
        out[f"{name}:missing"] = sum(v is None for v in column)
    return out


def counted(report: DriftReport, path: Path, bins: dict[str, NumericBins], **kwargs: object) -> dict[str, object]:
    source = open_source(path, report.threads)
    columns, _ = report.columns(schema_of(source), schema_of(source))
    index = {c.name: i for i, c in enumerate(columns)}
    tally: Tally = report._count(source, columns, {index[n]: b for n, b in bins.items()}, "x", None)
    out: dict[str, object] = {"rows": tally.rows}
    for name, b in bins.items():
        out[name] = b.bin_counts(tally.bins[index[name]]).astype(int).tolist()
        out[f"{name}:missing"] = tally.missing[index[name]]
    for name in ("plan", "active"):
        out[name] = tally.categories[index[name]]
        out[f"{name}:missing"] = tally.missing[index[name]]
    return out


def without_nan_or_inf(table: pa.Table) -> pa.Table:
    """CSV has no portable NaN or infinity (DuckDB reads such a column as text): write nulls instead."""
    score = table.column("score").to_numpy(zero_copy_only=False).astype(float)
    return table.set_column(0, "score", pa.array(score, mask=~np.isfinite(score)))


@pytest.fixture
def messy(tmp_path: Path) -> tuple[pa.Table, dict[str, Path]]:
    table = messy_table(30_000, 1)
    paths = {
        "parquet": tmp_path / "m.parquet",
        "csv": tmp_path / "m.csv",
        "json": tmp_path / "m.ndjson",
        "glob": tmp_path / "part-*.parquet",
    }
    pq.write_table(table, paths["parquet"], row_group_size=7_000)  # uneven row groups
    pacsv.write_csv(without_nan_or_inf(table), paths["csv"])
    with paths["json"].open("w") as out:
        out.writelines(json.dumps(row) + "\n" for row in without_nan_or_inf(table).to_pylist())
    pq.write_table(table.slice(0, 10_000), tmp_path / "part-1.parquet")
    pq.write_table(table.slice(10_000), tmp_path / "part-2.parquet")
    return table, paths


def test_every_reader_counts_exactly_the_same(messy, monkeypatch) -> None:
    table, paths = messy
    bins = {
        "score": NumericBins.from_sample(numbers(table.column("score").combine_chunks())[0], 20),
        "visits": NumericBins.from_sample(numbers(table.column("visits").combine_chunks())[0], 20),
    }
    assert bins["visits"].edges.size < 19  # few distinct values: one bin per value
    expected = expected_counts(table, bins)
    assert expected["score:missing"] > 0 and expected["plan:missing"] > 0 and expected["active:missing"] > 0
    expected_csv = expected_counts(without_nan_or_inf(table), bins)
    assert expected_csv["score"] != expected["score"]  # the infinities did count in the Parquet file
    for threads in (1, 2):
        report = DriftReport(threads=threads)
        for streamed in (False, True):
            if streamed:  # stream the files by row groups or batches instead of reading them whole
                monkeypatch.setattr(oneshot_read, "IN_MEMORY_CELLS", 0)
                monkeypatch.setattr(oneshot_read, "IN_MEMORY_BYTES", 0)
            assert isinstance(open_source(paths["parquet"]), ParquetSource if streamed else TableSource)
            for kind, path in paths.items():
                want = expected_csv if kind in ("csv", "json") else expected
                assert counted(report, path, bins) == want, (kind, threads, streamed)
        monkeypatch.undo()


def test_streamed_and_in_memory_reports_agree(messy, monkeypatch) -> None:
    _, paths = messy
    drifted = paths["parquet"].with_name("drifted.parquet")
    pq.write_table(messy_table(50_000, 2), drifted, row_group_size=9_000)
    whole = as_rows(DriftReport().run(paths["parquet"], drifted)[0])
    monkeypatch.setattr(oneshot_read, "IN_MEMORY_CELLS", 0)
    seen: list[tuple[str, float]] = []
    streamed = as_rows(DriftReport().run(paths["parquet"], drifted, progress=lambda *a: seen.append(a))[0])
    assert streamed == whole
    for label in {label for label, _ in seen}:
        done = [d for name, d in seen if name == label]
        assert done == sorted(done) and done[-1] == 1.0, (label, done)


def test_sample_is_uniform_and_bounded(tmp_path) -> None:
    path = tmp_path / "ordered.parquet"
    pq.write_table(pa.table({"x": np.arange(100_000, dtype=float)}), path, row_group_size=10_000)
    source = ParquetSource(path)
    drawn = source.sample(["x"], 5_000, seed=3)["x"]
    assert drawn.size == 5_000 and np.unique(drawn).size == 5_000
    # a sorted file: a draw from the first row groups only would have a small median
    assert abs(np.median(drawn) - 50_000) < 3_000
    assert np.array_equal(drawn, source.sample(["x"], 5_000, seed=3)["x"])
    small = TableSource(pq.read_table(path)).sample(["x"], 200_000, seed=0)["x"]
    assert small.size == 100_000


@pytest.mark.parametrize("bins", [5, 20, COMPARE_MAX + 10])
@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, 1.0, -1.0])), min_size=1, max_size=300),
    sample=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
)
def test_bins_count_like_searchsorted(bins, values, sample) -> None:
    b = NumericBins.from_sample(np.array(sample), bins)
    assert np.all(np.diff(b.edges) > 0)
    counts = b.new_counts()
    x = np.array(values)
    b.add(x[: len(x) // 2], counts, Scratch())
    b.add(x[len(x) // 2 :], counts, Scratch())
    expected = np.bincount(np.searchsorted(b.edges, x, side="left"), minlength=b.edges.size + 1)
    assert b.bin_counts(counts).tolist() == expected.tolist()


def test_numbers_and_categories_of_every_arrow_type() -> None:
    values, missing = numbers(pa.array([1, None, 3], type=pa.int64()))
    assert values.tolist() == [1.0, 3.0] and missing == 1
    values, missing = numbers(pa.array([1.5, math.nan, None]).slice(0, 3))
    assert values.tolist() == [1.5] and missing == 2
    values, missing = numbers(pa.array([1, 2], type=pa.decimal128(10, 2)))
    assert values.tolist() == [1.0, 2.0] and missing == 0
    values, _ = numbers(pa.array([5.0, 6.0, 7.0]).slice(1))  # an offset into the buffer
    assert values.tolist() == [6.0, 7.0]
    plain = pa.array(["a", "b", None, "a"])
    assert categories(plain) == ({"a": 2, "b": 1}, 1)
    assert categories(plain.dictionary_encode()) == ({"a": 2, "b": 1}, 1)
    assert categories(plain.dictionary_encode().slice(1)) == ({"a": 1, "b": 1}, 1)
    assert categories(pa.array([True, None, False, True])) == ({"true": 2, "false": 1}, 1)


def test_identifier_columns_are_not_compared(tmp_path) -> None:
    n = 30_000
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    for path, offset in ((ref, 0), (cur, n)):
        ids = [f"user-{i}" for i in range(offset, offset + n)]
        pq.write_table(pa.table({"user": ids, "x": np.random.default_rng(offset).normal(size=n)}), path)
    rows = {r["column"]: r for r in as_rows(DriftReport().run(ref, cur)[0])}
    assert rows["user"]["status"] == "insufficient" and "identifier" in rows["user"]["reason"]
    assert rows["x"]["status"] == "ok"


def test_unreadable_files_raise_one_error(tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataReadError):
        DriftReport().run(bad, bad)
    with pytest.raises(DataReadError):
        DriftReport().run(tmp_path / "missing-*.csv", tmp_path / "missing-*.csv")
