"""Categorical and boolean drift tests hold their false-alarm level on sparse data.

Issue 10, defect 5: on a 500-level Zipf column, 300 reference rows against 1,000 current rows of the same
distribution, the chi-square test said p = 5.9e-08: most cells expected far fewer than 5 values, where the
chi-square approximation does not hold, and only the reference's categories were bins. Now every category of
either side is a bin, and a sparse table is judged by the permutation distribution of its chi-square statistic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sustain.indicators.decide import DriftSettings, judge
from sustain.indicators.stats.binned import chi_square_null
from sustain.report.drift import DriftReport
from sustain.transforms.bins import OTHER

LEVELS = np.array([f"c{i}" for i in range(500)])
ZIPF = 1.0 / np.arange(1, 501) ** 1.1
ZIPF /= ZIPF.sum()


def test_the_issue_repro_is_not_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.choice(LEVELS, 300, p=ZIPF), rng.choice(LEVELS, 1000, p=ZIPF)
    pq.write_table(pa.table({"z": ref}), tmp_path / "ref.parquet")
    pq.write_table(pa.table({"z": cur}), tmp_path / "cur.parquet")
    (z,), _, _ = DriftReport().run(tmp_path / "ref.parquet", tmp_path / "cur.parquet")
    assert z.status != "alert" and z.p_value is not None and z.p_value > 0.01, (z.p_value, z.method)


def _counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Counts over every category of either side (then an empty other bin), as the report builds them."""
    ref_names, ref_n = np.unique(ref, return_counts=True)
    cur_names, cur_n = np.unique(cur, return_counts=True)
    ref_map = dict(zip(ref_names.tolist(), ref_n.tolist(), strict=True))
    cur_map = dict(zip(cur_names.tolist(), cur_n.tolist(), strict=True))
    keys = sorted(ref_map, key=lambda k: (-ref_map[k], k)) + sorted(set(cur_map) - set(ref_map))
    ref_counts = np.array([ref_map.get(k, 0) for k in keys] + [0], dtype=float)
    cur_counts = np.array([cur_map.get(k, 0) for k in keys] + [0], dtype=float)
    return ref_counts, cur_counts, [*keys, OTHER]


def _plausible(hits: int, trials: int, alpha: float) -> bool:
    """Whether ``hits`` false alarms in ``trials`` are plausible for a test of level ``alpha`` (binomial upper
    tail above 0.001: a correct test fails this one time in a thousand at most, and the seeds are fixed)."""
    from scipy import stats

    return bool(stats.binom.sf(hits - 1, trials, alpha) > 0.001)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 1000), (1000, 300), (300, 300), (2000, 1000)])
def test_a_sparse_categorical_holds_its_level(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    trials, alpha, flagged = 300, 0.01, 0
    for t in range(trials):
        ref_counts, cur_counts, keys = _counts(rng.choice(LEVELS, n_ref, p=ZIPF), rng.choice(LEVELS, n_cur, p=ZIPF))
        a = judge(
            "z",
            "categorical",
            ref_counts,
            cur_counts,
            DriftSettings(min_effect=0.0, alpha=alpha, correction="none", draws=200),
            columns=1,
            seed=t,
            keys=keys,
        )
        flagged += a.p_value is not None and a.p_value < alpha
    assert _plausible(flagged, trials, alpha), flagged


@pytest.mark.parametrize(
    ("n_ref", "n_cur"), [(300, 1000), (1000, 300), (300, 300), (5000, 1000), (300, 10_000), (1000, 1_000_000)]
)
def test_a_rare_boolean_holds_its_level(n_ref: int, n_cur: int) -> None:
    """2% positives: Fisher's or the z-test at any size (the calibrated distance false-alarmed at 2-3% here when
    the reference was small and the window large)."""
    rng = np.random.default_rng(n_ref * 7 + n_cur)
    trials, alpha, flagged = 2000, 0.01, 0
    for t in range(trials):
        a_ref, a_cur = rng.binomial(n_ref, 0.02), rng.binomial(n_cur, 0.02)
        ref_counts, cur_counts = np.array([n_ref - a_ref, a_ref], float), np.array([n_cur - a_cur, a_cur], float)
        a = judge(
            "b",
            "boolean",
            ref_counts,
            cur_counts,
            DriftSettings(min_effect=0.0, alpha=alpha, correction="none", draws=200),
            columns=1,
            seed=t,
            keys=["false", "true"],
        )
        flagged += a.p_value is not None and a.p_value < alpha
    assert _plausible(flagged, trials, alpha), flagged


def test_the_permutation_null_agrees_with_chi_square_where_that_holds() -> None:
    from sustain.indicators.gamma import moment_matched_sf
    from sustain.indicators.stats.binned import chi_square

    rng = np.random.default_rng(2)
    p = np.array([0.4, 0.3, 0.2, 0.1])
    for _ in range(5):
        ref, cur = rng.multinomial(2000, p).astype(float), rng.multinomial(1500, p).astype(float)
        observed, null = chi_square_null(ref, cur, draws=2000, seed=1)
        assert observed == pytest.approx(chi_square(ref, cur).statistic)
        assert moment_matched_sf(null, observed) == pytest.approx(chi_square(ref, cur).p_value, abs=0.03)


def test_a_rare_new_category_against_a_large_reference_is_found() -> None:
    """5% of 1,000 current values in a category 100,000 reference values never had: 0.5 expected, no chi-square
    approximation there, and merging it into another category would hide it."""
    rng = np.random.default_rng(4)
    shares = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    ref = np.append(rng.multinomial(100_000, shares), 0).astype(float)
    cur = rng.multinomial(1000, np.append(shares * 0.95, 0.05)).astype(float)
    keys = ["a", "b", "c", "d", "e", "f"]
    a = judge(
        "c",
        "categorical",
        ref,
        cur,
        DriftSettings(alpha=0.01, correction="none"),
        columns=1,
        seed=0,
        keys=keys,
    )
    assert a.details.get("null") == "permutation" and a.p_value is not None and a.p_value < 1e-6


def test_a_real_change_in_a_sparse_column_is_still_found() -> None:
    rng = np.random.default_rng(9)
    moved = ZIPF.copy()
    moved[:5] = moved[:5][::-1]  # the five most common levels swap places
    ref_counts, cur_counts, keys = _counts(rng.choice(LEVELS, 300, p=ZIPF), rng.choice(LEVELS, 1000, p=moved))
    a = judge(
        "z",
        "categorical",
        ref_counts,
        cur_counts,
        DriftSettings(alpha=0.01, correction="none", draws=200),
        columns=1,
        seed=0,
        keys=keys,
    )
    assert a.p_value is not None and a.p_value < 1e-4
