"""Synthetic traffic for any spec: demo data, tests and benchmarks, seeded and reproducible.

Numeric features are normal within their declared range, categorical ones
follow fixed skewed frequencies, outputs come from a calibrated logistic
score, so labels drawn from the scores are true labels of a calibrated model.
``drift`` shifts named features (numeric: in standard deviations; categorical:
reverses the frequencies).

>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric", "c": {
...     "kind": "categorical", "categories": ["a", "b"]}}, "outputs": {"p": {"kind": "probability"}}})
>>> rows = SyntheticModel(spec, seed=1).events(3)
>>> sorted(rows[0]["features"]), sorted(rows[0]["outputs"])
(['c', 'x'], ['p'])
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sustain.spec import Feature, ModelSpec


def _stable_seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


class SyntheticModel:
    def __init__(self, spec: ModelSpec, seed: int = 0) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self._weights = {f.name: np.random.default_rng(_stable_seed(f.name)).normal() for f in spec.features}

    def _center_scale(self, f: Feature) -> tuple[float, float]:
        if f.range is not None:
            low, high = f.range
            return (low + high) / 2, max((high - low) / 6, 1e-9)
        local = np.random.default_rng(_stable_seed("c" + f.name))
        return float(local.uniform(10, 100)), float(local.uniform(1, 20))

    def _categories(self, f: Feature) -> tuple[list[str], np.ndarray]:
        cats = f.categories or [f"{f.name}_{i}" for i in range(5)]
        p = np.array([1.0 / (i + 1) for i in range(len(cats))])
        return cats, p / p.sum()

    def columns(self, n: int, drift: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Feature values by name (numpy arrays or lists)."""
        drift = drift or {}
        cols: dict[str, Any] = {}
        for f in self.spec.features:
            shift = drift.get(f.name, 0.0)
            if f.kind == "numeric":
                center, scale = self._center_scale(f)
                values = self.rng.normal(center + shift * scale, scale, n)
                if f.range is not None:
                    values = np.clip(values, f.range[0], f.range[1])
                cols[f.name] = np.round(values, 4)
            elif f.kind == "categorical":
                cats, p = self._categories(f)
                if shift:
                    p = p[::-1]
                cols[f.name] = list(self.rng.choice(cats, size=n, p=p))
            elif f.kind == "boolean":
                cols[f.name] = list(self.rng.random(n) < (0.3 + (0.4 if shift else 0.0)))
            elif f.kind == "text":
                words = ["good", "bad", "late", "refund", "thanks", "broken", "fast", "price"]
                cols[f.name] = [" ".join(self.rng.choice(words, size=self.rng.integers(2, 8))) for _ in range(n)]
            else:
                assert f.dim is not None
                cols[f.name] = self.rng.normal(shift, 1.0, (n, f.dim)).round(4)
        return cols

    def score(self, cols: Mapping[str, Any]) -> np.ndarray:
        """A calibrated probability of the positive class per row."""
        n = len(next(iter(cols.values())))
        z = np.zeros(n)
        for f in self.spec.features:
            w = self._weights[f.name]
            if f.kind == "numeric":
                center, scale = self._center_scale(f)
                z += w * (np.asarray(cols[f.name]) - center) / scale
            elif f.kind == "categorical":
                cats, _ = self._categories(f)
                z += w * np.array([0.5 if v == cats[0] else -0.2 for v in cols[f.name]])
            elif f.kind == "boolean":
                z += w * (np.asarray(cols[f.name], dtype=float) - 0.3)
        return 1.0 / (1.0 + np.exp(-z / max(1.0, math.sqrt(len(self.spec.features)) / 2)))

    def events(self, n: int, drift: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
        """``n`` events with features and outputs (no ids, timestamps or labels)."""
        cols = self.columns(n, drift)
        p = self.score(cols)
        outputs = self._outputs(p)
        events = []
        for i in range(n):
            features = {}
            for f in self.spec.features:
                v = cols[f.name][i]
                features[f.name] = v.tolist() if isinstance(v, np.ndarray) else (v.item() if hasattr(v, "item") else v)
            events.append({"features": features, "outputs": outputs[i]})
        return events

    def labels_for(self, events: list[dict[str, Any]]) -> list[Any]:
        """True labels drawn from the model's own (calibrated) scores."""
        label = self.spec.label
        if label is None:
            return [None] * len(events)
        p = self.score({f.name: [e["features"][f.name] for e in events] for f in self.spec.features})
        if label.kind == "regression":
            return [float(v) for v in np.round(p * 100 + self.rng.normal(0, 5, len(events)), 3)]
        classes = label.classes or ["0", "1"]
        draws = self.rng.random(len(events)) < p
        return [classes[-1] if d else classes[0] for d in draws]

    def _outputs(self, p: np.ndarray) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{} for _ in range(len(p))]
        for o in self.spec.outputs:
            for i, pi in enumerate(p):
                if o.kind == "class_scores":
                    classes = o.classes or []
                    if len(classes) == 2:
                        rows[i][o.name] = [round(1 - float(pi), 6), round(float(pi), 6)]
                    else:
                        rest = (1 - float(pi)) / (len(classes) - 1)
                        rows[i][o.name] = [rest] * (len(classes) - 1) + [float(pi)]
                elif o.kind == "class_label":
                    classes = o.classes or ["0", "1"]
                    rows[i][o.name] = classes[-1] if pi >= 0.5 else classes[0]
                elif o.kind == "probability":
                    rows[i][o.name] = round(float(pi), 6)
                else:
                    rows[i][o.name] = round(float(pi) * 100, 3)
        return rows

    def reference(self, n: int) -> dict[str, list[Any]]:
        """A reference table (columns by name) for this spec, outputs and label included."""
        events = self.events(n)
        table: dict[str, list[Any]] = {f.name: [e["features"][f.name] for e in events] for f in self.spec.features}
        for o in self.spec.outputs:
            if o.kind == "class_scores":
                for k, c in enumerate(o.classes or []):
                    table[f"{o.name}.{c}"] = [e["outputs"][o.name][k] for e in events]
            else:
                table[o.name] = [e["outputs"][o.name] for e in events]
        if self.spec.label is not None:
            table["label"] = self.labels_for(events)
        return table
