"""The embedded engine's :class:`~sustain.indicators.context.WindowSource`: samples, history, labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pyarrow as pa

from sustain.backends.duckdb.store import DuckDBStore, events_table, labels_table
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.store.layout import quote
from sustain.transforms.plan import TransformPlan
from sustain.transforms.window import WindowAggregates


class DuckDBWindowSource:
    def __init__(self, store: DuckDBStore, windows: DuckDBWindows) -> None:
        self.store = store
        self.windows = windows

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        cols = ", ".join(quote(c) for c in columns)
        # Sample after filtering: DuckDB applies USING SAMPLE before WHERE in the same SELECT.
        return self.store.sql(
            f"SELECT * FROM (SELECT {cols} FROM {events_table(model)} WHERE version = ? AND ts >= ? AND ts < ?)"
            f" USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed) % 2**31})",
            [version, start, end],
        )

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        since = before - timedelta(seconds=plan.window_seconds * count)
        return self.windows.read_windows(plan, version=version, since=since, until=before)[-count:]

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        cols = ", ".join(f"e.{quote(c)}" for c in columns)
        lb = labels_table(model)
        return self.store.sql(
            f"SELECT {cols}{', ' if cols else ''}coalesce(lr.label, le.label) AS label,"
            " coalesce(lr.ts, le.ts) AS label_ts, e.ts AS ts"
            f" FROM {events_table(model)} e"
            f" LEFT JOIN {lb} lr ON lr.key_kind = 'request_id' AND lr.key = e.request_id"
            f" LEFT JOIN {lb} le ON le.key_kind = 'event_id' AND le.key = coalesce(e.event_id, e.eid::VARCHAR)"
            " WHERE e.version = ? AND e.ts >= ? AND e.ts < ? AND coalesce(lr.label, le.label) IS NOT NULL",
            [version, start, end],
        )
