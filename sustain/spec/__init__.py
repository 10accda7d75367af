"""The monitor spec: one model's features, outputs, label, windows, indicators, alert rules and actions.

``models`` holds the pydantic models, ``alerts`` the alert rules and actions, ``release`` the standards and the
policy of the release pipeline, ``loader`` reads YAML files with line-numbered errors. The models are
re-exported here: ``from sustain.spec import ModelSpec``.
"""

from __future__ import annotations

from sustain.spec.models import (
    COLUMN_NAME,
    MODEL_NAME,
    RESERVED_COLUMNS,
    CloudEventsMapping,
    Feature,
    FeatureKind,
    IndicatorSpec,
    Label,
    LabelKind,
    ModelSpec,
    MonitorConfig,
    Output,
    OutputKind,
    ReferenceSettings,
    Retention,
)
from sustain.spec.release import ReleaseSettings

__all__ = [
    "COLUMN_NAME",
    "MODEL_NAME",
    "RESERVED_COLUMNS",
    "CloudEventsMapping",
    "Feature",
    "FeatureKind",
    "IndicatorSpec",
    "Label",
    "LabelKind",
    "ModelSpec",
    "MonitorConfig",
    "Output",
    "OutputKind",
    "ReferenceSettings",
    "ReleaseSettings",
    "Retention",
]
