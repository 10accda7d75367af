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
        return self.store.sql(_sample_sql(model, [quote(c) for c in columns], n, seed), [version, start, end])

    def sample_labelled(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        # The same draw as sample() (the reservoir does not depend on the columns read), numbered to keep its
        # order through the joins.
        keys = [*(quote(c) for c in columns), "request_id", "event_id", "eid"]
        drawn = _sample_sql(model, keys, n, seed)
        cols = "".join(f"s.{quote(c)}, " for c in columns)
        lb = labels_table(model)
        return self.store.sql(
            f"SELECT {cols}coalesce(lr.label, le.label) AS label"
            f" FROM (SELECT row_number() OVER () AS _drawn, * FROM ({drawn})) s"
            f" LEFT JOIN {lb} lr ON lr.key_kind = 'request_id' AND lr.key = s.request_id"
            f" LEFT JOIN {lb} le ON le.key_kind = 'event_id' AND le.key = coalesce(s.event_id, s.eid::VARCHAR)"
            " ORDER BY s._drawn",
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


def _sample_sql(model: str, select: Sequence[str], n: int, seed: int) -> str:
    """Up to ``n`` events of one version in a time range, drawn reproducibly for ``seed`` (3 parameters)."""
    # Sample after filtering: DuckDB applies USING SAMPLE before WHERE in the same SELECT.
    return (
        f"SELECT * FROM (SELECT {', '.join(select)} FROM {events_table(model)}"
        " WHERE version = ? AND ts >= ? AND ts < ?)"
        f" USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed) % 2**31})"
    )
