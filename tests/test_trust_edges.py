"""Quantile bin edges are strictly increasing whatever the data (ties, constants, rounded scores), and the one-shot
report, the reference profile and the engine cut numbers at the same edges.

Issue 10, defect 4: interpolating ``a*(1-w) + a*w`` between two equal order statistics can come out a hair below
``a``, so edges were unsorted (``[0.01, 0.009999999999999998]``), counts went negative and ``sustain drift`` died
with a traceback and exit code 1 ("drifted").
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from sustain.backends.duckdb.runner import TransformRunner
from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.indicators.decide import DriftSettings
from sustain.report.bins import NumericBins, Scratch
from sustain.report.drift import DriftReport
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch
from sustain.transforms.profile import build_profile
from sustain.transforms.references import profile_reference

REPRO = np.r_[0.0, np.full(20, 0.01), np.round(np.arange(2, 101) * 0.01, 2)]


def test_the_issue_repro_exits_0_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"score": REPRO}), path)
    done = subprocess.run(
        [sys.executable, "-m", "sustain.cli", "drift", str(path), str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_the_repro_edges_are_strictly_increasing() -> None:
    edges = NumericBins.from_sample(REPRO, bins=20).edges
    assert np.all(np.diff(edges) > 0), edges.tolist()


# Data a model really produces: ties, constants, rounded scores, a few distinct values among many rows.
rounded = st.builds(
    lambda values, digits: np.round(np.asarray(values, dtype=float), digits),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300),
    st.integers(0, 3),
)
tied = st.builds(
    lambda values, repeats: np.repeat(np.asarray(values, dtype=float), repeats),
    st.lists(st.sampled_from([0.0, 0.01, 0.02, 0.1, 0.3, 1.0, 1e-300, 7.0]), min_size=1, max_size=40),
    st.integers(1, 30),
)
constant = st.builds(lambda v, n: np.full(n, v), st.floats(-1e6, 1e6, allow_nan=False), st.integers(1, 200))
data = st.one_of(rounded, tied, constant)


@settings(max_examples=300, deadline=None)
@given(values=data, bins=st.integers(2, 40))
def test_edges_are_strictly_increasing_and_the_same_everywhere(values: np.ndarray, bins: int) -> None:
    oneshot = NumericBins.from_sample(values, bins).edges
    assert np.all(np.diff(oneshot) > 0), oneshot.tolist()
    assert np.all(np.isfinite(oneshot))
    profile = build_profile("m", "1", pa.table({"f:x": values}), {"f:x": "numeric"}, bins=bins)
    column = profile.columns["f:x"]
    assert column.edges == oneshot.tolist()
    # Counted either way, every bin holds a non-negative count and the counts add up to the data.
    counts = NumericBins(oneshot).new_counts()
    NumericBins(oneshot).add(values, counts, Scratch())
    per_bin = NumericBins(oneshot).bin_counts(counts)
    assert np.all(per_bin >= 0) and per_bin.sum() == values.size
    assert column.counts == per_bin.astype(int).tolist()


@settings(max_examples=40, deadline=None)
@given(values=data)
def test_the_one_shot_report_never_crashes_on_ties(tmp_path_factory, values: np.ndarray) -> None:
    path = tmp_path_factory.mktemp("ties") / "x.parquet"
    pq.write_table(pa.table({"x": values}), path)
    assessed, _, sizes = DriftReport(DriftSettings(draws=50)).run(path, path)
    (x,) = assessed
    assert sizes["current_rows"] == values.size
    assert x.status in ("ok", "insufficient")  # the same data is never drift


def test_bins_too_narrow_for_floating_point_take_the_default_distance(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"  # edges 0 and 1e-300: the binned deviation squares to 0 (found by Hypothesis)
    pq.write_table(pa.table({"x": np.array([0.0, 0.01, 1e-300])}), path)
    assessed, _, _ = DriftReport(DriftSettings(draws=50)).run(path, path)
    (x,) = assessed
    assert x.status in ("ok", "insufficient") and x.distance != "wasserstein"


def test_same_tied_data_is_not_drift_through_the_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.beta(0.3, 3.0, 20_000), 2)  # rounded model scores: most of them 0.0 and 0.01
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    pq.write_table(pa.table({"score": scores[:10_000]}), ref)
    pq.write_table(pa.table({"score": scores[10_000:]}), cur)
    assessed, _, _ = DriftReport().run(ref, cur)
    (score,) = assessed
    assert score.status in ("ok", "warn") and score.p_value is not None


def test_the_engine_counts_tied_data_in_the_profile_bins(tmp_path: Path) -> None:
    spec = parse_model_spec({"name": "m", "features": {"score": "numeric"}, "windows": ["1h"]})
    store = DuckDBStore(f"duckdb:///{tmp_path / 's.duckdb'}")
    store.put_spec(spec)
    store.put_reference("m", "1", to_layout(spec, pa.table({"score": REPRO})).table)
    windows = DuckDBWindows(store)
    profile = profile_reference(store, windows, spec, "1")
    edges = profile.columns["f:score"].edges
    assert edges is not None and bool(np.all(np.diff(edges) > 0))
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    events = [
        {"features": {"score": float(v)}, "outputs": {}, "timestamp": (start + timedelta(seconds=i)).isoformat()}
        for i, v in enumerate(REPRO)
    ]
    parsed = parse_events(spec, events, start + timedelta(days=1))
    store.append_events([EventBatch("m", parsed.table)])
    runner = TransformRunner(store, windows)
    (plan,) = runner.plans(spec)
    runner.run_plan(plan)
    (window,) = windows.read_windows(plan)
    numeric = window.numeric("f:score")
    assert numeric is not None
    assert list(numeric.bins) == profile.columns["f:score"].counts
