"""Prometheus metrics of a unit process, on a registry of its own (no global state).

Counted as they happen: ``sustain_aiu_batch_size`` (histogram of items per backend call),
``sustain_aiu_backend_seconds`` (backend call time by outcome: ok, rejected, unavailable),
``sustain_aiu_items_total`` (by outcome: answered, duplicate, dead_letter) and ``sustain_aiu_partitions``
(partitions this unit holds). Read from Redis at each scrape: ``sustain_aiu_queue_lag`` (entries not yet
delivered to any unit), ``sustain_aiu_pending`` (delivered, not answered), ``sustain_aiu_backlog`` (both:
the streams' length) and ``sustain_aiu_dead_letters``.

>>> metrics = UnitMetrics()
>>> metrics.batch_size.labels("churn").observe(64)
>>> metrics.registry.get_sample_value("sustain_aiu_batch_size_count", {"model": "churn"})
1.0
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sustain.inference.queues import ModelStatus

log = logging.getLogger("sustain.inference")

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SECOND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class UnitMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batch_size = Histogram(
            "sustain_aiu_batch_size", "Items per backend call", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.backend_seconds = Histogram(
            "sustain_aiu_backend_seconds",
            "Backend call time, by outcome",
            ["model", "outcome"],
            buckets=SECOND_BUCKETS,
            registry=r,
        )
        self.items = Counter("sustain_aiu_items", "Items finished, by outcome", ["model", "outcome"], registry=r)
        self.partitions = Gauge("sustain_aiu_partitions", "Partitions this unit holds", ["model"], registry=r)

    def watch_queues(self, read: Callable[[], list[ModelStatus]]) -> None:
        """Report the queues of ``read()`` (the models this unit serves) at every scrape."""
        self.registry.register(QueueCollector(read))


def queue_registry(read: Callable[[], list[ModelStatus]]) -> CollectorRegistry:
    """A registry of its own with only the queue gauges (the sustain server appends it to ``/metrics``)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(QueueCollector(read))
    return registry


class QueueCollector(Collector):
    def __init__(self, read: Callable[[], list[ModelStatus]]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families = {
            "queue_lag": GaugeMetricFamily(
                "sustain_aiu_queue_lag", "Entries not delivered to a unit", labels=["model"]
            ),
            "pending": GaugeMetricFamily("sustain_aiu_pending", "Entries delivered, not answered", labels=["model"]),
            "backlog": GaugeMetricFamily("sustain_aiu_backlog", "Entries in the request streams", labels=["model"]),
            "dead_letters": GaugeMetricFamily("sustain_aiu_dead_letters", "Dead-lettered requests", labels=["model"]),
        }
        try:
            statuses = self.read()
        except Exception as exc:  # a scrape must answer even when Redis does not
            log.warning("cannot read queue status for /metrics: %s", exc)
            statuses = []
        for s in statuses:
            families["queue_lag"].add_metric([s.model], float(s.lag))
            families["pending"].add_metric([s.model], float(s.pending))
            families["backlog"].add_metric([s.model], float(s.backlog))
            families["dead_letters"].add_metric([s.model], float(s.dead_letters))
        return list(families.values())
