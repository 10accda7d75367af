"""The deploy target contract: prepare and serve a version, route a model's traffic between versions, retire one.

A target is a plugin (``sustain.targets`` entry points, through :mod:`sustain.registry`); a factory receives
a :class:`TargetContext` and returns a :class:`Target`. Two come with sustain: ``local`` (MLflow scoring server
processes behind sustain's gateway) and ``kubernetes`` (a SeldonDeployment per model).

Every verb either completes or raises :class:`TargetFailed` having undone what it started, so a failed deploy
leaves nothing half-deployed and a failed switch leaves the old routing in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sustain.deploy_pipeline.release.gateway import Gateway
    from sustain.deploy_pipeline.release.package import Bundle


@dataclass(frozen=True)
class Routing:
    """Who serves a model: the champion, a candidate with a share of the traffic (or a shadow copy of it), and
    versions kept ready to take over at once (the previous champion, for a rollback without a cold start)."""

    champion: str | None
    candidate: str | None = None
    canary_percent: float = 0.0
    shadow: bool = False
    standby: tuple[str, ...] = ()

    def versions(self) -> set[str]:
        return {v for v in (self.champion, self.candidate, *self.standby) if v is not None}


@dataclass(frozen=True)
class Deployment:
    """A version a target serves: where, and how to reach it."""

    model: str
    version: str
    endpoint: str
    detail: str = ""


@dataclass
class TargetContext:
    """What a target factory is given: its working folder, the local gateway, and its options (``--target-option
    TARGET.KEY=VALUE`` or ``SUSTAIN_TARGET_OPTIONS``)."""

    workdir: Path
    gateway: Gateway | None = None
    options: Mapping[str, str] = field(default_factory=dict)


class Target(Protocol):
    name: str

    def prepare(self, model: str, version: str, bundle: Bundle) -> None:
        """Start what is slow to start, without traffic, while the version is still being tested (the local
        target starts its scoring server); :meth:`deploy` finishes it, :meth:`retire` undoes it."""

    def deploy(self, model: str, version: str, bundle: Bundle) -> Deployment:
        """Start serving ``version`` (it gets no traffic until :meth:`route` says so)."""

    def route(self, model: str, routing: Routing) -> None:
        """Send the model's traffic as ``routing`` says, atomically, without failing a request."""

    def retire(self, model: str, version: str) -> None:
        """Stop serving ``version`` (no error when it was not served)."""

    def status(self) -> dict[str, Any]:
        """What the target serves now, for the API and the web UI."""

    def close(self) -> None: ...


TargetFactory = Callable[[TargetContext], Target]
