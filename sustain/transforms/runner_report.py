"""What one transform run did (shared by the embedded runner and the Elasticsearch transform manager)."""

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
