"""The embedded engine's continuous, checkpointed transforms.

Each run reads only the events committed since the transform's checkpoint
(by ingest sequence, so an event that arrives late for its time bucket is still
counted, in the bucket it belongs to), computes their partials with one SQL
query per chunk, and merges them into the stored partials in the same
transaction that advances the checkpoint. Stopping the process at any moment
loses nothing and counts nothing twice. When the plan changes (new reference
bins, a new column), that window's partials are rebuilt from the events.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sustain.backends.duckdb.sql import EPOCH, delta_sql, long_rows
from sustain.backends.duckdb.store import DuckDBStore, events_table, labels_table
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.spec import ModelSpec
from sustain.transforms.plan import TransformPlan, plan_for
from sustain.transforms.runner_report import RunReport

log = logging.getLogger("sustain.transforms")


class TransformRunner:
    """Runs every window's transform of every model over a DuckDB store."""

    def __init__(self, store: DuckDBStore, windows: DuckDBWindows | None = None, chunk_seq: int = 250_000) -> None:
        self.store = store
        self.windows = windows or DuckDBWindows(store)
        self.chunk_seq = chunk_seq

    def plans(self, spec: ModelSpec) -> list[TransformPlan]:
        binning = self.windows.binning_profile(spec)
        return [plan_for(spec, window, binning) for window in spec.windows]

    def run(self, specs: list[ModelSpec] | None = None) -> list[RunReport]:
        reports = []
        for spec in specs if specs is not None else self.store.list_specs():
            for plan in self.plans(spec):
                reports.append(self.run_plan(plan))
        return reports

    def run_plan(self, plan: TransformPlan) -> RunReport:
        started = time.perf_counter()
        checkpoint = self.windows.get_checkpoint(plan.id)
        rebuilt = False
        source = events_table(plan.model)
        since: datetime | None = None
        if checkpoint is None or checkpoint.fingerprint != plan.fingerprint:
            rebuilt = checkpoint is not None
            # After retention, only the windows whose raw events are all still there are rebuilt; the older
            # ones keep the partials (and indicator documents) computed on the bins of their time.
            since = self.windows.retained_from(plan.model)
            if rebuilt:
                log.info("transform %s changed (new bins or columns): rebuilding its windows", plan.id)
            self.windows.reset_partials(plan, since)
            if since is not None:
                source = f"(SELECT * FROM {source} WHERE ts >= TIMESTAMPTZ '{since.isoformat()}')"
            done = 0
        else:
            done = checkpoint.seq
        upto = self.store.committed_seq(plan.model)
        sql = delta_sql(plan, source)
        events = partials = 0
        touched: set[tuple[str, datetime]] = set()
        while done < upto:
            chunk_end = min(upto, done + self.chunk_seq)
            delta = self.store.sql(sql, [done, chunk_end])
            rows = long_rows(plan, delta)
            if delta.num_rows:
                events += sum(int(r) for r in delta.column("*|rows").to_pylist())
                touched.update(
                    zip(delta.column("version").to_pylist(), delta.column("bucket").to_pylist(), strict=True)
                )
            partials += len(rows)
            self.windows.merge_partials(plan, rows, chunk_end)
            done = chunk_end
        touched.update(self._labelled_windows(plan))
        seconds = time.perf_counter() - started
        rebuilt_from = since if rebuilt else None
        return RunReport(plan.id, events, partials, seconds, rebuilt, done, frozenset(touched), rebuilt_from)

    def _labelled_windows(self, plan: TransformPlan) -> set[tuple[str, datetime]]:
        """Windows whose events got labels since the last run: their label metrics must be recomputed.

        Labels do not change the window partials (those count what the model saw and said), so they have a
        checkpoint of their own, on the label sequence.
        """
        key = f"{plan.id}#labels"
        checkpoint = self.windows.get_checkpoint(key)
        done = checkpoint.seq if checkpoint is not None else 0
        upto = self.store.committed_label_seq(plan.model)
        if upto <= done:
            return set()
        seconds = int(plan.window_seconds)
        ev, lb = events_table(plan.model), labels_table(plan.model)
        bucket = f"time_bucket(INTERVAL '{seconds} seconds', e.ts, {EPOCH})"
        table = self.store.sql(
            f"SELECT DISTINCT e.version, {bucket} AS bucket FROM {lb} l JOIN {ev} e"
            " ON l.key_kind = 'request_id' AND e.request_id = l.key WHERE l.seq > ? AND l.seq <= ?"
            f" UNION SELECT DISTINCT e.version, {bucket} AS bucket FROM {lb} l JOIN {ev} e"
            " ON l.key_kind = 'event_id' AND coalesce(e.event_id, e.eid::VARCHAR) = l.key"
            " WHERE l.seq > ? AND l.seq <= ?",
            [done, upto, done, upto],
        )
        self.windows.set_checkpoint(key, upto, "labels")
        return set(zip(table.column("version").to_pylist(), table.column("bucket").to_pylist(), strict=True))
