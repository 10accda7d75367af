"""Indicator documents and indicator state in the embedded DuckDB store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from sustain.backends.duckdb.store import DuckDBStore
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery
from sustain.store.layout import TIMESTAMP

_COLUMNS = (
    ("model", pa.string(), "VARCHAR NOT NULL"),
    ("version", pa.string(), "VARCHAR NOT NULL"),
    ("indicator", pa.string(), "VARCHAR NOT NULL"),
    ("type", pa.string(), "VARCHAR NOT NULL"),
    ("feature", pa.string(), "VARCHAR NOT NULL"),
    ("win", pa.string(), "VARCHAR NOT NULL"),
    ("window_start", TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ("window_end", TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ("value", pa.float64(), "DOUBLE"),
    ("status", pa.string(), "VARCHAR NOT NULL"),
    ("p_value", pa.float64(), "DOUBLE"),
    ("threshold", pa.float64(), "DOUBLE"),
    ("n", pa.int64(), "BIGINT"),
    ("method", pa.string(), "VARCHAR"),
    ("details", pa.string(), "JSON"),
    ("partial", pa.bool_(), "BOOLEAN"),
    ("computed_at", TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ("metric", pa.string(), "VARCHAR NOT NULL"),
    ("freshness", pa.float64(), "DOUBLE"),  # added after the first release: existing tables get the column
)
_KEY = "model, version, indicator, feature, metric, win, window_start"


def _column(docs: Sequence[IndicatorDoc], name: str) -> list[Any]:
    """One column of the ``_indicators`` rows of ``docs``."""
    if name == "win":
        return [d.window for d in docs]
    if name in ("feature", "metric"):
        return [getattr(d, name) or "" for d in docs]
    if name == "details":
        return [orjson.dumps(d.details, option=orjson.OPT_SERIALIZE_NUMPY).decode() for d in docs]
    return [getattr(d, name) for d in docs]


class DuckDBIndicators:
    """Indicator documents in the embedded store's ``_indicators`` table."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        ddl = ", ".join(f"{name} {sql}" for name, _, sql in _COLUMNS)
        with store.transaction() as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS _indicators ({ddl}, PRIMARY KEY ({_KEY}))")
            con.execute("ALTER TABLE _indicators ADD COLUMN IF NOT EXISTS freshness DOUBLE")
            con.execute(
                "CREATE TABLE IF NOT EXISTS _indicator_states (model VARCHAR, indicator VARCHAR, state JSON,"
                " updated_at TIMESTAMPTZ, PRIMARY KEY (model, indicator))"
            )

    def put(self, docs: Sequence[IndicatorDoc]) -> None:
        if not docs:
            return
        table = pa.table({name: pa.array(_column(docs, name), arrow) for name, arrow, _ in _COLUMNS})
        with self.store.transaction() as con:
            con.register("_docs", table)
            try:
                con.execute("INSERT OR REPLACE INTO _indicators SELECT * FROM _docs")
            finally:
                con.unregister("_docs")

    def query(self, q: IndicatorQuery) -> list[IndicatorDoc]:
        where = ["model = ?"]
        params: list[Any] = [q.model]
        for sql, value in (
            ("window_end > ?", q.since),
            ("window_start < ?", q.until),
            ("indicator = ?", q.indicator),
            ("feature = ?", q.feature),
            ("version = ?", q.version),
            ("win = ?", q.window),
            ("status = ?", q.status),
            ("metric = ?", q.metric),
            ("computed_at > ?", q.computed_since),
        ):
            if value is not None:
                where.append(sql)
                params.append(value)
        if q.final:
            where.append("NOT partial")
        condition = " AND ".join(where)
        if q.latest:
            sql = (
                f"SELECT * FROM _indicators WHERE {condition} QUALIFY row_number() OVER"
                " (PARTITION BY version, indicator, feature, metric, win ORDER BY window_start DESC) = 1"
                " ORDER BY indicator, feature, metric LIMIT ?"
            )
        else:
            sql = (
                f"SELECT * FROM _indicators WHERE {condition}"
                " ORDER BY window_start DESC, indicator, feature, metric LIMIT ?"
            )
        table = self.store.sql(sql, [*params, q.limit])
        return [_doc(row) for row in table.to_pylist()]

    def latest_all(self) -> list[IndicatorDoc]:
        """The newest document of every series of every model (for /metrics)."""
        table = self.store.sql(
            "SELECT * FROM _indicators QUALIFY row_number() OVER"
            " (PARTITION BY model, version, indicator, feature, metric, win ORDER BY window_start DESC) = 1"
        )
        return [_doc(row) for row in table.to_pylist()]

    def get_states(self, model: str) -> dict[str, dict[str, Any]]:
        rows = (
            self.store.cursor()
            .execute("SELECT indicator, state FROM _indicator_states WHERE model = ?", [model])
            .fetchall()
        )
        return {r[0]: orjson.loads(r[1]) for r in rows}

    def put_states(self, model: str, states: dict[str, dict[str, Any]]) -> None:
        if not states:
            return
        now = datetime.now(UTC)
        with self.store.transaction() as con:
            rows = [
                [model, k, orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode(), now] for k, v in states.items()
            ]
            con.executemany("INSERT OR REPLACE INTO _indicator_states VALUES (?, ?, ?, ?)", rows)


def _doc(row: dict[str, Any]) -> IndicatorDoc:
    return IndicatorDoc(
        model=row["model"],
        version=row["version"],
        indicator=row["indicator"],
        type=row["type"],
        feature=row["feature"] or None,
        window=row["win"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        value=row["value"],
        status=row["status"],
        p_value=row["p_value"],
        threshold=row["threshold"],
        n=row["n"],
        method=row["method"],
        details=orjson.loads(row["details"]) if row["details"] else {},
        partial=bool(row["partial"]),
        computed_at=row["computed_at"],
        metric=row["metric"] or None,
        freshness=row.get("freshness"),
    )
