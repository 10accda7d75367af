"""Seldon Core v1's admission webhook, ported: what the API server would refuse after the CRD schema passed.

The rules follow ``operator/apis/machinelearning.seldon.io/v1/seldondeployment_webhook.go`` (release 1.19):
valid protocol and transport, traffic summing to 100 over several predictors (and 100 for a lone predictor
that sets it), at most one shadow and never a shadow alone, unique predictor names, a same-named container for
every unit without an implementation, a ``modelUri`` for prepackaged servers, a known prepackaged server, a
mode on every logger. The operator's defaulting (``defaults.go``) and its protocol/server pairing
(``prepack.go``) are applied too, because a manifest that passes the webhook but names no image for its
protocol never becomes a pod.

>>> admission_errors({"spec": {"predictors": [{"name": "a", "shadow": True, "graph": {"name": "m",
...     "implementation": "MLFLOW_SERVER", "modelUri": "s3://b/m"}}]}})
['spec.predictors[0]: Shadow can not exist as only predictor (a)']
"""

from __future__ import annotations

from typing import Any

PROTOCOLS = ("seldon", "tensorflow", "kfserving", "v2")
TRANSPORTS = ("rest", "grpc")
BUILTIN_IMPLEMENTATIONS = (
    "SIMPLE_MODEL",
    "SIMPLE_ROUTER",
    "RANDOM_ABTEST",
    "AVERAGE_COMBINER",
    "UNKNOWN_IMPLEMENTATION",
)
# helm-charts/seldon-core-operator/values.yaml predictor_servers, and the protocols each has an image for.
PREPACKAGED = {
    "SKLEARN_SERVER": ("seldon", "v2"),
    "XGBOOST_SERVER": ("seldon", "v2"),
    "MLFLOW_SERVER": ("seldon", "v2"),
    "TENSORFLOW_SERVER": ("seldon", "tensorflow"),
    "TRITON_SERVER": ("v2",),
    "HUGGINGFACE_SERVER": ("v2",),
    "TEMPO_SERVER": ("v2",),
}
NO_TENSORFLOW = ("SKLEARN_SERVER", "XGBOOST_SERVER", "MLFLOW_SERVER", "HUGGINGFACE_SERVER")


def _containers(predictor: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for component in predictor.get("componentSpecs") or []:
        for container in (component.get("spec") or {}).get("containers") or []:
            found.setdefault(container.get("name", ""), container)
    return found


def _is_prepack(unit: dict[str, Any]) -> bool:
    impl = unit.get("implementation")
    return bool(impl) and impl not in BUILTIN_IMPLEMENTATIONS


def _check_unit(unit: dict[str, Any], predictor: dict[str, Any], protocol: str, path: str, errors: list[str]) -> None:
    name = unit.get("name", "")
    impl = unit.get("implementation")
    containers = _containers(predictor)
    if not impl or impl == "UNKNOWN_IMPLEMENTATION":
        if name not in containers:
            errors.append(f"{path}: Can't find container for Predictive Unit ({name})")
        if unit.get("type") == "UNKNOWN_TYPE" and not unit.get("methods"):
            errors.append(f"{path}: Predictive Unit has no implementation methods defined ({name})")
    elif _is_prepack(unit):
        if not unit.get("modelUri") and impl != "HUGGINGFACE_SERVER":
            errors.append(f"{path}: Predictive unit modelUri required when using standalone servers ({name})")
        if protocol == "tensorflow" and impl in NO_TENSORFLOW:
            errors.append(f"{path}: Prepackaged server does not handle tensorflow protocol {impl} ({name})")
        container = containers.get(name)
        if container is None or not container.get("image"):
            if impl not in PREPACKAGED:
                errors.append(f"{path}: No entry in predictors map for {impl} ({name})")
            elif (protocol or "seldon") not in PREPACKAGED[impl]:
                errors.append(f"{path}: {impl} has no image for protocol {protocol or 'seldon'} ({name})")
    logger = unit.get("logger")
    if logger is not None and not logger.get("mode"):
        errors.append(f"{path}: No logger mode specified ({name})")
    for i, child in enumerate(unit.get("children") or []):
        _check_unit(child, predictor, protocol, f"{path}.children[{i}]", errors)


def _check_traffic(predictors: list[dict[str, Any]], errors: list[str]) -> None:
    total = 0
    shadows = 0
    for p in predictors:
        traffic = int(p.get("traffic") or 0)
        if p.get("shadow"):
            shadows += 1
            if shadows > 1:
                errors.append(f"spec: Multiple shadows are not allowed ({p.get('name')})")
            if not 0 <= traffic <= 100:
                errors.append(
                    f"spec: shadow traffic is illegal, the traffic number should be between [0, 100] ({p.get('name')})"
                )
        else:
            total += traffic
    if total != 100 and len(predictors) - shadows > 1:
        errors.append(f"spec: Traffic must sum to 100 for multiple predictors (sum is {total})")
    if 0 < total < 100 and len(predictors) == 1:
        errors.append(f"spec: Traffic must sum be 100 for a single predictor when set (is {total})")


def admission_errors(sdep: dict[str, Any]) -> list[str]:
    """Every reason the webhook (and the operator's defaulting) would refuse ``sdep``; empty when it is admitted."""
    spec = sdep.get("spec") or {}
    errors: list[str] = []
    protocol = spec.get("protocol") or ""
    if protocol and protocol not in PROTOCOLS:
        errors.append(f"spec: Invalid protocol {protocol!r}")
    transport = spec.get("transport") or ""
    if transport and transport not in TRANSPORTS:
        errors.append(f"spec: Invalid transport {transport!r}")
    predictors = spec.get("predictors") or []
    if len(predictors) == 1 and predictors[0].get("shadow"):
        errors.append(f"spec.predictors[0]: Shadow can not exist as only predictor ({predictors[0].get('name')})")
    if not predictors:
        errors.append("spec: Graph contains no predictors")
    names: set[str] = set()
    for i, p in enumerate(predictors):
        if p.get("name") in names:
            errors.append(f"spec.predictors[{i}]: Duplicate predictor name ({p.get('name')})")
        names.add(p.get("name", ""))
        _check_unit(p.get("graph") or {}, p, protocol, f"spec.predictors[{i}].graph", errors)
    _check_traffic(predictors, errors)
    return errors
