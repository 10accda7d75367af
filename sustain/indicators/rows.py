"""Rows of a window or of the reference under the spec's own names, as NumPy arrays or a pandas DataFrame.

What a plugin author reads instead of storage columns (``f:age``, ``o:proba:yes``) and Arrow arrays:

* a feature is a column named after the feature (``age``), an output after the output (``prediction``);
* class scores are one column per class, ``<output>.<class>`` (``proba.yes``): the naming reference files
  already use, and the ``feature`` of the indicator documents written about that column;
* the joined label is ``label`` (missing until it arrives).

Numbers are ``float64`` with NaN for missing; categories, class labels and text are strings (``None`` for
missing); booleans are ``True``/``False``/``None``; embeddings are one ``float32`` array per row.

Rows are a bounded sample, and say so: ``n`` rows of the ``total`` the window (or the reference) holds, with
``sampled`` true when some were left out. The window's rows are a seeded random sample of its events; the
reference's are the sample its profile kept (``reference.sample_size`` in the spec).

>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"age": "numeric"},
...     "outputs": {"proba": {"kind": "class_scores", "classes": ["no", "yes"]}}, "label": {"kind": "class_label"}})
>>> rows = Rows.from_columns(spec, {"f:age": [30.0, None], "o:proba:no": [0.9, 0.4], "o:proba:yes": [0.1, 0.6],
...     "label": ["no", None]}, of="reference", total=1000)
>>> rows
Rows(of='reference', n=2, total=1000, names=['age', 'proba.no', 'proba.yes', 'label'])
>>> rows.sampled, rows["age"].tolist(), rows.columns_of("proba")
(True, [30.0, nan], ['proba.no', 'proba.yes'])
>>> rows.scores("proba").tolist()
[[0.9, 0.1], [0.4, 0.6]]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sustain.errors import MissingDependency
from sustain.spec import ModelSpec
from sustain.store.layout import Column, Layout

if TYPE_CHECKING:
    import pandas as pd

Of = Literal["window", "reference"]
LABEL = "label"


def public_name(column: Column) -> str:
    """The name a stored value column has in :class:`Rows`: ``age``, ``prediction``, ``proba.yes``."""
    return column.key if column.cls is None else f"{column.key}.{column.cls}"


@dataclass(frozen=True)
class _Field:
    storage: str  # f:age, o:proba:yes, label
    name: str  # age, proba.yes, label
    group: str  # the feature, output or label it belongs to
    kind: str  # how values are held: number, string, boolean or embedding


def _fields(spec: ModelSpec, storage: Sequence[str]) -> list[_Field]:
    """Name and kind of each stored column; a clash (a feature named ``label`` or ``proba.yes``) is refused."""
    layout = Layout.of(spec)
    fields = []
    for name in storage:
        if name == LABEL:
            regression = spec.label is not None and spec.label.kind == "regression"
            fields.append(_Field(LABEL, LABEL, LABEL, "number" if regression else "string"))
            continue
        column = layout.column(name)
        kind = "number" if column.is_numeric else {"boolean": "boolean", "embedding": "embedding"}.get(column.kind)
        fields.append(_Field(name, public_name(column), column.key, kind or "string"))
    seen: dict[str, str] = {}
    for f in fields:
        if f.name in seen:
            raise ValueError(
                f"two columns would be named {f.name!r} ({seen[f.name]} and {f.storage}); "
                "rename the feature or output in the spec, or leave the label out (labels=False)"
            )
        seen[f.name] = f.storage
    return fields


def _from_list(values: Sequence[Any], kind: str) -> npt.NDArray[Any]:
    if kind == "number":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is not None and kind == "embedding":
            v = np.asarray(v, dtype=np.float32)
        elif v is not None and kind == "string":
            v = str(v)
        out[i] = v
    return out


def _from_arrow(values: pa.ChunkedArray | pa.Array, kind: str) -> npt.NDArray[Any]:
    if kind == "number":
        return np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return _from_list(values.to_pylist(), kind)


@dataclass(frozen=True, repr=False)
class Rows:
    """A bounded sample of rows: ``n`` of the ``total`` the window or the reference (``of``) holds."""

    of: Of
    total: int
    data: Mapping[str, npt.NDArray[Any]]  # public name → one value per row
    fields: tuple[_Field, ...]

    @classmethod
    def from_table(cls, spec: ModelSpec, table: pa.Table, *, of: Of, total: int) -> Rows:
        """Rows from an Arrow table of storage columns (``f:age``, ``o:proba:yes``, ``label``)."""
        fields = _fields(spec, table.column_names)
        return cls(of, total, {f.name: _from_arrow(table.column(f.storage), f.kind) for f in fields}, tuple(fields))

    @classmethod
    def from_columns(cls, spec: ModelSpec, columns: Mapping[str, Sequence[Any]], *, of: Of, total: int) -> Rows:
        """Rows from lists of plain values by storage column (a reference profile's sample)."""
        fields = _fields(spec, list(columns))
        return cls(of, total, {f.name: _from_list(columns[f.storage], f.kind) for f in fields}, tuple(fields))

    @property
    def n(self) -> int:
        """Rows here."""
        return len(next(iter(self.data.values()))) if self.data else 0

    @property
    def sampled(self) -> bool:
        """True when the window (or reference) holds rows that are not here."""
        return self.n < self.total

    @property
    def names(self) -> list[str]:
        return list(self.data)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        try:
            return self.data[name]
        except KeyError:
            raise KeyError(f"no column {name!r} in these rows; they have {', '.join(self.data) or 'none'}") from None

    def __repr__(self) -> str:
        return f"Rows(of={self.of!r}, n={self.n}, total={self.total}, names={self.names})"

    def columns_of(self, name: str) -> list[str]:
        """The columns of a feature, output or the label: ``['proba.no', 'proba.yes']`` for class scores."""
        columns = [f.name for f in self.fields if f.group == name]
        if not columns:
            groups = ", ".join(dict.fromkeys(f.group for f in self.fields)) or "none"
            raise KeyError(f"no feature or output {name!r} in these rows; they have {groups}")
        return columns

    def scores(self, output: str) -> npt.NDArray[np.float64]:
        """An output's class scores as an ``n x classes`` matrix (NaN where a score is missing)."""
        columns = self.columns_of(output)
        return np.column_stack([np.asarray(self.data[c], dtype=np.float64) for c in columns])

    def arrays(self, names: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """The columns as NumPy arrays by name: all, or those of the features and outputs in ``names``."""
        return {c: self.data[c] for c in self._select(names)}

    def _select(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return list(self.data)
        return [c for name in names for c in self.columns_of(name)]

    def frame(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows as a pandas DataFrame: every column, or those of the features and outputs in ``names``.

        Only this method needs pandas. ``frame.attrs`` holds ``of``, ``n`` and ``total``.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise MissingDependency(
                "Rows.frame() needs pandas (pip install pandas); Rows.arrays() gives the same columns as NumPy arrays"
            ) from exc
        columns: dict[str, Any] = {}
        booleans = {f.name for f in self.fields if f.kind == "boolean"}
        for name in self._select(names):
            values = self.data[name]
            columns[name] = pd.array(values, dtype="boolean") if name in booleans else values
        frame = pd.DataFrame(columns, index=pd.RangeIndex(self.n))
        frame.attrs.update({"of": self.of, "n": self.n, "total": self.total})
        return frame
