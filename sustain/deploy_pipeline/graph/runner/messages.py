"""Payloads as the serving components write them: Seldon messages, Open Inference Protocol (V2) bodies, and the
MLflow scoring server's ``/invocations`` body.

The shapes follow the components a cluster runs: Seldon's Python wrapper (``construct_response_json``: numbers
come back as ``ndarray`` unless the request used ``tensor``; a 2-D result is named ``t:0``, ``t:1``...; a
transformer keeps the request's names), Seldon's ``MLFLOW_SERVER`` (a DataFrame result is named by its
columns) and MLServer (``NumpyCodec``: an array output is ``output-1`` with a batch dimension, a DataFrame one
output per column).

>>> to_seldon([[0.2, 0.8]], {"data": {"ndarray": [[1, 2]]}}, names=None, is_request=False)
{'data': {'names': ['t:0', 't:1'], 'ndarray': [[0.2, 0.8]]}, 'meta': {}}
>>> from_oip({"inputs": [{"name": "age", "shape": [2], "datatype": "FP64", "data": [30, 40]},
...                      {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [1, 2]}]})
(array([[30.,  1.],
       [40.,  2.]]), ['age', 'income'])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sustain.errors import ValidationError

Message = dict[str, Any]


# -- Seldon messages ------------------------------------------------------------------------------
def from_seldon(msg: Message) -> tuple[Any, list[str]]:
    """(features, names) of a Seldon message, as the Python wrapper hands them to user code."""
    if not isinstance(msg, dict):
        raise ValidationError(f"a Seldon message is a JSON object, got {type(msg).__name__}", field="body")
    if "data" in msg:
        data = msg["data"] or {}
        names = list(data.get("names") or [])
        if "tensor" in data:
            tensor = data["tensor"]
            return np.array(tensor["values"]).reshape(tensor["shape"]), names
        if "ndarray" in data:
            return np.array(data["ndarray"]), names
        return np.array([]), names
    if "jsonData" in msg:
        return msg["jsonData"], []
    if "strData" in msg:
        return msg["strData"], []
    raise ValidationError("a Seldon message needs data (ndarray or tensor), jsonData or strData", field="body")


def _numeric(array: np.ndarray) -> bool:
    return bool(np.issubdtype(array.dtype, np.number))


def to_seldon(
    result: Any,
    request: Message,
    *,
    names: list[str] | None,
    is_request: bool,
    meta: dict[str, Any] | None = None,
) -> Message:
    """A Seldon message for ``result``, shaped like the Python wrapper's ``construct_response_json``."""
    response: Message = {}
    if isinstance(result, dict):
        response["jsonData"] = result
    elif isinstance(result, str):
        response["strData"] = result
    else:
        array = result if isinstance(result, np.ndarray) else np.array(result)
        as_list = array.tolist()
        data: dict[str, Any] = {}
        request_data = request.get("data") if isinstance(request.get("data"), dict) else None
        if _numeric(array) and (request_data is None or "tensor" in request_data):
            data["tensor"] = {"values": array.ravel().tolist(), "shape": list(array.shape)}
        else:
            data["ndarray"] = as_list
        if names is not None:
            data["names"] = names
        elif is_request:
            data["names"] = list((request_data or {}).get("names") or [])
        else:
            data["names"] = [f"t:{i}" for i in range(array.shape[1])] if array.ndim > 1 else []
        response["data"] = {"names": data.pop("names"), **data}
    response["meta"] = dict(meta or {})
    return response


# -- Open Inference Protocol ------------------------------------------------------------------------
DATATYPES = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL", "U": "BYTES", "O": "BYTES", "S": "BYTES"}


def check_oip_request(body: Any) -> None:
    """Refuse a body that is not an OIP inference request (each input: name, shape, datatype, data)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise ValidationError("an inference request needs a non-empty inputs list", field="inputs")
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict):
            raise ValidationError(f"inputs[{i}] must be an object", field=f"inputs[{i}]")
        for key, kind in (("name", str), ("shape", list), ("datatype", str), ("data", list)):
            if not isinstance(tensor.get(key), kind):
                raise ValidationError(
                    f"inputs[{i}].{key} is missing or not a {kind.__name__}", field=f"inputs[{i}].{key}"
                )
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in tensor["shape"]):
            raise ValidationError(f"inputs[{i}].shape must list non-negative integers", field=f"inputs[{i}].shape")
        size = int(np.prod(tensor["shape"])) if tensor["shape"] else 1
        flat = np.asarray(tensor["data"], dtype=object).ravel()
        if flat.size != size:
            raise ValidationError(
                f"inputs[{i}] ({tensor['name']}) has {flat.size} values for shape {tensor['shape']}",
                field=f"inputs[{i}]",
            )


NUMPY_TYPES = {"FP": float, "IN": int, "UI": int, "BO": bool}


def _tensor(t: Message) -> np.ndarray:
    """A tensor's data as the datatype says (MLServer's ``NumpyCodec``: FP64 data are floats even when written 1)."""
    dtype = NUMPY_TYPES.get(str(t.get("datatype", ""))[:2])
    flat = np.asarray(t["data"], dtype=dtype).ravel()
    return flat.reshape(t["shape"]) if t.get("shape") else flat


def from_oip(body: Message, key: str = "inputs") -> tuple[np.ndarray, list[str] | None]:
    """(features, names): one matrix input stays a matrix; several inputs are columns named after them."""
    tensors = body.get(key) or []
    if len(tensors) == 1:
        array = _tensor(tensors[0])
        if array.ndim == 2 and array.shape[1] > 1:
            return array, None
        return array.reshape(-1, 1), [str(tensors[0]["name"])]
    columns = [_tensor(t).reshape(-1) for t in tensors]
    if len({c.shape[0] for c in columns}) > 1:
        raise ValidationError(f"{key} have different numbers of rows", field=key)
    return np.column_stack(columns), [str(t["name"]) for t in tensors]


def oip_output(name: str, value: Any) -> Message:
    """One response tensor, as MLServer's NumpyCodec encodes it (a 1-D array gets a batch dimension)."""
    array = np.asarray(value)
    shape = list(array.shape) if array.ndim > 1 else [array.shape[0] if array.ndim else 1, 1]
    datatype = DATATYPES.get(array.dtype.kind, "BYTES")
    data = [None if isinstance(v, float) and np.isnan(v) else v for v in array.ravel().tolist()]
    return {"name": name, "shape": shape, "datatype": datatype, "parameters": {"content_type": "np"}, "data": data}


def to_oip(result: Any, model_name: str, request: Message, names: list[str] | None = None) -> Message:
    """An inference response: ``output-1`` for an array; one output per column for records (a DataFrame) or
    for a matrix whose columns are ``names`` (what a transformer returns)."""
    if isinstance(result, list) and result and isinstance(result[0], dict):
        columns = list(result[0])
        outputs = [oip_output(c, [row.get(c) for row in result]) for c in columns]
    elif names and np.ndim(result) == 2 and np.shape(result)[1] == len(names):
        array = np.asarray(result)
        outputs = [oip_output(name, array[:, i]) for i, name in enumerate(names)]
    else:
        outputs = [oip_output("output-1", result)]
    response: Message = {"model_name": model_name, "outputs": outputs, "parameters": {"content_type": "np"}}
    if isinstance(request.get("id"), str):
        response["id"] = request["id"]
    return response


def chain_v2(msg: Message) -> Message:
    """The executor's ``ChainKFserving``: a response's outputs become the next request's inputs."""
    if "inputs" in msg:
        return msg
    if "outputs" in msg:
        chained = {k: v for k, v in msg.items() if k != "outputs"}
        chained["inputs"] = msg["outputs"]
        return dict(sorted(chained.items()))  # Go marshals a map with sorted keys
    raise ValidationError("cannot chain a V2 payload without inputs or outputs", field="body")


# -- the MLflow scoring server -----------------------------------------------------------------------
def invocation(features: Any, names: list[str] | None) -> Message:
    """The ``/invocations`` body: ``dataframe_split`` with the column names when the payload names them."""
    array = np.asarray(features)
    rows = array.reshape(1, -1).tolist() if array.ndim == 1 else array.tolist()
    split: dict[str, Any] = {"data": rows}
    if names:
        split["columns"] = list(names)
    return {"dataframe_split": split}


def predictions(reply: Any) -> Any:
    if not isinstance(reply, dict) or "predictions" not in reply:
        raise ValidationError("the MLflow scoring server answered without predictions", field="predictions")
    return reply["predictions"]


def mlflow_to_seldon(result: Any, request: Message) -> Message:
    """What Seldon's ``MLFLOW_SERVER`` answers: a DataFrame's columns name the data, else the wrapper's names."""
    if isinstance(result, list) and result and isinstance(result[0], dict):
        columns = list(result[0])
        rows = [[row.get(c) for c in columns] for row in result]
        return to_seldon(rows, request, names=columns, is_request=False)
    return to_seldon(result, request, names=None, is_request=False)
