"""The indicators a model gets when its spec lists none: what a careful user would switch on."""

from __future__ import annotations

from sustain.spec import IndicatorSpec, ModelSpec


def default_indicators(spec: ModelSpec) -> list[IndicatorSpec]:
    """Drift (per column and joint), data quality, service health, prediction stability and, with a label,
    label metrics and label-free estimates."""
    chosen = [IndicatorSpec(type="drift")]
    if sum(f.kind in ("numeric", "categorical", "boolean") for f in spec.features) >= 2:
        chosen.append(IndicatorSpec(type="multivariate_drift"))
    chosen += [IndicatorSpec(type="missing"), IndicatorSpec(type="type_errors")]
    if any(f.range is not None for f in spec.features):
        chosen.append(IndicatorSpec(type="out_of_range"))
    if any(f.kind == "categorical" for f in spec.features) or any(o.kind == "class_label" for o in spec.outputs):
        chosen.append(IndicatorSpec(type="unseen_categories"))
    chosen += [IndicatorSpec(type="traffic"), IndicatorSpec(type="latency"), IndicatorSpec(type="error_rate")]
    if spec.outputs:
        chosen.append(IndicatorSpec(type="stability"))
    if spec.label is not None:
        chosen.append(IndicatorSpec(type="label_metrics"))
        scores = any(o.kind in ("class_scores", "probability") for o in spec.outputs)
        if spec.label.kind == "class_label" and scores:
            chosen.append(IndicatorSpec(type="estimated_performance"))
    return chosen
