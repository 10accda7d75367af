"""The embedded store: one DuckDB file holds events, labels, references and specs.

Each model gets typed tables named after it (``"ev:<model>"`` for events,
``"lb:<model>"`` for labels, ``"ref:<model>"`` for reference rows). Writes are
serialised by a lock and normally come from the single writer thread; reads use
a cursor per thread and see every committed write.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from sustain.errors import Conflict, NotFound, StoreError
from sustain.spec import ModelSpec
from sustain.store.base import (
    AppendResult,
    DoneExchange,
    EventBatch,
    EventQuery,
    LabelBatch,
    PendingHalf,
    ReferenceInfo,
)
from sustain.store.layout import Layout, label_types, quote
from sustain.store.records import row_to_event


def _half_json(half: PendingHalf | None) -> str | None:
    if half is None:
        return None
    return orjson.dumps({"kind": half.kind, "received_at": half.received_at.isoformat(), "body": half.body}).decode()


_SYSTEM_DDL = (
    "CREATE TABLE IF NOT EXISTS _specs (model VARCHAR PRIMARY KEY, spec JSON NOT NULL, updated_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS _references (model VARCHAR, version VARCHAR, rows BIGINT, columns JSON,"
    " uploaded_at TIMESTAMPTZ, PRIMARY KEY (model, version))",
    "CREATE TABLE IF NOT EXISTS _ce_pending (model VARCHAR, key VARCHAR, kind VARCHAR, received_at TIMESTAMPTZ,"
    " body JSON, PRIMARY KEY (model, key, kind))",
    "CREATE TABLE IF NOT EXISTS _ce_done (model VARCHAR, key VARCHAR, done_at TIMESTAMPTZ, missing VARCHAR,"
    " half JSON, PRIMARY KEY (model, key))",
)
# The dedup key of an event: its id when that is a UUID, else a UUID derived from it (none given: a new one).
_EID = (
    "coalesce(try_cast(event_id AS UUID), CASE WHEN event_id IS NULL"
    " THEN uuidv7() ELSE md5('sustain:' || event_id)::UUID END)"
)


_TYPE_ALIASES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "FLOAT": "FLOAT", "REAL": "FLOAT", "STRING": "VARCHAR"}


def _canonical(sql_type: str) -> str:
    upper = sql_type.upper().strip()
    return _TYPE_ALIASES.get(upper, upper)


def _unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    # After a failed statement the transaction is aborted and unregistering fails too; the view
    # is replaced by the next register() under the same name anyway.
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


def events_table(model: str) -> str:
    return quote(f"ev:{model}")


def labels_table(model: str) -> str:
    return quote(f"lb:{model}")


def reference_table(model: str) -> str:
    return quote(f"ref:{model}")


def dedup_table(model: str) -> str:
    """The ids of the events that arrived within the model's dedup horizon (``retention.dedup``)."""
    return quote(f"dd:{model}")


_EVENT_COLUMNS = "seq, eid, event_id, request_id, version, ts, received_at, latency_ms, error, tags, extra, invalid"
RETENTION_CHUNK = 200_000  # rows deleted per transaction, so a sweep never holds up ingest for long


def parse_duckdb_uri(uri: str) -> tuple[str, dict[str, str]]:
    """``duckdb:///./data/x.duckdb`` → ('./data/x.duckdb', {}); ``duckdb:///:memory:`` → (':memory:', {}).

    >>> parse_duckdb_uri("duckdb:///./data/sustain.duckdb?threads=2")
    ('./data/sustain.duckdb', {'threads': '2'})
    >>> parse_duckdb_uri("duckdb:////var/lib/sustain.duckdb")[0]
    '/var/lib/sustain.duckdb'
    """
    parts = urlsplit(uri)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if parts.netloc:
        path = parts.netloc + ("/" + path if path else "")
    if not path:
        raise StoreError(f"{uri!r} names no database file; write duckdb:///./data/sustain.duckdb")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options


class DuckDBStore:
    """A :class:`sustain.store.base.Store` on an embedded DuckDB database."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        path, options = parse_duckdb_uri(uri)
        self.path = path
        config: dict[str, Any] = {
            k: v for k, v in options.items() if k in ("threads", "memory_limit", "temp_directory")
        }
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._con = duckdb.connect(path, config=config)
            for ddl in _SYSTEM_DDL:
                self._con.execute(ddl)
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open the DuckDB store at {path!r}: {exc}") from exc
        self._lock = threading.RLock()
        self._local = threading.local()
        self._specs: dict[str, ModelSpec] = {}
        self._layouts: dict[str, Layout] = {}
        self._next_seq: dict[str, int] = {}
        self._next_label_seq: dict[str, int] = {}
        self._closed = False
        for (text,) in self._con.execute("SELECT spec FROM _specs").fetchall():
            spec = ModelSpec.model_validate_json(text)
            self._remember(spec)

    # -- plumbing -----------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor."""
        return self._cursor()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            if self._closed:
                raise StoreError("the store is closed")
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    @contextmanager
    def transaction(self, passthrough: type[duckdb.Error] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Commit on success; on failure roll back and raise StoreError (``passthrough`` errors as they are)."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            con = self._con
            try:
                con.execute("BEGIN TRANSACTION")
                yield con
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                if passthrough is not None and isinstance(exc, passthrough):
                    raise
                raise StoreError(f"DuckDB write failed: {exc}") from exc
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                # A failed checkpoint loses nothing: the WAL holds every commit and DuckDB replays it on open.
                with contextlib.suppress(duckdb.Error):
                    self._con.execute("CHECKPOINT")
                self._con.close()

    def _remember(self, spec: ModelSpec) -> None:
        self._specs[spec.name] = spec
        self._layouts[spec.name] = Layout.of(spec)
        with self._lock:
            self._next_seq[spec.name] = 1 + self._max_seq(f"ev:{spec.name}")
            self._next_label_seq[spec.name] = 1 + self._max_seq(f"lb:{spec.name}")

    def _max_seq(self, table: str) -> int:
        exists = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchall()
        if not exists or not exists[0][0]:
            return 0
        rows = self._con.execute(f"SELECT max(seq) FROM {quote(table)}").fetchall()
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def layout(self, model: str) -> Layout:
        try:
            return self._layouts[model]
        except KeyError:
            raise NotFound(f"model {model!r} is not registered") from None

    # -- specs -------------------------------------------------------------------------------
    def put_spec(self, spec: ModelSpec) -> None:
        layout = Layout.of(spec)
        label_sql = label_types(spec.label.kind)[1] if spec.label else "VARCHAR"
        with self.transaction() as con:
            self._migrate(con, f"ev:{spec.name}", layout.sql_columns())
            self._drop_event_primary_key(con, spec)
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {dedup_table(spec.name)}"
                " (eid UUID PRIMARY KEY, seq BIGINT NOT NULL, arrived BIGINT NOT NULL)"
            )
            self._migrate(
                con,
                f"lb:{spec.name}",
                [
                    ("key_kind", "VARCHAR NOT NULL"),
                    ("key", "VARCHAR NOT NULL"),
                    ("label", label_sql),
                    ("ts", "TIMESTAMPTZ NOT NULL"),
                    ("received_at", "TIMESTAMPTZ NOT NULL"),
                    ("seq", "BIGINT NOT NULL"),
                ],
                primary_key="(key_kind, key)",
            )
            self._migrate(
                con,
                f"ref:{spec.name}",
                [("version", "VARCHAR NOT NULL")]
                + [(c.name, c.sql_type) for c in layout.value_columns]
                + [("label", label_sql)],
            )
            con.execute(
                "INSERT OR REPLACE INTO _specs VALUES (?, ?, ?)",
                [spec.name, spec.model_dump_json(), datetime.now(UTC)],
            )
        self._remember(spec)

    def _drop_event_primary_key(self, con: duckdb.DuckDBPyConnection, spec: ModelSpec) -> None:
        """Stores made before the dedup horizon kept ``eid UUID PRIMARY KEY`` on the events table: an in-memory
        index over every event id ever stored. Copy the table without it (once), and seed the dedup index with
        the ids that arrived within the horizon."""
        table = f"ev:{spec.name}"
        keyed = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchall()[0][0]
        if not keyed:
            return
        columns = con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position",
            [table],
        ).fetchall()
        body = ", ".join(f"{quote(n)} {t}{'' if nullable == 'YES' else ' NOT NULL'}" for n, t, nullable in columns)
        names = ", ".join(quote(n) for n, _, _ in columns)
        staging = quote(f"{table}:unkeyed")
        con.execute(f"CREATE TABLE {staging} ({body})")
        con.execute(f"INSERT INTO {staging} ({names}) SELECT {names} FROM {quote(table)}")
        con.execute(f"DROP TABLE {quote(table)}")
        con.execute(f"ALTER TABLE {staging} RENAME TO {quote(table)}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {dedup_table(spec.name)}"
            " (eid UUID PRIMARY KEY, seq BIGINT NOT NULL, arrived BIGINT NOT NULL)"
        )
        since = datetime.now(UTC).timestamp() - spec.retention.dedup_seconds
        con.execute(
            f"INSERT OR IGNORE INTO {dedup_table(spec.name)} SELECT eid, seq, epoch(received_at)::BIGINT"
            f" FROM {quote(table)} WHERE epoch(received_at) >= ?",
            [since],
        )

    def _migrate(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        columns: list[tuple[str, str]],
        primary_key: str | None = None,
    ) -> None:
        existing = {
            name: dtype
            for name, dtype in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        }
        if not existing:
            body = ", ".join(f"{quote(n)} {t}" for n, t in columns)
            if primary_key:
                body += f", PRIMARY KEY {primary_key}"
            con.execute(f"CREATE TABLE {quote(table)} ({body})")
            return
        for name, sql_type in columns:
            base_type = sql_type.replace(" PRIMARY KEY", "").replace(" NOT NULL", "")
            if name not in existing:
                if "NOT NULL" in sql_type or "PRIMARY KEY" in sql_type:
                    raise Conflict(f"cannot add required column {name!r} to existing table {table!r}")
                con.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {base_type}")
            elif _canonical(existing[name]) != _canonical(base_type):
                what = name.split(":", 1)[-1]
                raise Conflict(
                    f"{what!r} is stored as {existing[name]} but the new spec makes it {base_type}; "
                    "a stored column cannot change type: give the changed feature a new name"
                )

    def committed_seq(self, model: str) -> int:
        """The highest ingest sequence number committed for ``model`` (0 when none)."""
        self.layout(model)
        return self._next_seq[model] - 1

    def committed_label_seq(self, model: str) -> int:
        """The highest label sequence number committed for ``model`` (0 when none)."""
        self.layout(model)
        return self._next_label_seq[model] - 1

    def get_spec(self, model: str) -> ModelSpec | None:
        return self._specs.get(model)

    def list_specs(self) -> list[ModelSpec]:
        return sorted(self._specs.values(), key=lambda s: s.name)

    # -- capture -------------------------------------------------------------------------------
    def append_events(self, batches: Sequence[EventBatch]) -> list[AppendResult]:
        """One commit for all batches, one INSERT per model.

        An event whose id arrived within the model's dedup horizon is stored once: its id goes into the dedup
        index (``dd:<model>``, a primary key over the ids of the horizon only) in the same transaction as the
        event. Repeated ids are rare (client retries and spool replays), so the plain INSERT runs first; only
        when the index refuses a row does the group run again with INSERT OR IGNORE, which names the rows
        that were new.
        """
        received_at = datetime.now(UTC)
        by_model: dict[str, list[int]] = {}
        for i, batch in enumerate(batches):
            self.layout(batch.model)
            if batch.table.num_rows:
                by_model.setdefault(batch.model, []).append(i)
        inserted = [0] * len(batches)
        try:
            with self.transaction(passthrough=duckdb.ConstraintException) as con:
                for model, members in by_model.items():
                    self._insert_events(con, model, [batches[i] for i in members], received_at, ignore=False)
                    for i in members:
                        inserted[i] = batches[i].table.num_rows
        except duckdb.ConstraintException:
            with self.transaction() as con:
                for model, members in by_model.items():
                    counts = self._insert_events(con, model, [batches[i] for i in members], received_at, ignore=True)
                    for i, count in zip(members, counts, strict=True):
                        inserted[i] = count
        for model, members in by_model.items():
            self._next_seq[model] += sum(batches[i].table.num_rows for i in members)
        return [AppendResult(b.model, inserted[i], b.table.num_rows - inserted[i]) for i, b in enumerate(batches)]

    def _insert_events(
        self,
        con: duckdb.DuckDBPyConnection,
        model: str,
        batches: list[EventBatch],
        received_at: datetime,
        *,
        ignore: bool,
    ) -> list[int]:
        """Insert the batches of one model; with ``ignore``, skip repeated ids and return how many rows of each
        batch were new."""
        layout = self.layout(model)
        table = batches[0].table if len(batches) == 1 else pa.concat_tables([b.table for b in batches])
        start = self._next_seq[model]
        n = table.num_rows
        staged = table.append_column("seq", pa.array(np.arange(start, start + n, dtype=np.int64)))
        values = ", ".join(quote(c.name) for c in layout.value_columns)
        con.register("_staged", staged)
        try:
            index = f"INTO {dedup_table(model)} SELECT {_EID}, seq, ? FROM _staged WHERE event_id IS NOT NULL"
            arrived = [int(received_at.timestamp())]
            where = ""
            if ignore:  # the rows whose id was new: the first of each id, in batch order
                new = con.execute(f"INSERT OR IGNORE {index} RETURNING seq", arrived).fetchnumpy()["seq"]
                con.register("_new", pa.table({"seq": pa.array(np.asarray(new, dtype=np.int64))}))
                where = " WHERE event_id IS NULL OR seq IN (SELECT seq FROM _new)"
            else:
                con.execute(f"INSERT {index}", arrived).fetchall()
            con.execute(
                f"INSERT INTO {events_table(model)} ({_EVENT_COLUMNS}, {values}) "
                f"SELECT seq, {_EID},"
                " CASE WHEN try_cast(event_id AS UUID)::VARCHAR = event_id THEN NULL ELSE event_id END,"
                f" request_id, version, ts, ?, latency_ms, error, tags, extra, invalid, {values}"
                f" FROM _staged{where}",
                [received_at],
            ).fetchall()
        finally:
            _unregister(con, "_staged")
            if ignore:
                _unregister(con, "_new")
        if not ignore:
            return [b.table.num_rows for b in batches]
        kept = con.execute(
            f"SELECT seq FROM {events_table(model)} WHERE seq >= ? AND seq < ? ORDER BY seq", [start, start + n]
        ).fetchnumpy()["seq"]
        bounds = np.cumsum([0] + [b.table.num_rows for b in batches]) + start
        per_batch = np.diff(np.searchsorted(np.asarray(kept), bounds))
        return [int(c) for c in per_batch]

    # -- retention ------------------------------------------------------------------------------
    def forget_ids(self, model: str, arrived_before: datetime) -> int:
        """Drop from the dedup index the ids that arrived before ``arrived_before`` (past the horizon)."""
        self.layout(model)
        with self.transaction() as con:
            rows = con.execute(
                f"DELETE FROM {dedup_table(model)} WHERE arrived < ?", [int(arrived_before.timestamp())]
            ).fetchall()
        return int(rows[0][0]) if rows else 0

    def delete_events(self, model: str, before: datetime, upto_seq: int) -> int:
        """Delete the events whose time is before ``before`` and whose sequence is at most ``upto_seq`` (already
        folded into every window), a chunk of sequence numbers per transaction. Returns how many went."""
        return self._delete_old(model, events_table(model), before, upto_seq)

    def delete_labels(self, model: str, before: datetime, upto_seq: int) -> int:
        """Delete the labels whose time is before ``before`` and whose sequence is at most ``upto_seq``."""
        return self._delete_old(model, labels_table(model), before, upto_seq)

    def _delete_old(self, model: str, table: str, before: datetime, upto_seq: int) -> int:
        self.layout(model)
        deleted, low = 0, 0
        while True:
            # Time mostly follows the sequence, so the min/max statistics of each row group skip nearly all
            # of the table here.
            query = f"SELECT min(seq) FROM {table} WHERE ts < ? AND seq >= ? AND seq <= ?"
            rows = self._cursor().execute(query, [before, low, upto_seq]).fetchall()
            if not rows or rows[0][0] is None:
                return deleted
            low = int(rows[0][0])
            high = min(upto_seq, low + RETENTION_CHUNK - 1)
            with self.transaction() as con:
                done = con.execute(
                    f"DELETE FROM {table} WHERE seq >= ? AND seq <= ? AND ts < ?", [low, high, before]
                ).fetchall()
            deleted += int(done[0][0]) if done else 0
            low = high + 1

    def append_labels(self, batches: Sequence[LabelBatch]) -> list[int]:
        counts: list[int] = []
        received_at = datetime.now(UTC)
        with self.transaction() as con:
            for batch in batches:
                self.layout(batch.model)
                n = batch.table.num_rows
                start = self._next_label_seq[batch.model]
                staged = batch.table.append_column("seq", pa.array(np.arange(start, start + n, dtype=np.int64)))
                con.register("_labels", staged)
                try:
                    con.execute(
                        f"INSERT OR REPLACE INTO {labels_table(batch.model)}"
                        " (key_kind, key, label, ts, received_at, seq)"
                        " SELECT key_kind, key, label, ts, ?, seq FROM _labels",
                        [received_at],
                    )
                finally:
                    _unregister(con, "_labels")
                self._next_label_seq[batch.model] = start + n
                counts.append(n)
        return counts

    def put_reference(self, model: str, version: str, table: pa.Table) -> ReferenceInfo:
        self.layout(model)
        uploaded_at = datetime.now(UTC)
        columns = [c for c in table.column_names if c != "version"]
        with self.transaction() as con:
            con.execute(f"DELETE FROM {reference_table(model)} WHERE version = ?", [version])
            con.register("_reference", table)
            try:
                names = ", ".join(quote(c) for c in columns)
                con.execute(
                    f"INSERT INTO {reference_table(model)} (version, {names}) SELECT ?, {names} FROM _reference",
                    [version],
                )
            finally:
                _unregister(con, "_reference")
            con.execute(
                "INSERT OR REPLACE INTO _references VALUES (?, ?, ?, ?, ?)",
                [model, version, table.num_rows, orjson.dumps(columns).decode(), uploaded_at],
            )
        return ReferenceInfo(model, version, table.num_rows, columns, uploaded_at)

    def stash_halves(self, halves: Sequence[PendingHalf]) -> None:
        with self.transaction() as con:
            con.executemany(
                "INSERT OR IGNORE INTO _ce_pending VALUES (?, ?, ?, ?, ?)",
                [[h.model, h.key, h.kind, h.received_at, orjson.dumps(h.body).decode()] for h in halves],
            )

    def take_pending(self, older_than: datetime | None = None) -> list[PendingHalf]:
        cutoff = older_than or datetime(1970, 1, 1, tzinfo=UTC)
        rows = (
            self._cursor()
            .execute(
                "SELECT model, key, kind, received_at, body FROM _ce_pending p WHERE received_at < ? OR EXISTS"
                " (SELECT 1 FROM _ce_pending q WHERE q.model = p.model AND q.key = p.key AND q.kind <> p.kind)"
                " ORDER BY received_at",
                [cutoff],
            )
            .fetchall()
        )
        return [PendingHalf(key=r[1], model=r[0], kind=r[2], received_at=r[3], body=orjson.loads(r[4])) for r in rows]

    def settle_pending(self, halves: Sequence[PendingHalf], done: Sequence[DoneExchange]) -> None:
        if not halves and not done:
            return
        with self.transaction() as con:
            if halves:
                con.executemany(
                    "DELETE FROM _ce_pending WHERE model = ? AND key = ? AND kind = ?",
                    [[h.model, h.key, h.kind] for h in halves],
                )
            if done:
                con.executemany(
                    "INSERT OR REPLACE INTO _ce_done VALUES (?, ?, ?, ?, ?)",
                    [[d.model, d.key, d.done_at, d.missing, _half_json(d.half)] for d in done],
                )

    def done_exchange(self, model: str, key: str) -> DoneExchange | None:
        rows = (
            self._cursor()
            .execute("SELECT done_at, missing, half FROM _ce_done WHERE model = ? AND key = ?", [model, key])
            .fetchall()  # fetchone would leave the result open on the shared cursor
        )
        if not rows:
            return None
        row = rows[0]
        half = orjson.loads(row[2]) if row[2] else None
        lone = None
        if half is not None:
            received = datetime.fromisoformat(half["received_at"])
            lone = PendingHalf(key=key, model=model, kind=half["kind"], received_at=received, body=half["body"])
        return DoneExchange(model=model, key=key, done_at=row[0], missing=row[1], half=lone)

    def forget_done(self, before: datetime) -> None:
        with self.transaction() as con:
            con.execute("DELETE FROM _ce_done WHERE done_at < ?", [before])

    def complete_events(self, batches: Sequence[EventBatch]) -> list[AppendResult]:
        """UPDATE the stored rows in place (their ``seq`` stays, so windows already aggregated are not counted
        twice), then INSERT OR IGNORE the batch, which appends only the events no longer stored."""
        results: list[AppendResult] = []
        received_at = datetime.now(UTC)
        with self.transaction() as con:
            for batch in batches:
                if not batch.table.num_rows:
                    results.append(AppendResult(batch.model, 0, 0))
                    continue
                layout = self.layout(batch.model)
                names = ["latency_ms", "error", "tags", "extra", "invalid"] + [c.name for c in layout.value_columns]
                assignments = ", ".join(f"{quote(n)} = s.{quote(n)}" for n in names)
                n = batch.table.num_rows
                con.register("_completed", batch.table.append_column("_row", pa.array(np.arange(n, dtype=np.int64))))
                try:
                    stored = con.execute(
                        f"SELECT s._row FROM (SELECT {_EID} AS eid, _row FROM _completed) AS s"
                        f" WHERE EXISTS (SELECT 1 FROM {events_table(batch.model)} e WHERE e.eid = s.eid)"
                    ).fetchnumpy()["_row"]
                    updated = con.execute(
                        f"UPDATE {events_table(batch.model)} AS e SET {assignments} "
                        f"FROM (SELECT {_EID} AS eid, * FROM _completed) AS s WHERE e.eid = s.eid"
                    ).fetchall()[0][0]
                finally:
                    _unregister(con, "_completed")
                # Only the events no longer stored are appended: one stored longer ago than the dedup horizon
                # has left the dedup index, and must be completed, not stored a second time.
                keep = np.ones(n, dtype=bool)
                keep[np.asarray(stored, dtype=np.int64)] = False
                missing = EventBatch(batch.model, batch.table.filter(pa.array(keep)))
                added = (
                    self._insert_events(con, batch.model, [missing], received_at, ignore=True)[0] if keep.any() else 0
                )
                self._next_seq[batch.model] += batch.table.num_rows
                results.append(AppendResult(batch.model, int(updated) + added, 0))
        return results

    # -- reads --------------------------------------------------------------------------------
    def read_events(self, model: str, query: EventQuery) -> list[dict[str, Any]]:
        layout = self.layout(model)
        conditions = [
            ("e.ts >= ?", query.since),
            ("e.ts < ?", query.until),
            ("e.version = ?", query.version),
            ("e.request_id = ?", query.request_id),
        ]
        where = ["TRUE"] + [sql for sql, value in conditions if value is not None]
        params: list[Any] = [value for _, value in conditions if value is not None]
        lb = labels_table(model)
        sql = (
            "SELECT e.*, coalesce(lr.label, le.label) AS label, coalesce(lr.ts, le.ts) AS label_ts"
            f" FROM {events_table(model)} e"
            f" LEFT JOIN {lb} lr ON lr.key_kind = 'request_id' AND lr.key = e.request_id"
            f" LEFT JOIN {lb} le ON le.key_kind = 'event_id' AND le.key = coalesce(e.event_id, e.eid::VARCHAR)"
            f" WHERE {' AND '.join(where)} ORDER BY e.ts DESC, e.seq DESC LIMIT ?"
        )
        try:
            rows = self._cursor().sql(sql, params=[*params, query.limit]).to_arrow_table().to_pylist()
        except duckdb.Error as exc:
            raise StoreError(f"reading events of {model!r} failed: {exc}") from exc
        return [row_to_event(layout, row) for row in rows]

    def count_events(self, model: str) -> int:
        return self._count(model, events_table(model))

    def count_labels(self, model: str) -> int:
        return self._count(model, labels_table(model))

    def _count(self, model: str, table: str) -> int:
        self.layout(model)
        return int(self._cursor().execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    def reference_info(self, model: str) -> list[ReferenceInfo]:
        self.layout(model)
        rows = (
            self._cursor()
            .execute(
                "SELECT version, rows, columns, uploaded_at FROM _references WHERE model = ? ORDER BY version",
                [model],
            )
            .fetchall()
        )
        return [ReferenceInfo(model, r[0], r[1], orjson.loads(r[2]), r[3]) for r in rows]

    def read_reference(self, model: str, version: str) -> pa.Table | None:
        self.layout(model)
        known = (
            self._cursor()
            .execute("SELECT 1 FROM _references WHERE model = ? AND version = ?", [model, version])
            .fetchall()
        )
        if not known:
            return None
        return self.sql(f"SELECT * EXCLUDE (version) FROM {reference_table(model)} WHERE version = ?", [version])

    def sql(self, query: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a read-only query on this thread's cursor (for transforms, indicators and tests)."""
        try:
            result: pa.Table = self._cursor().sql(query, params=list(params)).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        return result
