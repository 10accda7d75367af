"""``sustain drift REFERENCE CURRENT``: a drift report for two files, without a server.

The reference gives each column's bins (quantiles of a sample for numbers, see
:mod:`sustain.report.bins`) or its categories; both files are then
counted exactly in those bins in one streaming pass each
(:mod:`sustain.report.read`: row groups in parallel, never the
whole file in memory), and the calibrated decision of
:mod:`sustain.indicators.decide` runs on the counts. The reference can also be a
profile saved earlier (:mod:`sustain.report.profile`), which holds
the same bins, counts and sample. Only NumPy and PyArrow are imported on the
Parquet path; DuckDB loads for CSV, JSON and globs, SciPy only when a small file
takes an exact test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sustain.indicators.decide import (
    SAMPLE_TESTS,
    Assessment,
    DriftSettings,
    decide,
    insufficient,
    judge,
)
from sustain.report.bins import IntArray, NumericBins, Scratch
from sustain.report.html import Histogram
from sustain.report.profile import (
    ProfiledColumn,
    ReferenceProfile,
    is_profile,
    load_profile,
)
from sustain.report.read import Source, categories, numbers, open_source
from sustain.transforms.bins import OTHER

Progress = Callable[[str, float], None]
Schema = dict[str, tuple[str | None, str]]  # column -> (kind or None, type name)
EDGE_SAMPLE = 20_000
TOO_MANY_CATEGORIES = 10_000  # distinct strings in the reference: an identifier, not a category


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # numeric | categorical | boolean


def kind_of(arrow_type: pa.DataType) -> str | None:
    """How a column of this Arrow type is compared, or None when it is not.

    >>> kind_of(pa.int64()), kind_of(pa.dictionary(pa.int32(), pa.string())), kind_of(pa.date32())
    ('numeric', 'categorical', None)
    """
    t = pa.types
    if t.is_boolean(arrow_type):
        return "boolean"
    if t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return "numeric"
    if t.is_dictionary(arrow_type):
        return kind_of(arrow_type.value_type) if kind_of(arrow_type.value_type) == "categorical" else None
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return "categorical"
    return None


def _type_name(arrow_type: pa.DataType) -> str:
    return str(arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type)


@dataclass
class Tally:
    """Running counts of one file, per worker thread: rows, bin or category counts and missing values."""

    rows: int = 0
    bins: dict[int, IntArray] = field(default_factory=dict)
    categories: dict[int, dict[str, int]] = field(default_factory=dict)
    missing: dict[int, int] = field(default_factory=dict)
    scratch: Scratch = field(default_factory=Scratch)

    def merge(self, other: Tally) -> None:
        self.rows += other.rows
        for i, counts in other.bins.items():
            self.bins[i] += counts
        for i, found in other.categories.items():
            mine = self.categories[i]
            for key, count in found.items():
                mine[key] = mine.get(key, 0) + count
        for i, count in other.missing.items():
            self.missing[i] += count


class DriftReport:
    """Compare two data files column by column."""

    def __init__(
        self,
        settings: DriftSettings | None = None,
        *,
        bins: int = 20,
        max_categories: int = 100,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        if bins < 2:
            raise ValueError("bins must be at least 2")
        self.settings = settings if settings is not None else DriftSettings()
        self.bins = bins
        self.max_categories = max_categories
        self.seed = seed
        self.threads = threads

    def columns(self, ref: Schema, cur: Schema, only: Sequence[str] | None = None) -> tuple[list[Column], list[str]]:
        """Columns both sides share with a kind we can compare, and notes about the others."""
        notes = []
        chosen = []
        for name, (kind, type_name) in ref.items():
            if only is not None and name not in only:
                continue
            if name not in cur:
                notes.append(f"{name}: only in the reference")
                continue
            other, other_type = cur[name]
            if kind is None:
                notes.append(f"{name}: type {type_name} is not compared")
            elif other != kind:
                notes.append(f"{name}: {type_name} in the reference but {other_type} in the current file")
            else:
                chosen.append(Column(name, kind))
        for name in cur:
            if name not in ref and (only is None or name in only):
                notes.append(f"{name}: only in the current file")
        if only is not None:
            notes.extend(f"{name}: no such column" for name in only if name not in ref and name not in cur)
        return chosen, notes

    def _bins(self, reference: Source, columns: list[Column]) -> dict[int, NumericBins]:
        """Bins per numeric column, from a reproducible sample of the reference.

        The bins only have to be cut somewhere sensible; both files are then counted exactly in them, so a
        sample is enough.
        """
        numeric = [(i, c) for i, c in enumerate(columns) if c.kind == "numeric"]
        if not numeric:
            return {}
        sample = reference.sample([c.name for _, c in numeric], EDGE_SAMPLE, self.seed)
        return {i: NumericBins.from_sample(sample[c.name], self.bins) for i, c in numeric}

    def profile(self, reference: Path, progress: Progress | None = None) -> ReferenceProfile:
        """The profile of every comparable column of ``reference``, sample included, to save and reuse."""
        source = open_source(reference, self.threads)
        schema = schema_of(source)
        columns = [Column(name, kind) for name, (kind, _) in schema.items() if kind is not None]
        return self._profile(source, schema, columns, str(reference), progress, with_sample=True)

    def _profile(
        self,
        source: Source,
        schema: Schema,
        columns: list[Column],
        name: str,
        progress: Progress | None,
        with_sample: bool,
    ) -> ReferenceProfile:
        bins = self._bins(source, columns)
        tally = self._count(source, columns, bins, "reading the reference", progress)
        numeric = [c.name for c in columns if c.kind == "numeric"]
        sample = source.sample(numeric, self.sample_size, self.seed) if with_sample and numeric else {}
        profiled = []
        for i, c in enumerate(columns):
            found = tally.categories.get(i, {})
            identifier = c.kind == "categorical" and len(found) > TOO_MANY_CATEGORIES
            profiled.append(
                ProfiledColumn(
                    name=c.name,
                    kind=c.kind,
                    type=schema[c.name][1],
                    missing=tally.missing[i],
                    edges=bins[i].edges.tolist() if i in bins else None,
                    counts=bins[i].bin_counts(tally.bins[i]).astype(int).tolist() if i in bins else None,
                    categories=None if c.kind == "numeric" or identifier else found,
                    distinct=len(found) if identifier else None,
                    sample=sample[c.name].tolist() if c.name in sample else None,
                )
            )
        return ReferenceProfile(source=name, rows=tally.rows, bins=self.bins, seed=self.seed, columns=profiled)

    def _count(
        self,
        source: Source,
        columns: list[Column],
        bins: dict[int, NumericBins],
        label: str,
        progress: Progress | None,
        skip: frozenset[int] = frozenset(),
    ) -> Tally:
        """Count one file; columns in ``skip`` are not read."""
        chosen = [(i, c) for i, c in enumerate(columns) if i not in skip]

        def start() -> Tally:
            return Tally(
                bins={i: b.new_counts() for i, b in bins.items()},
                categories={i: {} for i, c in enumerate(columns) if c.kind != "numeric"},
                missing=dict.fromkeys(range(len(columns)), 0),
            )

        def add(tally: Tally, batch: pa.RecordBatch) -> None:
            tally.rows += batch.num_rows
            for i, c in chosen:
                array = batch.column(c.name)
                if c.kind == "numeric":
                    values, missing = numbers(array)
                    bins[i].add(values, tally.bins[i], tally.scratch)
                else:
                    found, missing = categories(array)
                    mine = tally.categories[i]
                    for key, count in found.items():
                        mine[key] = mine.get(key, 0) + count
                tally.missing[i] += missing

        report = (lambda done: progress(label, done)) if progress is not None else None
        tallies = source.scan([c.name for _, c in chosen], start, add, report)
        total = tallies[0]
        for other in tallies[1:]:
            total.merge(other)
        if progress is not None:
            progress(label, 1.0)
        return total

    def run(
        self, reference: Path, current: Path, only: Sequence[str] | None = None, progress: Progress | None = None
    ) -> tuple[list[Assessment], list[str], dict[str, int]]:
        """Compare ``current`` with ``reference``: a data file, or a profile saved by :meth:`profile`.

        Raises :class:`sustain.report.read.DataReadError` when a file cannot be read, and
        :class:`sustain.report.profile.ProfileError` for a bad profile.
        """
        if progress is not None:
            progress("reading the reference", 0.0)
        ref_source: Source | None = None
        ref_schema: Schema
        if is_profile(reference):
            profile = load_profile(reference)
            ref_schema = {c.name: (c.kind, c.type) for c in profile.columns}
        else:
            ref_source = open_source(reference, self.threads)
            ref_schema = schema_of(ref_source)
        cur_source = open_source(current, self.threads)
        columns, notes = self.columns(ref_schema, schema_of(cur_source), only)
        if ref_source is not None:
            profile = self._profile(ref_source, ref_schema, columns, str(reference), progress, with_sample=False)
        elif profile.bins != self.bins:
            notes.append(f"numbers are cut into the profile's {profile.bins} bins")
        bins, ref, identifiers = _from_profile(profile, columns)
        cur = self._count(cur_source, columns, bins, "scanning the current data", progress, frozenset(identifiers))
        samples = self._samples(profile, ref_source, cur_source, columns, cur.rows)
        assessed = [
            self._assess(i, c, bins.get(i), ref, cur, samples, len(columns), identifiers.get(i))
            for i, c in enumerate(columns)
        ]
        decide(assessed, self.settings.alpha, self.settings.correction)
        return assessed, notes, {"reference_rows": ref.rows, "current_rows": cur.rows}

    def _samples(
        self,
        profile: ReferenceProfile,
        reference: Source | None,
        current: Source,
        columns: list[Column],
        current_rows: int,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Raw values for exact tests, only when the current data is small enough to take one."""
        if current_rows > self.settings.exact_max and self.settings.test not in SAMPLE_TESTS:
            return {}
        numeric = [c.name for c in columns if c.kind == "numeric"]
        if not numeric:
            return {}
        if reference is not None:
            ref = reference.sample(numeric, self.sample_size, self.seed)
        else:
            ref = {n: np.asarray(profile.column(n).sample or [], dtype=float) for n in numeric}
        cur = current.sample(numeric, self.sample_size, self.seed)
        return {n: (ref[n].copy(), cur[n].copy()) for n in numeric}

    @property
    def sample_size(self) -> int:
        """Values kept per numeric column for exact tests."""
        return max(self.settings.exact_max, 5000)

    def _assess(
        self,
        i: int,
        c: Column,
        bins: NumericBins | None,
        ref: Tally,
        cur: Tally,
        samples: dict[str, tuple[np.ndarray, np.ndarray]],
        n_columns: int,
        distinct: int | None = None,
    ) -> Assessment:
        """``distinct`` is set for an identifier column: too many categories to compare."""
        edges: list[float] | None = None
        keys: list[str] = []
        if bins is not None:
            edges = bins.edges.tolist()
            ref_counts, cur_counts = bins.bin_counts(ref.bins[i]), bins.bin_counts(cur.bins[i])
        elif distinct is not None:
            reason = f"{distinct:,} distinct values in the reference: an identifier, not compared"
            return insufficient(c.name, c.kind, cur.rows - cur.missing[i], reason)
        else:
            # Every category of either side is a bin of its own: which categories the test sees separately must
            # not be chosen by the reference alone: categories it happened to see are over-represented in it.
            ref_map, cur_map = ref.categories[i], cur.categories[i]
            keys = sorted(ref_map, key=lambda k: (-ref_map[k], k))
            keys += sorted((k for k in cur_map if k not in ref_map), key=lambda k: (-cur_map[k], k))
            ref_counts = np.array([ref_map.get(k, 0) for k in keys] + [0], dtype=float)
            cur_counts = np.array([cur_map.get(k, 0) for k in keys] + [0], dtype=float)
            keys = [*keys, OTHER]  # empty, so that a single category still makes two bins
        n = int(cur_counts.sum())
        if edges is not None:
            histogram = Histogram.numeric(edges, ref_counts.tolist(), cur_counts.tolist())
        else:
            histogram = _category_histogram(keys[:-1], ref_counts[:-1], cur_counts[:-1], self.max_categories)
        if n == 0 or ref_counts.sum() == 0:
            result = insufficient(c.name, c.kind, n, "no values on one side")
            result.details["histogram"] = histogram
            return result
        result = judge(
            c.name,
            c.kind,
            ref_counts,
            cur_counts,
            self.settings,
            columns=n_columns,
            seed=self.seed + i,
            samples=samples.get(c.name),
            keys=keys,
            edges=edges,
        )
        result.details["missing"] = cur.missing[i]
        result.details["histogram"] = histogram
        return result


def schema_of(source: Source) -> Schema:
    """Each column's kind (None: not compared) and type, as the notes name it."""
    return {f.name: (kind_of(f.type), _type_name(f.type)) for f in source.schema}


def _from_profile(
    profile: ReferenceProfile, columns: list[Column]
) -> tuple[dict[int, NumericBins], Tally, dict[int, int]]:
    """The chosen columns' bins, the reference's counts as a :class:`Tally`, and the identifier columns with
    their number of distinct values."""
    bins: dict[int, NumericBins] = {}
    identifiers: dict[int, int] = {}
    tally = Tally(rows=profile.rows)
    for i, c in enumerate(columns):
        saved = profile.column(c.name)
        tally.missing[i] = saved.missing
        if c.kind == "numeric":
            bins[i] = NumericBins(np.asarray(saved.edges, dtype=float))
            tally.bins[i] = np.cumsum(np.asarray(saved.counts, dtype=np.int64))  # running counts, see NumericBins
        elif saved.categories is None:
            identifiers[i] = saved.distinct or 0
            tally.categories[i] = {}
        else:
            tally.categories[i] = dict(saved.categories)
    return bins, tally, identifiers


def _category_histogram(keys: list[str], ref_counts: np.ndarray, cur_counts: np.ndarray, shown: int) -> Histogram:
    """The first ``shown`` categories (the reference's most frequent first, then new ones), the rest as one
    "(other)" bar."""
    labels, ref_shown, cur_shown = keys[:shown], ref_counts[:shown].tolist(), cur_counts[:shown].tolist()
    if len(keys) > shown:
        labels = [*labels, "(other)"]
        ref_shown.append(float(ref_counts[shown:].sum()))
        cur_shown.append(float(cur_counts[shown:].sum()))
    return Histogram(labels, ref_shown, cur_shown)


def histograms(assessed: list[Assessment]) -> dict[str, Histogram]:
    """The counts behind each compared column, for the HTML report's charts."""
    return {a.name: a.details["histogram"] for a in assessed if "histogram" in a.details}


def as_rows(assessed: list[Assessment]) -> list[dict[str, Any]]:
    """The ``--json`` shape: one object per column."""
    return [
        {
            "column": a.name,
            "kind": a.kind,
            "method": a.method or None,
            "value": a.value,
            "p_value": a.p_value,
            "p_adjusted": a.p_adjusted,
            "threshold": a.threshold,
            "n": a.n,
            "status": a.status,
            "drifted": a.status == "alert",
            **({"reason": a.details["reason"]} if "reason" in a.details else {}),
        }
        for a in assessed
    ]
