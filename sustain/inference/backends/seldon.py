"""A Seldon Core v1 model (its executor or a microservice): ``POST /api/v1.0/predictions`` with ``ndarray``.

>>> from sustain.inference.config import BackendConfig
>>> backend = SeldonBackend(BackendConfig("seldon", "http://127.0.0.1:9000"))
>>> backend.url
'http://127.0.0.1:9000/api/v1.0/predictions'
>>> backend.encode([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
{'data': {'names': ['a', 'b'], 'ndarray': [[1, 2], [3, 4]]}}
>>> backend.decode({"data": {"names": ["t:0", "t:1"], "ndarray": [[0.9, 0.1], [0.2, 0.8]]}}, 2)
[{'t:0': 0.9, 't:1': 0.1}, {'t:0': 0.2, 't:1': 0.8}]
>>> backend.decode({"data": {"names": [], "tensor": {"shape": [2, 1], "values": [0, 1]}}}, 2)
[0, 1]
>>> backend.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sustain.inference.backends.base import HttpBackend, Rows, check_count, columns_of, mapping
from sustain.inference.errors import BackendRejected


class SeldonBackend(HttpBackend):
    kind = "seldon"
    default_path = "/api/v1.0/predictions"

    def encode(self, rows: Rows) -> Any:
        columns = columns_of(rows)
        return {"data": {"names": columns, "ndarray": [[row.get(c) for c in columns] for row in rows]}}

    def decode(self, reply: Any, rows: int) -> list[Any]:
        body = mapping(reply, self.kind)
        if "jsonData" in body and isinstance(body["jsonData"], list):
            return check_count(body["jsonData"], rows, self.kind)
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise BackendRejected(f"the seldon backend answered without data: {str(reply)[:200]}")
        names = data.get("names") or []
        if "ndarray" in data:
            values = data["ndarray"]
        elif isinstance(data.get("tensor"), Mapping):
            values = _rows_of_tensor(data["tensor"], rows)
        else:
            raise BackendRejected(f"the seldon backend answered neither ndarray nor tensor: {str(reply)[:200]}")
        if not isinstance(values, list):
            raise BackendRejected("the seldon backend's ndarray is not a list")
        return [_row(value, names) for value in check_count(values, rows, self.kind)]


def _rows_of_tensor(tensor: Mapping[str, Any], rows: int) -> list[Any]:
    shape, values = tensor.get("shape") or [], tensor.get("values") or []
    if not shape or shape[0] != rows:
        raise BackendRejected(f"the seldon backend's tensor has shape {shape}, not {rows} rows")
    width = len(values) // rows if rows else 0
    return [values[i * width : (i + 1) * width] for i in range(rows)]


def _row(value: Any, names: list[str]) -> Any:
    if isinstance(value, list):
        if len(value) == 1:
            return value[0]
        if names and len(names) == len(value):
            return dict(zip(names, value, strict=True))
    return value
