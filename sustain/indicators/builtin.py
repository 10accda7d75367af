"""The built-in indicators (the registry imports this on its first read, not at package import)."""

from __future__ import annotations

from sustain.indicators.change import ChangeDetector
from sustain.indicators.drift import DataDrift
from sustain.indicators.health import ErrorRate, Latency, Traffic
from sustain.indicators.labels import EstimatedPerformance, LabelMetrics
from sustain.indicators.multivariate import MultivariateDrift
from sustain.indicators.quality import MissingValues, OutOfRange, TypeErrors, UnseenCategories
from sustain.indicators.stability import PredictionStability

BUILTIN = (
    DataDrift,
    MultivariateDrift,
    PredictionStability,
    ChangeDetector,
    MissingValues,
    TypeErrors,
    OutOfRange,
    UnseenCategories,
    Traffic,
    Latency,
    ErrorRate,
    LabelMetrics,
    EstimatedPerformance,
)
