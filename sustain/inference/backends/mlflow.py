"""An MLflow scoring server (``mlflow models serve``): ``POST /invocations`` with ``dataframe_split``.

>>> from sustain.inference.config import BackendConfig
>>> backend = MlflowBackend(BackendConfig("mlflow", "http://127.0.0.1:5001"))
>>> backend.url
'http://127.0.0.1:5001/invocations'
>>> backend.encode([{"age": 41, "plan": "pro"}, {"age": 30}])
{'dataframe_split': {'columns': ['age', 'plan'], 'data': [[41, 'pro'], [30, None]]}}
>>> backend.decode({"predictions": [0, 1]}, 2), backend.decode({"predictions": {"p": [0.1, 0.2]}}, 2)
([0, 1], [{'p': 0.1}, {'p': 0.2}])
>>> backend.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sustain.inference.backends.base import HttpBackend, Rows, check_count, columns_of
from sustain.inference.errors import BackendRejected


class MlflowBackend(HttpBackend):
    kind = "mlflow"
    default_path = "/invocations"

    def encode(self, rows: Rows) -> Any:
        columns = columns_of(rows)
        return {"dataframe_split": {"columns": columns, "data": [[row.get(c) for c in columns] for row in rows]}}

    def decode(self, reply: Any, rows: int) -> list[Any]:
        predictions = reply.get("predictions") if isinstance(reply, Mapping) else reply
        if isinstance(predictions, Mapping):  # a frame of outputs, column by column
            names = list(predictions)
            columns = [predictions[n] for n in names]
            if not all(isinstance(c, list) and len(c) == rows for c in columns):
                raise BackendRejected(f"the mlflow backend returned columns that are not {rows} long")
            return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        if not isinstance(predictions, list):
            raise BackendRejected(f"the mlflow backend answered without a list of predictions: {str(reply)[:200]}")
        return check_count(predictions, rows, self.kind)
