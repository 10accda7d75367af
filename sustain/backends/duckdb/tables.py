"""The embedded engine's derived tables: reference profiles, window partials and their checkpoints.

Window partials live in one long table per model, ``"agg:<model>"``, keyed by
(window, version, bucket, column, stat, key). New partials merge in by
addition (min and max by least/greatest) in the same transaction that moves
the transform's checkpoint, so a restart never counts a row twice or misses one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

import duckdb
import numpy as np
import pyarrow as pa

from sustain.backends.duckdb.partials import PARTIAL_SCHEMA
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

# Profile writes per store, through whichever DuckDBWindows: a parsed profile is kept until the count moves.
_PROFILE_WRITES: WeakKeyDictionary[DuckDBStore, int] = WeakKeyDictionary()


def partials_table(model: str) -> str:
    return quote(f"agg:{model}")


@dataclass(frozen=True)
class Checkpoint:
    transform: str
    seq: int
    fingerprint: str


@dataclass(frozen=True)
class Merge:
    """New partials of one plan (:data:`~sustain.backends.duckdb.partials.PARTIAL_SCHEMA`) and the checkpoint
    they bring it to."""

    plan: TransformPlan
    partials: pa.Table
    seq: int


class DuckDBWindows:
    """Profiles, partials and checkpoints kept beside the events of a :class:`DuckDBStore`."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._ready: set[str] = set()
        self._profiles: dict[str, list[ReferenceProfile]] = {}
        self._generation = -1
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
        _PROFILE_WRITES[self.store] = _PROFILE_WRITES.get(self.store, 0) + 1

    def get_profile(self, model: str, version: str) -> ReferenceProfile | None:
        rows = (
            self._cursor()
            .execute("SELECT profile FROM _profiles WHERE model = ? AND version = ?", [model, version])
            .fetchall()
        )
        return ReferenceProfile.from_json(rows[0][0]) if rows else None

    def list_profiles(self, model: str) -> list[ReferenceProfile]:
        """Oldest first. Parsed once and kept until a profile of this store is written again (through any
        :class:`DuckDBWindows` of it): an engine pass reads every model's profiles, and parsing one costs
        milliseconds. Callers read the profiles and never change them."""
        generation = _PROFILE_WRITES.get(self.store, 0)
        if generation != self._generation:
            self._profiles.clear()
            self._generation = generation
        found = self._profiles.get(model)
        if found is None:
            rows = (
                self._cursor()
                .execute("SELECT profile FROM _profiles WHERE model = ? ORDER BY created_at", [model])
                .fetchall()
            )
            found = self._profiles[model] = [ReferenceProfile.from_json(r[0]) for r in rows]
        return list(found)

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

    def reset_partials(self, plan: TransformPlan) -> None:
        """Forget a window's partials: the plan changed (new bins) and they are rebuilt from the events."""
        with self.store.transaction() as con:
            self._ensure(con, plan.model)
            con.execute(f"DELETE FROM {partials_table(plan.model)} WHERE win = ?", [plan.window])
            con.execute(
                "INSERT OR REPLACE INTO _checkpoints VALUES (?, 0, ?, ?)",
                [plan.id, plan.fingerprint, datetime.now(UTC)],
            )

    def merge_partials(
        self, plan: TransformPlan, rows: Sequence[tuple[str, datetime, str, str, str, float]], seq: int
    ) -> None:
        """Add ``rows`` to the stored partials and move the checkpoint to ``seq``, atomically."""
        if rows:
            versions, buckets, columns, stats, keys, values = zip(*rows, strict=True)
            delta = pa.table(
                [
                    pa.array(versions, pa.string()),
                    pa.array(buckets, TIMESTAMP),
                    pa.array(columns, pa.string()),
                    pa.array(stats, pa.string()),
                    pa.array(keys, pa.string()),
                    pa.array(values, pa.float64()),
                ],
                schema=PARTIAL_SCHEMA,
            )
        else:
            delta = PARTIAL_SCHEMA.empty_table()
        self.merge_many([Merge(plan, delta, seq)])

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Every checkpoint, by transform (one query: a pass reads them all at once)."""
        rows = self._cursor().execute("SELECT transform, seq, fingerprint FROM _checkpoints").fetchall()
        return {r[0]: Checkpoint(r[0], int(r[1]), r[2]) for r in rows}

    def merge_many(
        self,
        merges: Sequence[Merge],
        marks: Sequence[Checkpoint] = (),
        expected: Mapping[str, Checkpoint | None] | None = None,
    ) -> set[str]:
        """Add each merge's partials and move its checkpoint, and set ``marks`` (other checkpoints, such as the
        labels'), all in one transaction.

        With ``expected`` (the checkpoints the partials were computed from, by transform), a merge whose stored
        checkpoint moved meanwhile (another runner over the same file) is left out, and its transform id
        returned: the events would otherwise count twice. Nothing is written for a mark whose transform is left
        out either.
        """
        now = datetime.now(UTC)
        with self.store.transaction() as con:
            stale: set[str] = set()
            if expected is not None:
                ids = [m.plan.id for m in merges]
                stored = {
                    r[0]: (int(r[1]), r[2])
                    for r in con.execute(
                        "SELECT transform, seq, fingerprint FROM _checkpoints WHERE list_contains(?, transform)", [ids]
                    ).fetchall()
                }
                for m in merges:
                    before = expected.get(m.plan.id)
                    if stored.get(m.plan.id) != (None if before is None else (before.seq, before.fingerprint)):
                        stale.add(m.plan.id)
            for m in merges:
                if m.plan.id in stale:
                    continue
                self._ensure(con, m.plan.model)
                if m.partials.num_rows:
                    con.register("_delta", m.partials)
                    try:
                        con.execute(
                            f"INSERT INTO {partials_table(m.plan.model)} SELECT ? AS win, * FROM _delta"
                            ' ON CONFLICT (win, version, bucket, "column", stat, key) DO UPDATE SET value = CASE'
                            " WHEN excluded.stat = 'min' THEN least(value, excluded.value)"
                            " WHEN excluded.stat = 'max' THEN greatest(value, excluded.value)"
                            " ELSE value + excluded.value END",
                            [m.plan.window],
                        )
                    finally:
                        con.unregister("_delta")
            moved = [Checkpoint(m.plan.id, m.seq, m.plan.fingerprint) for m in merges if m.plan.id not in stale]
            moved += [c for c in marks if c.transform.split("#")[0] not in stale]
            if moved:
                table = pa.table(
                    {
                        "transform": pa.array([c.transform for c in moved], pa.string()),
                        "seq": pa.array([c.seq for c in moved], pa.int64()),
                        "fingerprint": pa.array([c.fingerprint for c in moved], pa.string()),
                        "updated_at": pa.array([now] * len(moved), TIMESTAMP),
                    }
                )
                con.register("_moved", table)
                try:
                    con.execute("INSERT OR REPLACE INTO _checkpoints SELECT * FROM _moved")
                finally:
                    con.unregister("_moved")
        return stale

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

    def read_many(
        self, wanted: Sequence[tuple[TransformPlan, Collection[tuple[str, datetime]]]], per_query: int = 64
    ) -> list[list[WindowAggregates]]:
        """For each plan, its windows among the (version, bucket) keys asked, oldest first: one query per
        ``per_query`` plans (a pass reads every busy model's windows at once)."""
        out: list[list[WindowAggregates]] = [[] for _ in wanted]
        present = [(i, plan, keys) for i, (plan, keys) in enumerate(wanted) if keys and self._exists(plan.model)]
        for first in range(0, len(present), per_query):
            chunk = present[first : first + per_query]
            branches, params = [], []
            for i, plan, keys in chunk:
                buckets = [b for _, b in keys]
                branches.append(
                    f'SELECT {i} AS i, version, bucket, "column", stat, key, value FROM {partials_table(plan.model)}'
                    " WHERE win = ? AND bucket >= ? AND bucket <= ?"
                )
                params += [plan.window, min(buckets), max(buckets)]
            table = self.store.sql(" UNION ALL ".join(branches), params)
            index = table.column("i").to_numpy()
            order = np.argsort(index, kind="stable")
            table = table.take(pa.array(order))
            bounds = np.searchsorted(index[order], [i for i, _, _ in chunk] + [len(wanted)], side="left")
            for (i, plan, keys), lo, hi in zip(chunk, bounds[:-1], bounds[1:], strict=True):
                wanted_keys = set(keys)
                out[i] = [w for w in _group(plan, table.slice(lo, hi - lo)) if (w.version, w.start) in wanted_keys]
                out[i].sort(key=lambda w: (w.start, w.version))
        return out

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
