"""Validate generated manifests against the published CRD schemas in ``../shared/schemas`` (strictly) and the
Kubernetes built-in kinds with kubernetes-validate.

CRD schemas leave unknown fields to the API server, which silently prunes them; for tests we add
``additionalProperties: false`` to every object that lists its properties, so a misspelt field fails here.
Seldon's v1 CRD also leaves ``graph.children`` unvalidated (``items: {}``); the node schema is applied to
every child, recursively.
"""

from __future__ import annotations

import copy
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT.parent / "shared" / "schemas"
CRDS = {
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): "seldon/seldondeployments.machinelearning.seldon.io.v1.yaml",
    ("mlops.seldon.io/v1alpha1", "Model"): "seldon/models.mlops.seldon.io.v1alpha1.yaml",
    ("mlops.seldon.io/v1alpha1", "Pipeline"): "seldon/pipelines.mlops.seldon.io.v1alpha1.yaml",
    ("mlops.seldon.io/v1alpha1", "Experiment"): "seldon/experiments.mlops.seldon.io.v1alpha1.yaml",
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve/serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io/v1alpha1", "InferenceGraph"): "kserve/serving.kserve.io_inferencegraphs.yaml",
}
KUBERNETES_VERSION = "1.33"


def strict(schema: Any) -> Any:
    """A copy of ``schema`` where every object with ``properties`` refuses other keys."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    document = yaml.safe_load((SCHEMAS / CRDS[(api_version, kind)]).read_text())
    version = api_version.rsplit("/", 1)[1]
    entry = next(v for v in document["spec"]["versions"] if v["name"] == version)
    schema = strict(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))
    if kind == "SeldonDeployment":
        predictor = schema["properties"]["spec"]["properties"]["predictors"]["items"]
        unit = predictor["properties"]["graph"]
        unit["properties"]["children"]["items"] = {"$ref": "#/definitions/unit"}
        schema["definitions"] = {"unit": unit}
        predictor["properties"]["graph"] = {"$ref": "#/definitions/unit"}
    return jsonschema.Draft7Validator(schema)


def problems(manifest: dict[str, Any]) -> list[str]:
    """Every schema problem of one manifest (CRD kinds strictly, built-in kinds with kubernetes-validate)."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key in CRDS:
        errors = crd_validator(*key).iter_errors(manifest)
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc)]
    return []


@lru_cache(maxsize=1)
def oip_schemas() -> dict[str, Any]:
    return dict(yaml.safe_load((SCHEMAS / "open-inference-protocol" / "open_inference_rest.yaml").read_text()))


def oip_problems(body: Any, component: str) -> list[str]:
    """Problems of ``body`` against an Open Inference Protocol component (``inference_request`` ...)."""
    document = oip_schemas()
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(body)]
