"""What one transform run did (shared by the embedded runner and the Elasticsearch transform manager), and what
one retention sweep deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
