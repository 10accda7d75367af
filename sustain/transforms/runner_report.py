"""What one transform run did (shared by the embedded runner and the Elasticsearch transform manager)."""

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
