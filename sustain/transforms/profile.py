"""Reference profiles: what the reference data looked like, compact enough to keep forever.

A profile is computed once when reference data is uploaded. Per feature and
output it keeps the bin edges (quantile bins for numbers; the category set,
with room for unseen values, for categories), the counts in those bins,
summary statistics, and a bounded sample for the tests that need raw values.
Drift is then computed from window aggregates against the profile; the raw
reference is not needed again. With a label, a second and larger bounded
sample keeps only the outputs and the label of labelled rows: estimation
recalibrates the model's scores on it.

Bins are right-closed, ``(-inf, e0], (e0, e1], ..., (e_last, +inf)``, the
convention of DuckDB's ``histogram(x, boundaries)`` and of the Elasticsearch
``range`` filters the transforms generate.

>>> import pyarrow as pa
>>> t = pa.table({"f:x": [float(i) for i in range(100)], "f:c": ["a"] * 70 + ["b"] * 30})
>>> p = build_profile("m", "1", t, {"f:x": "numeric", "f:c": "categorical"}, bins=4)
>>> p.columns["f:x"].edges, p.columns["f:x"].counts
([24.75, 49.5, 74.25], [25, 25, 25, 25])
>>> p.columns["f:c"].categories
{'a': 70, 'b': 30}
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sustain.transforms.bins import OTHER as OTHER  # one name for the bin, re-exported for the transforms
from sustain.transforms.edges import quantile_edges

QUANTILE_POINTS = 101


@dataclass
class ColumnProfile:
    """The reference distribution of one stored column."""

    column: str
    kind: str  # numeric | categorical | boolean | text | embedding
    n: int
    missing: int
    edges: list[float] | None = None
    counts: list[int] | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: list[float] | None = None
    categories: dict[str, int] | None = None

    @property
    def measured(self) -> str:
        """What the bins measure: the value, or a number derived from it (text length, embedding norm)."""
        return {"text": "length", "embedding": "norm"}.get(self.kind, "value")

    @property
    def binned(self) -> bool:
        return self.edges is not None

    def bin_counts(self, values: npt.NDArray[np.float64]) -> list[int]:
        """Counts of ``values`` in this profile's bins (NaN ignored)."""
        assert self.edges is not None
        finite = values[np.isfinite(values)]
        idx = np.searchsorted(np.asarray(self.edges), finite, side="left")
        return [int(c) for c in np.bincount(idx, minlength=len(self.edges) + 1)]

    def category_counts(self, counts: dict[str, int]) -> dict[str, int]:
        """Fold observed category counts onto this profile's categories; the rest go to ``__other__``."""
        known = self.categories or {}
        folded = dict.fromkeys(known, 0)
        other = 0
        for key, value in counts.items():
            if key in folded:
                folded[key] += value
            else:
                other += value
        if other or OTHER in folded:
            folded[OTHER] = folded.get(OTHER, 0) + other
        return folded


@dataclass
class ReferenceProfile:
    model: str
    version: str
    rows: int
    columns: dict[str, ColumnProfile]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sample: dict[str, list[Any]] = field(default_factory=dict)
    # Labelled rows, outputs and label only, bounded on their own (larger) budget: what estimation recalibrates on.
    labelled: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["created_at"] = self.created_at.isoformat()
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, data: bytes | str) -> ReferenceProfile:
        body = orjson.loads(data)
        columns = {k: _readable(ColumnProfile(**v)) for k, v in body.pop("columns").items()}
        created = datetime.fromisoformat(body.pop("created_at"))
        return cls(columns=columns, created_at=created, **body)

    def fingerprint(self) -> str:
        """Identifies the binning (edges and category sets) this profile implies."""
        parts = []
        for name in sorted(self.columns):
            c = self.columns[name]
            parts.append((name, c.edges, sorted(c.categories) if c.categories else None))
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]

    def sample_array(self, column: str) -> npt.NDArray[np.float64]:
        """The bounded sample of a numeric column as floats (missing values dropped), converted once (read-only:
        every window of the model tests against it).

        >>> import pickle
        >>> profile = ReferenceProfile("m", "1", 3, {}, sample={"x": [1.0, None, 2.5]})
        >>> profile.sample_array("x") is profile.sample_array("x"), profile.sample_array("x").tolist()
        (True, [1.0, 2.5])
        >>> copy = pickle.loads(pickle.dumps(profile))  # as sent to an indicator worker: without the arrays
        >>> copy == profile, "_sample_arrays" in copy.__dict__
        (True, False)
        """
        arrays: dict[str, npt.NDArray[np.float64]] = self.__dict__.setdefault("_sample_arrays", {})
        found = arrays.get(column)
        if found is None:
            found = np.asarray([v for v in self.sample.get(column, []) if v is not None], dtype=np.float64)
            found.flags.writeable = False
            arrays[column] = found
        return found

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the converted samples (they are rebuilt where needed)."""
        return {k: v for k, v in self.__dict__.items() if k != "_sample_arrays"}


def _readable(column: ColumnProfile) -> ColumnProfile:
    """A stored column profile whose edges are all numbers. Profiles stored before infinity was refused may
    hold an edge JSON wrote as null: such a column is read as unbinned (no drift on it) until a new reference
    replaces the profile, instead of failing every transform of the model."""
    if column.edges is not None and any(e is None or not math.isfinite(e) for e in column.edges):
        column.edges = column.counts = None
    return column


def binning_profile(profiles: list[ReferenceProfile], version: str | None) -> ReferenceProfile | None:
    """The profile whose bins every window of a model uses: ``version`` (the spec's reference version) when it
    is among ``profiles``, else the first reference uploaded (``profiles`` are oldest first)."""
    if version is not None:
        for p in profiles:
            if p.version == version:
                return p
    return profiles[0] if profiles else None


def numeric_values(arr: pa.ChunkedArray | pa.Array, kind: str) -> npt.NDArray[np.float64]:
    """The numbers a column is binned on: its value, a text's length or an embedding's norm (NaN for null)."""
    if kind == "text":
        arr = pc.utf8_length(arr)
    elif kind == "embedding":
        flat = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        dim = flat.type.list_size
        values = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        norms = np.full(len(flat), np.nan)
        valid = np.asarray(flat.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        norms[valid] = np.linalg.norm(values.reshape(-1, dim), axis=1)
        return norms
    return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def numeric_profile(
    column: str, kind: str, values: npt.NDArray[np.float64], bins: int, edges: list[float] | None = None
) -> ColumnProfile:
    # Infinity is never a bin edge or a statistic (the collector refuses it; a profile is built from what is
    # stored): it counts as missing, like NaN.
    finite = values[np.isfinite(values)]
    profile = ColumnProfile(column=column, kind=kind, n=len(values), missing=int(len(values) - len(finite)))
    if len(finite) == 0:
        return profile
    profile.edges = edges if edges is not None else quantile_edges(finite, bins).tolist()
    profile.counts = profile.bin_counts(finite)
    profile.mean = float(finite.mean())
    profile.std = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
    profile.min = float(finite.min())
    profile.max = float(finite.max())
    profile.quantiles = [float(q) for q in np.quantile(finite, np.linspace(0, 1, QUANTILE_POINTS))]
    return profile


def category_profile(column: str, kind: str, arr: pa.ChunkedArray | pa.Array, max_categories: int) -> ColumnProfile:
    if kind == "boolean":
        arr = pc.if_else(arr, "true", "false")
    counts = pc.value_counts(arr.drop_null() if hasattr(arr, "drop_null") else arr)
    pairs = sorted(((str(v["values"]), int(v["counts"])) for v in counts.to_pylist()), key=lambda p: (-p[1], p[0]))
    kept = dict(pairs[:max_categories])
    rest = sum(c for _, c in pairs[max_categories:])
    if rest:
        kept[OTHER] = rest
    missing = int(arr.null_count)
    return ColumnProfile(column=column, kind=kind, n=len(arr), missing=missing, categories=kept)


def build_profile(
    model: str,
    version: str,
    table: pa.Table,
    kinds: dict[str, str],
    *,
    bins: int = 20,
    max_categories: int = 100,
    sample_size: int = 5000,
    binning: ReferenceProfile | None = None,
    seed: int = 0,
    labelled_size: int = 0,
) -> ReferenceProfile:
    """Profile every column of ``table`` named in ``kinds`` (storage column → kind).

    With ``binning``, numeric columns reuse its edges, so window counts computed with the model's
    binning line up with every version's reference.
    """
    columns: dict[str, ColumnProfile] = {}
    for name, kind in kinds.items():
        if name not in table.column_names:
            continue
        arr = table.column(name)
        if kind in ("categorical", "boolean", "class_label"):
            columns[name] = category_profile(name, kind, arr, max_categories)
        else:
            known = binning.columns.get(name) if binning is not None else None
            edges = known.edges if known is not None and known.edges is not None else None
            columns[name] = numeric_profile(name, kind, numeric_values(arr, kind), bins, edges)
    rows = table.num_rows
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(rows, size=min(rows, sample_size), replace=False)) if rows else np.array([], int)
    sampled = table.take(pa.array(take, pa.int64())) if rows else table
    sample = {name: _plain(sampled.column(name)) for name in kinds if name in table.column_names}
    labelled = _labelled_sample(table, [name for name in kinds if name.startswith("o:")], labelled_size, rng)
    return ReferenceProfile(model=model, version=version, rows=rows, columns=columns, sample=sample, labelled=labelled)


def _labelled_sample(table: pa.Table, outputs: list[str], size: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    """Up to ``size`` rows that have a label, with the outputs and the label only."""
    if size <= 0 or "label" not in table.column_names:
        return {}
    rows = np.flatnonzero(np.asarray(table.column("label").is_valid().to_numpy(zero_copy_only=False), dtype=bool))
    if rows.size == 0:
        return {}
    take = np.sort(rng.choice(rows, size=min(rows.size, size), replace=False))
    chosen = table.select([c for c in [*outputs, "label"] if c in table.column_names]).take(pa.array(take, pa.int64()))
    return {name: _plain(chosen.column(name)) for name in chosen.column_names}


def _plain(arr: pa.ChunkedArray) -> list[Any]:
    values = arr.to_pylist()
    return [list(v) if isinstance(v, tuple) else v for v in values]
