"""The embedded engine's continuous, checkpointed transforms.

Each run reads only the events committed since the transform's checkpoint
(by ingest sequence, so an event that arrives late for its time bucket is still
counted, in the bucket it belongs to), computes their partials
(:mod:`sustain.backends.duckdb.partials`), and merges them into the stored
partials in the same transaction that advances the checkpoint. Stopping the
process at any moment loses nothing and counts nothing twice. When the plan
changes (new reference bins, a new column), that window's partials are rebuilt
from the events.

:meth:`TransformRunner.run_plans` does this for many plans at once: one read of
every checkpoint, nothing at all for a plan without new events or labels (an
idle model costs a dictionary lookup), and one transaction for every busy plan's
partials and checkpoints. A plan that fails is reported on its own; the others
are merged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from sustain.backends.duckdb.partials import PARTIAL_SCHEMA, event_count, partials, read_sql, touched
from sustain.backends.duckdb.sql import EPOCH
from sustain.backends.duckdb.store import DuckDBStore, events_table, labels_table
from sustain.backends.duckdb.tables import Checkpoint, DuckDBWindows, Merge
from sustain.spec import ModelSpec
from sustain.transforms.plan import TransformPlan, plan_for
from sustain.transforms.runner_report import PlanFailure, RunBatch, RunReport

log = logging.getLogger("sustain.transforms")


@dataclass
class _Work:
    """One busy plan within a batch: where it starts, what it read so far."""

    plan: TransformPlan
    started: float
    done: int
    upto: int
    rebuilt: bool
    expected: Checkpoint | None
    parts: list[pa.Table] = field(default_factory=list)
    touched: set[tuple[str, datetime]] = field(default_factory=set)
    events: int = 0
    partials: int = 0
    labels: Checkpoint | None = None
    source: str = ""  # the events read: the model's table, or its events from the retention cut on
    rebuilt_from: datetime | None = None

    def __post_init__(self) -> None:
        self.source = self.source or events_table(self.plan.model)


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
        plans = [p for spec in (specs if specs is not None else self.store.list_specs()) for p in self.plans(spec)]
        batch = self.run_plans(plans)
        if batch.failures:
            raise batch.failures[0].error
        return batch.reports

    def run_plan(self, plan: TransformPlan) -> RunReport:
        batch = self.run_plans([plan])
        if batch.failures:
            raise batch.failures[0].error
        return batch.reports[0]

    def run_plans(self, plans: Sequence[TransformPlan]) -> RunBatch:
        """Bring every plan up to date: a report per plan (an idle one reads nothing), failures apart."""
        checkpoints = self.windows.checkpoints()
        reports: list[RunReport] = []
        failures: list[PlanFailure] = []
        work: list[_Work] = []
        for plan in plans:
            try:
                job = self._start(plan, checkpoints)
            except Exception as exc:  # this plan's failure; the others go on
                failures.append(PlanFailure(plan, exc))
                continue
            if job is None:
                reports.append(RunReport(plan.id, 0, 0, 0.0, False, checkpoints[plan.id].seq))
            else:
                work.append(job)
        while work:  # one round per chunk of events: most plans need one
            merges: list[tuple[_Work, Merge]] = []
            for job in work:
                try:
                    merges.append((job, self._chunk(job)))
                except Exception as exc:
                    failures.append(PlanFailure(job.plan, exc))
            failed = self._merge(merges, failures)
            pending = []
            for job, merge in merges:
                if job.plan.id in failed:
                    continue
                job.done = merge.seq
                job.expected = Checkpoint(job.plan.id, merge.seq, job.plan.fingerprint)
                if job.done < job.upto:
                    pending.append(job)
                else:
                    reports.append(self._report(job))
            work = pending
        return RunBatch(reports, failures)

    def pending(self, plan: TransformPlan, checkpoints: dict[str, Checkpoint]) -> bool:
        """Whether ``plan`` has events or labels its checkpoints have not seen (or must be rebuilt)."""
        checkpoint = checkpoints.get(plan.id)
        if checkpoint is None or checkpoint.fingerprint != plan.fingerprint:
            return True
        if self.store.committed_seq(plan.model) > checkpoint.seq:
            return True
        labels = checkpoints.get(f"{plan.id}#labels")
        return self.store.committed_label_seq(plan.model) > (labels.seq if labels is not None else 0)

    def _start(self, plan: TransformPlan, checkpoints: dict[str, Checkpoint]) -> _Work | None:
        if not self.pending(plan, checkpoints):
            return None
        started = time.perf_counter()
        checkpoint = checkpoints.get(plan.id)
        rebuilt = False
        since: datetime | None = None
        if checkpoint is None or checkpoint.fingerprint != plan.fingerprint:
            rebuilt = checkpoint is not None
            # After retention, only the windows whose raw events are all still there are rebuilt; the older
            # ones keep the partials (and indicator documents) computed on the bins of their time.
            since = self.windows.retained_from(plan.model)
            if rebuilt:
                log.info("transform %s changed (new bins or columns): rebuilding its windows", plan.id)
            self.windows.reset_partials(plan, since)
            checkpoint = Checkpoint(plan.id, 0, plan.fingerprint)
        job = _Work(plan, started, checkpoint.seq, self.store.committed_seq(plan.model), rebuilt, checkpoint)
        if since is not None:
            job.source = f"(SELECT * FROM {job.source} WHERE ts >= TIMESTAMPTZ '{since.isoformat()}')"
            job.rebuilt_from = since if rebuilt else None
        job.touched.update(self._labelled_windows(job, checkpoints))
        return job

    def _chunk(self, job: _Work) -> Merge:
        """The partials of the next chunk of the job's events."""
        end = min(job.upto, job.done + self.chunk_seq)
        if end <= job.done:
            return Merge(job.plan, PARTIAL_SCHEMA.empty_table(), job.done)
        events = self.store.sql(read_sql(job.plan, job.source), [job.done, end])
        delta = partials(job.plan, events)
        job.events += event_count(delta)
        job.partials += delta.num_rows
        job.touched.update(touched(delta))
        return Merge(job.plan, delta, end)

    def _merge(self, merges: list[tuple[_Work, Merge]], failures: list[PlanFailure]) -> set[str]:
        """One transaction for the round; should it fail, each plan on its own, so one bad plan fails alone.
        Returns the plans left unmerged: failed, or moved on meanwhile by another runner over the same file
        (their events are read again at the next run)."""
        if not merges:
            return set()
        expected = {job.plan.id: job.expected for job, _ in merges}
        marks = [job.labels for job, _ in merges if job.labels is not None]
        try:
            left = self.windows.merge_many([m for _, m in merges], marks, expected)
        except Exception as exc:
            if len(merges) == 1:
                failures.append(PlanFailure(merges[0][0].plan, exc))
                return {merges[0][0].plan.id}
            left = set()
            for one in merges:
                left |= self._merge([one], failures)
        for plan_id in left:
            log.info("transform %s was not merged this run; its events are read again at the next", plan_id)
        for job, _ in merges:
            job.labels = None  # written with the first chunk
        return left

    def _report(self, job: _Work) -> RunReport:
        seconds = time.perf_counter() - job.started
        return RunReport(
            job.plan.id,
            job.events,
            job.partials,
            seconds,
            job.rebuilt,
            job.done,
            frozenset(job.touched),
            job.rebuilt_from,
        )

    def _labelled_windows(self, job: _Work, checkpoints: dict[str, Checkpoint]) -> set[tuple[str, datetime]]:
        """Windows whose events got labels since the last run: their label metrics must be recomputed.

        Labels do not change the window partials (those count what the model saw and said), so they have a
        checkpoint of their own, on the label sequence, moved with the events' first chunk.
        """
        plan = job.plan
        key = f"{plan.id}#labels"
        checkpoint = checkpoints.get(key)
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
        job.labels = Checkpoint(key, upto, "labels")
        return set(zip(table.column("version").to_pylist(), table.column("bucket").to_pylist(), strict=True))
