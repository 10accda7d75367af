"""The drift decision, shared by the windowed indicator and the one-shot ``sustain drift`` report.

Pure NumPy (and SciPy only for the small-sample exact tests, imported when
used), so the one-shot command starts fast. For one column, :func:`assess`
turns reference and current counts over the same bins (plus raw samples when a
sample test applies) into an effect size and a p-value; :func:`decide` applies
the multiple-comparison correction across columns and the effect floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sustain.indicators.base import Status
from sustain.indicators.gamma import moment_matched_sf, null_moments, threshold_above
from sustain.indicators.stats.nulls import NullCache
from sustain.transforms.bins import OTHER

Counts = npt.NDArray[np.float64]
Correction = Literal["bh", "bonferroni", "holm", "none"]

# The smallest effect worth an alert. Numbers are judged by default with the normed Wasserstein distance, in
# reference standard deviations, and must have moved by more than 0.05 sd *with the test's confidence* (see
# :func:`effect_margin`): a 0.05-sd shift alerts at most ``alpha`` of the time at any size, a 0.1-sd shift
# nearly always from 10,000 values on. The others are point floors, about a 0.1-sd shift of a normal feature.
MIN_EFFECT: dict[str, float] = {
    "psi": 0.01,
    "js": 0.04,
    "hellinger": 0.035,
    "kl": 0.005,
    "tv": 0.02,
    "wasserstein": 0.05,
}
DISTANCE_NAMES = tuple(MIN_EFFECT)
# Distances defined only on ordered bins; other kinds of column fall back to their default distance.
NUMERIC_ONLY = frozenset({"wasserstein"})
MIN_SPAN = 1e-100  # bins narrower than this in all (squares near the float minimum) take the default distance
BINNED_KINDS = frozenset({"numeric", "text", "embedding"})  # numbers, text lengths and embedding norms
SAMPLE_TESTS = ("ks", "cvm", "ad")
CALIBRATED_MIN_COUNT = 100  # reference values per category below which categories keep their exact test
TESTS = ("auto", "calibrated", "chi2", "z", "fisher", *SAMPLE_TESTS)


def check_settings(*, alpha: float, correction: str, method: str = "auto", test: str = "auto") -> None:
    """Raise ``ValueError`` naming the first drift setting that is not valid (shared by every drift-like
    indicator and the one-shot report)."""
    if method != "auto" and method not in DISTANCE_NAMES:
        raise ValueError(f"method must be auto or one of {', '.join(DISTANCE_NAMES)}, not {method!r}")
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, not {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if correction not in ("bh", "bonferroni", "holm", "none"):
        raise ValueError(f"correction must be bh, bonferroni, holm or none, not {correction!r}")


@dataclass(frozen=True)
class DriftSettings:
    """How columns are judged for drift, validated once: the same settings for the engine's ``drift``
    indicator, the one-shot report and ``sustain drift``.

    >>> DriftSettings(alpha=0.05).correction
    'bh'
    >>> DriftSettings(test="t")
    Traceback (most recent call last):
    ...
    ValueError: test must be one of auto, calibrated, chi2, z, fisher, ks, cvm, ad, not 't'
    """

    method: str = "auto"  # a distance of DISTANCE_NAMES, or auto (wasserstein for numbers, psi otherwise)
    test: str = "auto"  # one of TESTS; auto picks by the column's kind and the window's size
    alpha: float = 0.01  # the false-alarm budget of one judgement, across its columns after the correction
    correction: Correction = "bh"
    min_effect: float | None = None  # the effect floor; None: MIN_EFFECT of the distance
    draws: int = 400  # Monte Carlo draws of a calibrated test
    exact_max: int = 1000  # windows up to this size are judged by exact or sample tests

    def __post_init__(self) -> None:
        check_settings(alpha=self.alpha, correction=self.correction, method=self.method, test=self.test)
        if self.draws < 1:
            raise ValueError(f"draws must be at least 1, not {self.draws}")
        if self.exact_max < 0:
            raise ValueError(f"exact_max cannot be negative, not {self.exact_max}")
        if self.min_effect is not None and self.min_effect < 0:
            raise ValueError(f"min_effect cannot be negative, not {self.min_effect}")


def distance_function(name: str, edges: Sequence[float] | None = None) -> Callable[[Counts, Counts], float]:
    """The distance ``name`` between two count vectors; ``wasserstein`` needs the interior bin ``edges``."""
    from sustain.indicators.stats import binned

    if name == "wasserstein":
        if edges is None or len(edges) < 2:
            raise ValueError("the wasserstein distance needs numeric bins with at least two interior edges")
        from sustain.indicators.stats.wasserstein_rows import NormedWasserstein

        return NormedWasserstein(edges)  # calibrates all its draws at once (``rows``)
    table: dict[str, Callable[[Counts, Counts], float]] = {
        "psi": binned.psi,
        "js": binned.js_distance,
        "hellinger": binned.hellinger,
        "kl": binned.kl_divergence,
        "tv": binned.total_variation,
    }
    return table[name]


def default_distance(kind: str) -> str:
    return {"categorical": "js", "boolean": "tv"}.get(kind, "psi")


def distance_for(method: str, kind: str, edges: Sequence[float] | None = None, ref_counts: Counts | None = None) -> str:
    """The distance a column is judged with: ``method``, or for ``auto`` the normed Wasserstein distance on
    numbers (in reference standard deviations) and the kind's default distance otherwise; Wasserstein falls back
    to the default where it cannot apply (categories, or a reference that is constant or nearly so)."""
    if method == "auto":
        method = "wasserstein" if kind in BINNED_KINDS else default_distance(kind)
    if method in NUMERIC_ONLY:
        spread = ref_counts is None or int(np.count_nonzero(ref_counts)) >= 2
        if kind not in BINNED_KINDS or edges is None or len(edges) < 2 or not spread or not _measurable(edges):
            return default_distance(kind)
    return method


def _measurable(edges: Sequence[float]) -> bool:
    """Whether the bins span enough for a standard deviation in floating point: edges 1e-300 apart square to 0,
    and the normed Wasserstein distance divides by that deviation."""
    span = float(edges[-1]) - float(edges[0])
    return math.isfinite(span) and span > MIN_SPAN


def effect_margin(distance: str, alpha: float, n_ref: int, n_cur: int) -> float:
    """How far above the floor a distance must be before it counts: for the normed Wasserstein distance, the
    one-sided ``1 - alpha`` bound on its noise, ``z * sqrt(1 / n_ref + 1 / n_cur)`` in standard deviations
    (the standard error of a difference of means), so that a shift of exactly ``min_effect`` alerts at most
    ``alpha`` of the time; 0 for the other distances, whose floor is a point floor.

    >>> round(effect_margin("wasserstein", 0.01, 100_000, 10_000), 4), effect_margin("psi", 0.01, 10, 10)
    (0.0244, 0.0)
    """
    if distance != "wasserstein" or n_ref <= 0 or n_cur <= 0:
        return 0.0
    from statistics import NormalDist

    return NormalDist().inv_cdf(1.0 - alpha) * float(np.sqrt(1.0 / n_ref + 1.0 / n_cur))


def choose_test(test: str, kind: str, n: int, exact_max: int, ref_counts: Counts, cur_counts: Counts) -> str:
    """``auto``: exact tests while the window is small, the calibrated distance beyond ``exact_max``.

    Categories and booleans keep their exact test (chi-square, judged by its permutation distribution when the
    table is sparse; the two-proportion z-test or Fisher's) at any size when a category seen on either side has
    fewer than :data:`CALIBRATED_MIN_COUNT` reference values: the calibrated null draws both sides from the
    reference's own shares, which are too uncertain there (a boolean with 2% positives in 300 reference rows
    false-alarmed at twice its level), and knows nothing of categories the reference never saw."""
    if test != "auto":
        return test
    if kind in ("categorical", "boolean"):
        seen = (ref_counts + cur_counts) > 0
        sparse = bool(seen.any()) and float(ref_counts[seen].min()) < CALIBRATED_MIN_COUNT
        if n > exact_max and not sparse:
            return "calibrated"
    elif n > exact_max:
        return "calibrated"
    if kind == "categorical":
        return "chi2"
    if kind == "boolean":
        totals = np.array([ref_counts.sum(), cur_counts.sum()])
        shares = (ref_counts + cur_counts) / max(1.0, float(totals.sum()))
        return "fisher" if np.outer(totals, shares).min() < 5 else "z"
    return "ks"


@dataclass
class Assessment:
    """One column's effect size and p-value, before the correction across columns."""

    name: str
    kind: str
    n: int
    value: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    threshold: float | None = None
    floor: float = 0.0
    margin: float = 0.0  # the effect must reach floor + margin (see effect_margin)
    distance: str = ""
    test: str = ""
    status: Status = "ok"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        if not self.distance:
            return ""
        return f"{self.distance} (calibrated)" if self.test == "calibrated" else f"{self.distance}+{self.test}"

    @property
    def drifted(self) -> bool:
        return self.status == "alert"


def insufficient(name: str, kind: str, n: int, reason: str) -> Assessment:
    return Assessment(name, kind, n, status="insufficient", details={"reason": reason})


def judge(
    name: str,
    kind: str,
    ref_counts: Counts,
    cur_counts: Counts,
    settings: DriftSettings,
    *,
    columns: int,
    seed: int,
    samples: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    keys: Sequence[str] = (),
    edges: Sequence[float] | None = None,
    nulls: NullCache | None = None,
) -> Assessment:
    """One column judged with ``settings`` against the reference: the distance ``method`` allows for its kind,
    the test ``test`` picks for the window's size, the effect floor, then :func:`assess`. ``keys`` name the bins of
    a categorical or boolean column (``true`` and the :data:`OTHER` bin are what a boolean test counts)."""
    distance = distance_for(settings.method, kind, edges, ref_counts)
    chosen = choose_test(settings.test, kind, int(cur_counts.sum()), settings.exact_max, ref_counts, cur_counts)
    return assess(
        name,
        kind,
        ref_counts,
        cur_counts,
        distance=distance,
        test=chosen,
        floor=settings.min_effect if settings.min_effect is not None else MIN_EFFECT[distance],
        alpha=settings.alpha,
        columns=columns,
        correction=settings.correction,
        draws=settings.draws,
        seed=seed,
        samples=samples,
        true_index=[i for i, key in enumerate(keys) if key in ("true", OTHER)],
        edges=edges,
        nulls=nulls,
    )


def assess(
    name: str,
    kind: str,
    ref_counts: Counts,
    cur_counts: Counts,
    *,
    distance: str,
    test: str,
    floor: float,
    alpha: float,
    columns: int,
    correction: Correction,
    draws: int,
    seed: int,
    samples: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    true_index: Sequence[int] = (),
    edges: Sequence[float] | None = None,
    nulls: NullCache | None = None,
) -> Assessment:
    """Effect size and p-value of one column. ``test`` is already chosen (see :func:`choose_test`); a sample
    test without ``samples`` falls back to the calibrated distance. ``edges`` (the interior bin edges of a
    numeric column) are needed by the Wasserstein distance only. With ``nulls``, a calibrated distance reads its
    null distribution from that cache (drawn once per reference, size bucket and distance) instead of drawing
    one for this window alone."""
    n = int(cur_counts.sum())
    out = Assessment(name, kind, n, distance=distance, floor=floor, test=test)
    measure = distance_function(distance, edges)
    out.value = measure(ref_counts, cur_counts)
    out.details["n_ref"] = int(ref_counts.sum())
    out.margin = effect_margin(distance, alpha, int(ref_counts.sum()), n)
    floor = floor + out.margin
    if test in SAMPLE_TESTS and samples is None:
        test = out.test = "calibrated"
    if test in SAMPLE_TESTS:
        from sustain.indicators.stats import twosample

        fn = {"ks": twosample.ks_2samp, "cvm": twosample.cramer_von_mises, "ad": twosample.anderson_darling}[test]
        assert samples is not None
        result = fn(samples[0], samples[1])
        out.p_value = result.p_value
        out.details.update(statistic=result.statistic, sample_n=len(samples[1]))
        out.threshold = floor
    elif test == "chi2":
        from sustain.indicators.stats import binned

        if binned.sparse(ref_counts, cur_counts):
            # Too sparse for the chi-square distribution: the statistic's own distribution given the margins.
            statistic, null = binned.chi_square_null(ref_counts, cur_counts, draws=draws, seed=seed)
            out.p_value = moment_matched_sf(null, statistic)
            out.details.update(statistic=statistic, null="permutation", null_mean=float(np.mean(null)))
        else:
            result = binned.chi_square(ref_counts, cur_counts)
            out.p_value = result.p_value
            out.details["statistic"] = result.statistic
        out.threshold = floor
    elif test in ("z", "fisher"):
        from sustain.indicators.stats import twosample

        idx = list(true_index)
        ref_true, cur_true = int(ref_counts[idx].sum()), int(cur_counts[idx].sum())
        fn2 = twosample.z_test_proportions if test == "z" else twosample.fisher_exact
        result = fn2(ref_true, int(ref_counts.sum()), cur_true, int(cur_counts.sum()))
        out.p_value = result.p_value
        out.details["statistic"] = result.statistic
        out.threshold = floor
    elif nulls is not None:
        summary = nulls.summary(ref_counts, n, _statistic_name(distance, edges), measure, draws)
        out.p_value = summary.tail(out.value)
        out.details["null_mean"] = summary.mean
        out.details["empirical_p"] = summary.empirical_p(out.value)
        out.threshold = summary.threshold(floor, _level(alpha, columns, correction))
    else:
        from sustain.indicators.stats.calibration import null_distribution

        null = null_distribution(ref_counts, n, measure, draws=draws, seed=seed)
        out.p_value = moment_matched_sf(null, out.value)
        out.details["null_mean"] = float(np.mean(null))
        out.details["empirical_p"] = float((1 + np.sum(null >= out.value)) / (1 + len(null)))
        out.threshold = threshold_above(floor, *null_moments(null), _level(alpha, columns, correction))
    return out


def _level(alpha: float, columns: int, correction: Correction) -> float:
    """The per-column level a calibrated threshold is set at."""
    return alpha / max(1, columns) if correction != "none" else alpha


def _statistic_name(distance: str, edges: Sequence[float] | None) -> str:
    """What defines a distance's null besides the reference counts: its name, and the bin edges it reads."""
    if distance != "wasserstein" or edges is None:
        return distance
    import hashlib

    digest = hashlib.blake2b(np.asarray(edges, dtype=np.float64).tobytes(), digest_size=6).hexdigest()
    return f"{distance}:{digest}"


def decide(assessments: Sequence[Assessment], alpha: float, correction: Correction) -> None:
    """Set each tested column's status: ``alert`` when its corrected p-value is below ``alpha`` and its effect
    reaches the floor; ``warn`` when only the uncorrected p-value is; ``ok`` otherwise."""
    from sustain.indicators.stats.multiple import adjust

    tested = [a for a in assessments if a.p_value is not None and a.status != "insufficient"]
    if not tested:
        return
    rejected, adjusted = adjust([float(a.p_value) for a in tested if a.p_value is not None], alpha, correction)
    for a, rej, adj in zip(tested, rejected, adjusted, strict=True):
        big = a.value is not None and a.value - a.margin >= a.floor
        a.p_adjusted = float(adj)
        if bool(rej) and big:
            a.status = "alert"
        elif a.p_value is not None and a.p_value < alpha and big:
            a.status = "warn"
        else:
            a.status = "ok"
