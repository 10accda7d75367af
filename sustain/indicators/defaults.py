"""The indicators a model gets when its spec lists none: what a careful user would switch on."""

from __future__ import annotations

from sustain.spec import IndicatorSpec, ModelSpec


def default_indicators(spec: ModelSpec) -> list[IndicatorSpec]:
    """Drift on every feature and output; later parts of sustain add theirs here."""
    return [IndicatorSpec(type="drift")]
