"""Serving backends for inference units, in one registry (entry-point group ``sustain.backends``).

A backend takes a batch of rows (one mapping of field to value per request) and returns one prediction per row,
in order. It raises :class:`~sustain.inference.errors.BackendUnavailable` when it cannot answer now and
:class:`~sustain.inference.errors.BackendRejected` when it refuses the batch; the unit does the rest.

Built in: ``mlflow`` (an MLflow scoring server, ``/invocations`` with ``dataframe_split``), ``seldon`` (Seldon
Core v1, ``/api/v1.0/predictions``), ``v2`` (the Open Inference Protocol, ``/v2/models/{model}/infer``) and
``python`` (a function ``module:function`` taking the rows). A plugin registers a factory taking a
:class:`~sustain.inference.config.BackendConfig`:

>>> sorted(backends.names())[:4]
['mlflow', 'python', 'seldon', 'v2']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sustain.inference.backends.base import Backend, Rows, columns_of
from sustain.inference.config import BackendConfig
from sustain.registry import Registry

BackendFactory = Callable[[BackendConfig], Backend]


def _mlflow(config: BackendConfig) -> Backend:
    from sustain.inference.backends.mlflow import MlflowBackend

    return MlflowBackend(config)


def _seldon(config: BackendConfig) -> Backend:
    from sustain.inference.backends.seldon import SeldonBackend

    return SeldonBackend(config)


def _v2(config: BackendConfig) -> Backend:
    from sustain.inference.backends.v2 import V2Backend

    return V2Backend(config)


def _python(config: BackendConfig) -> Backend:
    from sustain.inference.backends.python import PythonBackend

    return PythonBackend.from_config(config)


def _builtins() -> Mapping[str, BackendFactory]:
    return {"mlflow": _mlflow, "seldon": _seldon, "v2": _v2, "python": _python}


backends: Registry[BackendFactory] = Registry(
    "inference backend", entry_point_group="sustain.backends", builtins=_builtins, check=callable
)


def open_backend(config: BackendConfig) -> Backend:
    """The backend ``config.kind`` names (a built-in, or a plugin found through its entry point)."""
    return backends.get(config.kind)(config)


__all__ = ["Backend", "BackendFactory", "Rows", "backends", "columns_of", "open_backend"]
