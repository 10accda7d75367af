"""What request handlers reach through ``request.app.state.sustain``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from sustain.collector.bodies import InflightBudget
from sustain.collector.metrics import ServiceMetrics
from sustain.collector.service import Collector
from sustain.settings import Settings
from sustain.store.base import Store
from sustain.store.writer import Writer


@dataclass
class AppContext:
    settings: Settings
    store: Store
    writer: Writer
    collector: Collector
    metrics: ServiceMetrics
    budget: InflightBudget
    started_at: float
    services: dict[str, Any] = field(default_factory=dict)  # engine and later parts register here


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.sustain
    return ctx
