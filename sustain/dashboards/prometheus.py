"""Indicators and alerts as Prometheus gauges, read from the stores when ``/metrics`` is scraped.

Gauges (label ``feature`` and ``metric`` are ``""`` for model-level values and single-statistic indicators):

* ``sustain_indicator_value{model,version,indicator,feature,metric,window}``: the value of the newest window
  of every indicator series (``indicator`` is the spec's indicator name, by default its type). A series whose
  newest value is null (too little data, an error) has no sample here, only a status.
* ``sustain_indicator_status{...same labels...}``: the status of that newest window: 0 ok, 1 warn, 2 alert,
  -1 insufficient data or error (:data:`STATUS_CODES`).
* ``sustain_indicator_p_value{...same labels...}``: its p-value, for indicators that compute one.
* ``sustain_alert_firing{model,version,rule,severity}``: 1 for a firing alert (the number of firing alerts
  with those labels; one per rule, model and version unless a rule deduplicates over versions, version ``*``).
* ``sustain_alerts_firing``: how many alerts are firing.
* ``sustain_metrics_read_error{source}``: 1 when reading ``indicators`` or ``alerts`` failed at this scrape
  (their gauges are then missing, not stale), else 0.
* the engine's own figures (phases of a pass, models processed, lag and freshness per model): see
  :mod:`sustain.dashboards.engine_status`.

Reading every series costs a query, so a scrape reuses the gauges built less than ``cache_seconds`` ago
(5 s by default). The collector sits on a registry of its own, which ``/metrics`` appends to the service's
metrics (``AppContext.metrics_registries``).

>>> from datetime import UTC, datetime
>>> from sustain.indicators.documents import IndicatorDoc
>>> t = datetime(2026, 1, 1, tzinfo=UTC)
>>> doc = IndicatorDoc("churn", "1", "drift", "drift", "age", "1h", t, t, 0.31, "alert", p_value=0.001)
>>> class Docs:
...     def latest_all(self): return [doc]
>>> registry = CollectorRegistry()
>>> registry.register(IndicatorCollector(Docs(), None))
>>> registry.get_sample_value("sustain_indicator_value", {"model": "churn", "version": "1", "indicator": "drift",
...     "feature": "age", "metric": "", "window": "1h"})
0.31
>>> registry.get_sample_value("sustain_indicator_status", {"model": "churn", "version": "1", "indicator": "drift",
...     "feature": "age", "metric": "", "window": "1h"})
2.0
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sustain.alerting.documents import Alert
from sustain.dashboards.engine_status import EngineCollector, EngineFigures
from sustain.indicators.documents import IndicatorDoc

if TYPE_CHECKING:
    from sustain.alerting.service import Alerting
    from sustain.engine import Engine

log = logging.getLogger("sustain.metrics")

DEFAULT_CACHE_SECONDS = 5.0
FIRING_LIMIT = 10_000  # firing alerts read per scrape
STATUS_CODES: dict[str, float] = {"ok": 0.0, "warn": 1.0, "alert": 2.0, "insufficient": -1.0, "error": -1.0}
SERIES_LABELS = ("model", "version", "indicator", "feature", "metric", "window")
ALERT_LABELS = ("model", "version", "rule", "severity")


class LatestIndicators(Protocol):
    """What the collector reads indicators from (an :class:`~sustain.indicators.documents.IndicatorStore`)."""

    def latest_all(self) -> list[IndicatorDoc]: ...


class FiringAlerts(Protocol):
    """What the collector reads alerts from (an :class:`~sustain.alerting.documents.AlertStore`)."""

    def query(self, *, status: str | None = None, limit: int = 100) -> list[Alert]: ...


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "value": GaugeMetricFamily(
            "sustain_indicator_value", "Value of the newest window of each indicator series", labels=SERIES_LABELS
        ),
        "status": GaugeMetricFamily(
            "sustain_indicator_status",
            "Status of the newest window of each indicator series: 0 ok, 1 warn, 2 alert, -1 insufficient or error",
            labels=SERIES_LABELS,
        ),
        "p_value": GaugeMetricFamily(
            "sustain_indicator_p_value", "p-value of the newest window of each indicator series", labels=SERIES_LABELS
        ),
        "firing": GaugeMetricFamily("sustain_alert_firing", "Firing alerts", labels=ALERT_LABELS),
        "total": GaugeMetricFamily("sustain_alerts_firing", "Number of firing alerts"),
        "error": GaugeMetricFamily(
            "sustain_metrics_read_error", "1 when reading this source failed at this scrape", labels=("source",)
        ),
    }


def series_labels(doc: IndicatorDoc) -> tuple[str, ...]:
    """The label values of an indicator document's series, in :data:`SERIES_LABELS` order.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> series_labels(IndicatorDoc("m", "2", "latency", "latency", None, "1m", t, t, 12.0, "ok", metric="p95"))
    ('m', '2', 'latency', '', 'p95', '1m')
    """
    return (doc.model, doc.version, doc.indicator, doc.feature or "", doc.metric or "", doc.window)


class IndicatorCollector(Collector):
    """Builds the gauges from ``documents`` and ``alerts`` (either may be None), at most every ``cache_seconds``."""

    def __init__(
        self,
        documents: LatestIndicators | None,
        alerts: FiringAlerts | None,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.documents = documents
        self.alerts = alerts
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] | None = None
        self._built_at = 0.0

    def describe(self) -> Iterable[Metric]:
        """The families, without samples: registering never reads the stores."""
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._built_at >= self.cache_seconds:
                self._cached = self._build()
                self._built_at = now
            return list(self._cached)

    def _build(self) -> list[Metric]:
        families = _families()
        failed = {"indicators": False, "alerts": False}
        if self.documents is not None:
            try:
                self._add_indicators(families, self.documents.latest_all())
            except Exception:  # a scrape must answer even when the store does not; the error gauge tells
                log.exception("reading the latest indicators for /metrics failed")
                failed["indicators"] = True
        if self.alerts is not None:
            try:
                self._add_alerts(families, self.alerts.query(status="firing", limit=FIRING_LIMIT))
            except Exception:
                log.exception("reading the firing alerts for /metrics failed")
                failed["alerts"] = True
        for source, bad in failed.items():
            families["error"].add_metric([source], 1.0 if bad else 0.0)
        return list(families.values())

    @staticmethod
    def _add_indicators(families: Mapping[str, GaugeMetricFamily], docs: Sequence[IndicatorDoc]) -> None:
        newest: dict[tuple[str, ...], IndicatorDoc] = {}
        for doc in docs:  # one per series already; keep the newest should a store return more
            key = series_labels(doc)
            if key not in newest or doc.window_start > newest[key].window_start:
                newest[key] = doc
        for key, doc in sorted(newest.items()):
            families["status"].add_metric(key, STATUS_CODES.get(doc.status, -1.0))
            if doc.value is not None:
                families["value"].add_metric(key, float(doc.value))
            if doc.p_value is not None:
                families["p_value"].add_metric(key, float(doc.p_value))

    @staticmethod
    def _add_alerts(families: Mapping[str, GaugeMetricFamily], alerts: Sequence[Alert]) -> None:
        firing = [a for a in alerts if a.status == "firing"]
        counts = Counter((a.model, a.version, a.rule, a.severity) for a in firing)
        for key, n in sorted(counts.items()):
            families["firing"].add_metric(key, float(n))
        families["total"].add_metric([], float(len(firing)))


class IndicatorRegistry(CollectorRegistry):
    """A registry holding one :class:`IndicatorCollector` (``collector``) and, for a service that runs an engine,
    the engine's own figures (:class:`~sustain.dashboards.engine_status.EngineCollector`)."""

    def __init__(self, collector: IndicatorCollector, engine: EngineFigures | None = None) -> None:
        super().__init__(auto_describe=False)
        self.collector = collector
        self.register(collector)
        if engine is not None:
            self.register(EngineCollector(engine))


def indicator_registry(
    engine: Engine | None, alerting: Alerting | None, *, cache_seconds: float = DEFAULT_CACHE_SECONDS
) -> IndicatorRegistry:
    """The registry of the indicator and alert gauges of a service's ``engine`` and ``alerting``."""
    documents = engine.documents if engine is not None else None
    alerts = alerting.alerts if alerting is not None else None
    return IndicatorRegistry(IndicatorCollector(documents, alerts, cache_seconds=cache_seconds), engine)


class Service(Protocol):
    """What :func:`register_metrics` needs of a running service (``sustain.api.context.AppContext``)."""

    engine: Engine | None
    alerting: Alerting | None
    metrics_registries: list[CollectorRegistry]


def register_metrics(ctx: Service, *, cache_seconds: float = DEFAULT_CACHE_SECONDS) -> IndicatorRegistry:
    """Expose the indicator and alert gauges of ``ctx`` at ``/metrics`` (a :class:`CollectorRegistry`); once: the
    registry already there (``build_context`` adds one when the service runs an engine) is returned instead."""
    for registry in ctx.metrics_registries:
        if isinstance(registry, IndicatorRegistry):
            return registry
    registry = indicator_registry(ctx.engine, ctx.alerting, cache_seconds=cache_seconds)
    ctx.metrics_registries.append(registry)
    return registry
