"""The indicators a model gets when its spec lists none: what a careful user would switch on."""

from __future__ import annotations

from sustain.spec import IndicatorSpec, ModelSpec


def default_indicators(spec: ModelSpec) -> list[IndicatorSpec]:
    """Drift on every feature and output, and joint drift when there are several features to relate."""
    chosen = [IndicatorSpec(type="drift")]
    if sum(f.kind in ("numeric", "categorical", "boolean") for f in spec.features) >= 2:
        chosen.append(IndicatorSpec(type="multivariate_drift"))
    return chosen
