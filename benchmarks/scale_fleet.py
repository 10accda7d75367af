"""A fleet of synthetic models in an embedded store, for benchmarks/scale.py.

Every model has 20 numeric and 5 categorical features and one probability output, a 1-minute window, its own
reference (2,000 rows drawn with its own seed, so no two models share a profile) and 1,000 events a minute.
Events are written as the collector hands them to the store (Arrow tables in the model's layout), in one
commit for all the models, so the figures are the engine's and not the HTTP layer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from sustain.backends.duckdb.store import DuckDBStore
from sustain.spec import ModelSpec
from sustain.store.base import EventBatch
from sustain.store.layout import PARSED_ENVELOPE, TIMESTAMP, Layout

NUMERIC = 20
CATEGORICAL = 5
CATEGORIES = ("a", "b", "c", "d", "e")
WINDOW_SECONDS = 60
REFERENCE_ROWS = 2000


def fleet_spec(i: int, indicators: list[dict[str, object]] | None = None) -> ModelSpec:
    """Model ``i``; ``indicators`` replaces the default indicators (benchmarks/scale_settings.py)."""
    features: dict[str, object] = {f"x{j:02d}": "numeric" for j in range(NUMERIC)}
    features |= {f"c{j}": {"kind": "categorical", "categories": list(CATEGORIES)} for j in range(CATEGORICAL)}
    spec: dict[str, object] = {
        "name": f"m{i:04d}",
        "features": features,
        "outputs": {"score": {"kind": "probability"}},
        "windows": ["1m"],
    }
    if indicators is not None:
        spec["indicators"] = indicators
    return ModelSpec.model_validate(spec)


@dataclass
class FleetModel:
    spec: ModelSpec
    layout: Layout
    centres: np.ndarray
    scales: np.ndarray
    weights: np.ndarray


class Fleet:
    """``models`` synthetic models registered in ``store``; :meth:`minute` writes a minute of their traffic."""

    def __init__(
        self, store: DuckDBStore, models: int, seed: int = 0, indicators: list[dict[str, object]] | None = None
    ) -> None:
        self.store = store
        self.models: list[FleetModel] = []
        for i in range(models):
            rng = np.random.default_rng([seed, i])
            spec = fleet_spec(i, indicators)
            store.put_spec(spec)
            self.models.append(
                FleetModel(
                    spec,
                    Layout.of(spec),
                    rng.uniform(10, 100, NUMERIC),
                    rng.uniform(1, 20, NUMERIC),
                    rng.normal(0, 1, NUMERIC) / np.sqrt(NUMERIC),
                )
            )
        self.rng = np.random.default_rng([seed, models])

    def _values(self, model: FleetModel, n: int, rng: np.random.Generator) -> dict[str, pa.Array]:
        x = rng.normal(model.centres, model.scales, (n, NUMERIC)).round(4)
        columns: dict[str, pa.Array] = {f"f:x{j:02d}": pa.array(x[:, j]) for j in range(NUMERIC)}
        p = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
        for j in range(CATEGORICAL):
            codes = rng.choice(len(CATEGORIES), size=n, p=p).astype(np.int32)
            dictionary = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(CATEGORIES))
            columns[f"f:c{j}"] = dictionary.cast(pa.string())
        z = ((x - model.centres) / model.scales) @ model.weights
        columns["o:score"] = pa.array(np.round(1 / (1 + np.exp(-z)), 6))
        return columns

    def reference(self, model: FleetModel) -> pa.Table:
        """The model's reference rows in its stored layout (its own seed)."""
        rng = np.random.default_rng([7, int(model.spec.name[1:])])
        return pa.table(self._values(model, REFERENCE_ROWS, rng))

    def batch(self, model: FleetModel, start: datetime, seconds: float, n: int) -> EventBatch:
        """``n`` events of ``model`` spread evenly over ``seconds`` from ``start``."""
        values = self._values(model, n, self.rng)
        base = int(start.timestamp() * 1_000_000)
        step = int(seconds * 1_000_000 / n)
        ts = pa.array(base + np.arange(n, dtype=np.int64) * step, pa.int64()).cast(TIMESTAMP)
        envelope: dict[str, pa.Array] = {}
        for name, arrow, _ in PARSED_ENVELOPE:
            if name == "ts":
                envelope[name] = ts
            elif name == "version":
                envelope[name] = pa.array(["1"] * n, pa.string())
            elif name == "latency_ms":
                envelope[name] = pa.array(rng_latency(self.rng, n))
            else:
                envelope[name] = pa.nulls(n, arrow)
        table = pa.table({**envelope, **values}, schema=model.layout.parsed_schema())
        return EventBatch(model.spec.name, table)

    def write(self, start: datetime, seconds: float, per_model: int = 0, poisson: float | None = None) -> int:
        """Write ``per_model`` events per model (or a Poisson number of mean ``poisson``) spread over ``seconds``
        from ``start``; one commit per 250 models, as the collector's writer groups batches."""
        counts = self.rng.poisson(poisson, len(self.models)) if poisson is not None else [per_model] * len(self.models)
        batches = [self.batch(m, start, seconds, int(n)) for m, n in zip(self.models, counts, strict=True) if n > 0]
        for i in range(0, len(batches), 250):
            self.store.append_events(batches[i : i + 250])
        return int(sum(counts))


def rng_latency(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.round(rng.lognormal(2.5, 0.5, n), 3)


def minute_floor(t: datetime) -> datetime:
    return t - timedelta(seconds=t.timestamp() % WINDOW_SECONDS)
