"""The engine over an Elasticsearch store: continuous transforms in the cluster, indicators in Python.

:func:`elasticsearch_engine` wires the Elasticsearch parts into :class:`sustain.engine.Engine`,
as :func:`sustain.backends.duckdb.engine.embedded_engine` wires the DuckDB ones:

* windows and reference profiles: :class:`sustain.backends.elasticsearch.windows.ESWindowStore`;
* transforms: :class:`sustain.backends.elasticsearch.windows.ESTransformer` (one continuous pivot per
  model and window, reporting the windows each checkpoint changed);
* indicator documents: :class:`sustain.backends.elasticsearch.documents.ESIndicators`;
* samples, history and labels: :class:`sustain.backends.elasticsearch.sources.ESWindowSource`.

The indicators themselves are the same Python code on both engines.
"""

from __future__ import annotations

import time
from typing import Any

from sustain.durations import parse_duration
from sustain.engine import Engine
from sustain.store.base import Store


def elasticsearch_engine(
    store: Store,
    *,
    transform_delay: str = "60s",
    transform_frequency: str | None = None,
    leases: bool = True,
    lease_seconds: float | None = None,
    replica: str | None = None,
    **options: Any,
) -> Engine:
    """An :class:`Engine` over ``store`` (an :class:`~sustain.backends.elasticsearch.store.ElasticsearchStore`).

    ``transform_delay`` is the transforms' ``sync.time.delay`` (how long after ingest an event
    is certainly searchable), ``transform_frequency`` how often they check for changes (default:
    the window, between 1s and 1m). With ``leases`` (the default) the engine computes only the models
    whose lease it holds, so several replicas over one cluster have one writer per model
    (:mod:`sustain.backends.elasticsearch.leases`; ``lease_seconds`` default: three indicator intervals,
    at least 60; ``replica`` names this one). Other options go to :class:`Engine` (``transform_interval``,
    ``indicator_interval``, ``clock``).
    """
    from sustain.backends.elasticsearch.documents import ESIndicators
    from sustain.backends.elasticsearch.leases import Leases
    from sustain.backends.elasticsearch.sources import ESWindowSource
    from sustain.backends.elasticsearch.store import ElasticsearchStore
    from sustain.backends.elasticsearch.windows import ESTransformer, ESWindowStore

    if not isinstance(store, ElasticsearchStore):
        raise TypeError(f"the Elasticsearch engine needs an Elasticsearch store, not {type(store).__name__}")
    parse_duration(transform_delay)
    windows = ESWindowStore(store)
    ownership = None
    if leases:
        clock = options.get("clock")
        seconds = lease_seconds or max(60.0, 3 * float(options.get("indicator_interval", 30.0)))
        ownership = Leases(
            store.client,
            store.names.leases,
            seconds=seconds,
            holder=replica,
            clock=(lambda: clock().timestamp()) if clock is not None else time.time,
        )
    return Engine(
        store,
        windows=windows,
        runner=ESTransformer(store, windows, delay=transform_delay, frequency=transform_frequency),
        documents=ESIndicators(store),
        source=ESWindowSource(store, windows),
        ownership=ownership,
        **options,
    )
