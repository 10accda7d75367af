"""Releases: the state machine of a model version on its way to production, its records, and the
:class:`ReleaseStore` protocol that keeps them (:class:`sustain.backends.duckdb.releases.DuckDBReleases` is the
embedded one; the pipeline itself is :mod:`sustain.deploy_pipeline.release`).

A registered model version moves through the pipeline's stages::

    registered → checked → tested → packaged → deployed (candidate) → promoted ⇄ rolled_back
         └────────┴──── rejected (the version broke a standard or a test: the model's fault)
         └────────┴────────┴──────────┴──── failed (the registry or the target broke: retry it)
    deployed → superseded (a newer candidate took its place)

Each stage leaves a :class:`StageRecord` (start, end, outcome, a sentence, and the checks it ran); every state
change is a :class:`Transition`, and every alias move an :class:`AliasEvent`, so "which version was champion at
time T" has an answer.

>>> State.REGISTERED.can_become(State.CHECKED), State.CHECKED.can_become(State.PROMOTED)
(True, False)
>>> State.REJECTED.retryable, State.DEPLOYED.retryable
(True, False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from sustain.errors import Conflict
from sustain.timestamps import iso, parse_time

Outcome = Literal["running", "passed", "failed", "skipped"]
Role = Literal["champion", "challenger", "previous_champion"]
ROLES: tuple[Role, ...] = ("champion", "challenger", "previous_champion")


class State(StrEnum):
    REGISTERED = "registered"
    CHECKED = "checked"
    TESTED = "tested"
    PACKAGED = "packaged"
    DEPLOYED = "deployed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    def can_become(self, other: State) -> bool:
        return other in _NEXT[self]

    @property
    def retryable(self) -> bool:
        """A new release attempt may start from here (``sustain release`` again)."""
        return State.REGISTERED in _NEXT[self]

    @property
    def in_progress(self) -> bool:
        return self in (State.REGISTERED, State.CHECKED, State.TESTED, State.PACKAGED)


_NEXT: dict[State, frozenset[State]] = {
    State.REGISTERED: frozenset({State.CHECKED, State.REJECTED, State.FAILED}),
    State.CHECKED: frozenset({State.TESTED, State.REJECTED, State.FAILED}),
    State.TESTED: frozenset({State.PACKAGED, State.FAILED}),
    State.PACKAGED: frozenset({State.DEPLOYED, State.FAILED}),
    State.DEPLOYED: frozenset({State.PROMOTED, State.SUPERSEDED, State.FAILED}),
    State.PROMOTED: frozenset({State.ROLLED_BACK, State.PROMOTED}),
    State.ROLLED_BACK: frozenset({State.REGISTERED, State.PROMOTED}),
    State.REJECTED: frozenset({State.REGISTERED}),
    State.FAILED: frozenset({State.REGISTERED}),
    State.SUPERSEDED: frozenset({State.REGISTERED}),
}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Check:
    """One standard or gate: passed or not, why, and how to fix it."""

    name: str
    ok: bool
    reason: str
    fix: str = ""
    skipped: bool = False
    value: float | None = None

    def sentence(self) -> str:
        if self.ok:
            return f"{self.name}: {self.reason}"
        return f"{self.name}: {self.reason}" + (f" (fix: {self.fix})" if self.fix else "")

    def tag(self) -> str:
        """The value of the ``sustain.check.<name>`` version tag."""
        word = "skipped" if self.skipped else "passed" if self.ok else "failed"
        return f"{word}: {self.reason}"[:500]


@dataclass
class StageRecord:
    stage: State
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Outcome = "running"
    reason: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "outcome": self.outcome,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> StageRecord:
        started = parse_time(body["started_at"])
        assert started is not None
        return cls(
            State(body["stage"]),
            started,
            parse_time(body.get("ended_at")),
            body.get("outcome", "running"),
            body.get("reason", ""),
            [Check(**c) for c in body.get("checks", [])],
        )


@dataclass
class Release:
    """One model version's way through the pipeline (the latest attempt)."""

    model: str
    version: str
    state: State
    created_at: datetime
    updated_at: datetime
    trigger: str = "cli"
    target: str = "local"
    attempt: int = 1
    reason: str = ""
    registered_model: str = ""
    run_id: str | None = None
    bundle: str | None = None
    endpoint: str | None = None
    stages: list[StageRecord] = field(default_factory=list)

    def stage(self, stage: State) -> StageRecord | None:
        for record in reversed(self.stages):
            if record.stage == stage:
                return record
        return None

    def move(self, to: State, reason: str) -> None:
        if not self.state.can_become(to):
            raise Conflict(
                f"{self.model} version {self.version} is {self.state.value}; it cannot become {to.value}",
                field="state",
            )
        self.state, self.reason, self.updated_at = to, reason, now()

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "state": self.state.value,
            "reason": self.reason,
            "trigger": self.trigger,
            "target": self.target,
            "attempt": self.attempt,
            "registered_model": self.registered_model,
            "run_id": self.run_id,
            "bundle": self.bundle,
            "endpoint": self.endpoint,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "stages": [s.to_json() for s in self.stages],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Release:
        created, updated = parse_time(body["created_at"]), parse_time(body["updated_at"])
        assert created is not None and updated is not None
        return cls(
            model=body["model"],
            version=body["version"],
            state=State(body["state"]),
            created_at=created,
            updated_at=updated,
            trigger=body.get("trigger", "cli"),
            target=body.get("target", "local"),
            attempt=int(body.get("attempt", 1)),
            reason=body.get("reason", ""),
            registered_model=body.get("registered_model", ""),
            run_id=body.get("run_id"),
            bundle=body.get("bundle"),
            endpoint=body.get("endpoint"),
            stages=[StageRecord.from_json(s) for s in body.get("stages", [])],
        )


@dataclass(frozen=True)
class Transition:
    """A release changed state."""

    model: str
    version: str
    state: State
    at: datetime
    reason: str
    actor: str = "pipeline"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "state": self.state.value,
            "at": iso(self.at),
            "reason": self.reason,
            "actor": self.actor,
        }


@dataclass(frozen=True)
class AliasEvent:
    """An alias of a model moved to a version (``version`` None: the alias was removed)."""

    model: str
    alias: str
    version: str | None
    at: datetime
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "at": iso(self.at),
            "reason": self.reason,
        }


DeliveryOutcome = Literal["accepted", "duplicate", "rejected", "ignored"]


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery and what became of it."""

    delivery_id: str
    received_at: datetime
    outcome: DeliveryOutcome
    reason: str
    event: str = ""
    model: str | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "received_at": iso(self.received_at)}


class ReleaseStore(Protocol):
    def begin(self, release: Release) -> Release | None:
        """Store ``release`` as a new attempt for its version, atomically; None when the version already has a
        release that is running, a candidate or in production (a second trigger for it changes nothing)."""

    def save(self, release: Release, transition: Transition | None = None) -> None:
        """Replace the stored release, and append ``transition`` to the history in the same commit."""

    def get(self, model: str, version: str) -> Release | None: ...

    def query(self, model: str | None = None, limit: int = 200) -> list[Release]:
        """Releases, most recently updated first."""

    def transitions(self, model: str | None = None, limit: int = 1000) -> list[Transition]:
        """Every state change, oldest first."""

    def record_alias(self, event: AliasEvent) -> None: ...

    def alias_history(self, model: str) -> list[AliasEvent]:
        """Every alias move of ``model``, oldest first."""

    def alias_at(self, model: str, alias: str, at: datetime) -> AliasEvent | None:
        """The last move of ``alias`` at or before ``at`` (its ``version`` is None if the alias was removed)."""

    def claim_delivery(self, delivery: Delivery) -> bool:
        """Record a delivery that is acted on (accepted) or deliberately passed over (ignored); False when its id
        was accepted or ignored before (a retry or a replay), which is then recorded as a duplicate."""

    def record_delivery(self, delivery: Delivery) -> None:
        """Record a delivery that was rejected or ignored (it never claims its id)."""

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        """Webhook deliveries, newest first."""
