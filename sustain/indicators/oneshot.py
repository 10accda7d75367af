"""``sustain drift REFERENCE CURRENT``: a drift report for two files, without a server.

One pass over each file with DuckDB (Parquet or CSV, read in parallel and
never loaded whole): the reference gives each column's quantile bins (or its
category counts), the current file is counted in those bins, and the
calibrated decision of :mod:`sustain.indicators.decide` runs on the counts.
Only NumPy and DuckDB are imported on the common path; SciPy loads only when
a small file takes an exact test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from sustain.indicators.decide import (
    MIN_EFFECT,
    SAMPLE_TESTS,
    Assessment,
    Correction,
    assess,
    check_settings,
    choose_test,
    decide,
    distance_for,
    insufficient,
)

NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
)
Progress = Callable[[str, float], None]
EDGE_SAMPLE = 20_000


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # numeric | categorical | boolean


def _source(path: Path) -> str:
    text = str(path).replace("'", "''")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt") or str(path).endswith(".csv.gz"):
        return f"read_csv('{text}', auto_detect=true)"
    if suffix in (".json", ".ndjson", ".jsonl"):
        return f"read_json_auto('{text}')"
    return f"read_parquet('{text}')"


def _kind(sql_type: str) -> str | None:
    upper = sql_type.upper()
    if upper == "BOOLEAN":
        return "boolean"
    if upper in NUMERIC_TYPES or upper.startswith("DECIMAL"):
        return "numeric"
    if upper in ("VARCHAR", "ENUM") or upper.startswith("ENUM"):
        return "categorical"
    return None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DriftReport:
    """Compare two data files column by column."""

    def __init__(
        self,
        *,
        alpha: float = 0.01,
        correction: Correction = "bh",
        method: str = "auto",
        test: str = "auto",
        bins: int = 20,
        min_effect: float | None = None,
        draws: int = 400,
        exact_max: int = 1000,
        max_categories: int = 100,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        check_settings(alpha=alpha, correction=correction, method=method, test=test)
        self.alpha = alpha
        self.correction: Correction = correction
        self.method = method
        self.test = test
        self.bins = bins
        self.min_effect = min_effect
        self.draws = draws
        self.exact_max = exact_max
        self.max_categories = max_categories
        self.seed = seed
        self.con = duckdb.connect(config={"threads": threads} if threads else {})

    def columns(
        self, reference: Path, current: Path, only: Sequence[str] | None = None
    ) -> tuple[list[Column], list[str]]:
        """Columns both files share with a kind we can compare, and notes about the others."""
        ref = {r[0]: r[1] for r in self.con.sql(f"DESCRIBE SELECT * FROM {_source(reference)}").fetchall()}
        cur = {r[0]: r[1] for r in self.con.sql(f"DESCRIBE SELECT * FROM {_source(current)}").fetchall()}
        notes = []
        chosen = []
        for name, sql_type in ref.items():
            if only is not None and name not in only:
                continue
            if name not in cur:
                notes.append(f"{name}: only in the reference")
                continue
            kind = _kind(sql_type)
            other = _kind(cur[name])
            if kind is None:
                notes.append(f"{name}: type {sql_type} is not compared")
            elif other != kind and not (kind == "numeric" and other == "numeric"):
                notes.append(f"{name}: {sql_type} in the reference but {cur[name]} in the current file")
            else:
                chosen.append(Column(name, kind))
        for name in cur:
            if name not in ref and (only is None or name in only):
                notes.append(f"{name}: only in the current file")
        if only is not None:
            notes.extend(f"{name}: no such column" for name in only if name not in ref and name not in cur)
        return chosen, notes

    def _query(self, sql: str, label: str, progress: Progress | None) -> dict[str, Any]:
        """Run ``sql`` returning one row, reporting DuckDB's progress while it runs."""
        result: dict[str, Any] = {}
        failure: list[BaseException] = []
        if progress is None:
            relation = self.con.sql(sql)
            return dict(zip(relation.columns, relation.fetchall()[0], strict=True))

        def run() -> None:
            try:
                cur = self.con.cursor()
                row = cur.sql(sql)
                names = row.columns
                values = row.fetchall()[0]
                result.update(zip(names, values, strict=True))
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        while worker.is_alive():
            worker.join(0.02)
            if progress is not None:
                try:
                    done = self.con.query_progress()
                except duckdb.Error:
                    done = -1
                progress(label, max(0.0, float(done)) / 100.0 if done and done > 0 else 0.0)
        if failure:
            raise failure[0]
        if progress is not None:
            progress(label, 1.0)
        return result

    def _edges(self, path: Path, columns: list[Column]) -> dict[int, list[float]]:
        """Quantile bin edges per numeric column, from a reproducible sample of the reference.

        Edges only define the bins; both files are then counted exactly in them, so a sample is enough. A
        column with at most ``bins`` distinct values gets one bin per value.
        """
        numeric = [(i, c) for i, c in enumerate(columns) if c.kind == "numeric"]
        if not numeric:
            return {}
        points = ", ".join(repr(k / self.bins) for k in range(1, self.bins))
        sample = (
            f"(SELECT {', '.join(_q(c.name) for _, c in numeric)} FROM {_source(path)}"
            f" USING SAMPLE reservoir({EDGE_SAMPLE} ROWS) REPEATABLE ({self.seed}))"
        )
        parts = []
        for _, c in numeric:
            col = _q(c.name)
            parts += [f"quantile_cont({col}::DOUBLE, [{points}])", f"approx_count_distinct({col})"]
        row = self.con.sql(f"SELECT {', '.join(parts)} FROM {sample}").fetchall()[0]
        edges: dict[int, list[float]] = {}
        discrete = []
        for k, (i, _) in enumerate(numeric):
            quantiles, distinct = row[2 * k], row[2 * k + 1]
            edges[i] = sorted({float(x) for x in (quantiles or [])})
            if (distinct or 0) <= self.bins + 2:
                discrete.append(i)
        if discrete:
            lists = ", ".join(f"list_sort(list_distinct(list({_q(columns[i].name)}::DOUBLE)))" for i in discrete)
            for i, values in zip(discrete, self.con.sql(f"SELECT {lists} FROM {sample}").fetchall()[0], strict=True):
                distinct_values = [float(x) for x in (values or [])]
                if len(distinct_values) <= self.bins:
                    edges[i] = distinct_values[:-1]
        return edges

    def _counts_sql(self, columns: list[Column], edges: dict[int, list[float]], kinds: tuple[str, ...]) -> str:
        parts = ["count(*) AS rows"]
        for i, c in enumerate(columns):
            if c.kind not in kinds:
                continue
            col = _q(c.name)
            if c.kind == "numeric":
                boundaries = "[" + ", ".join(repr(e) for e in edges[i]) + "]::DOUBLE[]"
                parts.append(f"histogram({col}::DOUBLE, {boundaries}) AS b{i}" if edges[i] else f"count({col}) AS b{i}")
            else:
                parts.append(f"histogram({col}::VARCHAR) AS h{i}")
            parts.append(f"count(*) - count({col}) AS m{i}")
        return ", ".join(parts)

    def _counts(
        self,
        path: Path,
        columns: list[Column],
        edges: dict[int, list[float]],
        label: str,
        progress: Progress | None,
        split: bool,
    ) -> dict[str, Any]:
        """Bin and category counts of one file. With ``split``, numbers and strings are scanned separately: reading
        both in one pass holds every column's decoded pages at once and peaks at nearly twice the memory of a big
        file, for no speed."""
        counts: dict[str, Any] = {}
        groups = (("numeric",), ("categorical", "boolean")) if split else (("numeric", "categorical", "boolean"),)
        for kinds in groups:
            if any(c.kind in kinds for c in columns) or not counts:
                select = self._counts_sql(columns, edges, kinds)
                counts.update(self._query(f"SELECT {select} FROM {_source(path)}", label, progress))
        return counts

    def run(
        self, reference: Path, current: Path, only: Sequence[str] | None = None, progress: Progress | None = None
    ) -> tuple[list[Assessment], list[str], dict[str, int]]:
        columns, notes = self.columns(reference, current, only)
        if progress is not None:
            progress("reading the reference", 0.0)
        edges = self._edges(reference, columns)
        ref_counts = self._counts(reference, columns, edges, "reading the reference", progress, split=False)
        cur_counts = self._counts(current, columns, edges, "scanning the current data", progress, split=True)
        samples = self._samples(reference, current, columns, cur_counts)
        assessed = []
        for i, c in enumerate(columns):
            assessed.append(self._assess(i, c, edges.get(i), ref_counts, cur_counts, samples, len(columns)))
        decide(assessed, self.alpha, self.correction)
        return assessed, notes, {"reference_rows": int(ref_counts["rows"]), "current_rows": int(cur_counts["rows"])}

    def _samples(
        self, reference: Path, current: Path, columns: list[Column], cur_counts: dict[str, Any]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Raw values for exact tests, only when the current data is small enough to take one."""
        if cur_counts["rows"] > self.exact_max and self.test not in SAMPLE_TESTS:
            return {}
        numeric = [c.name for c in columns if c.kind == "numeric"]
        if not numeric:
            return {}
        cols = ", ".join(f"{_q(n)}::DOUBLE AS {_q(n)}" for n in numeric)
        limit = max(self.exact_max, 5000)
        ref = self.con.sql(
            f"SELECT {cols} FROM {_source(reference)} USING SAMPLE reservoir({limit} ROWS) REPEATABLE ({self.seed})"
        ).fetchnumpy()
        cur = self.con.sql(
            f"SELECT {cols} FROM {_source(current)} USING SAMPLE reservoir({limit} ROWS) REPEATABLE ({self.seed})"
        ).fetchnumpy()

        def clean(values: Any) -> np.ndarray:
            arr = np.ma.filled(np.ma.asarray(values).astype(float), np.nan)
            return np.asarray(arr[~np.isnan(arr)], dtype=float)

        return {n: (clean(ref[n]), clean(cur[n])) for n in numeric}

    def _assess(
        self,
        i: int,
        c: Column,
        edges: list[float] | None,
        ref: dict[str, Any],
        cur: dict[str, Any],
        samples: dict[str, tuple[np.ndarray, np.ndarray]],
        n_columns: int,
    ) -> Assessment:
        if c.kind == "numeric":
            ref_counts = _bin_vector(ref[f"b{i}"], edges or [])
            cur_counts = _bin_vector(cur[f"b{i}"], edges or [])
            keys: list[str] = []
        else:
            ref_map = dict(_pairs(ref[f"h{i}"]))
            cur_map = dict(_pairs(cur[f"h{i}"]))
            keys = [k for k, _ in sorted(ref_map.items(), key=lambda kv: (-kv[1], kv[0]))][: self.max_categories]
            other_ref = sum(v for k, v in ref_map.items() if k not in keys)
            other_cur = sum(v for k, v in cur_map.items() if k not in keys)
            ref_counts = np.array([ref_map[k] for k in keys] + [other_ref], dtype=float)
            cur_counts = np.array([cur_map.get(k, 0) for k in keys] + [other_cur], dtype=float)
            keys = [*keys, "__other__"]
        n = int(cur_counts.sum())
        if n == 0 or ref_counts.sum() == 0:
            return insufficient(c.name, c.kind, n, "no values on one side")
        distance = distance_for(self.method, c.kind, edges)
        test = choose_test(self.test, c.kind, n, self.exact_max, ref_counts, cur_counts)
        result = assess(
            c.name,
            c.kind,
            ref_counts,
            cur_counts,
            distance=distance,
            test=test,
            floor=self.min_effect if self.min_effect is not None else MIN_EFFECT[distance],
            alpha=self.alpha,
            columns=n_columns,
            correction=self.correction,
            draws=self.draws,
            seed=self.seed + i,
            samples=samples.get(c.name),
            true_index=[k for k, key in enumerate(keys) if key in ("true", "__other__")],
            edges=edges if c.kind == "numeric" else None,
        )
        result.details["missing"] = int(cur[f"m{i}"])
        return result


def _pairs(value: Any) -> list[tuple[Any, int]]:
    if not value:
        return []
    return list(value.items()) if isinstance(value, dict) else list(value)


def _bin_vector(histogram: Any, edges: list[float]) -> np.ndarray:
    counts = np.zeros(len(edges) + 1)
    if not edges:
        counts[0] = float(histogram or 0)
        return counts
    index = {float(e): k for k, e in enumerate(edges)}
    for boundary, count in _pairs(histogram):
        counts[index.get(float(boundary), len(edges))] += count
    return counts


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
