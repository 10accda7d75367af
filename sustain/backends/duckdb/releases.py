"""Releases in the embedded store: one row per model version (its latest attempt as a JSON document), the
append-only history of state changes and alias moves, and webhook deliveries.

>>> from sustain.backends.duckdb.store import DuckDBStore
>>> from sustain.store.releases import Release, State, now
>>> releases = DuckDBReleases(DuckDBStore("duckdb:///:memory:"))
>>> first = releases.begin(Release("churn", "3", State.REGISTERED, now(), now()))
>>> first.attempt, releases.begin(Release("churn", "3", State.REGISTERED, now(), now()))
(1, None)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from sustain.backends.duckdb.store import DuckDBStore
from sustain.store.releases import AliasEvent, Delivery, Release, State, Transition

_DDL = (
    "CREATE TABLE IF NOT EXISTS _releases (model VARCHAR, version VARCHAR, state VARCHAR, updated_at TIMESTAMPTZ,"
    " body JSON, PRIMARY KEY (model, version))",
    "CREATE TABLE IF NOT EXISTS _release_transitions (model VARCHAR, version VARCHAR, state VARCHAR,"
    " happened_at TIMESTAMPTZ, reason VARCHAR, actor VARCHAR)",
    "CREATE TABLE IF NOT EXISTS _release_aliases (model VARCHAR, alias VARCHAR, version VARCHAR,"
    " happened_at TIMESTAMPTZ, reason VARCHAR)",
    "CREATE TABLE IF NOT EXISTS _release_deliveries (delivery_id VARCHAR, received_at TIMESTAMPTZ, outcome VARCHAR,"
    " reason VARCHAR, event VARCHAR, model VARCHAR, version VARCHAR)",
)


class DuckDBReleases:
    """A :class:`sustain.store.releases.ReleaseStore` in the DuckDB file that holds everything else."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        with store.transaction() as con:
            for ddl in _DDL:
                con.execute(ddl)

    def begin(self, release: Release) -> Release | None:
        with self.store.transaction() as con:
            rows = con.execute(
                "SELECT body FROM _releases WHERE model = ? AND version = ?", [release.model, release.version]
            ).fetchall()
            if rows:
                earlier = Release.from_json(orjson.loads(rows[0][0]))
                if not earlier.state.retryable:
                    return None
                release.attempt = earlier.attempt + 1
            first = Transition(
                release.model, release.version, release.state, release.created_at, release.reason, release.trigger
            )
            self._write(con, release, first)
        return release

    def save(self, release: Release, transition: Transition | None = None) -> None:
        with self.store.transaction() as con:
            self._write(con, release, transition)

    def _write(self, con: Any, release: Release, transition: Transition | None) -> None:
        con.execute(
            "INSERT OR REPLACE INTO _releases VALUES (?, ?, ?, ?, ?)",
            [
                release.model,
                release.version,
                release.state.value,
                release.updated_at,
                orjson.dumps(release.to_json()).decode(),
            ],
        )
        if transition is not None:
            con.execute(
                "INSERT INTO _release_transitions VALUES (?, ?, ?, ?, ?, ?)",
                [
                    transition.model,
                    transition.version,
                    transition.state.value,
                    transition.at,
                    transition.reason,
                    transition.actor,
                ],
            )

    def get(self, model: str, version: str) -> Release | None:
        rows = (
            self.store.cursor()
            .execute("SELECT body FROM _releases WHERE model = ? AND version = ?", [model, version])
            .fetchall()
        )
        return Release.from_json(orjson.loads(rows[0][0])) if rows else None

    def query(self, model: str | None = None, limit: int = 200) -> list[Release]:
        where, params = ("WHERE model = ?", [model]) if model is not None else ("", [])
        rows = (
            self.store.cursor()
            .execute(f"SELECT body FROM _releases {where} ORDER BY updated_at DESC LIMIT ?", [*params, limit])
            .fetchall()
        )
        return [Release.from_json(orjson.loads(r[0])) for r in rows]

    def transitions(self, model: str | None = None, limit: int = 1000) -> list[Transition]:
        where, params = ("WHERE model = ?", [model]) if model is not None else ("", [])
        rows = (
            self.store.cursor()
            .execute(
                "SELECT * FROM (SELECT model, version, state, happened_at, reason, actor FROM _release_transitions"
                f" {where} ORDER BY happened_at DESC LIMIT ?) ORDER BY happened_at",
                [*params, limit],
            )
            .fetchall()
        )
        return [Transition(m, v, State(s), at, reason, actor) for m, v, s, at, reason, actor in rows]

    def record_alias(self, event: AliasEvent) -> None:
        with self.store.transaction() as con:
            con.execute(
                "INSERT INTO _release_aliases VALUES (?, ?, ?, ?, ?)",
                [event.model, event.alias, event.version, event.at, event.reason],
            )

    def alias_history(self, model: str) -> list[AliasEvent]:
        rows = (
            self.store.cursor()
            .execute(
                "SELECT model, alias, version, happened_at, reason FROM _release_aliases WHERE model = ?"
                " ORDER BY happened_at",
                [model],
            )
            .fetchall()
        )
        return [AliasEvent(*row) for row in rows]

    def alias_at(self, model: str, alias: str, at: datetime) -> AliasEvent | None:
        rows = (
            self.store.cursor()
            .execute(
                "SELECT model, alias, version, happened_at, reason FROM _release_aliases WHERE model = ? AND alias = ?"
                " AND happened_at <= ? ORDER BY happened_at DESC LIMIT 1",
                [model, alias, at],
            )
            .fetchall()
        )
        return AliasEvent(*rows[0]) if rows else None

    def claim_delivery(self, delivery: Delivery) -> bool:
        with self.store.transaction() as con:
            seen = con.execute(
                "SELECT count(*) FROM _release_deliveries WHERE delivery_id = ? AND outcome IN ('accepted', 'ignored')",
                [delivery.delivery_id],
            ).fetchall()[0][0]
            if seen:
                self._insert_delivery(
                    con,
                    Delivery(
                        delivery.delivery_id,
                        delivery.received_at,
                        "duplicate",
                        "this delivery was accepted before (MLflow retries); nothing to do",
                        delivery.event,
                        delivery.model,
                        delivery.version,
                    ),
                )
                return False
            self._insert_delivery(con, delivery)
        return True

    def record_delivery(self, delivery: Delivery) -> None:
        with self.store.transaction() as con:
            self._insert_delivery(con, delivery)

    def _insert_delivery(self, con: Any, d: Delivery) -> None:
        con.execute(
            "INSERT INTO _release_deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
            [d.delivery_id, d.received_at, d.outcome, d.reason, d.event, d.model, d.version],
        )

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        rows = (
            self.store.cursor()
            .execute(
                "SELECT delivery_id, received_at, outcome, reason, event, model, version FROM _release_deliveries"
                " ORDER BY received_at DESC LIMIT ?",
                [limit],
            )
            .fetchall()
        )
        return [Delivery(*row) for row in rows]
