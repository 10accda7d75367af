"""The calibration cache in the embedded store: null summaries outlive the process.

See :mod:`sustain.indicators.stats.nulls`.

``_nulls`` holds one row per key (reference digest, statistic, size bucket, draws): the mean and variance of the
draws and the sorted draws themselves (float32). Rows older than :data:`KEEP_DAYS` are dropped when new ones are
written, so a key no longer used (a replaced reference, traffic that moved to other window sizes) goes away.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from sustain.backends.duckdb.store import DuckDBStore
from sustain.indicators.stats.nulls import NullSummary
from sustain.store.layout import TIMESTAMP

KEEP_DAYS = 7
DDL = (
    "CREATE TABLE IF NOT EXISTS _nulls (key VARCHAR PRIMARY KEY, mean DOUBLE NOT NULL, var DOUBLE NOT NULL,"
    " draws BLOB NOT NULL, created_at TIMESTAMPTZ NOT NULL)"
)


class DuckDBNulls:
    """A :class:`~sustain.indicators.stats.nulls.NullStore` in ``_nulls``."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        with store.transaction() as con:
            con.execute(DDL)

    def load_nulls(self, prefix: str) -> dict[str, NullSummary]:
        rows = (
            self.store.cursor()
            .execute("SELECT key, mean, var, draws FROM _nulls WHERE starts_with(key, ?)", [prefix])
            .fetchall()
        )
        return {
            key: NullSummary(mean, var, np.frombuffer(draws, dtype=np.float32).copy()) for key, mean, var, draws in rows
        }

    def save_nulls(self, items: Sequence[tuple[str, NullSummary]]) -> None:
        if not items:
            return
        now = datetime.now(UTC)
        table = pa.table(
            {
                "key": pa.array([k for k, _ in items], pa.string()),
                "mean": pa.array([s.mean for _, s in items], pa.float64()),
                "var": pa.array([s.var for _, s in items], pa.float64()),
                "draws": pa.array([s.draws.astype(np.float32).tobytes() for _, s in items], pa.binary()),
                "created_at": pa.array([now] * len(items), TIMESTAMP),
            }
        )
        with self.store.transaction() as con:
            con.register("_new_nulls", table)
            try:
                con.execute("INSERT OR REPLACE INTO _nulls SELECT * FROM _new_nulls")
            finally:
                con.unregister("_new_nulls")
            con.execute("DELETE FROM _nulls WHERE created_at < ?", [now - timedelta(days=KEEP_DAYS)])
