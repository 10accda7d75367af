"""The Store protocol and what travels through it: event and label batches, queries, references.

A store keeps raw events, labels, references and specs. Which store (and which engine runs on it) is chosen
by URI scheme in :mod:`sustain.backends`.
"""

from __future__ import annotations

from sustain.store.base import (
    AppendResult,
    EventBatch,
    EventQuery,
    LabelBatch,
    PendingHalf,
    ReferenceInfo,
    Store,
)

DEFAULT_STORE_URI = "duckdb:///./data/sustain.duckdb"

__all__ = [
    "DEFAULT_STORE_URI",
    "AppendResult",
    "EventBatch",
    "EventQuery",
    "LabelBatch",
    "PendingHalf",
    "ReferenceInfo",
    "Store",
]
