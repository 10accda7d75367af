"""Code nodes for the executor-semantics tests, written against Seldon's Python-wrapper interface (its argument
names: ``X``, ``features_names``).

Each unit records its calls in ``CALLS`` (node class name -> list of what it received), so a test can see
which nodes ran and with what.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

CALLS: dict[str, list[Any]] = defaultdict(list)


def _seen(name: str, value: Any) -> None:
    CALLS[name].append(np.asarray(value).tolist())


class Double:
    def predict(self, X: Any, features_names: Any = None) -> np.ndarray:
        _seen("Double", X)
        return np.asarray(X, dtype=float) * 2


class Triple:
    def predict(self, X: Any, features_names: Any = None) -> np.ndarray:
        _seen("Triple", X)
        return np.asarray(X, dtype=float) * 3


class AddOne:
    def transform_input(self, X: Any, features_names: Any = None) -> np.ndarray:
        _seen("AddOne", X)
        return np.asarray(X, dtype=float) + 1


class Negate:
    def transform_output(self, X: Any, features_names: Any = None) -> np.ndarray:
        _seen("Negate", X)
        return -np.asarray(X, dtype=float)


class NoMethods:
    """A transformer that implements nothing: the wrapper passes the data through."""


class Sum:
    def aggregate(self, features_list: list[Any], features_names_list: list[Any]) -> np.ndarray:
        _seen("Sum", [np.asarray(f).tolist() for f in features_list])
        return np.sum([np.asarray(f, dtype=float) for f in features_list], axis=0)


class RouteByFirstValue:
    """Routes to child int(X[0][0]): 0, 1, ..., -1 (all children) or -2 (no child)."""

    def route(self, X: Any, features_names: Any = None) -> int:
        return int(np.asarray(X).ravel()[0])

    def send_feedback(self, features: Any, names: Any, reward: float, truth: Any, routing: Any = None) -> None:
        _seen("RouteByFirstValue.feedback", [reward, routing])


class Fails:
    def predict(self, X: Any, features_names: Any = None) -> np.ndarray:
        raise RuntimeError("this model is broken")


class Learns:
    def predict(self, X: Any, features_names: Any = None) -> np.ndarray:
        return np.asarray(X, dtype=float)

    def send_feedback(self, features: Any, names: Any, reward: float, truth: Any, routing: Any = None) -> None:
        _seen("Learns.feedback", [reward, truth])
