"""Read a reference data set (CSV, Parquet or JSON) into the model's stored layout.

Columns are matched by name: features by feature name, outputs by output name
(class scores as ``<output>.<class>`` columns or one list column), and the
label as ``label``. Columns the spec does not know are ignored and reported.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sustain.collector.categories import sanitize_categories
from sustain.collector.values import CATEGORY_KINDS
from sustain.errors import PayloadTooLarge, UnsupportedMediaType, ValidationError
from sustain.spec import ModelSpec
from sustain.store.layout import Column, Layout, label_types


@dataclass
class ParsedReference:
    table: pa.Table
    ignored_columns: list[str] = field(default_factory=list)
    missing_features: list[str] = field(default_factory=list)


def sniff_format(body: bytes, content_type: str | None, filename: str | None = None) -> str:
    ctype = (content_type or "").split(";")[0].strip().lower()
    name = (filename or "").lower()
    if body[:4] == b"PAR1" or "parquet" in ctype or name.endswith(".parquet"):
        return "parquet"
    if "csv" in ctype or name.endswith(".csv"):
        return "csv"
    if "ndjson" in ctype or "jsonl" in ctype or name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if "json" in ctype or name.endswith(".json"):
        return "json"
    head = body.lstrip()[:1]
    if head in (b"[", b"{"):
        return "json"
    if ctype in ("", "text/plain", "application/octet-stream"):
        return "csv"
    raise UnsupportedMediaType(f"reference data must be CSV, Parquet or JSON; got Content-Type {ctype!r}")


def read_table(body: bytes, fmt: str, max_rows: int | None = None) -> pa.Table:
    """The reference rows of ``body``; more than ``max_rows`` rows is a 413 found before they are all held.

    CSV is read in record batches and Parquet's row count comes from its footer, so an oversized upload stops
    early; NDJSON lines are counted before any is parsed.
    """
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            source = pq.ParquetFile(io.BytesIO(body))
            _check_rows(source.metadata.num_rows, max_rows)
            return _named(source.read())
        if fmt == "csv":
            return _named(_read_csv(body, max_rows))
        if fmt == "ndjson":
            _check_rows(sum(1 for line in body.splitlines() if line.strip()), max_rows)
            rows = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        else:
            data = orjson.loads(body)
            if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
                _check_rows(max((len(v) for v in data.values()), default=0), max_rows)
                return _named(pa.table(data))  # column-oriented {"age": [...], ...}
            rows = data if isinstance(data, list) else [data]
            _check_rows(len(rows), max_rows)
        if not all(isinstance(r, dict) for r in rows):
            raise ValidationError("JSON reference data must be a list of row objects or an object of columns")
        return _named(pa.Table.from_pylist(rows))
    except (ValidationError, PayloadTooLarge):
        raise
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"cannot read the reference data as {fmt}: its column names are not UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); save the file as UTF-8",
            field="columns",
        ) from None
    except (pa.ArrowException, orjson.JSONDecodeError, ValueError, OSError) as exc:
        raise ValidationError(f"cannot read the reference data as {fmt}: {exc}", field="body") from None


def _read_csv(body: bytes, max_rows: int | None) -> pa.Table:
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(io.BytesIO(body))
    batches = []
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        _check_rows(rows, max_rows)
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _check_rows(rows: int, max_rows: int | None) -> None:
    if max_rows is not None and rows > max_rows:
        raise PayloadTooLarge(
            f"the reference data has more than {max_rows} rows, the limit (SUSTAIN_MAX_REFERENCE_ROWS); upload a "
            f"random sample of at most {max_rows} rows: profiles keep bins and a bounded sample, and gain nothing "
            "from more",
            field="body",
            details={"limit_rows": max_rows},
        )


def _named(table: pa.Table) -> pa.Table:
    """``table``, once its column names decode (a header that is not UTF-8 raises UnicodeDecodeError here, not
    later in code that expects names)."""
    table.schema.names  # noqa: B018 - decoding the names is the check
    return table


def _coerce(arr: pa.ChunkedArray, column: Column, source: str) -> pa.ChunkedArray:
    coerced = _cast(arr, column, source)
    if column.kind in CATEGORY_KINDS:
        return sanitize_categories(coerced)  # the same keys as the events' (sustain.collector.categories)
    return _finite(coerced, source)


def _finite(arr: pa.ChunkedArray, source: str) -> pa.ChunkedArray:
    """``arr`` unchanged, or a 422 naming the column when it holds an infinite number (never a bin edge)."""
    values = arr
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
        values = pc.list_flatten(arr)
    if not pa.types.is_floating(values.type):
        return arr
    infinite = pc.fill_null(pc.is_inf(values), False)
    if pc.any(infinite).as_py():
        count = pc.sum(infinite).as_py()
        first = pc.index(infinite, True).as_py()
        where = f"row {first + 1}" if values is arr else f"value {first + 1}"
        raise ValidationError(
            f"reference column {source!r} holds {count} infinite value(s), the first at {where}; infinity cannot "
            "be binned or compared: replace it by a finite number, or leave the cell empty for a missing value",
            field=source,
        )
    return arr


def _cast(arr: pa.ChunkedArray, column: Column, source: str) -> pa.ChunkedArray:
    target = column.arrow_type
    try:
        if column.kind in ("categorical", "class_label") and not pa.types.is_string(arr.type):
            if pa.types.is_floating(arr.type):
                # CSV readers turn integer codes with gaps into floats: 1.0 → "1"
                whole = pc.equal(arr, pc.floor(arr))
                if pc.all(pc.fill_null(whole, True)).as_py():
                    arr = pc.cast(arr, pa.int64())
            if pa.types.is_boolean(arr.type):
                return pc.if_else(arr, "true", "false")
            return pc.cast(arr, pa.string())
        if column.kind == "embedding":
            return pc.cast(arr, target)
        if pa.types.is_floating(target) and pa.types.is_floating(arr.type):
            # NaN is how pandas and CSV spell missing: store null.
            return pc.if_else(pc.is_nan(arr), pa.scalar(None, target), pc.cast(arr, target))
        return pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ValidationError(
            f"reference column {source!r} is {arr.type} and cannot be read as {column.kind}: {exc}",
            field=source,
        ) from None


def to_layout(spec: ModelSpec, table: pa.Table) -> ParsedReference:
    """The reference in the model's layout; raises naming the column when a type does not fit."""
    layout = Layout.of(spec)
    names = set(table.column_names)
    used: set[str] = set()
    columns: dict[str, Any] = {}
    n = table.num_rows
    for col in layout.value_columns:
        candidates = [col.key] if col.cls is None else [f"{col.key}.{col.cls}", f"{col.key}:{col.cls}"]
        source = next((c for c in candidates if c in names), None)
        if source is None and col.cls is not None and col.key in names:
            classes = spec.output(col.key).classes or []  # type: ignore[union-attr]
            lists = table.column(col.key)
            source = col.key
            arr = pc.list_element(lists, classes.index(col.cls))
            columns[col.name] = _coerce(arr, col, source)
            used.add(source)
            continue
        if source is None:
            columns[col.name] = pa.nulls(n, col.arrow_type)
            continue
        used.add(source)
        columns[col.name] = _coerce(table.column(source), col, source)
    if spec.label is not None:
        label_col = Column("label", "output", "label", spec.label.kind, label_types(spec.label.kind)[0], "")
        if "label" in names:
            used.add("label")
            columns["label"] = _coerce(table.column("label"), label_col, "label")
        else:
            columns["label"] = pa.nulls(n, label_col.arrow_type)
    present = [f.name for f in spec.features if f.name in used]
    if not present:
        expected = ", ".join(f.name for f in spec.features)
        raise ValidationError(
            f"the reference data has none of the model's features (expected columns: {expected}; "
            f"got: {', '.join(table.column_names[:20])})",
            field="columns",
        )
    if n == 0:
        raise ValidationError("the reference data has no rows", field="body")
    return ParsedReference(
        pa.table(columns),
        ignored_columns=sorted(names - used),
        missing_features=[f.name for f in spec.features if f.name not in used],
    )
