"""Code nodes of the example graphs, written against Seldon's Python-wrapper interface."""

from __future__ import annotations

from typing import Any

import numpy as np

# The ranges the example models were trained on (tests/graph_models.py draws the training data in them).
TRAINING_RANGES = {"age": (18.0, 90.0), "income": (0.0, 250_000.0), "tenure": (0.0, 120.0)}


class ClipToTraining:
    """Clips each named feature to the range the models saw in training; other columns pass through."""

    def transform_input(self, X: Any, features_names: list[str] | None = None) -> np.ndarray:
        array = np.asarray(X, dtype=float).copy()
        for i, name in enumerate(features_names or []):
            low, high = TRAINING_RANGES.get(name, (-np.inf, np.inf))
            array[:, i] = np.clip(array[:, i], low, high)
        return array
