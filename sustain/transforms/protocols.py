"""What the engine needs from an engine backend's derived data, whichever engine computed it.

The embedded backend implements these with DuckDB tables and a checkpointed SQL
runner; the Elasticsearch backend with continuous transforms and index reads.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from sustain.spec import ModelSpec
from sustain.transforms.plan import TransformPlan
from sustain.transforms.profile import ReferenceProfile
from sustain.transforms.runner_report import RetentionReport, RunBatch, RunReport
from sustain.transforms.window import WindowAggregates


class WindowStore(Protocol):
    """Reference profiles and window aggregates."""

    def put_profile(self, profile: ReferenceProfile) -> None: ...

    def get_profile(self, model: str, version: str) -> ReferenceProfile | None: ...

    def list_profiles(self, model: str) -> list[ReferenceProfile]:
        """Oldest first (the first is the model's binning reference unless the spec names one)."""

    def binning_profile(self, spec: ModelSpec) -> ReferenceProfile | None: ...

    def read_windows(
        self,
        plan: TransformPlan,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[WindowAggregates]: ...

    def window_buckets(self, plan: TransformPlan, since: datetime | None = None) -> list[tuple[str, datetime]]: ...

    def read_many(
        self, wanted: Sequence[tuple[TransformPlan, Collection[tuple[str, datetime]]]]
    ) -> list[list[WindowAggregates]]:
        """For each plan, its windows among the (version, start) keys asked, oldest first (a pass reads every
        window it computes at once)."""


class Transformer(Protocol):
    """Keeps the windows of each plan up to date and says which windows changed."""

    def plans(self, spec: ModelSpec) -> list[TransformPlan]: ...

    def run_plan(self, plan: TransformPlan) -> RunReport: ...

    def run_plans(self, plans: Sequence[TransformPlan]) -> RunBatch:
        """Bring many plans up to date at once; a plan that fails is reported apart and the others go on."""


class Retainer(Protocol):
    """Deletes what grows with traffic once it is no longer needed (raw events and labels past
    ``retention.events`` that every window has folded in, dedup ids past ``retention.dedup``)."""

    def sweep(self, spec: ModelSpec, now: datetime) -> RetentionReport: ...
