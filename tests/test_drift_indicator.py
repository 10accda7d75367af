"""Drift through the whole embedded path: events → transforms → calibrated drift → indicator documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.engine import Engine
from sustain.indicators.context import WindowContext, select_columns
from sustain.indicators.documents import IndicatorQuery
from sustain.indicators.drift import DataDrift
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch
from sustain.synthetic import SyntheticModel

T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)
FEATURES = {
    **{f"x{i}": "numeric" for i in range(8)},
    "plan": {"kind": "categorical", "categories": ["a", "b", "c", "d", "e"]},
    "flag": "boolean",
}


def model_spec(windows: list[str], indicators: list[dict] | None = None) -> ModelSpec:
    body: dict = {"name": "m", "features": FEATURES, "outputs": {"p": {"kind": "probability"}}, "windows": windows}
    if indicators is not None:
        body["indicators"] = indicators
    return parse_model_spec(body)


def load(
    store: DuckDBStore,
    spec: ModelSpec,
    model: SyntheticModel,
    n: int,
    start: datetime,
    span: timedelta,
    drift: dict[str, float] | None = None,
) -> None:
    events = model.events(n, drift)
    step = span / n
    for i, e in enumerate(events):
        e["timestamp"] = (start + step * i).isoformat()
    parsed = parse_events(spec, events, T0 + timedelta(days=30))
    store.append_events([EventBatch(spec.name, parsed.table)])


@pytest.fixture
def engine(tmp_path):
    def make(spec: ModelSpec) -> tuple[Engine, SyntheticModel]:
        store = DuckDBStore(f"duckdb:///{tmp_path / 'd.duckdb'}")
        store.put_spec(spec)
        model = SyntheticModel(spec, seed=11)
        store.put_reference("m", "1", to_layout(spec, pa.table(model.reference(20_000))).table)
        eng = embedded_engine(store, clock=lambda: T0 + timedelta(days=30))
        eng.on_reference("m", "1")
        return eng, model

    return make


def test_drifted_features_are_flagged_and_no_others(engine) -> None:
    spec = model_spec(["1h"])
    eng, model = engine(spec)
    load(eng.store, spec, model, 5000, T0, timedelta(hours=1))  # undrifted hour
    load(eng.store, spec, model, 5000, T0 + timedelta(hours=1), timedelta(hours=1), {"x2": 0.4, "x5": -0.5, "plan": 1})
    eng.step()
    docs = eng.documents.query(IndicatorQuery("m", indicator="drift", limit=1000))
    first = {d.feature: d for d in docs if d.window_start == T0}
    second = {d.feature: d for d in docs if d.window_start == T0 + timedelta(hours=1)}
    assert {f for f, d in first.items() if d.status == "alert"} == set()
    # the prediction drifts too: the model's score depends on x2 and x5
    assert {f for f, d in second.items() if d.status == "alert"} == {"x2", "x5", "plan", "p", None}
    assert second[None].value == pytest.approx(4 / 11)  # 10 features + 1 output evaluated
    x2 = second["x2"]
    assert x2.method == "wasserstein (calibrated)" and x2.n == 5000 and x2.p_value is not None and x2.p_value < 1e-6
    assert x2.value is not None and x2.threshold is not None and x2.value > x2.threshold
    assert x2.details["reference_version"] == "1"
    assert first["x2"].status == "ok" and first["x2"].p_value is not None and first["x2"].p_value > 1e-3


def test_small_windows_use_exact_tests(engine) -> None:
    spec = model_spec(["1h"])
    eng, model = engine(spec)
    load(eng.store, spec, model, 400, T0, timedelta(hours=1), {"x1": 1.0})
    eng.step()
    docs = {d.feature: d for d in eng.documents.query(IndicatorQuery("m", indicator="drift"))}
    assert docs["x1"].method == "wasserstein+ks" and docs["x1"].status == "alert"
    assert docs["plan"].method == "js+chi2"
    assert docs["flag"].method in ("tv+z", "tv+fisher")
    assert docs["x3"].status == "ok"


def test_false_alarm_rate_stays_within_the_budget(engine) -> None:
    """200 undrifted windows of 600 events: the share of windows with any alert stays within alpha."""
    alpha = 0.05
    spec = model_spec(["1m"], [{"type": "drift", "params": {"alpha": alpha, "min_effect": 0.0}}])
    eng, model = engine(spec)
    windows = 200
    load(eng.store, spec, model, 600 * windows, T0, timedelta(minutes=windows))
    eng.step()
    docs = eng.documents.query(IndicatorQuery("m", indicator="drift", limit=100_000))
    summaries = [d for d in docs if d.feature is None]
    assert len(summaries) == windows
    rate = sum(d.status == "alert" for d in summaries) / windows
    margin = 3 * np.sqrt(alpha * (1 - alpha) / windows)
    assert rate <= alpha + margin, rate


def test_no_reference_means_insufficient_not_alert(tmp_path) -> None:
    spec = model_spec(["1h"])
    store = DuckDBStore(f"duckdb:///{tmp_path / 'n.duckdb'}")
    store.put_spec(spec)
    eng = embedded_engine(store, clock=lambda: T0 + timedelta(days=1))
    load(store, spec, SyntheticModel(spec), 500, T0, timedelta(hours=1))
    docs = [d for d in eng.step() if d.type in ("drift", "multivariate_drift")]
    assert docs and all(d.status == "insufficient" for d in docs)
    assert any("upload reference data" in d.details.get("reason", "") for d in docs)


def test_the_indicator_alone_with_hand_made_windows() -> None:
    """The indicator needs no store: a context built from aggregates is enough (plugin authors test this way)."""
    from sustain.transforms.plan import plan_for
    from sustain.transforms.profile import build_profile
    from sustain.transforms.window import NumericSummary, WindowAggregates

    spec = parse_model_spec({"name": "m", "features": {"x": "numeric"}})
    rng = np.random.default_rng(1)
    reference = build_profile("m", "1", pa.table({"f:x": rng.normal(0, 1, 10_000)}), {"f:x": "numeric"}, bins=10)
    plan = plan_for(spec, "1h", reference)
    edges = np.asarray(reference.columns["f:x"].edges)
    values = rng.normal(0.5, 1, 3000)
    bins = np.bincount(np.searchsorted(edges, values), minlength=len(edges) + 1).tolist()
    window = WindowAggregates(
        "m", "1", "1h", T0, T0 + timedelta(hours=1), rows=3000, columns={"f:x": NumericSummary(count=3000, bins=bins)}
    )
    ctx = WindowContext(spec, plan, window, reference, select_columns(spec, plan, None))
    values_out = list(DataDrift().compute(ctx))
    assert values_out[0].feature == "x" and values_out[0].status == "alert"
    assert values_out[-1].feature is None and values_out[-1].value == 1.0


def test_multivariate_drift_sees_a_correlation_flip_the_marginals_hide(tmp_path) -> None:
    """x and y keep their distributions but their correlation flips: only the joint indicator alerts."""
    spec = parse_model_spec(
        {
            "name": "m",
            "features": {"x": "numeric", "y": "numeric", "z": "numeric"},
            "windows": ["1h"],
            "indicators": [{"type": "drift"}, {"type": "multivariate_drift"}],
        }
    )
    store = DuckDBStore(f"duckdb:///{tmp_path / 'mv.duckdb'}")
    store.put_spec(spec)
    rng = np.random.default_rng(3)

    def rows(n: int, rho: float) -> dict[str, np.ndarray]:
        x = rng.normal(0, 1, n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(0, 1, n)
        return {"x": x, "y": y, "z": rng.normal(0, 1, n)}

    ref = rows(6000, 0.9)
    store.put_reference("m", "1", to_layout(spec, pa.table(ref)).table)
    eng = embedded_engine(store, clock=lambda: T0 + timedelta(days=1))
    eng.on_reference("m", "1")
    for hour, rho in ((0, 0.9), (1, -0.9)):
        data = rows(3000, rho)
        events = [
            {
                "features": {k: float(v[i]) for k, v in data.items()},
                "timestamp": (T0 + timedelta(hours=hour, seconds=i)).isoformat(),
            }
            for i in range(3000)
        ]
        store.append_events([EventBatch("m", parse_events(spec, events, T0 + timedelta(days=1)).table)])
    eng.step()
    docs = eng.documents.query(IndicatorQuery("m", limit=1000))
    joint = {d.window_start: d for d in docs if d.indicator == "multivariate_drift"}
    marginal = {d.window_start: d for d in docs if d.indicator == "drift" and d.feature is None}
    assert joint[T0].status == "ok" and joint[T0 + timedelta(hours=1)].status == "alert"
    flipped = joint[T0 + timedelta(hours=1)].value
    assert flipped is not None and flipped > 0.5
    assert marginal[T0 + timedelta(hours=1)].status == "ok"  # no single feature moved


def test_wasserstein_reads_in_reference_standard_deviations(engine) -> None:
    """``method: wasserstein`` is the normed earth mover's distance: a 0.4-sd shift reads about 0.4, categories
    and booleans keep their own distances, and undrifted features stay quiet."""
    spec = model_spec(["1h"], [{"type": "drift", "params": {"method": "wasserstein"}}])
    eng, model = engine(spec)
    load(eng.store, spec, model, 5000, T0, timedelta(hours=1), {"x2": 0.4})
    eng.step()
    docs = {d.feature: d for d in eng.documents.query(IndicatorQuery("m", indicator="drift", limit=1000))}
    x2 = docs["x2"]
    assert x2.method == "wasserstein (calibrated)" and x2.status == "alert"
    assert x2.value == pytest.approx(0.4, abs=0.06)
    assert {f for f, d in docs.items() if d.status == "alert" and f is not None} <= {"x2", "p"}
    assert docs["x0"].method == "wasserstein (calibrated)" and docs["x0"].status == "ok"
    assert docs["x0"].value is not None and docs["x0"].value < 0.1
    assert docs["plan"].method == "js (calibrated)" and docs["flag"].method == "tv (calibrated)"


def test_wasserstein_on_a_constant_reference_falls_back() -> None:
    from sustain.indicators.decide import distance_for, distance_function

    assert distance_for("wasserstein", "numeric", [0.0]) == "psi"
    assert distance_for("wasserstein", "categorical", None) == "js"
    assert distance_for("wasserstein", "numeric", [0.0, 1.0]) == "wasserstein"
    with pytest.raises(ValueError, match="two interior edges"):
        distance_function("wasserstein", None)
