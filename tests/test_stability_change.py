"""Prediction stability between windows, and river change detectors on indicator series (state across restarts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.indicators.base import IndicatorValue
from sustain.indicators.change import ChangeDetector
from sustain.indicators.context import WindowContext
from sustain.indicators.documents import IndicatorQuery
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch
from sustain.transforms.plan import plan_for
from sustain.transforms.window import WindowAggregates

T0 = datetime(2026, 8, 1, tzinfo=UTC)


def series_ctx(spec, value: float, minute: int, partial: bool = False) -> WindowContext:
    start = T0 + timedelta(minutes=minute)
    window = WindowAggregates("m", "1", "1m", start, start + timedelta(minutes=1))
    return WindowContext(
        spec,
        plan_for(spec, "1m", None),
        window,
        None,
        [],
        partial=partial,
        values={"watched": [IndicatorValue(None, value)]},
    )


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley", "kswin"])
def test_detectors_fire_on_a_level_shift_and_stay_quiet_when_stationary(detector) -> None:
    spec = parse_model_spec({"name": "m", "features": {"x": "numeric"}})
    rng = np.random.default_rng(7)
    stationary = ChangeDetector(watch="watched", detector=detector)
    alerts = [
        v.status
        for i, x in enumerate(rng.normal(0.05, 0.01, 300))
        for v in stationary.compute(series_ctx(spec, float(x), i))
    ]
    assert "alert" not in alerts
    shifted = ChangeDetector(watch="watched", detector=detector)
    series = np.concatenate([rng.normal(0.05, 0.01, 150), rng.normal(0.09, 0.01, 150)])
    statuses = [v.status for i, x in enumerate(series) for v in shifted.compute(series_ctx(spec, float(x), i))]
    first = statuses.index("alert")
    assert 150 <= first < 180, first  # fires soon after the shift, never before it


def test_open_windows_wait_and_each_window_is_fed_once() -> None:
    spec = parse_model_spec({"name": "m", "features": {"x": "numeric"}})
    det = ChangeDetector(watch="watched", warmup=2)
    (open_value,) = det.compute(series_ctx(spec, 1.0, 0, partial=True))
    assert open_value.status == "insufficient" and "still open" in open_value.details["reason"]
    for i in range(3):
        list(det.compute(series_ctx(spec, 1.0 + i, i)))
    (again,) = det.compute(series_ctx(spec, 99.0, 2))
    assert "already fed" in again.details["note"]
    (misconfigured,) = ChangeDetector(watch="missing").compute(series_ctx(spec, 1.0, 0))
    assert misconfigured.status == "error" and "must be listed before it" in misconfigured.details["error"]


def test_stability_and_change_through_the_engine_with_a_restart(tmp_path) -> None:
    spec = parse_model_spec(
        {
            "name": "m",
            "features": {"x": "numeric"},
            "outputs": {"decision": {"kind": "class_label", "classes": ["no", "yes"]}},
            "windows": ["1m"],
            "indicators": [
                {"type": "traffic"},
                {"type": "stability"},
                {
                    "type": "change",
                    "name": "traffic-change",
                    "params": {"watch": "traffic", "detector": "page_hinkley"},
                },
            ],
        }
    )
    store = DuckDBStore(f"duckdb:///{tmp_path / 's.duckdb'}")
    store.put_spec(spec)
    rng = np.random.default_rng(3)

    def minutes(start: int, count: int, rate: int, yes_share: float) -> None:
        events = []
        for m in range(start, start + count):
            n = int(rng.poisson(rate))
            for k in range(n):
                events.append(
                    {
                        "features": {"x": 1.0},
                        "outputs": {"decision": "yes" if rng.random() < yes_share else "no"},
                        "timestamp": (T0 + timedelta(minutes=m, seconds=k * 59 / max(n, 1))).isoformat(),
                    }
                )
        store.append_events([EventBatch("m", parse_events(spec, events, T0 + timedelta(days=1)).table)])

    clock = lambda: T0 + timedelta(days=1)  # noqa: E731 - every window closed
    minutes(0, 20, 200, 0.3)
    engine = embedded_engine(store, clock=clock)
    engine.step()
    engine.stop()
    restarted = embedded_engine(store, clock=clock)  # state comes back from the store
    minutes(20, 20, 200, 0.3)
    minutes(40, 5, 600, 0.8)  # traffic triples and the decisions flip
    restarted.step()
    docs = restarted.documents.query(IndicatorQuery("m", limit=10_000))
    change = sorted((d for d in docs if d.indicator == "traffic-change"), key=lambda d: d.window_start)
    assert [d.status for d in change[:10]] == ["insufficient"] * 10  # warm-up happened before the restart
    assert change[20].status == "ok"  # after the restart the detector continued, no new warm-up
    assert all(d.status == "ok" for d in change[10:40]) and "alert" in [d.status for d in change[40:]]
    stability = {d.window_start: d for d in docs if d.indicator == "stability"}
    assert stability[T0 + timedelta(minutes=30)].status == "ok"
    assert stability[T0 + timedelta(minutes=40)].status == "alert"
