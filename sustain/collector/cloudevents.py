"""CloudEvents from Seldon Core v1 executors and KServe loggers, joined into events.

Both send HTTP binary-mode CloudEvents: the payload is the body, the envelope
is in ``Ce-*`` headers. A request and its response arrive as two POSTs with the
same request id (``Ce-Requestid`` from Seldon, ``Ce-Id`` from KServe); each half
is stored durably until its partner arrives, then the pair becomes one event
per batch row (``<request id>-item-<i>`` when a request holds several rows).
Seldon feedback events (``io.seldon.serving.feedback``) carry true labels.

In a Seldon graph every node with a logger sends its own pair under the request's ``Ce-Requestid``; the
node (``Ce-Modelid``) tells them apart, so halves wait under both (:func:`pending_key`) and each node's events
carry it (``tags.node``, and in the event id). Payloads are read by :mod:`sustain.collector.ce_payloads`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sustain.collector.ce_payloads import features_of, outputs_of, read_payload, truth_labels
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
    """The model a CloudEvent belongs to: ``?model=`` if given, else the one following its service and node.

    A model follows the service named by ``cloudevents.inference_service`` (default: its own name) and, with
    ``cloudevents.node``, only that graph node's CloudEvents; a model without ``node`` takes the nodes no other
    model follows.
    """
    if override:
        for s in specs:
            if s.name == override:
                return s
        raise NotFound(f"model {override!r} is not registered")
    candidates = [s for s in specs if ce.service and s.cloudevents.follows(s.name)[0] == ce.service]
    for s in candidates:
        if s.cloudevents.node is not None and s.cloudevents.node == ce.model_id:
            return s
    for s in candidates:
        if s.cloudevents.node is None:
            return s
    if candidates:
        followed = ", ".join(f"{s.cloudevents.node} -> {s.name}" for s in candidates)
        raise NotFound(
            f"node {ce.model_id!r} of inference service {ce.service!r} is followed by no model (followed: "
            f"{followed}); set cloudevents.node in a model's spec, or log this node to ?model=NAME",
            field="Ce-Modelid",
        )
    raise NotFound(
        f"no model is mapped to inference service {ce.service!r}; set cloudevents.inference_service in a "
        "model's spec, name the model after the service, or pass ?model=NAME",
        field="Ce-Inferenceservicename",
    )


def version_of(ce: CloudEvent, spec: ModelSpec) -> str:
    source = spec.cloudevents.version_from
    value = ce.endpoint if source == "endpoint" else ce.model_id if source == "modelid" else None
    return value or spec.effective_default_version


# -- halves and pairs ------------------------------------------------------------------------------
def exchange_of(endpoint: str | None, node: str | None) -> str | None:
    """Where in a deployment an exchange happened: ``<predictor>/<node>`` (None when the sender says neither)."""
    return f"{endpoint or ''}/{node or ''}" if endpoint or node else None


def pending_key(request_id: str, node: str | None, endpoint: str | None = None) -> str:
    """The key an exchange's halves wait under: the request id, the predictor and the graph node.

    Seldon's executor logs every node of a graph under one ``Ce-Requestid``, told apart by ``Ce-Modelid``; a
    shadow predictor mirrors the request with the same ``Seldon-Puid`` when the client sent one, told apart by
    ``Ce-Endpoint``.
    """
    where = exchange_of(endpoint, node)
    return f"{request_id}|{where}" if where else request_id


def half_from(ce: CloudEvent, spec: ModelSpec, received_at: datetime | None = None) -> PendingHalf:
    """A request or response waiting for its partner, parsed now (a bad payload is the sender's 422, not later).

    The half is stamped when parsing is done (unless ``received_at`` is given), so the join timeout never
    counts the time a large payload spends being read.
    """
    if ce.kind == "request":
        payload = read_payload(ce.body, "request", {f.name for f in spec.features})
        features_of(spec, payload)
    else:
        payload = read_payload(ce.body, "response", {o.name for o in spec.outputs})
        outputs_of(spec, payload)
    stored = {
        "body": ce.body,
        "time": ce.time.isoformat() if ce.time else None,
        "endpoint": ce.endpoint,
        "model_id": ce.model_id,
        "request_id": ce.request_id,
        "rows": len(payload.rows),
    }
    return PendingHalf(
        key=pending_key(ce.request_id, ce.model_id, ce.endpoint),
        model=spec.name,
        kind=ce.kind,
        received_at=received_at or datetime.now(UTC),
        body=stored,
    )


def _row_error(i: int, n_req: int | None, n_res: int | None) -> str | None:
    """Why row ``i`` of an exchange is incomplete, or None."""
    if n_res is None:
        return "no response was logged for this request"
    if n_req is None:
        return "no request was logged for this response"
    if i >= n_res:
        return f"the response has {n_res} rows for {n_req} request rows: this row got no output"
    if i >= n_req:
        return f"the response has {n_res} rows for {n_req} request rows: this row has no request"
    return None


def events_from_pair(
    spec: ModelSpec, request: PendingHalf | None, response: PendingHalf | None
) -> list[dict[str, Any]]:
    """The events of one exchange; a lone half, or a response with fewer or more rows, marks the rows it leaves
    incomplete with an ``error`` that says what is missing."""
    anchor = request or response
    assert anchor is not None
    request_id = str(anchor.body.get("request_id") or anchor.key)
    node = anchor.body.get("model_id")
    version_ce = CloudEvent(
        id=request_id,
        type="",
        kind="",
        source="",
        request_id=request_id,
        time=None,
        service=None,
        endpoint=anchor.body.get("endpoint"),
        model_id=node,
        body=None,
    )
    version = version_of(version_ce, spec)
    features: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    if request is not None:
        features = features_of(spec, read_payload(request.body["body"], "request", {f.name for f in spec.features}))
    if response is not None:
        outputs = outputs_of(spec, read_payload(response.body["body"], "response", {o.name for o in spec.outputs}))
    n_req = len(features) if request is not None else None
    n_res = len(outputs) if response is not None else None
    n = max(len(features), len(outputs))
    start = request.body.get("time") if request else None
    end = response.body.get("time") if response else None
    latency = None
    if start and end:
        latency = max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)
    where = exchange_of(anchor.body.get("endpoint"), node)
    prefix = f"ce:{spec.name}:{where}:" if where else f"ce:{spec.name}:"
    events = []
    for i in range(n):
        rid = request_id if n == 1 else f"{request_id}-item-{i}"
        event: dict[str, Any] = {
            "event_id": prefix + rid,
            "request_id": rid,
            "version": version,
            "timestamp": start or end,
            "features": features[i] if i < len(features) else {},
            "outputs": outputs[i] if i < len(outputs) else None,
            "latency_ms": latency,
        }
        if node:
            event["tags"] = {"node": node}
        error = _row_error(i, n_req, n_res)
        if error is not None:
            event["error"] = error
        events.append(event)
    return events


def labels_from_feedback(ce: CloudEvent, spec: ModelSpec | None = None) -> list[dict[str, Any]]:
    """Seldon feedback ``{"truth": {"data": {"ndarray": [...]}}}`` → labels keyed like the events.

    A truth row of one value is the label; a one-hot row (``[[0, 0, 1]]``, Seldon's own feedback examples) or a
    row of class scores is the class at its largest value, in the order of the spec's label classes.
    """
    truth = ce.body.get("truth")
    if not isinstance(truth, dict):
        raise ValidationError("a feedback CloudEvent needs truth.data.ndarray", field="truth")
    labels = truth_labels(spec, truth)
    stamp = ce.time.isoformat() if ce.time else None
    n = len(labels)
    return [
        {
            "request_id": ce.request_id if n == 1 else f"{ce.request_id}-item-{i}",
            "label": label,
            "timestamp": stamp,
        }
        for i, label in enumerate(labels)
    ]
