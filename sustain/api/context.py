"""What request handlers reach through ``request.app.state.sustain``: one typed object per service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from sustain.backends.base import Backend
from sustain.collector.bodies import InflightBudget
from sustain.collector.metrics import ServiceMetrics
from sustain.collector.service import Collector
from sustain.errors import StoreError
from sustain.settings import Settings
from sustain.spec.secrets import EnvPolicy
from sustain.store.base import Store
from sustain.store.writer import Writer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sustain.alerting.service import Alerting
    from sustain.deploy_pipeline.release import ReleaseService
    from sustain.engine import Engine
    from sustain.inference.queues import QueueReader


@dataclass
class AppContext:
    settings: Settings
    backend: Backend
    writer: Writer
    collector: Collector
    metrics: ServiceMetrics
    budget: InflightBudget
    started_at: float
    engine: Engine | None = None  # None when the service runs with --no-engine
    alerting: Alerting | None = None
    inference: QueueReader | None = None  # the inference units' queues, when started with --redis
    metrics_registries: list[CollectorRegistry] = field(default_factory=list)  # exposed at /metrics beside ours
    releases: ReleaseService | None = None  # the release pipeline, when a registry is configured
    env_policy: EnvPolicy = field(default_factory=EnvPolicy)  # what ${NAME} action options may read

    @property
    def store(self) -> Store:
        return self.backend.store

    def require_engine(self, consequence: str) -> Engine:
        """The engine, or a StoreError saying ``this service runs no engine, so <consequence>``."""
        if self.engine is None:
            raise StoreError(f"this service runs no engine, so {consequence}")
        return self.engine

    def require_alerting(self) -> Alerting:
        if self.alerting is None:
            raise StoreError("this service runs no engine, so it evaluates no alerts")
        return self.alerting


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.sustain
    return ctx
