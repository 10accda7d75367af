"""The Store protocol: the narrow surface every storage backend offers.

Writes come from one writer at a time (:mod:`sustain.store.writer` serialises
them and groups commits); reads may come from any thread. Every method that
fails for a backend reason raises :class:`sustain.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from sustain.spec import ModelSpec


@dataclass(frozen=True)
class EventBatch:
    """Validated events for one model, in the model's layout (see :mod:`sustain.store.layout`)."""

    model: str
    table: pa.Table


@dataclass(frozen=True)
class AppendResult:
    model: str
    inserted: int
    duplicates: int


@dataclass(frozen=True)
class LabelBatch:
    """Labels for one model: columns ``key_kind`` (request_id|event_id), ``key``, ``label``, ``ts``."""

    model: str
    table: pa.Table


@dataclass(frozen=True)
class EventQuery:
    since: datetime | None = None
    until: datetime | None = None
    version: str | None = None
    request_id: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class ReferenceInfo:
    model: str
    version: str
    rows: int
    columns: list[str]
    uploaded_at: datetime


@dataclass(frozen=True)
class PendingHalf:
    """One half (request or response) of a CloudEvents exchange waiting for its partner."""

    key: str
    model: str
    kind: str  # "request" | "response"
    received_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class DoneExchange:
    """A CloudEvents exchange already turned into events, remembered for a while so that a half arriving late
    completes its events, and a half logged again (a replay, or the second pair Seldon's executor logs for a node
    with children) is recognised and dropped."""

    model: str
    key: str
    done_at: datetime
    missing: str | None = None  # "request" or "response" when the events were stored from one half
    half: PendingHalf | None = None  # that lone half, to rebuild the pair when its partner arrives


@runtime_checkable
class Store(Protocol):
    """What sustain needs from storage. Backends are chosen by URI scheme."""

    uri: str

    def close(self) -> None: ...

    # -- specs ------------------------------------------------------------------------------
    def put_spec(self, spec: ModelSpec) -> None:
        """Store ``spec`` and make room for its columns (raises Conflict on incompatible changes)."""

    def get_spec(self, model: str) -> ModelSpec | None: ...

    def list_specs(self) -> list[ModelSpec]: ...

    # -- capture (called by the single writer) ---------------------------------------------------
    def append_events(self, batches: Sequence[EventBatch]) -> list[AppendResult]:
        """Durably append every batch in one commit; repeated event ids are stored once."""

    def append_labels(self, batches: Sequence[LabelBatch]) -> list[int]:
        """Durably store labels (a repeated key replaces the earlier label)."""

    def put_reference(self, model: str, version: str, table: pa.Table) -> ReferenceInfo:
        """Replace the reference data of ``model``/``version`` with ``table`` (layout columns)."""

    def stash_halves(self, halves: Sequence[PendingHalf]) -> None:
        """Keep each half until its partner arrives; a half whose (model, key, kind) is already pending is
        ignored: the first one logged wins."""

    def take_pending(self, older_than: datetime | None = None) -> list[PendingHalf]:
        """Pending halves whose partner arrived, plus those older than ``older_than``."""

    def settle_pending(self, halves: Sequence[PendingHalf], done: Sequence[DoneExchange]) -> None:
        """In one step, forget ``halves`` (exactly those: model, key and kind) and remember ``done`` exchanges
        (replacing an earlier record of the same exchange)."""

    def done_exchange(self, model: str, key: str) -> DoneExchange | None:
        """The record of an exchange already turned into events, if it is still remembered."""

    def forget_done(self, before: datetime) -> None:
        """Forget exchanges done before ``before``."""

    def complete_events(self, batches: Sequence[EventBatch]) -> list[AppendResult]:
        """Overwrite stored events with complete versions of themselves (same event ids): features, outputs,
        latency, error, tags. An event no longer stored is appended. ``inserted`` counts the events written."""

    # -- reads ------------------------------------------------------------------------------
    def read_events(self, model: str, query: EventQuery) -> list[dict[str, Any]]:
        """Stored events, newest first, with their joined label (``None`` until it arrives)."""

    def count_events(self, model: str) -> int: ...

    def reference_info(self, model: str) -> list[ReferenceInfo]: ...

    def read_reference(self, model: str, version: str) -> pa.Table | None: ...
