"""CloudEvents from Seldon Core v1 executors and KServe loggers, joined into events.

Both send HTTP binary-mode CloudEvents: the payload is the body, the envelope
is in ``Ce-*`` headers. A request and its response arrive as two POSTs with the
same request id (``Ce-Requestid`` from Seldon, ``Ce-Id`` from KServe); each half
is stored durably until its partner arrives, then the pair becomes one event
per batch row (``<request id>-item-<i>`` when a request holds several rows).
Seldon feedback events (``io.seldon.serving.feedback``) carry true labels.

Payloads understood:

* Seldon: ``{"data": {"names": [...], "ndarray": [[...]]}}`` or ``"tensor": {"shape", "values"}``
* KServe V1: ``{"instances": [...]}`` / ``{"predictions": [...]}``
* KServe V2: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` / ``{"outputs": [...]}``
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sustain.errors import NotFound, ValidationError
from sustain.spec import ModelSpec
from sustain.store.base import PendingHalf

SELDON_REQUEST = "io.seldon.serving.inference.request"
SELDON_RESPONSE = "io.seldon.serving.inference.response"
SELDON_FEEDBACK = "io.seldon.serving.feedback"
KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
KINDS = {
    SELDON_REQUEST: "request",
    KSERVE_REQUEST: "request",
    SELDON_RESPONSE: "response",
    KSERVE_RESPONSE: "response",
    SELDON_FEEDBACK: "feedback",
}


@dataclass(frozen=True)
class CloudEvent:
    id: str
    type: str
    kind: str
    source: str
    request_id: str
    time: datetime | None
    service: str | None
    endpoint: str | None
    model_id: str | None
    body: Any


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name) or headers.get(name.lower())
    return value.strip() if value else None


def parse_cloudevent(headers: Mapping[str, str], body: Any) -> CloudEvent:
    """Read the binary-mode envelope; a missing or wrong header is a 400 naming it."""
    spec_version = _header(headers, "ce-specversion")
    if spec_version is None:
        raise ValidationError("header Ce-Specversion is missing; send a binary-mode CloudEvent", field="Ce-Specversion")
    if spec_version != "1.0":
        raise ValidationError(f"Ce-Specversion {spec_version!r} is not supported; only 1.0", field="Ce-Specversion")
    ce_type = _header(headers, "ce-type")
    if ce_type is None:
        raise ValidationError("header Ce-Type is missing", field="Ce-Type")
    if ce_type not in KINDS:
        raise ValidationError(
            f"Ce-Type {ce_type!r} is not supported; known: {', '.join(sorted(KINDS))}", field="Ce-Type"
        )
    ce_id = _header(headers, "ce-id")
    if ce_id is None:
        raise ValidationError("header Ce-Id is missing", field="Ce-Id")
    source = _header(headers, "ce-source")
    if source is None:
        raise ValidationError("header Ce-Source is missing", field="Ce-Source")
    raw_time = _header(headers, "ce-time")
    time = None
    if raw_time:
        try:
            time = datetime.fromisoformat(raw_time)
        except ValueError:
            raise ValidationError(f"Ce-Time {raw_time!r} is not an RFC 3339 time", field="Ce-Time") from None
        if time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
    request_id = _header(headers, "ce-requestid") or ce_id
    if not isinstance(body, dict):
        raise ValidationError(f"the CloudEvent payload must be a JSON object, got {type(body).__name__}", field="body")
    return CloudEvent(
        id=ce_id,
        type=ce_type,
        kind=KINDS[ce_type],
        source=source,
        request_id=request_id,
        time=time,
        service=_header(headers, "ce-inferenceservicename"),
        endpoint=_header(headers, "ce-endpoint"),
        model_id=_header(headers, "ce-modelid"),
        body=body,
    )


def resolve_model(ce: CloudEvent, specs: list[ModelSpec], override: str | None) -> ModelSpec:
    if override:
        for s in specs:
            if s.name == override:
                return s
        raise NotFound(f"model {override!r} is not registered")
    for s in specs:
        if s.cloudevents.inference_service and s.cloudevents.inference_service == ce.service:
            return s
    for s in specs:
        if ce.service and s.name == ce.service:
            return s
    raise NotFound(
        f"no model is mapped to inference service {ce.service!r}; set cloudevents.inference_service in a "
        "model's spec, name the model after the service, or pass ?model=NAME",
        field="Ce-Inferenceservicename",
    )


def version_of(ce: CloudEvent, spec: ModelSpec) -> str:
    source = spec.cloudevents.version_from
    value = ce.endpoint if source == "endpoint" else ce.model_id if source == "modelid" else None
    return value or spec.effective_default_version


# -- payloads ------------------------------------------------------------------------------------
def _matrix(data: Any, what: str) -> list[list[Any]]:
    if not isinstance(data, list):
        raise ValidationError(f"{what} must be a list of rows", field=what)
    if data and not isinstance(data[0], list):
        return [[v] for v in data]  # a 1-D batch: one value per row
    return data


def _tensor_rows(tensor: dict[str, Any], what: str) -> list[list[Any]]:
    shape, values = tensor.get("shape"), tensor.get("values")
    if not isinstance(shape, list) or not isinstance(values, list) or not shape:
        raise ValidationError(f"{what} needs shape and values", field=what)
    rows = int(shape[0])
    width = len(values) // rows if rows else 0
    if rows * width != len(values):
        raise ValidationError(f"{what} shape {shape} does not match {len(values)} values", field=what)
    return [values[i * width : (i + 1) * width] for i in range(rows)]


def _v2_tensors(tensors: Any, what: str) -> list[tuple[str, list[list[Any]]]]:
    if not isinstance(tensors, list) or not tensors:
        raise ValidationError(f"{what} must be a non-empty list of tensors", field=what)
    out = []
    for t in tensors:
        if not isinstance(t, dict) or "data" not in t:
            raise ValidationError(f"each of {what} needs name, shape and data", field=what)
        shape = t.get("shape") or [len(t["data"])]
        data = t["data"]
        flat = [v for row in data for v in row] if data and isinstance(data[0], list) else data
        rows = int(shape[0]) if shape else len(flat)
        width = len(flat) // rows if rows else 0
        if rows * width != len(flat):
            raise ValidationError(f"tensor {t.get('name')!r} shape {shape} does not match its data", field=what)
        out.append((str(t.get("name", "")), [flat[i * width : (i + 1) * width] for i in range(rows)]))
    return out


def _columns_to_rows(named: list[tuple[str, list[list[Any]]]]) -> tuple[list[str] | None, list[list[Any]]]:
    """V2 tensors: one tensor per column (names), or one matrix tensor (no names)."""
    if len(named) == 1:
        name, rows = named[0]
        return ([name] if rows and len(rows[0]) == 1 else None), rows
    n = len(named[0][1])
    if any(len(rows) != n for _, rows in named):
        raise ValidationError("tensors have different numbers of rows", field="inputs")
    return [name for name, _ in named], [[rows[i][0] for _, rows in named] for i in range(n)]


def payload_rows(body: dict[str, Any], side: str) -> tuple[list[str] | None, list[list[Any]]]:
    """(column names if the payload names them, rows) of a request or response payload."""
    if "data" in body and isinstance(body["data"], dict):
        data = body["data"]
        names = data.get("names") or None
        if "ndarray" in data:
            return names, _matrix(data["ndarray"], "data.ndarray")
        if "tensor" in data:
            return names, _tensor_rows(data["tensor"], "data.tensor")
        raise ValidationError("Seldon payload data needs ndarray or tensor", field="data")
    key = "instances" if side == "request" else "predictions"
    if key in body:
        rows = body[key]
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            names = list(rows[0].keys())
            return names, [[r.get(n) for n in names] for r in rows]
        return None, _matrix(rows, key)
    v2 = "inputs" if side == "request" else "outputs"
    if v2 in body:
        return _columns_to_rows(_v2_tensors(body[v2], v2))
    expected = "data.ndarray, instances or inputs" if side == "request" else "data.ndarray, predictions or outputs"
    raise ValidationError(f"cannot find the {side} rows: expected {expected}", field="body")


def features_of(spec: ModelSpec, names: list[str] | None, rows: list[list[Any]]) -> list[dict[str, Any]]:
    declared = [f.name for f in spec.features]
    if names is None or not set(names) & set(declared):
        if rows and len(rows[0]) != len(declared):
            raise ValidationError(
                f"request rows have {len(rows[0])} columns but model {spec.name!r} declares {len(declared)} "
                "features; send names or match the spec's feature order",
                field="body",
            )
        names = declared
    return [dict(zip(names, row, strict=False)) for row in rows]


def outputs_of(spec: ModelSpec, names: list[str] | None, rows: list[list[Any]]) -> list[dict[str, Any]]:
    if not spec.outputs:
        return [{} for _ in rows]
    declared = {o.name for o in spec.outputs}
    if names and set(names) <= declared:
        return [dict(zip(names, row, strict=False)) for row in rows]
    first = spec.outputs[0]
    scores = next((o for o in spec.outputs if o.kind == "class_scores"), None)
    result = []
    for row in rows:
        if scores is not None and scores.classes and len(row) == len(scores.classes) and len(row) > 1:
            out: dict[str, Any] = {scores.name: row}
            label = next((o for o in spec.outputs if o.kind == "class_label"), None)
            if label is not None:
                best = max(range(len(row)), key=lambda i: row[i] if isinstance(row[i], int | float) else -1)
                out[label.name] = scores.classes[best]
            result.append(out)
        else:
            result.append({first.name: row[0] if len(row) == 1 else row})
    return result


def half_from(ce: CloudEvent, spec: ModelSpec, received_at: datetime) -> PendingHalf:
    names, rows = payload_rows(ce.body, ce.kind)  # parse now: a bad payload is the sender's 400, not later
    if ce.kind == "request":
        features_of(spec, names, rows)
    stored = {
        "body": ce.body,
        "time": ce.time.isoformat() if ce.time else None,
        "endpoint": ce.endpoint,
        "model_id": ce.model_id,
        "rows": len(rows),
    }
    return PendingHalf(key=ce.request_id, model=spec.name, kind=ce.kind, received_at=received_at, body=stored)


def events_from_pair(
    spec: ModelSpec, request: PendingHalf | None, response: PendingHalf | None
) -> list[dict[str, Any]]:
    """The events of one exchange. A request without a response (timed out) still yields events."""
    anchor = request or response
    assert anchor is not None
    key = anchor.key
    version_ce = CloudEvent(
        id=key,
        type="",
        kind="",
        source="",
        request_id=key,
        time=None,
        service=None,
        endpoint=anchor.body.get("endpoint"),
        model_id=anchor.body.get("model_id"),
        body=None,
    )
    version = version_of(version_ce, spec)
    features: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    if request is not None:
        features = features_of(spec, *payload_rows(request.body["body"], "request"))
    if response is not None:
        outputs = outputs_of(spec, *payload_rows(response.body["body"], "response"))
    n = max(len(features), len(outputs))
    start = request.body.get("time") if request else None
    end = response.body.get("time") if response else None
    latency = None
    if start and end:
        latency = max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)
    events = []
    for i in range(n):
        rid = key if n == 1 else f"{key}-item-{i}"
        event: dict[str, Any] = {
            "event_id": f"ce:{spec.name}:{rid}",
            "request_id": rid,
            "version": version,
            "timestamp": start or end,
            "features": features[i] if i < len(features) else {},
            "outputs": outputs[i] if i < len(outputs) else None,
            "latency_ms": latency,
        }
        if response is None:
            event["error"] = "no response was logged for this request"
        events.append(event)
    return events


def labels_from_feedback(ce: CloudEvent) -> list[dict[str, Any]]:
    """Seldon feedback ``{"truth": {"data": {"ndarray": [...]}}}`` → labels keyed like the events."""
    truth = ce.body.get("truth")
    if not isinstance(truth, dict):
        raise ValidationError("a feedback CloudEvent needs truth.data.ndarray", field="truth")
    _, rows = payload_rows(truth, "request")
    stamp = ce.time.isoformat() if ce.time else None
    n = len(rows)
    return [
        {
            "request_id": ce.request_id if n == 1 else f"{ce.request_id}-item-{i}",
            "label": row[0] if len(row) == 1 else row,
            "timestamp": stamp,
        }
        for i, row in enumerate(rows)
    ]
