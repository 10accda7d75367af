"""Retention on the embedded store: what grows with traffic is deleted once it has served.

Per model (``retention:`` in its spec):

* the dedup index forgets ids that arrived more than ``retention.dedup`` ago;
* raw events and labels whose time is older than ``retention.events`` are deleted, but only those every
  transform of the model has folded into its windows (its checkpoints are past them), and only whole
  windows: the cut is rounded down to a multiple of every window of the model, so no window keeps half its
  events. The window aggregates, indicator documents and alerts stay.

The cut is remembered (:meth:`DuckDBWindows.set_retained_from`): a transform rebuilt later (new reference bins)
recomputes only the windows from there on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import reduce

from sustain.backends.duckdb.store import DuckDBStore
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.spec import ModelSpec
from sustain.transforms.plan import plan_for
from sustain.transforms.runner_report import RetentionReport


def whole_windows(spec: ModelSpec) -> int:
    """Seconds every window of ``spec`` divides (their least common multiple)."""
    return reduce(math.lcm, (int(s) for s in spec.window_seconds()), 1)


def cut(spec: ModelSpec, now: datetime) -> datetime:
    """The time before which raw events may go: ``retention.events`` ago, rounded down to whole windows."""
    step = whole_windows(spec)
    oldest = (now - timedelta(seconds=spec.retention.events_seconds)).timestamp()
    return datetime.fromtimestamp(math.floor(oldest / step) * step, UTC)


class DuckDBRetention:
    def __init__(self, store: DuckDBStore, windows: DuckDBWindows) -> None:
        self.store = store
        self.windows = windows

    def sweep(self, spec: ModelSpec, now: datetime) -> RetentionReport:
        model = spec.name
        ids = self.store.forget_ids(model, now - timedelta(seconds=spec.retention.dedup_seconds))
        before = cut(spec, now)
        binning = self.windows.binning_profile(spec)
        events_upto = self.store.committed_seq(model)
        labels_upto = self.store.committed_label_seq(model)
        for window in spec.windows:
            plan = plan_for(spec, window, binning)
            done = self.windows.get_checkpoint(plan.id)
            labelled = self.windows.get_checkpoint(f"{plan.id}#labels")
            # A plan that has not run yet (or was just reset) has folded nothing in: keep everything.
            current = done is not None and done.fingerprint == plan.fingerprint
            events_upto = min(events_upto, done.seq if done is not None and current else 0)
            labels_upto = min(labels_upto, labelled.seq if labelled is not None else 0)
        events = self.store.delete_events(model, before, events_upto) if events_upto else 0
        labels = self.store.delete_labels(model, before, labels_upto) if labels_upto else 0
        kept_from = self.windows.retained_from(model)
        if events and (kept_from is None or before > kept_from):
            self.windows.set_retained_from(model, before)
            kept_from = before
        return RetentionReport(model, events, labels, ids, kept_from)
