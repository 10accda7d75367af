"""Monitoring attaches itself to a release candidate: the model's spec (inferred from the signature when sustain
does not know the model yet) and the version's reference, taken from the training data the run logged and the
outputs the candidate predicted for it, so drift is measured against what the model was trained on from its
first request.

:class:`Monitoring` is what the pipeline needs from sustain; the service implements it in-process, and
:class:`HttpMonitoring` talks to a sustain service over HTTP.

>>> spec = infer_spec("churn", [{"name": "age", "type": "double"}, {"name": "plan", "type": "string"}],
...                   [{"type": "string"}])
>>> [(f.name, f.kind) for f in spec.features], [(o.name, o.kind) for o in spec.outputs], spec.label.kind
([('age', 'numeric'), ('plan', 'categorical')], [('prediction', 'class_label')], 'class_label')
"""

from __future__ import annotations

import io
import re
from typing import Any, Protocol

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from sustain.errors import NotFound, SustainError
from sustain.spec import ModelSpec

NUMERIC = {"double", "float", "integer", "long"}
_NAME = re.compile(r"[^a-z0-9_-]+")


class Monitoring(Protocol):
    def spec(self, model: str) -> ModelSpec | None:
        """The model's monitor spec, None when sustain does not know the model."""

    def register(self, spec: ModelSpec) -> None: ...

    def attach_reference(self, model: str, version: str, table: pa.Table) -> int:
        """Store ``table`` (features, outputs, ``label``) as the reference of ``version`` and profile it; rows kept."""


def sustain_name(registered_model: str) -> str:
    """A sustain model name for an MLflow registered model name (``Churn Model`` → ``churn-model``)."""
    name = _NAME.sub("-", registered_model.lower()).strip("-_")
    return (name or "model")[:63]


def infer_spec(name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None) -> ModelSpec:
    """A monitor spec from an MLflow signature: its named columns become features, its output the prediction."""
    features: dict[str, Any] = {}
    for column in inputs:
        kind = _kind(str(column.get("type", "")))
        if column.get("name") and kind is not None:
            features[str(column["name"])] = kind
    if not features:
        raise NotFound(f"the signature of {name} has no named columns to monitor; give sustain a spec for it")
    body: dict[str, Any] = {"name": name, "features": features, "windows": ["1m", "1h"]}
    out_type = str((outputs or [{}])[0].get("type", "")) if outputs and len(outputs) == 1 else ""
    if out_type in NUMERIC:
        body["outputs"] = {"prediction": "regression"}
        body["label"] = {"kind": "regression"}
    elif out_type in ("string", "boolean"):
        body["outputs"] = {"prediction": "class_label"}
        body["label"] = {"kind": "class_label"}
    return ModelSpec.model_validate(body)


def _kind(mlflow_type: str) -> str | None:
    if mlflow_type in NUMERIC:
        return "numeric"
    if mlflow_type == "string":
        return "categorical"
    if mlflow_type == "boolean":
        return "boolean"
    return None


def outputs_of(spec: ModelSpec, prediction: Any) -> dict[str, Any]:
    """The spec's outputs in one row's prediction: an object is matched by output name; a bare value (or a
    one-element list) is the model's main output (its first class_label or regression output)."""
    if isinstance(prediction, dict):
        return {o.name: prediction[o.name] for o in spec.outputs if o.name in prediction}
    if isinstance(prediction, list) and len(prediction) == 1:
        prediction = prediction[0]
    main = next((o for o in spec.outputs if o.kind in ("class_label", "regression", "probability")), None)
    if main is None or isinstance(prediction, list | dict):
        return {}
    if main.kind == "class_label" and isinstance(prediction, bool):
        prediction = str(prediction).lower()
    return {main.name: prediction}


def reference_table(spec: ModelSpec, training: pa.Table, predictions: list[Any] | None, label: str) -> pa.Table:
    """The training rows with the candidate's outputs, and the label as ``label``, for the reference upload."""
    table = training
    if label != "label" and label in table.column_names and "label" not in table.column_names:
        table = table.rename_columns(["label" if c == label else c for c in table.column_names])
    if predictions is not None and len(predictions) == table.num_rows:
        rows = [outputs_of(spec, p) for p in predictions]
        for output in spec.outputs:
            if output.name in table.column_names or not any(output.name in r for r in rows):
                continue
            values = [r.get(output.name) for r in rows]
            if output.kind == "class_scores":
                classes = output.classes or []
                for i, cls in enumerate(classes):
                    column = [v[i] if isinstance(v, list) and len(v) > i else None for v in values]
                    table = table.append_column(f"{output.name}.{cls}", pa.array(column, pa.float64()))
                continue
            table = table.append_column(output.name, pa.array(values))
    return table


class HttpMonitoring:
    """:class:`Monitoring` through a sustain service's HTTP API."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def spec(self, model: str) -> ModelSpec | None:
        response = self.client.get(f"/v1/models/{model}")
        if response.status_code == 404:
            return None
        self._raise(response, f"reading the spec of {model}")
        return ModelSpec.model_validate(response.json())

    def register(self, spec: ModelSpec) -> None:
        response = self.client.put(f"/v1/models/{spec.name}", content=spec.model_dump_json())
        self._raise(response, f"registering {spec.name}")

    def attach_reference(self, model: str, version: str, table: pa.Table) -> int:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        response = self.client.put(
            f"/v1/models/{model}/reference",
            params={"version": version},
            content=buffer.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        self._raise(response, f"uploading the reference of {model} version {version}")
        return int(response.json().get("rows", table.num_rows))

    def _raise(self, response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            raise SustainError(f"{what}: sustain answered {response.status_code}: {response.text[:300]}")

    def close(self) -> None:
        self.client.close()
