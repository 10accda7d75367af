"""A Python function as the backend: ``module:function`` taking the batch's rows, returning one value per row.

The function may raise :class:`~sustain.inference.errors.BackendUnavailable` to have the batch sent again
later; any other exception rejects the batch (and the unit bisects it to find the bad row).

>>> backend = PythonBackend(lambda rows: [row["x"] * 2 for row in rows])
>>> backend.predict([{"x": 1}, {"x": 2}])
[2, 4]
>>> PythonBackend(lambda rows: 1 / 0).predict([{"x": 1}])
Traceback (most recent call last):
...
sustain.inference.errors.BackendRejected: ZeroDivisionError: division by zero
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from sustain.errors import ConfigError
from sustain.inference.backends.base import Rows, check_count
from sustain.inference.config import BackendConfig
from sustain.inference.errors import BackendRejected, InferenceError

PredictFunction = Callable[[list[dict[str, Any]]], Sequence[Any]]


class PythonBackend:
    kind = "python"

    def __init__(self, function: PredictFunction) -> None:
        self.function = function

    @classmethod
    def from_config(cls, config: BackendConfig) -> PythonBackend:
        return cls(load_function(config.target))

    def predict(self, rows: Rows) -> list[Any]:
        try:
            predictions = self.function([dict(row) for row in rows])
        except InferenceError:
            raise
        except Exception as exc:
            raise BackendRejected(f"{type(exc).__name__}: {exc}") from exc
        return check_count(list(predictions), len(rows), self.kind)

    def close(self) -> None:
        close = getattr(self.function, "close", None)
        if callable(close):
            close()


def load_function(target: str) -> PredictFunction:
    """Import ``module:function`` (a dotted attribute path after the colon works too)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"a python backend is named module:function, got {target!r}", field="backend")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the python backend {target!r}: {exc}", field="backend") from exc
    if not callable(value):
        raise ConfigError(f"the python backend {target!r} is not callable", field="backend")
    return value  # type: ignore[no-any-return]
