"""The Open Inference Protocol (KServe V2, MLServer, Triton): ``POST /v2/models/{model}/infer``.

Each field of the batch becomes one named 1-D input of the batch's length, and the request asks for the
pandas content type, so MLServer hands the model a DataFrame with one column per field.

>>> from sustain.inference.config import BackendConfig
>>> backend = V2Backend(BackendConfig("v2", "http://127.0.0.1:8080", model="churn"))
>>> backend.url
'http://127.0.0.1:8080/v2/models/churn/infer'
>>> for tensor in backend.encode([{"age": 41, "plan": "pro"}, {"age": 30.5, "plan": "basic"}])["inputs"]:
...     print(tensor)
{'name': 'age', 'shape': [2], 'datatype': 'FP64', 'data': [41, 30.5]}
{'name': 'plan', 'shape': [2], 'datatype': 'BYTES', 'data': ['pro', 'basic']}
>>> backend.decode({"model_name": "churn", "outputs": [{"name": "p", "shape": [2, 1], "datatype": "FP64",
...     "data": [0.1, 0.9]}]}, 2)
[0.1, 0.9]
>>> backend.close()
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sustain.inference.backends.base import HttpBackend, Rows, columns_of, mapping
from sustain.inference.config import BackendConfig
from sustain.inference.errors import BackendRejected


class V2Backend(HttpBackend):
    kind = "v2"

    def path_for(self, config: BackendConfig) -> str:
        return f"/v2/models/{config.model}/infer"

    def encode(self, rows: Rows) -> Any:
        inputs = []
        for name in columns_of(rows):
            values = [row.get(name) for row in rows]
            inputs.append({"name": name, "shape": [len(rows)], "datatype": datatype(name, values), "data": values})
        return {"inputs": inputs, "parameters": {"content_type": "pd"}}

    def decode(self, reply: Any, rows: int) -> list[Any]:
        outputs = mapping(reply, self.kind).get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise BackendRejected(f"the v2 backend answered without outputs: {str(reply)[:200]}")
        columns = {str(out.get("name")): _per_row(out, rows) for out in outputs if isinstance(out, Mapping)}
        if len(columns) == 1:
            return next(iter(columns.values()))
        return [{name: column[i] for name, column in columns.items()} for i in range(rows)]


def datatype(name: str, values: Sequence[Any]) -> str:
    """The V2 datatype of a column; nulls and mixed kinds cannot be sent (the unit isolates such rows)."""
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return "BOOL"
    if kinds == {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    if kinds == {str}:
        return "BYTES"
    found = ", ".join(sorted(k.__name__ for k in kinds))
    raise BackendRejected(f"field {name!r} holds {found}: the Open Inference Protocol has no tensor for that")


def _per_row(output: Mapping[str, Any], rows: int) -> list[Any]:
    shape, data = output.get("shape"), output.get("data")
    if not isinstance(shape, list) or not shape or shape[0] != rows or not isinstance(data, list):
        raise BackendRejected(f"the v2 output {output.get('name')!r} has shape {shape}, not {rows} rows")
    width = math.prod(shape[1:]) if len(shape) > 1 else 1
    if len(data) != rows * width:
        raise BackendRejected(f"the v2 output {output.get('name')!r} holds {len(data)} values for shape {shape}")
    if width == 1:
        return list(data)
    return [data[i * width : (i + 1) * width] for i in range(rows)]
