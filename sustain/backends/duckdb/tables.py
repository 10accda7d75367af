"""The embedded engine's derived tables: reference profiles, window partials and their checkpoints.

Window partials live in one long table per model, ``"agg:<model>"``, keyed by
(window, version, bucket, column, stat, key). New partials merge in by
addition (min and max by least/greatest) in the same transaction that moves
the transform's checkpoint, so a restart never counts a row twice or misses one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from sustain.backends.duckdb.store import DuckDBStore
from sustain.spec import ModelSpec
from sustain.store.layout import TIMESTAMP, quote
from sustain.transforms.plan import TransformPlan
from sustain.transforms.profile import ReferenceProfile, binning_profile
from sustain.transforms.window import WindowAggregates, from_long_rows

WINDOW_DDL = (
    "CREATE TABLE IF NOT EXISTS _profiles (model VARCHAR, version VARCHAR, created_at TIMESTAMPTZ,"
    " profile JSON, PRIMARY KEY (model, version))",
    "CREATE TABLE IF NOT EXISTS _checkpoints (transform VARCHAR PRIMARY KEY, seq BIGINT NOT NULL,"
    " fingerprint VARCHAR NOT NULL, updated_at TIMESTAMPTZ)",
)

PARTIALS_SCHEMA = pa.schema(
    [
        ("win", pa.string()),
        ("version", pa.string()),
        ("bucket", TIMESTAMP),
        ("column", pa.string()),
        ("stat", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
    ]
)


def partials_table(model: str) -> str:
    return quote(f"agg:{model}")


@dataclass(frozen=True)
class Checkpoint:
    transform: str
    seq: int
    fingerprint: str


class DuckDBWindows:
    """Profiles, partials and checkpoints kept beside the events of a :class:`DuckDBStore`."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._ready: set[str] = set()
        # Parsed profiles by their stored text: a profile with a labelled sample is a few MB of JSON, read on
        # every indicator run.
        self._parsed: dict[tuple[str, int], ReferenceProfile] = {}
        with store.transaction() as con:
            for ddl in WINDOW_DDL:
                con.execute(ddl)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self.store.cursor()

    def _ensure(self, con: duckdb.DuckDBPyConnection, model: str) -> None:
        if model not in self._ready:
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {partials_table(model)} (win VARCHAR, version VARCHAR,"
                ' bucket TIMESTAMPTZ, "column" VARCHAR, stat VARCHAR, key VARCHAR, value DOUBLE,'
                ' PRIMARY KEY (win, version, bucket, "column", stat, key))'
            )
            self._ready.add(model)

    # -- profiles -------------------------------------------------------------------------------
    def put_profile(self, profile: ReferenceProfile) -> None:
        with self.store.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO _profiles VALUES (?, ?, ?, ?)",
                [profile.model, profile.version, profile.created_at, profile.to_json().decode()],
            )

    def get_profile(self, model: str, version: str) -> ReferenceProfile | None:
        rows = (
            self._cursor()
            .execute("SELECT profile FROM _profiles WHERE model = ? AND version = ?", [model, version])
            .fetchall()
        )
        return ReferenceProfile.from_json(rows[0][0]) if rows else None

    def list_profiles(self, model: str) -> list[ReferenceProfile]:
        rows = (
            self._cursor()
            .execute("SELECT profile FROM _profiles WHERE model = ? ORDER BY created_at", [model])
            .fetchall()
        )
        return [self._parse(model, r[0]) for r in rows]

    def _parse(self, model: str, body: str) -> ReferenceProfile:
        """The profile stored as ``body``, parsed once (callers read profiles, never change them)."""
        key = (model, hash(body))
        found = self._parsed.get(key)
        if found is None:
            found = ReferenceProfile.from_json(body)
            if len(self._parsed) > 64:
                self._parsed.clear()
            self._parsed[key] = found
        return found

    def binning_profile(self, spec: ModelSpec) -> ReferenceProfile | None:
        """The spec's reference version, else the first reference uploaded."""
        return binning_profile(self.list_profiles(spec.name), spec.reference.version)

    # -- checkpoints and partials -----------------------------------------------------------------
    def get_checkpoint(self, transform: str) -> Checkpoint | None:
        rows = (
            self._cursor()
            .execute("SELECT seq, fingerprint FROM _checkpoints WHERE transform = ?", [transform])
            .fetchall()
        )
        return Checkpoint(transform, int(rows[0][0]), rows[0][1]) if rows else None

    def set_checkpoint(self, transform: str, seq: int, fingerprint: str) -> None:
        with self.store.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO _checkpoints VALUES (?, ?, ?, ?)",
                [transform, seq, fingerprint, datetime.now(UTC)],
            )

    def retained_from(self, model: str) -> datetime | None:
        """Raw events of ``model`` before this time were deleted by retention (None: none were)."""
        checkpoint = self.get_checkpoint(f"{model}#retained")
        return None if checkpoint is None else datetime.fromtimestamp(checkpoint.seq, UTC)

    def set_retained_from(self, model: str, when: datetime) -> None:
        self.set_checkpoint(f"{model}#retained", int(when.timestamp()), "retention")

    def reset_partials(self, plan: TransformPlan, since: datetime | None = None) -> None:
        """Forget a window's partials (from ``since`` on): the plan changed (new bins) and they are rebuilt from
        the events. Windows before ``since`` lost their raw events to retention and keep their partials."""
        with self.store.transaction() as con:
            self._ensure(con, plan.model)
            if since is None:
                con.execute(f"DELETE FROM {partials_table(plan.model)} WHERE win = ?", [plan.window])
            else:
                con.execute(
                    f"DELETE FROM {partials_table(plan.model)} WHERE win = ? AND bucket >= ?", [plan.window, since]
                )
            con.execute(
                "INSERT OR REPLACE INTO _checkpoints VALUES (?, 0, ?, ?)",
                [plan.id, plan.fingerprint, datetime.now(UTC)],
            )

    def merge_partials(
        self, plan: TransformPlan, rows: Sequence[tuple[str, datetime, str, str, str, float]], seq: int
    ) -> None:
        """Add ``rows`` to the stored partials and move the checkpoint to ``seq``, atomically."""
        with self.store.transaction() as con:
            self._ensure(con, plan.model)
            if rows:
                versions, buckets, columns, stats, keys, values = zip(*rows, strict=True)
                delta = pa.table(
                    [
                        pa.array([plan.window] * len(rows), pa.string()),
                        pa.array(versions, pa.string()),
                        pa.array(buckets, TIMESTAMP),
                        pa.array(columns, pa.string()),
                        pa.array(stats, pa.string()),
                        pa.array(keys, pa.string()),
                        pa.array(values, pa.float64()),
                    ],
                    schema=PARTIALS_SCHEMA,
                )
                con.register("_delta", delta)
                try:
                    con.execute(
                        f"INSERT INTO {partials_table(plan.model)} SELECT * FROM _delta ON CONFLICT (win, version,"
                        ' bucket, "column", stat, key) DO UPDATE SET value = CASE'
                        " WHEN excluded.stat = 'min' THEN least(value, excluded.value)"
                        " WHEN excluded.stat = 'max' THEN greatest(value, excluded.value)"
                        " ELSE value + excluded.value END"
                    )
                finally:
                    con.unregister("_delta")
            con.execute(
                "INSERT OR REPLACE INTO _checkpoints VALUES (?, ?, ?, ?)",
                [plan.id, seq, plan.fingerprint, datetime.now(UTC)],
            )

    def read_windows(
        self,
        plan: TransformPlan,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[WindowAggregates]:
        """The stored windows of ``plan``, oldest first, one per (version, bucket)."""
        where = ["win = ?"]
        params: list[Any] = [plan.window]
        for sql, value in (("version = ?", version), ("bucket >= ?", since), ("bucket < ?", until)):
            if value is not None:
                where.append(sql)
                params.append(value)
        if not self._exists(plan.model):
            return []
        table = self.store.sql(
            f'SELECT version, bucket, "column", stat, key, value FROM {partials_table(plan.model)}'
            f" WHERE {' AND '.join(where)} ORDER BY bucket, version",
            params,
        )
        return list(_group(plan, table))

    def window_buckets(self, plan: TransformPlan, since: datetime | None = None) -> list[tuple[str, datetime]]:
        """(version, bucket) of every stored window of ``plan``."""
        if not self._exists(plan.model):
            return []
        where, params = "win = ?", [plan.window]
        if since is not None:
            where += " AND bucket >= ?"
            params.append(since)  # type: ignore[arg-type]
        rows = (
            self._cursor()
            .execute(
                f"SELECT DISTINCT version, bucket FROM {partials_table(plan.model)} WHERE {where} ORDER BY bucket",
                params,
            )
            .fetchall()
        )
        return [(r[0], r[1]) for r in rows]

    def _exists(self, model: str) -> bool:
        if model in self._ready:
            return True
        rows = (
            self._cursor()
            .execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [f"agg:{model}"])
            .fetchall()
        )
        return bool(rows[0][0])


def _group(plan: TransformPlan, table: pa.Table) -> Iterator[WindowAggregates]:
    grouped: dict[tuple[str, datetime], list[tuple[str, str, str, float]]] = defaultdict(list)
    order: list[tuple[str, datetime]] = []
    cols = [table.column(n).to_pylist() for n in ("version", "bucket", "column", "stat", "key", "value")]
    for version, bucket, column, stat, key, value in zip(*cols, strict=True):
        k = (version, bucket)
        if k not in grouped:
            order.append(k)
        grouped[k].append((column, stat, key, value))
    for version, bucket in order:
        yield from_long_rows(plan, version, bucket, grouped[(version, bucket)])
