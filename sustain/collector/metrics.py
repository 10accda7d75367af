"""The service's own Prometheus metrics, on a registry per app (no global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self, queue_depth: Callable[[], float], inflight_bytes: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingested = Counter("sustain_events_ingested", "Events committed to the store", ["model"], registry=r)
        self.duplicates = Counter(
            "sustain_events_duplicate",
            "Events whose id was already stored (kept once)",
            ["model"],
            registry=r,
        )
        self.rejected = Counter(
            "sustain_events_rejected", "Items rejected by validation", ["model", "kind"], registry=r
        )
        self.invalid_values = Counter(
            "sustain_invalid_values",
            "Feature or output values of the wrong type (stored as null)",
            ["model"],
            registry=r,
        )
        self.labels = Counter("sustain_labels_ingested", "Labels committed to the store", ["model"], registry=r)
        self.refused = Counter(
            "sustain_requests_refused",
            "Requests refused whole (overload, size, auth)",
            ["reason"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "sustain_commit_seconds",
            "Time to commit one group of event batches",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        queue = Gauge("sustain_ingest_queue_events", "Events waiting to be committed", registry=r)
        queue.set_function(queue_depth)
        inflight = Gauge("sustain_inflight_body_bytes", "Request body bytes held in memory", registry=r)
        inflight.set_function(inflight_bytes)

    def observe_commit(self, events: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
