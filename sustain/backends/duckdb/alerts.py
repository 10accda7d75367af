"""Alerts and silences in the embedded DuckDB store."""

from __future__ import annotations

from datetime import datetime

import orjson

from sustain.alerting.documents import ALERT_TIMES, Alert, Attempt, RuleState, Silence
from sustain.backends.duckdb.store import DuckDBStore


class DuckDBAlerts:
    """Alerts and silences in the embedded store."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        with store.transaction() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS _alerts (id VARCHAR PRIMARY KEY, key VARCHAR NOT NULL, rule VARCHAR,"
                " model VARCHAR, version VARCHAR, status VARCHAR, started_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,"
                " body JSON)"
            )
            con.execute("CREATE TABLE IF NOT EXISTS _silences (id VARCHAR PRIMARY KEY, ends_at TIMESTAMPTZ, body JSON)")
            con.execute(
                "CREATE TABLE IF NOT EXISTS _rule_states (model VARCHAR, rule VARCHAR, body JSON,"
                " PRIMARY KEY (model, rule))"
            )

    def _load(self, body: str) -> Alert:
        data = orjson.loads(body)
        data["attempts"] = [Attempt.from_json(a) for a in data["attempts"]]
        for name in ALERT_TIMES:
            if data.get(name) is not None:
                data[name] = datetime.fromisoformat(data[name].replace("Z", "+00:00"))
        return Alert(**data)

    def save(self, alert: Alert) -> None:
        # Attempts belong to add_attempt: an alert read before a dispatcher thread recorded one must not erase it
        # when it is saved again (the evaluator judges several windows in one pass while actions run).
        with self.store.transaction() as con:
            rows = con.execute("SELECT body FROM _alerts WHERE id = ?", [alert.id]).fetchall()
            if rows:
                stored = self._load(rows[0][0])
                alert.attempts = stored.attempts
                if stored.last_notified_at is not None:
                    alert.last_notified_at = max(
                        alert.last_notified_at or stored.last_notified_at, stored.last_notified_at
                    )
            con.execute(
                "INSERT OR REPLACE INTO _alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    alert.id,
                    alert.key,
                    alert.rule,
                    alert.model,
                    alert.version,
                    alert.status,
                    alert.started_at,
                    alert.updated_at,
                    orjson.dumps(alert.to_json()).decode(),
                ],
            )

    def add_attempt(self, alert_id: str, attempt: Attempt) -> None:
        # Read-modify-write under the store's write lock: dispatcher threads record attempts concurrently.
        with self.store.transaction() as con:
            rows = con.execute("SELECT body FROM _alerts WHERE id = ?", [alert_id]).fetchall()
            if not rows:
                return
            alert = self._load(rows[0][0])
            alert.attempts.append(attempt)
            if attempt.ok and attempt.event in ("firing", "repeat"):
                alert.last_notified_at = max(alert.last_notified_at or attempt.at, attempt.at)
            con.execute("UPDATE _alerts SET body = ? WHERE id = ?", [orjson.dumps(alert.to_json()).decode(), alert_id])

    def active(self, key: str) -> Alert | None:
        rows = (
            self.store.cursor()
            .execute("SELECT body FROM _alerts WHERE key = ? AND status = 'firing' ORDER BY started_at DESC", [key])
            .fetchall()
        )
        return self._load(rows[0][0]) if rows else None

    def get(self, alert_id: str) -> Alert | None:
        rows = self.store.cursor().execute("SELECT body FROM _alerts WHERE id = ?", [alert_id]).fetchall()
        return self._load(rows[0][0]) if rows else None

    def query(
        self, *, model: str | None = None, status: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Alert]:
        where: list[str] = ["TRUE"]
        params: list[object] = []
        for sql, value in (("model = ?", model), ("status = ?", status), ("updated_at >= ?", since)):
            if value is not None:
                where.append(sql)
                params.append(value)
        rows = (
            self.store.cursor()
            .execute(
                f"SELECT body FROM _alerts WHERE {' AND '.join(where)} ORDER BY started_at DESC LIMIT ?",
                [*params, limit],
            )
            .fetchall()
        )
        return [self._load(r[0]) for r in rows]

    def put_silence(self, silence: Silence) -> None:
        with self.store.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO _silences VALUES (?, ?, ?)",
                [silence.id, silence.ends_at, orjson.dumps(silence.to_json()).decode()],
            )

    def silences(self, now: datetime | None = None) -> list[Silence]:
        sql = "SELECT body FROM _silences"
        params: list[object] = []
        if now is not None:
            sql += " WHERE ends_at > ?"
            params.append(now)
        rows = self.store.cursor().execute(sql + " ORDER BY ends_at", params).fetchall()
        out = []
        for (body,) in rows:
            data = orjson.loads(body)
            for name in ("starts_at", "ends_at"):
                data[name] = datetime.fromisoformat(data[name].replace("Z", "+00:00"))
            silence = Silence(**data)
            if now is None or silence.starts_at <= now:
                out.append(silence)
        return out

    def delete_silence(self, silence_id: str) -> bool:
        with self.store.transaction() as con:
            found = con.execute("SELECT count(*) FROM _silences WHERE id = ?", [silence_id]).fetchall()[0][0]
            con.execute("DELETE FROM _silences WHERE id = ?", [silence_id])
        return bool(found)

    def rule_state(self, model: str, rule: str) -> RuleState:
        rows = (
            self.store.cursor()
            .execute("SELECT body FROM _rule_states WHERE model = ? AND rule = ?", [model, rule])
            .fetchall()
        )
        return RuleState.from_json(orjson.loads(rows[0][0])) if rows else RuleState(model, rule)

    def put_rule_state(self, state: RuleState) -> None:
        with self.store.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO _rule_states VALUES (?, ?, ?)",
                [state.model, state.rule, orjson.dumps(state.to_json()).decode()],
            )
