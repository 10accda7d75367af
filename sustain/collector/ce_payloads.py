"""The payloads inside Seldon and KServe CloudEvents, read into rows and mapped onto a model's spec.

Understood:

* Seldon: ``{"data": {"names": [...], "ndarray": [[...]]}}`` or ``"tensor": {"shape", "values"}``;
* KServe V1: ``{"instances": [...]}`` / ``{"predictions": [...]}``;
* Open Inference Protocol (KServe V2, MLServer): ``{"inputs": [tensor...]}`` / ``{"outputs": [tensor...]}``.

A V2 tensor is a column; its first dimension is the batch. A tensor with more than one value per row (shape
``[N, k]``) keeps all ``k`` values: as a positional matrix when it is the payload's only tensor and its name
means nothing to the spec, otherwise as one list value per row, which an embedding feature of that dim or a
``class_scores`` output takes; any other feature refuses it with a sentence. Nothing is truncated.

Several output tensors (MLServer's scikit-learn runtime answers ``predict`` and ``predict_proba``) are all
kept: a tensor named after a declared output fills it; the others fill, in spec order, the first free output
of their shape (``k`` values per row: a ``class_scores`` output with ``k`` classes; one value: a label,
probability or regression output); a tensor that fits none is kept under its own name (the event's extra).

>>> outputs = {"label": {"kind": "class_label", "classes": ["a", "b"]},
...            "scores": {"kind": "class_scores", "classes": ["a", "b"]}}
>>> spec = ModelSpec.model_validate({"name": "iris", "features": {"x": "numeric"}, "outputs": outputs,
...                                  "label": {"kind": "class_label", "classes": ["a", "b"]}})
>>> body = {"outputs": [{"name": "predict", "shape": [1, 1], "datatype": "BYTES", "data": ["b"]},
...                     {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.3, 0.7]}]}
>>> outputs_of(spec, read_payload(body, "response"))
[{'label': 'b', 'scores': [0.3, 0.7]}]
>>> truth_labels(spec, {"data": {"ndarray": [[0, 1]]}})
['b']
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sustain.errors import ValidationError
from sustain.spec import ModelSpec, Output


@dataclass(frozen=True)
class Rows:
    """A payload's rows; ``names`` names the columns (None: positional), ``tensors`` says they are V2 tensors."""

    names: list[str] | None
    rows: list[list[Any]]
    tensors: bool = False


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


def _flatten(data: Any) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _v2_tensors(tensors: Any, what: str) -> list[tuple[str, list[list[Any]]]]:
    if not isinstance(tensors, list) or not tensors:
        raise ValidationError(f"{what} must be a non-empty list of tensors", field=what)
    out = []
    for t in tensors:
        if not isinstance(t, dict) or "data" not in t:
            raise ValidationError(f"each of {what} needs name, shape and data", field=what)
        flat = _flatten(t["data"])
        shape = t.get("shape") or [len(flat)]
        rows = int(shape[0]) if shape else len(flat)
        width = len(flat) // rows if rows else 0
        if rows * width != len(flat):
            raise ValidationError(f"tensor {t.get('name')!r} shape {shape} does not match its data", field=what)
        out.append((str(t.get("name", "")), [flat[i * width : (i + 1) * width] for i in range(rows)]))
    return out


def _v2_rows(tensors: Any, what: str, declared: Collection[str]) -> Rows:
    named = _v2_tensors(tensors, what)
    if len(named) == 1:
        name, rows = named[0]
        width = len(rows[0]) if rows else 1
        if width == 1:
            return Rows([name], rows, tensors=True)
        if name in declared:
            return Rows([name], [[row] for row in rows], tensors=True)
        return Rows(None, rows, tensors=True)  # one matrix: positional columns
    n = len(named[0][1])
    if any(len(rows) != n for _, rows in named):
        counts = ", ".join(f"{name}: {len(rows)}" for name, rows in named)
        raise ValidationError(f"{what} tensors have different numbers of rows ({counts})", field=what)
    names = [name for name, _ in named]
    return Rows(names, [[rows[i][0] if len(rows[i]) == 1 else rows[i] for _, rows in named] for i in range(n)], True)


def read_payload(body: dict[str, Any], side: str, declared: Collection[str] = ()) -> Rows:
    """The rows of a request (``side="request"``) or response payload; ``declared`` names the spec's columns."""
    if "data" in body and isinstance(body["data"], dict):
        data = body["data"]
        names = data.get("names") or None
        if "ndarray" in data:
            return Rows(names, _matrix(data["ndarray"], "data.ndarray"))
        if "tensor" in data:
            return Rows(names, _tensor_rows(data["tensor"], "data.tensor"))
        raise ValidationError("Seldon payload data needs ndarray or tensor", field="data")
    key = "instances" if side == "request" else "predictions"
    if key in body:
        rows = body[key]
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            names = list(rows[0].keys())
            return Rows(names, [[r.get(n) for n in names] for r in rows])
        return Rows(None, _matrix(rows, key))
    v2 = "inputs" if side == "request" else "outputs"
    if v2 in body:
        return _v2_rows(body[v2], v2, declared)
    expected = "data.ndarray, instances or inputs" if side == "request" else "data.ndarray, predictions or outputs"
    raise ValidationError(f"cannot find the {side} rows: expected {expected}", field="body")


def payload_rows(body: dict[str, Any], side: str) -> tuple[list[str] | None, list[list[Any]]]:
    """(column names if the payload names them, rows) of a request or response payload."""
    rows = read_payload(body, side)
    return rows.names, rows.rows


# -- features -----------------------------------------------------------------------------------------
def features_of(spec: ModelSpec, payload: Rows) -> list[dict[str, Any]]:
    declared = [f.name for f in spec.features]
    names, rows = payload.names, payload.rows
    if names is None or not set(names) & set(declared):
        if rows and len(rows[0]) != len(declared):
            raise ValidationError(
                f"request rows have {len(rows[0])} columns but model {spec.name!r} declares {len(declared)} "
                "features; send names or match the spec's feature order",
                field="body",
            )
        names = declared
    out = [dict(zip(names, row, strict=False)) for row in rows]
    if payload.tensors and out:
        _check_widths(spec, names, rows[0])
    return out


def _check_widths(spec: ModelSpec, names: list[str], row: list[Any]) -> None:
    """A V2 input with several values per row must be an embedding of that dim, never silently cut."""
    kinds = {f.name: f for f in spec.features}
    for name, value in zip(names, row, strict=False):
        feature = kinds.get(name)
        if feature is None or not isinstance(value, list):
            continue
        if feature.kind != "embedding":
            raise ValidationError(
                f"input {name!r} has {len(value)} values per row (shape [N, {len(value)}]) but feature {name!r} "
                f"of model {spec.name!r} is {feature.kind}: send one value per row (shape [N] or [N, 1]), "
                f"or declare it an embedding with dim {len(value)}",
                field=f"inputs.{name}",
            )
        if feature.dim != len(value):
            raise ValidationError(
                f"input {name!r} has {len(value)} values per row but embedding {name!r} has dim {feature.dim}",
                field=f"inputs.{name}",
            )


# -- outputs ------------------------------------------------------------------------------------------
def _fits(output: Output, value: Any) -> bool:
    width = len(value) if isinstance(value, list) else 1
    if output.kind == "class_scores":
        return width > 1 and width == len(output.classes or [])
    return width == 1


def _output_targets(spec: ModelSpec, names: list[str], row: list[Any]) -> list[str]:
    """The output each named column fills (its own name when no declared output takes it)."""
    declared = {o.name for o in spec.outputs}
    targets: list[str | None] = [n if n in declared else None for n in names]
    free = [o for o in spec.outputs if o.name not in targets]
    for i, name in enumerate(names):
        if targets[i] is not None:
            continue
        fit = next((o for o in free if _fits(o, row[i] if i < len(row) else None)), None)
        if fit is not None:
            free.remove(fit)
        targets[i] = fit.name if fit is not None else name
    return [t or n for t, n in zip(targets, names, strict=True)]


def _argmax(values: list[Any]) -> int | None:
    numbers = [v if isinstance(v, int | float) and not isinstance(v, bool) else None for v in values]
    if any(v is None for v in numbers):
        return None
    return max(range(len(numbers)), key=lambda i: numbers[i])  # type: ignore[arg-type, return-value]


def _with_label(spec: ModelSpec, out: dict[str, Any]) -> dict[str, Any]:
    """Derive the class label from class scores when the payload did not send it."""
    scores = next((o for o in spec.outputs if o.kind == "class_scores"), None)
    label = next((o for o in spec.outputs if o.kind == "class_label"), None)
    if scores is None or label is None or label.name in out or not isinstance(out.get(scores.name), list):
        return out
    best = _argmax(out[scores.name])
    if best is not None and scores.classes and len(out[scores.name]) == len(scores.classes):
        out[label.name] = scores.classes[best]
    return out


def outputs_of(spec: ModelSpec, payload: Rows) -> list[dict[str, Any]]:
    names, rows = payload.names, payload.rows
    declared = {o.name for o in spec.outputs}
    named = names is not None and (payload.tensors or set(names) <= declared)
    if named and names is not None:
        targets = _output_targets(spec, names, rows[0] if rows else [])
        return [_with_label(spec, dict(zip(targets, row, strict=False))) for row in rows]
    if not spec.outputs:
        return [{} for _ in rows]
    first = spec.outputs[0]
    scores = next((o for o in spec.outputs if o.kind == "class_scores"), None)
    result = []
    for row in rows:
        if scores is not None and scores.classes and len(row) == len(scores.classes) and len(row) > 1:
            result.append(_with_label(spec, {scores.name: row}))
        else:
            result.append({first.name: row[0] if len(row) == 1 else row})
    return result


# -- truth --------------------------------------------------------------------------------------------
def truth_labels(spec: ModelSpec | None, truth: dict[str, Any]) -> list[Any]:
    """One label per truth row: a value, or the class of a one-hot / class-score row (spec's label classes)."""
    payload = read_payload(truth, "request")
    labels: list[Any] = []
    for row in payload.rows:
        if len(row) == 1:
            labels.append(row[0])
            continue
        classes = spec.label.classes if spec is not None and spec.label is not None else None
        model = f"model {spec.name!r}" if spec is not None else "the model"
        if spec is not None and spec.label is not None and spec.label.kind == "regression":
            raise ValidationError(
                f"truth rows have {len(row)} values, but {model} has a regression label", field="truth"
            )
        if not classes:
            raise ValidationError(
                f"truth rows have {len(row)} values (one-hot or class scores); mapping them to a class needs "
                f"label classes in the spec of {model}",
                field="truth",
            )
        order = classes
        if payload.names and sorted(payload.names) == sorted(classes):
            order = [str(n) for n in payload.names]  # the truth names its columns by class
        if len(row) != len(order):
            raise ValidationError(
                f"truth rows have {len(row)} values but {model} has {len(classes)} label classes "
                f"({', '.join(classes)})",
                field="truth",
            )
        best = _argmax(row)
        if best is None:
            raise ValidationError("one-hot or class-score truth must be numbers", field="truth")
        if not any(row):
            raise ValidationError(f"truth row {row} names no class: every value is 0", field="truth")
        labels.append(order[best])
    return labels
