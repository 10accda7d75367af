"""Indicator documents: every computed value, written back to the store and served by the API.

One document per (model, version, indicator, feature, window, window start);
recomputing a window (more events arrived) replaces its documents. ``partial``
is true until the window is final: its end plus the model's ``late_arrival``
delay has passed (alert rules judge final windows only). ``freshness`` says how
many seconds after the window's last event the document was computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sustain.indicators.base import IndicatorValue
from sustain.timestamps import iso


@dataclass(frozen=True)
class IndicatorDoc:
    model: str
    version: str
    indicator: str
    type: str
    feature: str | None
    window: str
    window_start: datetime
    window_end: datetime
    value: float | None
    status: str
    p_value: float | None = None
    threshold: float | None = None
    n: int | None = None
    method: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    metric: str | None = None
    freshness: float | None = None  # seconds from the window's last event to computed_at

    @classmethod
    def of(
        cls,
        value: IndicatorValue,
        *,
        model: str,
        version: str,
        indicator: str,
        type: str,
        window: str,
        start: datetime,
        end: datetime,
        partial: bool,
        computed_at: datetime | None = None,
        freshness: float | None = None,
    ) -> IndicatorDoc:
        return cls(
            model=model,
            version=version,
            indicator=indicator,
            type=type,
            feature=value.feature,
            window=window,
            window_start=start,
            window_end=end,
            value=value.value,
            status=value.status,
            p_value=value.p_value,
            threshold=value.threshold,
            n=value.n,
            method=value.method,
            details=dict(value.details),
            partial=partial,
            computed_at=computed_at if computed_at is not None else datetime.now(UTC),
            metric=value.metric,
            freshness=freshness,
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for key in ("window_start", "window_end", "computed_at"):
            body[key] = iso(body[key])
        return body


@dataclass(frozen=True)
class IndicatorQuery:
    model: str
    since: datetime | None = None
    until: datetime | None = None
    indicator: str | None = None
    feature: str | None = None
    version: str | None = None
    window: str | None = None
    status: str | None = None
    metric: str | None = None
    limit: int = 1000
    latest: bool = False
    computed_since: datetime | None = None  # documents written after this time (alert rules' cursor)
    final: bool = False  # only documents of final windows (not ``partial``)


class IndicatorStore(Protocol):
    """Where indicator documents are kept."""

    def put(self, docs: Sequence[IndicatorDoc]) -> None: ...

    def query(self, q: IndicatorQuery) -> list[IndicatorDoc]: ...

    def latest_all(self) -> list[IndicatorDoc]: ...

    def get_states(self, model: str) -> dict[str, dict[str, Any]]:
        """Saved state of the stateful indicators of ``model``, by indicator id."""

    def put_states(self, model: str, states: dict[str, dict[str, Any]]) -> None: ...
