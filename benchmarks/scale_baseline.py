"""The engine pass as it was before issue 17, rebuilt from today's parts, for benchmarks/scale.py's baseline.

Model by model, every pass: the transform plans (profiles parsed from their stored JSON), the checkpoint read,
one wide SQL aggregate of the new events (:func:`sustain.backends.duckdb.sql.delta_sql`, the query the runner
used to run), the partials merged with the checkpoint in a transaction of their own, the labels' checkpoint
looked up; then, window by window, the windows read back, the profiles parsed again, every indicator computed
with a null distribution drawn for that window alone, BLAS left to its own threads; one write of the documents.
The indicator code itself is today's: only the engine around it is the old one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sustain.backends.duckdb.sql import delta_sql, long_rows
from sustain.backends.duckdb.store import DuckDBStore, events_table
from sustain.backends.duckdb.tables import DuckDBWindows
from sustain.indicators.documents import IndicatorDoc, IndicatorStore
from sustain.indicators.runner import IndicatorRunner
from sustain.indicators.work import ModelWork, compute_model
from sustain.spec import ModelSpec
from sustain.transforms.plan import TransformPlan, plan_for
from sustain.transforms.profile import ReferenceProfile, binning_profile


class BaselinePass:
    """One old-style pass over ``specs``: per-model transforms, then per-window indicators."""

    def __init__(self, store: DuckDBStore, windows: DuckDBWindows, documents: IndicatorStore, source: object) -> None:
        self.store = store
        self.windows = windows
        self.documents = documents
        self.source = source
        self.runner = IndicatorRunner(documents)
        self.dirty: dict[str, tuple[TransformPlan, set[tuple[str, datetime]]]] = {}

    def profiles(self, model: str) -> list[ReferenceProfile]:
        rows = (
            self.store.cursor()
            .execute("SELECT profile FROM _profiles WHERE model = ? ORDER BY created_at", [model])
            .fetchall()
        )
        return [ReferenceProfile.from_json(r[0]) for r in rows]

    def run(self, specs: dict[str, ModelSpec]) -> list[IndicatorDoc]:
        """One pass: transforms, then indicators."""
        self.transforms(list(specs.values()))
        return self.indicators(specs, datetime.now(UTC))

    def transforms(self, specs: list[ModelSpec]) -> None:
        for spec in specs:
            binning = binning_profile(self.profiles(spec.name), spec.reference.version)
            for window in spec.windows:
                plan = plan_for(spec, window, binning)
                checkpoint = self.windows.get_checkpoint(plan.id)
                done = checkpoint.seq if checkpoint is not None else 0
                upto = self.store.committed_seq(plan.model)
                touched: set[tuple[str, datetime]] = set()
                if done < upto:
                    delta = self.store.sql(delta_sql(plan, events_table(plan.model)), [done, upto])
                    self.windows.merge_partials(plan, long_rows(plan, delta), upto)
                    touched.update(
                        zip(delta.column("version").to_pylist(), delta.column("bucket").to_pylist(), strict=True)
                    )
                self.windows.get_checkpoint(f"{plan.id}#labels")
                entry = self.dirty.setdefault(plan.id, (plan, set()))
                entry[1].update(touched)

    def indicators(self, specs: dict[str, ModelSpec], now: datetime) -> list[IndicatorDoc]:
        docs: list[IndicatorDoc] = []
        for plan_id, (plan, keys) in list(self.dirty.items()):
            if not keys:
                continue
            self.dirty[plan_id] = (plan, set())
            spec = specs[plan.model]
            since = min(b for _, b in keys)
            windows = [w for w in self.windows.read_windows(plan, since=since) if (w.version, w.start) in keys]
            profiles = self.profiles(spec.name)
            binning = binning_profile(profiles, spec.reference.version)
            by_version = {p.version: p for p in profiles}
            for window in windows:  # one window at a time, as the old engine computed them
                end = window.start + timedelta(seconds=plan.window_seconds)
                work = ModelWork(spec, plan, [window], [end > now], by_version, binning)
                docs.extend(compute_model(work, self.runner, self.source))  # type: ignore[arg-type]
        self.documents.put(docs)
        self.runner.save_states()
        return docs
