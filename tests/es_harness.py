"""sustain's Elasticsearch engine on the in-memory double, next to the embedded engine on the same events.

:class:`Side` is one engine over its store; :func:`es_side` builds the Elasticsearch one on a
:class:`tests.es_double.Cluster` (the official client through the cluster's transport node class, one client
per "replica"), :func:`duck_side` the embedded one. Both read the cluster's clock, so windows close at the same
moment for both. :func:`settle` moves the cluster clock past the transforms' delay and runs the engine until
the transforms' output is in its windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.elasticsearch.engine import elasticsearch_engine
from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.engine import Engine
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec
from sustain.store.base import EventBatch, LabelBatch, Store
from sustain.synthetic import SyntheticModel
from tests.es_double import Cluster

SPEC: dict[str, Any] = {
    "name": "churn",
    "features": {
        "age": {"kind": "numeric", "range": [18, 100]},
        "income": "numeric",
        "plan": {"kind": "categorical", "categories": ["basic", "pro", "enterprise"]},
        "city": "categorical",
        "active": "boolean",
    },
    "outputs": {
        "proba": {"kind": "class_scores", "classes": ["stay", "churn"]},
        "prediction": {"kind": "class_label", "classes": ["stay", "churn"]},
    },
    "label": {"kind": "class_label", "classes": ["stay", "churn"]},
    "windows": ["1h"],
}
DELAY_SECONDS = 60.0
# Indicators computed from a random sample of the window's rows whose result depends on the rows' order
# (bootstrap draws): the engines return the same rows in different orders, so their estimates differ by
# Monte Carlo error. Everything else must be equal.
SAMPLE_ORDER_DEPENDENT = frozenset({"estimated_performance"})


def spec_of(raw: dict[str, Any] | None = None) -> ModelSpec:
    return parse_model_spec(raw or SPEC)


def cluster_clock(cluster: Cluster) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=cluster.now_ms)


@dataclass
class Side:
    """One engine over its store."""

    store: Store
    engine: Engine

    @property
    def es_store(self) -> ElasticsearchStore:
        assert isinstance(self.store, ElasticsearchStore)
        return self.store

    def docs(self, model: str) -> dict[tuple[Any, ...], IndicatorDoc]:
        return {doc_key(d): d for d in self.engine.documents.query(IndicatorQuery(model, limit=1_000_000))}


def es_store(
    cluster: Cluster, client: str = "replica-1", prefix: str = "sustain", **options: str
) -> ElasticsearchStore:
    query = "&".join(f"{k}={v}" for k, v in {"prefix": prefix, **options}.items())
    return ElasticsearchStore(
        f"elasticsearch+http://double:9200?{query}", transport_options=cluster.client_options(client)
    )


def es_side(cluster: Cluster, client: str = "replica-1", prefix: str = "sustain", **engine: Any) -> Side:
    store = es_store(cluster, client, prefix)
    return Side(store, elasticsearch_engine(store, clock=lambda: cluster_clock(cluster), **engine))


def duck_side(cluster: Cluster, path: Path) -> Side:
    store = DuckDBStore(f"duckdb:///{path}")
    return Side(store, embedded_engine(store, clock=lambda: cluster_clock(cluster)))


def events_for(
    spec: ModelSpec, start: datetime, hours: Iterable[tuple[int, dict[str, float] | None]], n: int, seed: int = 1
) -> list[dict[str, Any]]:
    """``n`` events per hour from ``start`` (``hours``: offset and drift); ids ``h<hour>-<i>``, ``r<hour>-<i>``."""
    model = SyntheticModel(spec, seed=seed)
    items: list[dict[str, Any]] = []
    for hour, drift in hours:
        for i, event in enumerate(model.events(n, drift)):
            event["event_id"], event["request_id"] = f"h{hour}-{i}", f"r{hour}-{i}"
            event["timestamp"] = (start + timedelta(hours=hour, seconds=i * 3600 / n)).isoformat()
            items.append(event)
    return items


def load(
    sides: Iterable[Side], spec: ModelSpec, items: list[dict[str, Any]], now: datetime, reference_rows: int = 2000
) -> None:
    """Register ``spec``, a reference and ``items`` (with labels for a third of them) in every side's store."""
    reference = to_layout(spec, pa.table(SyntheticModel(spec, seed=99).reference(reference_rows))).table
    parsed = parse_events(spec, items, now)
    assert not parsed.errors
    keys = [str(item["request_id"]) for item in items[::3]]
    labels = pa.table(
        {
            "key_kind": ["request_id"] * len(keys),
            "key": keys,
            "label": ["stay" if n % 2 else "churn" for n in range(len(keys))],
            "ts": pa.array([now] * len(keys), pa.timestamp("us", "UTC")),
        }
    )
    version = spec.effective_default_version
    for side in sides:
        side.store.put_spec(spec)
        side.store.put_reference(spec.name, version, reference)
        side.engine.on_reference(spec.name, version)
        side.store.append_events([EventBatch(spec.name, parsed.table)])
        side.store.append_labels([LabelBatch(spec.name, labels)])


def settle(cluster: Cluster, side: Side, rounds: int = 3) -> None:
    """Run the Elasticsearch engine, letting the transforms checkpoint in between (delay plus one frequency)."""
    for _ in range(rounds):
        side.engine.step()
        cluster.advance(DELAY_SECONDS + 1)
    side.engine.step()


def doc_key(doc: IndicatorDoc) -> tuple[Any, ...]:
    return (doc.indicator, doc.feature or "", doc.metric or "", doc.window, doc.window_start, doc.version)


def differences(got: dict[tuple[Any, ...], IndicatorDoc], want: dict[tuple[Any, ...], IndicatorDoc]) -> list[str]:
    """Indicator documents that differ (value to 1e-9 relative, status, n, p-value); sample-order ones loosely."""
    problems = [f"only in one engine: {sorted(set(got) ^ set(want))[:5]}"] if set(got) != set(want) else []
    for key in sorted(set(got) & set(want), key=str):
        g, w = got[key], want[key]
        loose = key[0] in SAMPLE_ORDER_DEPENDENT
        tolerance = 0.02 if loose else 1e-9
        same_value = (g.value is None) == (w.value is None) and (
            g.value is None or w.value is None or math.isclose(g.value, w.value, rel_tol=tolerance, abs_tol=1e-12)
        )
        same_p = (g.p_value is None) == (w.p_value is None) and (
            g.p_value is None
            or w.p_value is None
            or math.isclose(g.p_value, w.p_value, rel_tol=tolerance, abs_tol=1e-12)
        )
        if not (same_value and same_p and g.status == w.status and g.n == w.n and g.partial == w.partial):
            problems.append(f"{key}: {g.value} {g.status} n={g.n} vs {w.value} {w.status} n={w.n}")
    return problems
