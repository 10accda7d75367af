"""The calibration cache: a null distribution drawn once per reference, window-size bucket and distance, reused
across windows and restarts, and judging windows as a null drawn for each window does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sustain.backends.duckdb.nulls import DuckDBNulls
from sustain.backends.duckdb.store import DuckDBStore
from sustain.indicators.checks import sample_context
from sustain.indicators.drift import DataDrift
from sustain.indicators.gamma import threshold_above
from sustain.indicators.stats import js_distance, psi
from sustain.indicators.stats.calibration import null_distribution
from sustain.indicators.stats.nulls import NullCache, NullSummary, null_key, size_bucket

REF = np.array([120.0, 340.0, 410.0, 90.0, 40.0])


def test_sizes_share_a_bucket_within_about_two_percent() -> None:
    assert [size_bucket(n) for n in (1, 255, 256)] == [1, 255, 256]  # small windows are their own bucket
    for n in (300, 1000, 5000, 123_456):
        assert abs(size_bucket(n) - n) / n < 0.012
    assert size_bucket(1000) == size_bucket(1010) != size_bucket(1030)


def test_a_null_is_drawn_once_per_reference_bucket_and_distance() -> None:
    cache = NullCache()
    first = cache.summary(REF, 2000, "psi", psi, draws=300)
    assert cache.summary(REF, 2010, "psi", psi, draws=300) is first
    assert cache.summary(REF, 2000, "js", js_distance, draws=300) is not first
    assert cache.summary(REF + 1, 2000, "psi", psi, draws=300) is not first
    assert cache.summary(REF, 2000, "psi", psi, draws=500) is not first
    assert (cache.hits, cache.misses) == (1, 4)
    key = null_key(REF, 2000, "psi", 300)
    seed = int.from_bytes(__import__("hashlib").blake2b(key.encode(), digest_size=8).digest(), "big")
    drawn = null_distribution(REF, size_bucket(2000), psi, draws=300, seed=seed)
    assert first.mean == pytest.approx(float(drawn.mean()), rel=1e-12)  # the same draws wherever made
    assert first.empirical_p(float(np.quantile(drawn, 0.9))) == pytest.approx(
        (1 + np.sum(drawn >= np.float32(np.quantile(drawn, 0.9)))) / 301
    )


def test_the_least_recently_used_go_first() -> None:
    cache = NullCache(max_entries=2)
    a = cache.summary(REF, 1000, "psi", psi, draws=100)
    cache.summary(REF, 2000, "psi", psi, draws=100)
    assert cache.summary(REF, 1000, "psi", psi, draws=100) is a  # used again: kept
    cache.summary(REF, 4000, "psi", psi, draws=100)
    assert len(cache) == 2 and cache.summary(REF, 1000, "psi", psi, draws=100) is a
    assert cache.misses == 3


def test_nulls_outlive_a_restart_in_the_store(tmp_path: Path) -> None:
    uri = f"duckdb:///{tmp_path / 'n.duckdb'}"
    store = DuckDBStore(uri)
    cache = NullCache(DuckDBNulls(store))
    made = cache.summary(REF, 3000, "psi", psi, draws=200)
    assert cache.misses == 1
    DuckDBNulls(store).save_nulls(cache.take_new())
    assert cache.take_new() == []
    store.close()

    store = DuckDBStore(uri)
    again = NullCache(DuckDBNulls(store))
    loaded = again.summary(REF, 3000, "psi", psi, draws=200)
    assert (again.hits, again.misses) == (1, 0)
    assert (loaded.mean, loaded.var) == (made.mean, made.var)
    assert np.array_equal(loaded.draws, made.draws) and loaded.quantile(0.001) == made.quantile(0.001)
    store.close()


def test_a_summary_reads_as_its_draws() -> None:
    rng = np.random.default_rng(5)
    null = rng.chisquare(4, 400) / 1000
    summary = NullSummary.of(null)
    from sustain.indicators.gamma import moment_matched_isf, moment_matched_sf

    assert summary.tail(0.01) == moment_matched_sf(null, 0.01)
    assert summary.quantile(0.001) == moment_matched_isf(null, 0.001)
    observed = float(np.quantile(null, 0.95))
    assert summary.empirical_p(observed) == (1 + np.sum(null.astype(np.float32) >= np.float32(observed))) / 401


def test_cached_calibration_judges_windows_as_per_window_draws_do() -> None:
    """Statuses agree and p-values differ by Monte-Carlo noise only: the cache changes the draw, not the law."""
    cache = NullCache()
    agree = compared = 0
    for seed in range(6):
        for drift in (None, {"age": 0.3}):
            ctx = sample_context(rows=3000, seed=seed, drift=drift)
            direct = {v.feature: v for v in DataDrift().compute(ctx)}
            cached = {v.feature: v for v in DataDrift().compute(dataclasses.replace(ctx, nulls=cache))}
            assert direct.keys() == cached.keys()
            for name, v in direct.items():
                w = cached[name]
                assert (v.value, v.method, v.n) == (w.value, w.method, w.n)
                compared += 1
                agree += v.status == w.status
                if v.method and "calibrated" in v.method and v.p_value is not None and w.p_value is not None:
                    if v.p_value > 1e-3:
                        assert abs(v.p_value - w.p_value) < 0.1, (name, v.p_value, w.p_value)
                    else:
                        assert w.p_value < 1e-2, (name, v.p_value, w.p_value)
            if drift:
                assert direct["age"].status == cached["age"].status == "alert"
    assert agree == compared
    assert cache.hits > cache.misses  # windows of one reference and size share their nulls


def test_a_threshold_skips_the_quantile_only_where_the_floor_wins_anyway() -> None:
    """``threshold(floor, p)`` is ``max(floor, quantile(p))`` to the bit, with floors just around the quantile
    (where skipping would be wrong), far on either side, and on nulls no gamma fits (zero variance)."""
    rng = np.random.default_rng(17)
    skipped = 0
    for _ in range(300):
        mean = float(10 ** rng.uniform(-4, 1))
        var = 0.0 if rng.random() < 0.05 else float(mean**2 / 10 ** rng.uniform(-1, 2.5))
        p = float(10 ** rng.uniform(-6, -1))
        reference = NullSummary(mean, var, np.zeros(0, dtype=np.float32))
        quantile = reference.quantile(p)
        for ratio in (0.5, 1 - 1e-5, 1 - 1e-7, *(1 - 10.0**-k for k in range(9, 14)), 1.0, 1 + 1e-10, 1.2, 3):
            floor = quantile * ratio
            fresh = NullSummary(mean, var, np.zeros(0, dtype=np.float32))
            got = fresh.threshold(floor, p)
            assert got == max(floor, quantile), (mean, var, p, ratio)
            assert threshold_above(floor, mean, var, p) == got  # the same shortcut for a null drawn per window
            skipped += p not in fresh._quantiles
    assert skipped > 300  # the floors well above the quantile did skip it
