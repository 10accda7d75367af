"""sustain: keep models healthy in production.

Capture every request, response and late label; aggregate continuously; compute
drift, stability, label metrics, data quality and health indicators; alert and
act; show it all. The names below are the public API; everything else is
private and may change.

Nothing heavy loads on ``import sustain``: each name is imported when first used,
so ``from sustain import Logger`` costs httpx and orjson and nothing of the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustain._lazy import lazy_attributes as _lazy_attributes
from sustain.errors import (
    Conflict,
    NotFound,
    Overloaded,
    PluginError,
    SpecError,
    StoreError,
    SustainError,
    ValidationError,
)

if TYPE_CHECKING:
    from sustain.api.app import create_app
    from sustain.backends import open_store
    from sustain.collector.logger import Logger, LoggerStats
    from sustain.settings import Settings
    from sustain.spec import Feature, Label, ModelSpec, MonitorConfig, Output
    from sustain.spec.loader import load_config
    from sustain.store import Store

_LAZY = {
    "Logger": "sustain.collector.logger",
    "LoggerStats": "sustain.collector.logger",
    "create_app": "sustain.api.app",
    "Settings": "sustain.settings",
    "Feature": "sustain.spec",
    "Label": "sustain.spec",
    "ModelSpec": "sustain.spec",
    "MonitorConfig": "sustain.spec",
    "Output": "sustain.spec",
    "load_config": "sustain.spec.loader",
    "Store": "sustain.store",
    "open_store": "sustain.backends",
}


__all__ = [
    "Conflict",
    "Feature",
    "Label",
    "Logger",
    "LoggerStats",
    "ModelSpec",
    "MonitorConfig",
    "NotFound",
    "Output",
    "Overloaded",
    "PluginError",
    "Settings",
    "SpecError",
    "Store",
    "StoreError",
    "SustainError",
    "ValidationError",
    "create_app",
    "load_config",
    "open_store",
]

__getattr__, _ = _lazy_attributes(__name__, _LAZY, __all__, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
