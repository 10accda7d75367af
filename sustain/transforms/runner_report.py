"""What one transform run did (shared by the embedded runner and the Elasticsearch transform manager), and what
one retention sweep deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sustain.transforms.plan import TransformPlan


@dataclass(frozen=True)
class RunReport:
    transform: str
    events: int
    partials: int
    seconds: float
    rebuilt: bool
    checkpoint: int
    touched: frozenset[tuple[str, datetime]] = frozenset()  # (version, bucket) windows that changed
    # A rebuild after retention recomputes only the windows from here on (older ones lost their raw events)
    rebuilt_from: datetime | None = None


@dataclass(frozen=True)
class RetentionReport:
    """What one retention sweep of one model deleted."""

    model: str
    events: int
    labels: int
    ids: int
    kept_from: datetime | None  # raw events before this time are gone (None: nothing deleted yet)


@dataclass(frozen=True)
class PlanFailure:
    """A plan whose transform failed in a batch (the other plans of the batch went on)."""

    plan: TransformPlan
    error: BaseException


@dataclass(frozen=True)
class RunBatch:
    """What one run over many plans did: a report per plan brought up to date, the failures apart."""

    reports: list[RunReport] = field(default_factory=list)
    failures: list[PlanFailure] = field(default_factory=list)
