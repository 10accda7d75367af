"""The Elasticsearch engine's :class:`~sustain.indicators.context.WindowSource`: samples, history, labels.

A window's events are the ones whose ``buckets.<window>`` holds the window's start,
exactly the events its transform counted; a time range that is not one of the
spec's windows falls back to ``@timestamp``. Samples are the top ``n`` of a
``function_score`` query with a seeded ``random_score`` on ``event.id``, so a seed
draws the same events every time. Labels are joined from ``<prefix>-labels-<model>``
by ``_id`` (request id first, then event id), as the embedded store joins them.

>>> from datetime import UTC
>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric"}, "windows": ["1h"]})
>>> start = datetime(2026, 1, 5, 10, tzinfo=UTC)
>>> window_filters(spec, "2", start, start + timedelta(hours=1))
[{'term': {'model.version': {'value': '2'}}}, {'term': {'buckets.1h': {'value': '2026-01-05T10:00:00.000Z'}}}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from sustain.backends.elasticsearch.client import MAX_RESULT_WINDOW, NOT_FOUND, PAGE_SIZE
from sustain.backends.elasticsearch.mappings import bucket_field, bucket_start, epoch_micros, es_field
from sustain.backends.elasticsearch.responses import columns_table, event_row, label_for
from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.backends.elasticsearch.windows import ESWindowStore
from sustain.durations import parse_duration
from sustain.errors import NotFound
from sustain.spec import ModelSpec
from sustain.store.layout import Layout
from sustain.timestamps import iso
from sustain.transforms.plan import TransformPlan
from sustain.transforms.window import WindowAggregates

_ENVELOPE_FIELDS = ["@timestamp", "event.id", "request.id"]


def window_filters(spec: ModelSpec, version: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The query filters selecting the events of one version in one window."""
    filters: list[dict[str, Any]] = [{"term": {"model.version": {"value": version}}}]
    seconds = (end - start).total_seconds()
    for label in spec.windows:
        if parse_duration(label) == seconds:
            value = bucket_start(epoch_micros(start), seconds)
            filters.append({"term": {bucket_field(label): {"value": value}}})
            return filters
    filters.append({"range": {"@timestamp": {"gte": iso(start), "lt": iso(end)}}})
    return filters


def source_fields(layout: Layout, columns: Sequence[str]) -> list[str]:
    """The document fields holding ``columns`` (storage column names; unknown ones are skipped)."""
    fields = []
    for name in columns:
        try:
            fields.append(es_field(layout.column(name).name))
        except KeyError:
            continue
    return fields


def sample_search(filters: list[dict[str, Any]], fields: list[str], n: int, seed: int) -> dict[str, Any]:
    """The top ``n`` of the window's events under a seeded random score: a reproducible sample."""
    return {
        "query": {
            "function_score": {
                "query": {"bool": {"filter": filters}},
                "functions": [{"random_score": {"seed": int(seed) % 2**31, "field": "event.id"}}],
                "boost_mode": "replace",
            }
        },
        "size": max(0, min(n, MAX_RESULT_WINDOW)),
        "_source": fields,
        "track_total_hits": False,
    }


def window_events_search(filters: list[dict[str, Any]], fields: list[str], after: list[Any] | None) -> dict[str, Any]:
    """One page of the window's events, oldest first."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "size": PAGE_SIZE,
        "sort": [{"@timestamp": {"order": "asc"}}, {"event.id": {"order": "asc"}}],
        "_source": [*_ENVELOPE_FIELDS, *fields],
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = after
    return body


class ESWindowSource:
    """Samples, history and labelled events of a window, read from Elasticsearch."""

    def __init__(self, store: ElasticsearchStore, windows: ESWindowStore) -> None:
        self.store = store
        self.windows = windows

    def _spec(self, model: str) -> ModelSpec:
        spec = self.store.get_spec(model)
        if spec is None:
            raise NotFound(f"model {model!r} is not registered")
        return spec

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        spec, layout = self._spec(model), self.store.layout(model)
        body = sample_search(window_filters(spec, version, start, end), source_fields(layout, columns), n, seed)
        stream = self.store.names.events(model)
        response = self.store.client.call(
            f"sampling events of {model!r}", lambda es: es.search(index=stream, body=body), allow=[NOT_FOUND]
        )
        hits = [] if response is None else response["hits"]["hits"]
        rows = [event_row(layout, hit.get("_source", {}), columns) for hit in hits]
        return columns_table(layout, list(columns), rows)

    def sample_labelled(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        """The events :meth:`sample` draws (the same seeded scores pick them), with ``label`` joined or null."""
        spec, layout = self._spec(model), self.store.layout(model)
        fields = [*source_fields(layout, columns), *_ENVELOPE_FIELDS]
        body = sample_search(window_filters(spec, version, start, end), fields, n, seed)
        stream = self.store.names.events(model)
        response = self.store.client.call(
            f"sampling events of {model!r}", lambda es: es.search(index=stream, body=body), allow=[NOT_FOUND]
        )
        hits = [] if response is None else response["hits"]["hits"]
        labels = self.store.labels_for(model, hits) if hits else {}
        rows = joined_rows(layout, hits, labels, columns, unlabelled=True)
        return columns_table(layout, [*columns, "label"], rows, spec.label.kind if spec.label else None)

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        since = before - timedelta(seconds=plan.window_seconds * count)
        return self.windows.read_windows(plan, version=version, since=since, until=before)[-count:]

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        """The window's events with a label: ``columns``, ``label``, ``label_ts`` and the event time ``ts``."""
        spec, layout = self._spec(model), self.store.layout(model)
        filters, fields = window_filters(spec, version, start, end), source_fields(layout, columns)
        names = [*columns, "label", "label_ts", "ts"]
        rows: list[dict[str, Any]] = []
        page: list[dict[str, Any]] = []
        hits = self.store.client.search_all(
            f"reading labelled events of {model!r}",
            self.store.names.events(model),
            lambda after: window_events_search(filters, fields, after),
        )
        for hit in hits:
            page.append(hit)
            if len(page) == PAGE_SIZE:
                rows.extend(self._join(model, layout, page, columns))
                page = []
        rows.extend(self._join(model, layout, page, columns))
        return columns_table(layout, names, rows, spec.label.kind if spec.label else None)

    def _join(
        self, model: str, layout: Layout, hits: list[dict[str, Any]], columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        if not hits:
            return []
        return joined_rows(layout, hits, self.store.labels_for(model, hits), columns, unlabelled=False)


def joined_rows(
    layout: Layout,
    hits: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str],
    *,
    unlabelled: bool,
) -> list[dict[str, Any]]:
    """Storage column → value for each event hit, plus ``ts``, ``label`` and ``label_ts`` joined from ``labels``
    (label documents by id); events without a label are kept (with nulls) only when ``unlabelled``."""
    rows = []
    for hit in hits:
        source = hit["_source"]
        label = label_for(source, labels)
        value = None if label is None else label.get("label")
        if value is None and not unlabelled:
            continue
        row = event_row(layout, source, [*columns, "ts"])
        row["label"], row["label_ts"] = value, None if label is None else label.get("ts")
        rows.append(row)
    return rows
