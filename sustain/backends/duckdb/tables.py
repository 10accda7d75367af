"""The embedded engine's derived tables: reference profiles, window partials and their checkpoints.

Window partials live in one long table, ``_partials``, keyed by (model, window,
version, bucket, column, stat, key). New partials merge in by addition (min and
max by least/greatest) in the same transaction that moves the transform's
checkpoint, so a restart never counts a row twice or misses one. One table for
every model lets a pass merge all its models' partials in one statement and read
all their windows in another: DuckDB plans each statement in a few milliseconds,
which one statement per model paid a thousand times. (Earlier stores kept one
table per model, ``"agg:<model>"``: they are moved into ``_partials`` on open.)
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
import pyarrow.compute as pc

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
    "CREATE TABLE IF NOT EXISTS _partials (model VARCHAR, win VARCHAR, version VARCHAR, bucket TIMESTAMPTZ,"
    ' "column" VARCHAR, stat VARCHAR, key VARCHAR, value DOUBLE,'
    ' PRIMARY KEY (model, win, version, bucket, "column", stat, key))',
)
PARTIAL_COLUMNS = 'version, bucket, "column", stat, key, value'
UPSERT = (
    ' ON CONFLICT (model, win, version, bucket, "column", stat, key) DO UPDATE SET value = CASE'
    " WHEN excluded.stat = 'min' THEN least(value, excluded.value)"
    " WHEN excluded.stat = 'max' THEN greatest(value, excluded.value)"
    " ELSE value + excluded.value END"
)

# Profile writes per store and model, through whichever DuckDBWindows: a model's parsed profiles are kept until
# its count moves.
_PROFILE_WRITES: WeakKeyDictionary[DuckDBStore, dict[str, int]] = WeakKeyDictionary()


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
        self._profiles: dict[str, tuple[int, list[ReferenceProfile]]] = {}  # model -> (its write count, profiles)
        self._all_read = False
        # Parsed profiles by their stored text: a profile with a labelled sample is a few MB of JSON; after a write
        # only the profiles whose text changed are parsed again.
        self._parsed: dict[tuple[str, int], ReferenceProfile] = {}
        with store.transaction() as con:
            for ddl in WINDOW_DDL:
                con.execute(ddl)
            _move_model_tables(con)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self.store.cursor()

    # -- profiles -------------------------------------------------------------------------------
    def put_profile(self, profile: ReferenceProfile) -> None:
        body = profile.to_json().decode()
        with self.store.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO _profiles VALUES (?, ?, ?, ?)",
                [profile.model, profile.version, profile.created_at, body],
            )
        writes = _PROFILE_WRITES.setdefault(self.store, {})
        count = writes[profile.model] = writes.get(profile.model, 0) + 1
        known = self._profiles.get(profile.model)
        if known is not None and known[0] == count - 1:  # this instance knew the model up to this write
            # What a read would return, without the read (which scans every model's profiles in DuckDB).
            stored = self._parse(profile.model, body)
            kept = [p for p in known[1] if p.version != profile.version]
            self._profiles[profile.model] = (count, sorted([*kept, stored], key=lambda p: p.created_at))

    def get_profile(self, model: str, version: str) -> ReferenceProfile | None:
        return next((p for p in self.list_profiles(model) if p.version == version), None)

    def list_profiles(self, model: str) -> list[ReferenceProfile]:
        """Oldest first. Parsed once and kept until a profile of that model is written again (through any
        :class:`DuckDBWindows` of this store): an engine pass reads every model's profiles, parsing one costs
        milliseconds, and reading one model's profiles scans the text of every model's (DuckDB fetches the
        profile column whole), so a cold cache reads all models' profiles at once. Callers read the profiles and
        never change them."""
        count = _PROFILE_WRITES.get(self.store, {}).get(model, 0)
        found = self._profiles.get(model)
        if found is not None and found[0] == count:
            return list(found[1])
        if not self._all_read:
            self._read_all()
            found = self._profiles.get(model)
            if found is not None and found[0] == count:
                return list(found[1])
        rows = (
            self._cursor()
            .execute("SELECT profile FROM _profiles WHERE model = ? ORDER BY created_at", [model])
            .fetchall()
        )
        profiles = [self._parse(model, r[0]) for r in rows]
        self._profiles[model] = (count, profiles)
        return list(profiles)

    def _read_all(self) -> None:
        """Every model's profiles in one read (a model without any is cached as such when first asked for)."""
        writes = dict(_PROFILE_WRITES.get(self.store, {}))  # counts before the read: a later write reads again
        cur = self._cursor()
        cur.execute("SELECT model, profile FROM _profiles ORDER BY model, created_at")
        read: dict[str, list[ReferenceProfile]] = {}
        while rows := cur.fetchmany(64):
            for model, body in rows:
                read.setdefault(model, []).append(ReferenceProfile.from_json(body))
        for model, profiles in read.items():
            self._profiles[model] = (writes.get(model, 0), profiles)
        self._all_read = True

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
            if since is None:
                con.execute("DELETE FROM _partials WHERE model = ? AND win = ?", [plan.model, plan.window])
            else:
                con.execute(
                    "DELETE FROM _partials WHERE model = ? AND win = ? AND bucket >= ?",
                    [plan.model, plan.window, since],
                )
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
            parts = [_with_plan(m.plan, m.partials) for m in merges if m.plan.id not in stale and m.partials.num_rows]
            if parts:
                con.register("_delta", pa.concat_tables(parts))
                try:
                    con.execute(f"INSERT INTO _partials SELECT * FROM _delta{UPSERT}")
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
        where = ["model = ?", "win = ?"]
        params: list[Any] = [plan.model, plan.window]
        for sql, value in (("version = ?", version), ("bucket >= ?", since), ("bucket < ?", until)):
            if value is not None:
                where.append(sql)
                params.append(value)
        table = self.store.sql(
            f"SELECT {PARTIAL_COLUMNS} FROM _partials WHERE {' AND '.join(where)} ORDER BY bucket, version", params
        )
        return list(_group(plan, table))

    def read_many(
        self, wanted: Sequence[tuple[TransformPlan, Collection[tuple[str, datetime]]]]
    ) -> list[list[WindowAggregates]]:
        """For each plan, its windows among the (version, bucket) keys asked, oldest first: one query for all
        (a pass reads every busy model's windows at once)."""
        out: list[list[WindowAggregates]] = [[] for _ in wanted]
        asked = [(i, plan, keys) for i, (plan, keys) in enumerate(wanted) if keys]
        if not asked:
            return out
        ranges = pa.table(
            {
                "i": pa.array([i for i, _, _ in asked], pa.int64()),
                "model": pa.array([plan.model for _, plan, _ in asked], pa.string()),
                "win": pa.array([plan.window for _, plan, _ in asked], pa.string()),
                "lo": pa.array([min(b for _, b in keys) for _, _, keys in asked], TIMESTAMP),
                "hi": pa.array([max(b for _, b in keys) for _, _, keys in asked], TIMESTAMP),
            }
        )
        cur = self._cursor()
        cur.register("_wanted", ranges)
        try:
            table = self.store.sql(  # this thread's cursor, where _wanted is registered
                'SELECT w.i, p.version, p.bucket, p."column", p.stat, p.key, p.value FROM _partials p'
                " JOIN _wanted w ON p.model = w.model AND p.win = w.win AND p.bucket BETWEEN w.lo AND w.hi"
                " ORDER BY w.i"
            )
        finally:
            cur.unregister("_wanted")
        index = np.asarray(table.column("i").to_numpy(), dtype=np.int64)
        bounds = np.searchsorted(index, [i for i, _, _ in asked] + [len(wanted)], side="left")
        for (i, plan, keys), lo, hi in zip(asked, bounds[:-1], bounds[1:], strict=True):
            wanted_keys = set(keys)
            found = [w for w in _group(plan, table.slice(int(lo), int(hi - lo))) if (w.version, w.start) in wanted_keys]
            out[i] = sorted(found, key=lambda w: (w.start, w.version))
        return out

    def window_buckets(self, plan: TransformPlan, since: datetime | None = None) -> list[tuple[str, datetime]]:
        """(version, bucket) of every stored window of ``plan``."""
        where, params = "model = ? AND win = ?", [plan.model, plan.window]
        if since is not None:
            where += " AND bucket >= ?"
            params.append(since)  # type: ignore[arg-type]
        rows = (
            self._cursor()
            .execute(f"SELECT DISTINCT version, bucket FROM _partials WHERE {where} ORDER BY bucket", params)
            .fetchall()
        )
        return [(r[0], r[1]) for r in rows]


def _with_plan(plan: TransformPlan, partials: pa.Table) -> pa.Table:
    """A plan's partials with its model and window in front, as ``_partials`` keeps them."""
    n = partials.num_rows
    return pa.table(
        [pa.array([plan.model] * n, pa.string()), pa.array([plan.window] * n, pa.string()), *partials.columns],
        names=["model", "win", *partials.column_names],
    )


def _move_model_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Move the partials of stores from before ``_partials`` (one ``"agg:<model>"`` table per model) into it."""
    tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'agg:%'").fetchall()
    for (name,) in tables:
        con.execute(
            f"INSERT INTO _partials SELECT ?, win, {PARTIAL_COLUMNS} FROM {quote(name)} ON CONFLICT DO NOTHING",
            [name.removeprefix("agg:")],
        )
        con.execute(f"DROP TABLE {quote(name)}")


def _group(plan: TransformPlan, table: pa.Table) -> Iterator[WindowAggregates]:
    grouped: dict[tuple[str, datetime], list[tuple[str, str, str, float]]] = defaultdict(list)
    order: list[tuple[str, datetime]] = []
    cols = [table.column(n).to_pylist() for n in ("version", "column", "stat", "key", "value")]
    cols.insert(1, _times(table.column("bucket")))
    for version, bucket, column, stat, key, value in zip(*cols, strict=True):
        k = (version, bucket)
        if k not in grouped:
            order.append(k)
        grouped[k].append((column, stat, key, value))
    for version, bucket in order:
        yield from_long_rows(plan, version, bucket, grouped[(version, bucket)])


def _times(column: pa.ChunkedArray) -> list[datetime]:
    """A timestamp column as datetimes, converting each distinct value once: Arrow converts a time zone aware
    timestamp to Python at about 10 µs a value, and a window's rows all share one bucket."""
    distinct = pc.unique(column)
    by_micros = dict(zip(distinct.cast(pa.int64()).to_pylist(), distinct.to_pylist(), strict=True))
    return [by_micros[m] for m in column.cast(pa.int64()).to_pylist()]
