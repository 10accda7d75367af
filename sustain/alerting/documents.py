"""Alert documents (one per firing episode, with its lifecycle and every action attempt) and silences."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sustain.timestamps import iso as _iso

AlertStatus = Literal["firing", "resolved"]


@dataclass
class Attempt:
    """One try of one action for one alert."""

    action: str
    type: str
    event: str  # firing | repeat | resolved
    at: datetime
    ok: bool
    detail: str
    attempt: int = 1
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["at"] = _iso(self.at)
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Attempt:
        return cls(**{**body, "at": datetime.fromisoformat(body["at"].replace("Z", "+00:00"))})


@dataclass
class Alert:
    id: str
    key: str
    rule: str
    model: str
    version: str
    severity: str
    status: AlertStatus
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    silenced: bool = False
    summary: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    # The window whose judgement fired the alert (None for rules on time, like flatline).
    window: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None

    @classmethod
    def new(cls, key: str, rule: str, model: str, version: str, severity: str, now: datetime) -> Alert:
        return cls(str(uuid.uuid4()), key, rule, model, version, severity, "firing", now, now)

    def succeeded(self, action: str, event: str) -> bool:
        return any(a.action == action and a.event == event and a.ok for a in self.attempts)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for name in ALERT_TIMES:
            body[name] = _iso(getattr(self, name))
        body["attempts"] = [a.to_json() for a in self.attempts]
        return body


ALERT_TIMES = ("started_at", "updated_at", "resolved_at", "last_notified_at", "window_start", "window_end")


@dataclass
class RuleState:
    """What one rule of one model has judged, kept across restarts.

    ``cursor`` is the newest ``computed_at`` of the indicator documents the rule has read: each evaluation reads
    only documents of final windows written since. ``judged`` maps each judged window (``version|window|start``)
    to a fingerprint of the documents it was judged on: a window is judged once, and again only if its
    documents change (late labels, late events), never because it was recomputed unchanged."""

    model: str
    rule: str
    cursor: datetime | None = None
    judged: dict[str, str] = field(default_factory=dict)

    KEEP = 1000  # judged windows remembered per rule (the engine recomputes the 48 newest at a restart)

    def remember(self, key: str, fingerprint: str) -> None:
        self.judged.pop(key, None)
        self.judged[key] = fingerprint
        while len(self.judged) > self.KEEP:
            del self.judged[next(iter(self.judged))]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "rule": self.rule, "cursor": _iso(self.cursor), "judged": self.judged}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RuleState:
        cursor = body.get("cursor")
        return cls(
            body["model"],
            body["rule"],
            datetime.fromisoformat(cursor.replace("Z", "+00:00")) if cursor else None,
            dict(body.get("judged") or {}),
        )


@dataclass(frozen=True)
class Silence:
    id: str
    model: str  # "*" for every model
    rule: str  # "*" for every rule
    version: str  # "*" for every version
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str = ""

    def covers(self, alert: Alert, now: datetime) -> bool:
        return (
            self.starts_at <= now < self.ends_at
            and self.model in ("*", alert.model)
            and self.rule in ("*", alert.rule)
            and self.version in ("*", alert.version)
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["starts_at"], body["ends_at"] = _iso(self.starts_at), _iso(self.ends_at)
        return body


class AlertStore(Protocol):
    def active(self, key: str) -> Alert | None: ...

    def save(self, alert: Alert) -> None: ...

    def add_attempt(self, alert_id: str, attempt: Attempt) -> None: ...

    def get(self, alert_id: str) -> Alert | None: ...

    def query(
        self, *, model: str | None = None, status: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Alert]: ...

    def put_silence(self, silence: Silence) -> None: ...

    def silences(self, now: datetime | None = None) -> list[Silence]:
        """Silences still in force at ``now`` (every silence when None)."""

    def delete_silence(self, silence_id: str) -> bool: ...

    def rule_state(self, model: str, rule: str) -> RuleState:
        """What the rule has judged so far (empty for a new rule)."""

    def put_rule_state(self, state: RuleState) -> None: ...


def new_silence(
    *,
    model: str,
    rule: str,
    version: str,
    duration_seconds: float,
    reason: str,
    created_by: str = "",
    starts_at: datetime | None = None,
) -> Silence:
    from datetime import timedelta

    start = starts_at or datetime.now(UTC)
    return Silence(
        str(uuid.uuid4()), model, rule, version, start, start + timedelta(seconds=duration_seconds), reason, created_by
    )


def alerts_json(alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    return [a.to_json() for a in alerts]
