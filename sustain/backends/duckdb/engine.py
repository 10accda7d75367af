"""The engine over the embedded DuckDB store: SQL transforms from checkpoints, DuckDB tables for windows,
profiles and indicator documents.

>>> from sustain.backends.duckdb.store import DuckDBStore
>>> engine = embedded_engine(DuckDBStore("duckdb:///:memory:"))
>>> type(engine.runner).__name__, type(engine.documents).__name__
('TransformRunner', 'DuckDBIndicators')
"""

from __future__ import annotations

from typing import Any

from sustain.backends.duckdb.documents import DuckDBIndicators
from sustain.backends.duckdb.nulls import DuckDBNulls
from sustain.backends.duckdb.retention import DuckDBRetention
from sustain.backends.duckdb.runner import TransformRunner
from sustain.backends.duckdb.sources import DuckDBWindowSource
from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.engine import Engine
from sustain.store.base import Store


def embedded_engine(store: Store, **options: Any) -> Engine:
    """An :class:`~sustain.engine.Engine` over ``store``, which must be a :class:`DuckDBStore`.

    ``options`` go to the engine: ``transform_interval``, ``indicator_interval``, ``retention_interval``,
    ``clock``, ``indicator_timeout``, ``registry``, ``workers``.
    """
    if not isinstance(store, DuckDBStore):
        raise TypeError(f"the embedded engine needs a DuckDB store, not {type(store).__name__}")
    windows = DuckDBWindows(store)
    return Engine(
        store,
        windows=windows,
        runner=TransformRunner(store, windows),
        documents=DuckDBIndicators(store),
        source=DuckDBWindowSource(store, windows),
        nulls=DuckDBNulls(store),
        retention=DuckDBRetention(store, windows),
        **options,
    )
