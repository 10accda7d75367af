"""Register the built-in indicators (imported on first use by the registry, not at package import)."""

from __future__ import annotations

from sustain.indicators.drift import DataDrift
from sustain.indicators.multivariate import MultivariateDrift
from sustain.indicators.registry import register

for _cls in (DataDrift, MultivariateDrift):
    register(_cls)
