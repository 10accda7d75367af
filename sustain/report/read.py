"""Data files as Arrow record batches, for the one-shot drift report.

A single Parquet file is read with ``pyarrow.parquet``, one row group per worker thread, so decoding and
counting share the machine's cores and memory stays at a few batches whatever the file's size. Strings are
read as dictionaries (a Parquet column of repeated strings is stored that way already), which makes counting
categories a ``bincount``. Everything else (CSV, JSON, globs, folders) goes through DuckDB, which streams it
as Arrow batches. A small file is read once into memory (:class:`TableSource`) and scanned from there.

Each source scans with one accumulator per worker thread (``start`` makes one, ``add`` folds a batch into
it); the caller merges the accumulators. Read errors of either library become :class:`DataReadError`.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

BATCH_ROWS = 65_536
# a file this small is read whole into memory, not scanned twice (once for a sample, once to count)
IN_MEMORY_CELLS = 4_000_000  # Parquet: rows x columns, about 32 MB of numbers
IN_MEMORY_BYTES = 32 << 20  # text files
A = TypeVar("A")
FloatArray = npt.NDArray[np.float64]
Progress = Callable[[float], None]


class DataReadError(Exception):
    """A file could not be read; the message is the reader's first line."""


@contextmanager
def reading() -> Iterator[None]:
    """Turn the readers' own errors into :class:`DataReadError` (DuckDB's only if it was needed and imported)."""
    try:
        yield
    except Exception as exc:
        duckdb = sys.modules.get("duckdb")
        if not isinstance(exc, (pa.ArrowException, OSError)) and not (duckdb and isinstance(exc, duckdb.Error)):
            raise
        text = str(exc).strip().splitlines()
        raise DataReadError(text[0] if text else type(exc).__name__) from exc


class Source(Protocol):
    schema: pa.Schema
    rows: int | None

    def scan(
        self,
        columns: list[str],
        start: Callable[[], A],
        add: Callable[[A, pa.RecordBatch], None],
        progress: Progress | None = None,
    ) -> list[A]: ...

    def sample(self, columns: list[str], size: int, seed: int) -> dict[str, FloatArray]: ...

    def read(self, columns: list[str] | None = None) -> pa.Table: ...


def open_source(path: Path, threads: int | None = None) -> Source:
    """The fastest reader for ``path``; a small file is read whole, once."""
    with reading():
        source: Source
        if _is_parquet_file(path):
            source = ParquetSource(path, threads)
            small = (source.rows or 0) * max(1, len(source.schema)) <= IN_MEMORY_CELLS
        else:
            source = DuckDBSource(path, threads)
            small = path.is_file() and path.stat().st_size <= IN_MEMORY_BYTES
        return TableSource(source.read()) if small else source


def _is_parquet_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in (".csv", ".tsv", ".txt", ".gz", ".json", ".ndjson", ".jsonl")


def _threads(threads: int | None) -> int:
    if threads:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _strings_as_dictionaries(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


class ParquetSource:
    """One Parquet file, row groups read in parallel."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import pyarrow.parquet as pq

        self._pq = pq
        self.path = path
        self.threads = _threads(threads)
        first = pq.ParquetFile(path)
        self._dictionaries = _strings_as_dictionaries(first.schema_arrow)
        self._file = pq.ParquetFile(path, read_dictionary=self._dictionaries)
        self.schema: pa.Schema = self._file.schema_arrow
        self.rows: int | None = self._file.metadata.num_rows
        self._group_rows = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]

    def read(self, columns: list[str] | None = None) -> pa.Table:
        with reading():
            return self._file.read(columns=columns, use_threads=True)

    def scan(
        self,
        columns: list[str],
        start: Callable[[], A],
        add: Callable[[A, pa.RecordBatch], None],
        progress: Progress | None = None,
    ) -> list[A]:
        local = threading.local()
        accumulators: list[A] = []
        done = [0]
        lock = threading.Lock()

        def read_group(group: int) -> None:
            if not hasattr(local, "file"):
                local.file = self._pq.ParquetFile(self.path, read_dictionary=self._dictionaries)
                local.acc = start()
                with lock:
                    accumulators.append(local.acc)
            with reading():
                for batch in local.file.iter_batches(
                    batch_size=BATCH_ROWS, row_groups=[group], columns=columns, use_threads=False
                ):
                    add(local.acc, batch)
                    with lock:
                        done[0] += batch.num_rows

        total = max(1, sum(self._group_rows))
        with ThreadPoolExecutor(max(1, min(self.threads, len(self._group_rows)))) as pool:
            pending: set[Future[None]] = {pool.submit(read_group, g) for g in range(len(self._group_rows))}
            while pending:
                finished, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                if progress is not None:
                    progress(done[0] / total)
        return accumulators or [start()]

    def sample(self, columns: list[str], size: int, seed: int) -> dict[str, FloatArray]:
        """The numeric values of up to ``size`` rows drawn uniformly (see :func:`draw_rows`); only the row groups
        holding drawn rows are read."""
        positions = draw_rows(sum(self._group_rows), size, seed)
        parts: dict[str, list[FloatArray]] = {c: [] for c in columns}
        start = 0
        with reading():
            for group, rows in enumerate(self._group_rows):
                lo, hi = np.searchsorted(positions, [start, start + rows])
                if hi > lo:
                    table = self._file.read_row_group(group, columns=columns, use_threads=True)
                    for name in columns:
                        parts[name].append(dense(_single(table.column(name)))[positions[lo:hi] - start])
                start += rows
        return {name: _present(np.concatenate(found) if found else np.empty(0)) for name, found in parts.items()}


def draw_rows(total: int, size: int, seed: int) -> npt.NDArray[np.int64]:
    """Sorted positions of ``min(size, total)`` rows out of ``total``, without replacement; the same for a file
    whichever way it is read.

    >>> draw_rows(5, 10, seed=0).tolist()
    [0, 1, 2, 3, 4]
    >>> len(set(draw_rows(1000, 10, seed=0).tolist()))
    10
    """
    if total <= size:
        return np.arange(total, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False)).astype(np.int64)


class DuckDBSource:
    """CSV, JSON, globs and folders, streamed by DuckDB as Arrow batches."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import duckdb

        self.path = path
        self.con = duckdb.connect(config={"threads": threads} if threads else {})
        self.relation_sql = _duckdb_reader(path)
        self.schema: pa.Schema = self.con.sql(f"SELECT * FROM {self.relation_sql} LIMIT 0").to_arrow_table().schema
        self.rows: int | None = None

    def _select(self, columns: list[str] | None) -> str:
        names = ", ".join(_quote(c) for c in columns) if columns else "*"
        return f"SELECT {names} FROM {self.relation_sql}"

    def read(self, columns: list[str] | None = None) -> pa.Table:
        with reading():
            return self.con.sql(self._select(columns)).to_arrow_table()

    def scan(
        self,
        columns: list[str],
        start: Callable[[], A],
        add: Callable[[A, pa.RecordBatch], None],
        progress: Progress | None = None,
    ) -> list[A]:
        with reading():
            reader = self.con.sql(self._select(columns)).to_arrow_reader(BATCH_ROWS)
            return _scan_in_order(reader, start, add, progress, lambda: max(0.0, self.con.query_progress()) / 100)

    def sample(self, columns: list[str], size: int, seed: int) -> dict[str, FloatArray]:
        with reading():
            sql = f"{self._select(columns)} USING SAMPLE reservoir({int(size)} ROWS) REPEATABLE ({int(seed)})"
            table = self.con.sql(sql).to_arrow_table()
        return {name: _present(dense(_single(table.column(name)))) for name in columns}


def _scan_in_order(
    batches: Iterable[pa.RecordBatch],
    start: Callable[[], A],
    add: Callable[[A, pa.RecordBatch], None],
    progress: Progress | None,
    where: Callable[[], float] | None = None,
) -> list[A]:
    """One accumulator over ``batches`` in order; ``where()`` says how far the reading has got, 0 to 1."""
    acc = start()
    last = time.monotonic()
    for batch in batches:
        add(acc, batch)
        if progress is not None and where is not None and time.monotonic() - last > 0.05:
            last = time.monotonic()
            progress(where())
    if progress is not None:
        progress(1.0)
    return [acc]


def _duckdb_reader(path: Path) -> str:
    text = str(path).replace("'", "''")
    name = str(path).lower()
    if name.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")):
        return f"read_csv('{text}', auto_detect=true)"
    if name.endswith((".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz")):
        return f"read_json_auto('{text}')"
    if path.is_dir():
        return f"read_parquet('{text}/**/*.parquet')"
    return f"read_parquet('{text}')"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TableSource:
    """A table already in memory: a small file read once, sampled and scanned from there."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.schema: pa.Schema = table.schema
        self.rows: int | None = table.num_rows

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return self.table.select(columns) if columns is not None else self.table

    def scan(
        self,
        columns: list[str],
        start: Callable[[], A],
        add: Callable[[A, pa.RecordBatch], None],
        progress: Progress | None = None,
    ) -> list[A]:
        return _scan_in_order(self.table.select(columns).to_batches(max_chunksize=BATCH_ROWS), start, add, progress)

    def sample(self, columns: list[str], size: int, seed: int) -> dict[str, FloatArray]:
        positions = draw_rows(self.table.num_rows, size, seed)
        return {name: _present(dense(_single(self.table.column(name)))[positions]) for name in columns}


def _single(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _present(values: FloatArray) -> FloatArray:
    return values[~np.isnan(values)]


def dense(array: Any) -> FloatArray:
    """A numeric Arrow array as float64, missing values as NaN; without a copy when it is float64 already."""
    if array.type != pa.float64() or array.null_count:
        import pyarrow.compute as pc

        array = pc.fill_null(pc.cast(array, pa.float64(), safe=False), math.nan)
    return np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8)


def numbers(array: Any) -> tuple[FloatArray, int]:
    """The values of a numeric Arrow array as float64 without nulls or NaN, and how many were missing."""
    values = dense(array)
    missing = np.isnan(values)
    if not missing.any():
        return values, 0
    return values[~missing], int(missing.sum())


def categories(array: Any) -> tuple[dict[str, int], int]:
    """Counts per category of a string, dictionary or boolean Arrow array, and how many were missing."""
    missing = array.null_count
    if pa.types.is_boolean(array.type):
        import pyarrow.compute as pc

        trues = int(pc.sum(array).as_py() or 0)
        return {"true": trues, "false": len(array) - missing - trues}, missing
    if pa.types.is_dictionary(array.type):
        indices = array.indices
        if missing:
            import pyarrow.compute as pc

            indices = pc.drop_null(indices)
        if indices.type != pa.int32():
            indices = indices.cast(pa.int32())
        codes = np.frombuffer(indices.buffers()[1], dtype=np.int32, count=len(indices), offset=indices.offset * 4)
        counts = np.bincount(codes, minlength=len(array.dictionary))
        keys = [str(k) for k in array.dictionary.to_pylist()]
        out: dict[str, int] = {}
        for key, count in zip(keys, counts.tolist(), strict=True):
            if count:
                out[key] = out.get(key, 0) + count
        return out, missing
    import pyarrow.compute as pc

    pairs = pc.value_counts(array)
    return {
        str(k): int(c)
        for k, c in zip(pairs.field("values").to_pylist(), pairs.field("counts").to_pylist(), strict=True)
        if k is not None
    }, missing
