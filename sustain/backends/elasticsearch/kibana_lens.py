"""Lens visualizations as Kibana 8.8 saves them: KQL, columns, layers and the ``lens`` saved-object attributes.

Shapes follow a real 8.8 export (elastic/kibana ``x-pack/test/functional/fixtures/kbn_archiver/lens/
fundamental_config_errors_on_dashboard.json``): the ``formBased`` datasource, one layer per visualization,
and the layer's data view named by the reference ``indexpattern-datasource-layer-<layerId>``.

>>> lens = xy_chart("m-p95", "p95 latency", "m-events", x=date_histogram("@timestamp"),
...     metrics={"p95": metric("percentile", "latency_ms", "p95", params={"percentile": 95})})
>>> lens.references()
[{'type': 'index-pattern', 'id': 'm-events', 'name': 'indexpattern-datasource-layer-layer1'}]
>>> lens.attributes()["state"]["datasourceStates"]["formBased"]["layers"]["layer1"]["columnOrder"]
['time', 'p95']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RECORDS = "___records___"  # Lens's pseudo-field of the document count
LAYER = "layer1"
TIME_COLUMN = "time"
SPLIT_COLUMN = "split"
ROWS_COLUMN = "rows"

Column = dict[str, Any]


# -- KQL --------------------------------------------------------------------------------------------


def kql_quote(value: str) -> str:
    r"""``value`` as a quoted KQL string.

    >>> print(kql_quote('say "hi"'))
    "say \"hi\""
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kql_is(name: str, value: str) -> str:
    """``name : "value"``.

    >>> kql_is("model", "churn")
    'model : "churn"'
    """
    return f"{name} : {kql_quote(value)}"


def kql_in(name: str, values: Sequence[str]) -> str:
    """``name : ("a" or "b")``: the field holds one of ``values``.

    >>> kql_in("type", ["missing", "type_errors"])
    'type : ("missing" or "type_errors")'
    """
    return f"{name} : (" + " or ".join(kql_quote(v) for v in values) + ")"


def kql_exists(name: str) -> str:
    """``name : *``: the document has a value for the field."""
    return f"{name} : *"


def kql_not(clause: str) -> str:
    """``not (clause)``."""
    return f"not ({clause})"


def kql_and(*clauses: str) -> str:
    """Clauses that must all hold; each is parenthesized, so precedence never matters.

    >>> kql_and(kql_is("type", "drift"), kql_not(kql_exists("feature")))
    '(type : "drift") and (not (feature : *))'
    """
    return " and ".join(f"({c})" for c in clauses if c)


def kql_or(*clauses: str) -> str:
    """Clauses of which one must hold.

    >>> kql_or("a : 1", "b : 2")
    '(a : 1) or (b : 2)'
    """
    return " or ".join(f"({c})" for c in clauses if c)


# -- columns ----------------------------------------------------------------------------------------


def date_histogram(name: str, interval: str = "auto") -> Column:
    """A bucketed time axis on ``name``: Kibana's automatic interval, or a fixed one (``1h``, ``90s``).

    Indicator documents exist once per window: charted with the window as the interval, each bucket holds one
    window and a line joins consecutive windows; with ``auto`` (30 minutes over 24 hours) hourly windows fall
    in every other bucket and draw as broken lines.
    """
    return {
        "label": name,
        "dataType": "date",
        "operationType": "date_histogram",
        "sourceField": name,
        "isBucketed": True,
        "scale": "interval",
        "params": {"interval": interval, "includeEmptyRows": True, "dropPartials": False},
    }


def kibana_interval(seconds: float) -> str:
    """A duration as a Kibana interval, in the largest unit that divides it.

    >>> [kibana_interval(s) for s in (60, 3600, 86400, 90, 1.5, 604800)]
    ['1m', '1h', '1d', '90s', '1500ms', '7d']
    """
    millis = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def terms(name: str, *, size: int, order_by: str | None = None, label: str | None = None) -> Column:
    """The top ``size`` values of keyword ``name``: by the metric column ``order_by``, else alphabetically."""
    order: dict[str, Any] = (
        {"type": "column", "columnId": order_by} if order_by else {"type": "alphabetical", "fallback": False}
    )
    return {
        "label": label or f"Top values of {name}",
        "customLabel": label is not None,
        "dataType": "string",
        "operationType": "terms",
        "sourceField": name,
        "isBucketed": True,
        "scale": "ordinal",
        "params": {
            "size": size,
            "orderBy": order,
            "orderDirection": "desc" if order_by else "asc",
            "otherBucket": False,
            "missingBucket": False,
            "parentFormat": {"id": "terms"},
            "include": [],
            "exclude": [],
            "includeIsRegex": False,
            "excludeIsRegex": False,
        },
    }


def metric(
    operation: str, name: str, label: str, *, params: Mapping[str, Any] | None = None, kql: str | None = None
) -> Column:
    """A metric column: ``operation`` (count, max, average, percentile, last_value, ...) of field ``name``.

    ``kql`` restricts the documents this column reads (Lens's per-column filter).

    >>> metric("count", RECORDS, "events")["sourceField"]
    '___records___'
    """
    column: Column = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": operation,
        "sourceField": name,
        "isBucketed": False,
        "scale": "ratio",
        "params": dict(params) if params is not None else {"emptyAsNull": True},
    }
    if kql:
        column["filter"] = {"query": kql, "language": "kuery"}
    return column


# -- visualizations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lens:
    """One Lens visualization over one data view, with a single layer ``layer1``."""

    id: str
    title: str
    data_view: str  # the id of the index-pattern saved object
    visualization_type: str
    columns: dict[str, Column]  # in Lens's column order: buckets first, then metrics
    visualization: dict[str, Any]
    query: str = ""
    description: str = ""
    layer: str = LAYER
    panel_size: tuple[int, int] = (24, 15)  # (w, h) on the 48-column dashboard grid

    def state(self) -> dict[str, Any]:
        layer = {"columnOrder": list(self.columns), "columns": self.columns, "incompleteColumns": {}, "sampling": 1}
        return {
            "adHocDataViews": {},
            "datasourceStates": {"formBased": {"layers": {self.layer: layer}}, "textBased": {"layers": {}}},
            "filters": [],
            "internalReferences": [],
            "query": {"language": "kuery", "query": self.query},
            "visualization": self.visualization,
        }

    def attributes(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "visualizationType": self.visualization_type,
            "state": self.state(),
        }

    def references(self) -> list[dict[str, str]]:
        return [{"type": "index-pattern", "id": self.data_view, "name": f"indexpattern-datasource-layer-{self.layer}"}]


def _xy_visualization(layer: str, series_type: str, accessors: list[str], split: bool) -> dict[str, Any]:
    data_layer: dict[str, Any] = {
        "layerId": layer,
        "layerType": "data",
        "seriesType": series_type,
        "xAccessor": TIME_COLUMN,
        "accessors": accessors,
        "position": "top",
        "showGridlines": False,
    }
    if split:
        data_layer["splitAccessor"] = SPLIT_COLUMN
    both = {"x": True, "yLeft": True, "yRight": True}
    return {
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": "hide",
        "fittingFunction": "None",
        "axisTitlesVisibilitySettings": both,
        "tickLabelsVisibilitySettings": both,
        "gridlinesVisibilitySettings": both,
        "labelsOrientation": {"x": 0, "yLeft": 0, "yRight": 0},
        "preferredSeriesType": series_type,
        "layers": [data_layer],
    }


def xy_chart(
    id: str,
    title: str,
    data_view: str,
    *,
    x: Column,
    metrics: Mapping[str, Column],
    split: Column | None = None,
    query: str = "",
    series_type: str = "line",
    description: str = "",
    size: tuple[int, int] = (24, 15),
) -> Lens:
    """A time chart: ``metrics`` over the date histogram ``x``, one series per value of ``split`` if given.

    The split column comes first, so its top values are chosen over the whole time range (as Lens does).
    """
    columns: dict[str, Column] = {}
    if split is not None:
        columns[SPLIT_COLUMN] = split
    columns[TIME_COLUMN] = x
    columns.update(metrics)
    visualization = _xy_visualization(LAYER, series_type, list(metrics), split is not None)
    return Lens(id, title, data_view, "lnsXY", columns, visualization, query, description, panel_size=size)


def table(
    id: str,
    title: str,
    data_view: str,
    *,
    rows: Column,
    metrics: Mapping[str, Column],
    query: str = "",
    description: str = "",
    size: tuple[int, int] = (48, 12),
) -> Lens:
    """A data table: one row per value of ``rows``, one column per metric."""
    columns: dict[str, Column] = {ROWS_COLUMN: rows, **metrics}
    visualization = {
        "layerId": LAYER,
        "layerType": "data",
        "columns": [{"columnId": c, "isTransposed": False} for c in columns],
    }
    return Lens(id, title, data_view, "lnsDatatable", columns, visualization, query, description, panel_size=size)
