"""The engine's own figures: where a pass goes, how many models it touched, how far behind each model is.

For ``/metrics`` (:class:`EngineCollector`, read at each scrape):

* ``sustain_engine_phase_seconds{phase}``: seconds the last pass spent in each phase (transforms, read,
  indicators, write, alerts);
* ``sustain_engine_models_processed``: models whose windows the last pass computed;
  ``sustain_engine_models_transformed``: models with new events or labels in the last pass;
  ``sustain_engine_windows_computed``: windows the last pass computed;
* ``sustain_engine_open_passes_deferred``: open-window passes put off so that final windows were not kept
  waiting (since the engine started);
* ``sustain_engine_window_lag_seconds{model}``: seconds since the oldest window of the model still to compute
  became final (0 when none);
* ``sustain_engine_freshness_seconds{model}``: how long after its last event the model's newest final window
  was computed.

For the dashboard overview (:func:`engine_summary`): the same, with the slowest model and the one most behind.

>>> from sustain.engine import EngineStats
>>> class Engine:
...     stats = EngineStats(freshness={"a": 4.0, "b": 12.5}, models_processed=2)
...     def lags(self): return {"a": 0.0, "b": 3.0}
>>> summary = engine_summary(Engine())
>>> summary["slowest"], summary["most_behind"]
({'model': 'b', 'freshness_seconds': 12.5}, {'model': 'b', 'lag_seconds': 3.0})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sustain.engine import PHASES, EngineStats


class EngineFigures(Protocol):
    """What is read of an engine (:class:`sustain.engine.Engine`)."""

    stats: EngineStats

    def lags(self) -> dict[str, float]: ...


def engine_summary(engine: EngineFigures) -> dict[str, Any]:
    """The last pass's phases and counts, the slowest model (freshness) and the model most behind (lag)."""
    stats = engine.stats
    lags = engine.lags()
    slowest = max(stats.freshness.items(), key=lambda kv: kv[1], default=None)
    behind = max(lags.items(), key=lambda kv: kv[1], default=None)
    return {
        "phases": {name: stats.phases.get(name, 0.0) for name in PHASES},
        "pass_seconds": sum(stats.phases.get(name, 0.0) for name in PHASES),
        "models_processed": stats.models_processed,
        "models_transformed": stats.models_transformed,
        "windows_computed": stats.windows_computed,
        "slowest": None if slowest is None else {"model": slowest[0], "freshness_seconds": slowest[1]},
        "most_behind": None if behind is None or behind[1] <= 0 else {"model": behind[0], "lag_seconds": behind[1]},
        "last_error": stats.last_error,
    }


class EngineCollector(Collector):
    """The engine's figures as gauges, read at each scrape (from memory: no store query)."""

    def __init__(self, engine: EngineFigures) -> None:
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "phase": GaugeMetricFamily(
                "sustain_engine_phase_seconds", "Seconds the engine's last pass spent in each phase", labels=("phase",)
            ),
            "processed": GaugeMetricFamily(
                "sustain_engine_models_processed", "Models whose windows the last pass computed"
            ),
            "transformed": GaugeMetricFamily(
                "sustain_engine_models_transformed", "Models with new events or labels in the last pass"
            ),
            "windows": GaugeMetricFamily("sustain_engine_windows_computed", "Windows the last pass computed"),
            "deferred": GaugeMetricFamily(
                "sustain_engine_open_passes_deferred", "Open-window passes put off for final windows since the start"
            ),
            "lag": GaugeMetricFamily(
                "sustain_engine_window_lag_seconds",
                "Seconds since the oldest window of the model still to compute became final (0: none)",
                labels=("model",),
            ),
            "freshness": GaugeMetricFamily(
                "sustain_engine_freshness_seconds",
                "Seconds from the last event of the model's newest final window to its indicators",
                labels=("model",),
            ),
        }

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        stats = self.engine.stats
        for name in PHASES:
            families["phase"].add_metric([name], stats.phases.get(name, 0.0))
        families["processed"].add_metric([], float(stats.models_processed))
        families["transformed"].add_metric([], float(stats.models_transformed))
        families["windows"].add_metric([], float(stats.windows_computed))
        families["deferred"].add_metric([], float(stats.open_passes_deferred))
        for model, seconds in sorted(self.engine.lags().items()):
            families["lag"].add_metric([model], seconds)
        for model, seconds in sorted(dict(stats.freshness).items()):
            families["freshness"].add_metric([model], seconds)
        return list(families.values())
