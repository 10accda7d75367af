"""Kibana 8.x saved objects for the Elasticsearch engine: data views, Lens visualizations and dashboards.

``sustain export kibana`` writes them as NDJSON, one object per line, for
``POST /api/saved_objects/_import?overwrite=true``:

* data views (``index-pattern``): per model, its events data stream ``<prefix>-events-<model>`` and its
  windows, the aliases ``<prefix>-windows-<model>-<window>`` of the current transform destinations; shared,
  the indicator index ``<prefix>-indicators`` and every model's events ``<prefix>-events-*``;
* one health dashboard per model: traffic, latency quantiles, error rate, drift share, drift per feature,
  data quality, label metrics and estimated performance (a panel only for indicators the model computes),
  indicator panels on one window of the model (:func:`indicator_window`);
* one overview dashboard: every model's latest drift share, error rate and p95 latency, its traffic, and its
  indicator windows in alert.

**Version fields** are copied from a real Kibana 8.8 export, the oldest Kibana targeted (objects import
into the same or a newer Kibana, which migrates them): elastic/kibana
``x-pack/test/functional/fixtures/kbn_archiver/lens/fundamental_config_errors_on_dashboard.json`` at
commit 7d032b21454367cdb400ef84ce3490a86ca449e7: ``coreMigrationVersion`` 8.8.0 everywhere,
``typeMigrationVersion`` 8.0.0 (index-pattern), 8.6.0 (lens), 8.7.0 (dashboard); panels carry
``"version": "8.8.0"``.

**Ids** are deterministic, so a re-import overwrites: ``<prefix>-<model>-<what>`` with ``what`` free of
hyphens (``sustain-churn-drift_share``), and shared objects ``<prefix>-<word>`` with no hyphen after the
prefix (``sustain-indicators``, ``sustain-overview_traffic``), so no two objects can share an id whatever
the model names.

>>> from sustain.spec import ModelSpec
>>> spec = ModelSpec.model_validate({"name": "churn", "features": {"age": "numeric"}})
>>> objects = saved_objects([spec])
>>> [(o["type"], o["id"]) for o in objects if o["type"] != "lens"]  # doctest: +NORMALIZE_WHITESPACE
[('index-pattern', 'sustain-churn-events'), ('index-pattern', 'sustain-churn-windows'),
 ('index-pattern', 'sustain-indicators'), ('index-pattern', 'sustain-events'),
 ('dashboard', 'sustain-churn-health'), ('dashboard', 'sustain-overview')]
>>> objects[0]["coreMigrationVersion"], objects[0]["typeMigrationVersion"]
('8.8.0', '8.0.0')
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sustain.backends.elasticsearch.config import IndexNames
from sustain.backends.elasticsearch.kibana_lens import (
    RECORDS,
    Column,
    Lens,
    date_histogram,
    kibana_interval,
    kql_and,
    kql_exists,
    kql_in,
    kql_is,
    kql_not,
    kql_or,
    metric,
    table,
    terms,
    xy_chart,
)
from sustain.backends.elasticsearch.mappings import DEFAULT_PREFIX, events_data_stream
from sustain.backends.elasticsearch.transforms import windows_alias
from sustain.durations import format_duration, parse_duration
from sustain.errors import ValidationError
from sustain.indicators.defaults import default_indicators
from sustain.spec import ModelSpec
from sustain.spec.loader import load_config

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "lens": "8.6.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.8.0"
GRID_COLUMNS = 48
# The keys of the dashboard saved object's v1 schema (unknowns: 'forbid'); emit no other attribute.
DASHBOARD_ATTRIBUTES = frozenset(
    {
        "title",
        "description",
        "panelsJSON",
        "optionsJSON",
        "timeRestore",
        "timeFrom",
        "timeTo",
        "refreshInterval",
        "kibanaSavedObjectMeta",
        "controlGroupInput",
        "version",
    }
)
QUALITY_TYPES = ("missing", "type_errors", "out_of_range", "unseen_categories")
LAG_METRICS = ("lag_p50_seconds", "lag_p95_seconds")  # label lag in seconds: off the scale of the other metrics
# Same rule as the Elasticsearch store URI's prefix option (sustain.backends.elasticsearch.config).
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
HOUR = 3600.0


# -- envelopes --------------------------------------------------------------------------------------


def saved_object(kind: str, id: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    """One import line: type, id, attributes, references and the 8.8 version fields."""
    return {
        "type": kind,
        "id": id,
        "attributes": attributes,
        "references": references,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[kind],
    }


def data_view(id: str, title: str, time_field: str, name: str) -> dict[str, Any]:
    """An ``index-pattern`` object: ``title`` is the index pattern, ``name`` what Kibana shows."""
    return saved_object("index-pattern", id, {"title": title, "timeFieldName": time_field, "name": name}, [])


def lens_object(lens: Lens) -> dict[str, Any]:
    return saved_object("lens", lens.id, lens.attributes(), lens.references())


def grid(sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(x, y) of panels of the given (w, h), placed left to right in rows of the 48-column grid.

    >>> grid([(24, 15), (24, 15), (48, 12), (24, 15)])
    [(0, 0), (24, 0), (0, 15), (0, 27)]
    """
    places, x, y, row = [], 0, 0, 0
    for w, h in sizes:
        if x + w > GRID_COLUMNS:
            x, y, row = 0, y + row, 0
        places.append((x, y))
        x, row = x + w, max(row, h)
    return places


def dashboard_object(id: str, title: str, description: str, lenses: Sequence[Lens]) -> dict[str, Any]:
    """A dashboard of ``lenses`` (panels ``p1``, ``p2``, ...), opening on the last 24 hours, refreshed each minute."""
    panels, references = [], []
    for n, (lens, (x, y)) in enumerate(zip(lenses, grid([v.panel_size for v in lenses]), strict=True), start=1):
        index = f"p{n}"
        w, h = lens.panel_size
        panels.append(
            {
                "version": PANEL_VERSION,
                "type": "lens",
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                "panelIndex": index,
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{index}",
            }
        )
        references.append({"type": "lens", "id": lens.id, "name": f"{index}:panel_{index}"})
    options = {"useMargins": True, "syncColors": False, "syncCursor": True, "syncTooltips": False}
    attributes = {
        "title": title,
        "description": description,
        "panelsJSON": _compact(panels),
        "optionsJSON": _compact({**options, "hidePanelTitles": False}),
        "timeRestore": True,
        "timeFrom": "now-24h",
        "timeTo": "now",
        "refreshInterval": {"pause": False, "value": 60_000},
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": _compact({"query": {"query": "", "language": "kuery"}, "filter": []})
        },
        "version": 1,
    }
    assert set(attributes) <= DASHBOARD_ATTRIBUTES
    return saved_object("dashboard", id, attributes, references)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- what each model computes -----------------------------------------------------------------------


def indicator_window(spec: ModelSpec, types: Iterable[str]) -> str | None:
    """The window the health dashboard plots indicators of ``types`` on: of the windows they are computed on,
    the shortest of at least an hour (steady enough for drift), else the longest; None when none is computed.

    >>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric"}, "windows": ["1m", "1h", "1d"]})
    >>> indicator_window(spec, ["drift"]), indicator_window(spec, ["label_metrics"])
    ('1h', None)
    """
    wanted = set(types)
    seconds: set[float] = set()
    for ind in spec.indicators if spec.indicators is not None else default_indicators(spec):
        if ind.type in wanted:
            seconds.update(parse_duration(w) for w in (ind.windows or spec.windows))
    if not seconds:
        return None
    long_enough = [s for s in seconds if s >= HOUR]
    return format_duration(min(long_enough) if long_enough else max(seconds))


# -- per-model health dashboard ---------------------------------------------------------------------


def _id(prefix: str, model: str, what: str) -> str:
    assert "-" not in what
    return f"{prefix}-{model}-{what}"


def _indicator_chart(
    spec: ModelSpec,
    prefix: str,
    what: str,
    title: str,
    types: Sequence[str],
    *,
    where: str = "",
    aggregate: tuple[str, str] = ("max", "max"),
    split: tuple[str, int, bool],
    size: tuple[int, int] = (24, 15),
) -> Lens | None:
    """Indicator values of ``types`` over window starts, one series per value of ``split`` (field, size,
    ordered by the value rather than alphabetically); None when the model computes none of ``types``."""
    window = indicator_window(spec, types)
    if window is None:
        return None
    kind = kql_is("type", types[0]) if len(types) == 1 else kql_in("type", types)
    query = kql_and(kql_is("model", spec.name), kql_is("window", window), kind, where)
    operation, label = aggregate
    split_field, split_size, by_value = split
    return xy_chart(
        _id(prefix, spec.name, what),
        f"{spec.name}: {title} ({window} windows)",
        indicators_view_id(prefix),
        x=date_histogram("window_start", kibana_interval(parse_duration(window))),
        metrics={"value": metric(operation, "value", label)},
        split=terms(split_field, size=split_size, order_by="value" if by_value else None),
        query=query,
        size=size,
    )


def model_lenses(spec: ModelSpec, prefix: str = DEFAULT_PREFIX) -> list[Lens]:
    """The panels of the health dashboard of ``spec``, in dashboard order."""
    m, events = spec.name, _id(prefix, spec.name, "events")
    traffic = xy_chart(
        _id(prefix, m, "traffic"),
        f"{m}: traffic (events per interval)",
        events,
        x=date_histogram("@timestamp"),
        metrics={"events": metric("count", RECORDS, "events")},
        split=terms("model.version", size=10, order_by="events"),
        series_type="bar_stacked",
    )
    latency = xy_chart(
        _id(prefix, m, "latency"),
        f"{m}: latency (ms)",
        events,
        x=date_histogram("@timestamp"),
        metrics={f"p{q}": metric("percentile", "latency_ms", f"p{q}", params={"percentile": q}) for q in (50, 95, 99)},
    )
    no_feature = kql_not(kql_exists("feature"))
    charts = [
        _indicator_chart(spec, prefix, "error_rate", "error rate", ["error_rate"], split=("version", 10, True)),
        _indicator_chart(
            spec,
            prefix,
            "drift_share",
            "share of drifted columns",
            ["drift"],
            where=no_feature,
            split=("version", 10, True),
        ),
        _indicator_chart(
            spec,
            prefix,
            "drift",
            "drift per feature (top 20)",
            ["drift"],
            where=kql_exists("feature"),
            split=("feature", 20, True),
            size=(48, 15),
        ),
        _indicator_chart(
            spec, prefix, "data_quality", "data quality (worst column)", QUALITY_TYPES, split=("indicator", 10, False)
        ),
        _indicator_chart(
            spec,
            prefix,
            "label_metrics",
            "label metrics",
            ["label_metrics"],
            where=kql_not(kql_in("metric", LAG_METRICS)),
            aggregate=("average", "value"),
            split=("metric", 20, False),
        ),
        _indicator_chart(
            spec,
            prefix,
            "estimated_performance",
            "estimated performance (no labels)",
            ["estimated_performance"],
            aggregate=("average", "value"),
            split=("metric", 20, False),
        ),
    ]
    return [traffic, latency, *(c for c in charts if c is not None)]


def windows_title(spec: ModelSpec, prefix: str = DEFAULT_PREFIX) -> str:
    """The windows data view's indices: the alias of each window's current transform destination, and no
    wildcard, so neither stale plans' indices nor another model whose name starts alike (``churn-eu``) match.

    >>> spec = ModelSpec.model_validate({"name": "churn", "features": {"x": "numeric"}, "windows": ["1m", "1h"]})
    >>> windows_title(spec)
    'sustain-windows-churn-1m,sustain-windows-churn-1h'
    """
    return ",".join(windows_alias(spec.name, window, prefix) for window in spec.windows)


def model_objects(spec: ModelSpec, prefix: str = DEFAULT_PREFIX) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The data views, and the visualizations and health dashboard, of one model."""
    m = spec.name
    views = [
        data_view(_id(prefix, m, "events"), events_data_stream(m, prefix), "@timestamp", f"sustain events: {m}"),
        data_view(_id(prefix, m, "windows"), windows_title(spec, prefix), "bucket", f"sustain windows: {m}"),
    ]
    lenses = model_lenses(spec, prefix)
    board = dashboard_object(
        _id(prefix, m, "health"),
        f"sustain: {m} health",
        f"Traffic, latency, errors, drift, data quality and performance of model {m} (generated by sustain).",
        lenses,
    )
    return views, [*(lens_object(v) for v in lenses), board]


# -- overview ---------------------------------------------------------------------------------------


def indicators_view_id(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-indicators"


def _scope(specs: Sequence[ModelSpec], types: Sequence[str]) -> str:
    """Each model on the window its health dashboard shows for ``types`` ("" when none computes them)."""
    clauses = []
    for spec in specs:
        window = indicator_window(spec, types)
        if window is not None:
            clauses.append(kql_and(kql_is("model", spec.name), kql_is("window", window)))
    return kql_or(*clauses)


def _coarsest(specs: Sequence[ModelSpec], types: Sequence[str]) -> str:
    """The interval of an overview chart: the longest of the windows the models' dashboards show (all windows
    when ``types`` is empty), so every bucket holds whole windows of every model; ``auto`` without any."""
    seconds = [
        parse_duration(w)
        for spec in specs
        for w in ([indicator_window(spec, types)] if types else spec.windows)
        if w is not None
    ]
    return kibana_interval(max(seconds)) if seconds else "auto"


def overview_lenses(specs: Sequence[ModelSpec], prefix: str = DEFAULT_PREFIX) -> list[Lens]:
    indicators, n = indicators_view_id(prefix), max(len(specs), 10)
    models = kql_or(*(kql_is("model", s.name) for s in specs))
    share = kql_and(kql_is("type", "drift"), kql_not(kql_exists("feature")), kql_exists("value"))

    def latest(label: str, types: Sequence[str], *clauses: str) -> Column:
        """The value of the newest window, on the window each model's dashboard shows."""
        kql = kql_and(kql_is("type", types[0]), *clauses, kql_exists("value"), _scope(specs, types))
        return metric("last_value", "value", label, params={"sortField": "window_start"}, kql=kql)

    status = table(
        f"{prefix}-overview_status",
        "sustain: model status (latest window)",
        indicators,
        rows=terms("model", size=n, label="model"),
        metrics={
            "drift_share": latest("drift share", ["drift"], kql_not(kql_exists("feature"))),
            "error_rate": latest("error rate", ["error_rate"]),
            "p95": latest("p95 latency (ms)", ["latency"], kql_is("metric", "p95")),
            "alerting": metric("count", RECORDS, "indicator values in alert", kql=kql_is("status", "alert")),
        },
        query=models,
    )
    traffic = xy_chart(
        f"{prefix}-overview_traffic",
        "sustain: traffic per model (events per interval)",
        f"{prefix}-events",
        x=date_histogram("@timestamp"),
        metrics={"events": metric("count", RECORDS, "events")},
        split=terms("model.id", size=n, order_by="events"),
        series_type="bar_stacked",
    )
    drifting = _scope(specs, ["drift"])
    drift = xy_chart(
        f"{prefix}-overview_drift_share",
        "sustain: share of drifted columns per model",
        indicators,
        x=date_histogram("window_start", _coarsest(specs, ["drift"])),
        metrics={"value": metric("max", "value", "drift share")},
        split=terms("model", size=n, order_by="value"),
        query=kql_and(share, drifting),
    )
    alerts = xy_chart(
        f"{prefix}-overview_alerts",
        "sustain: indicator values in alert per model",
        indicators,
        x=date_histogram("window_start", _coarsest(specs, [])),
        metrics={"alerting": metric("count", RECORDS, "values in alert")},
        split=terms("model", size=n, order_by="alerting"),
        query=kql_and(kql_is("status", "alert"), models),
        series_type="bar_stacked",
        description="Firing alert episodes live in the sustain service: GET /v1/alerts, or sustain_alert_firing.",
    )
    return [status, traffic, *([drift] if drifting else []), alerts]


# -- everything -------------------------------------------------------------------------------------


def saved_objects(specs: Sequence[ModelSpec], *, prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """Every saved object for ``specs``: data views first, then visualizations and dashboards."""
    if not _PREFIX.match(prefix):
        raise ValidationError(
            f"prefix {prefix!r} must be 1-24 lowercase letters, digits, '_' or '-', starting alphanumeric",
            field="prefix",
        )
    views: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for spec in specs:
        model_views, model_rest = model_objects(spec, prefix)
        views += model_views
        rest += model_rest
    views.append(
        data_view(indicators_view_id(prefix), IndexNames(prefix).indicators, "window_start", "sustain indicators")
    )
    views.append(data_view(f"{prefix}-events", f"{prefix}-events-*", "@timestamp", "sustain events: every model"))
    lenses = overview_lenses(specs, prefix)
    rest += [lens_object(v) for v in lenses]
    rest.append(
        dashboard_object(
            f"{prefix}-overview",
            "sustain: models overview",
            "Status of every monitored model (generated by sustain).",
            lenses,
        )
    )
    return views + rest


def to_ndjson(objects: Iterable[dict[str, Any]]) -> str:
    """One compact JSON object per line, as the import API reads them."""
    return "".join(_compact(o) + "\n" for o in objects)


def import_command(path: str | Path) -> str:
    """The one-line ``curl`` that imports the file into the Kibana at ``$KIBANA``.

    >>> print(import_command("kibana.ndjson"))
    curl -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" -H "kbn-xsrf: true" --form file=@kibana.ndjson
    >>> import_command("my exports/k.ndjson").rpartition(" --form ")[2]
    "file=@'my exports/k.ndjson'"
    """
    return (
        f'curl -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" -H "kbn-xsrf: true" '
        f"--form file=@{shlex.quote(str(path))}"
    )


@dataclass(frozen=True)
class KibanaExport:
    """What ``export_kibana`` wrote."""

    path: Path
    models: list[str]
    counts: dict[str, int]  # saved objects per type

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.path),
            "models": self.models,
            "objects": self.counts,
            "import": import_command(self.path),
        }


def export_kibana(
    config: str | Path, out: str | Path, *, model: str | None = None, prefix: str = DEFAULT_PREFIX
) -> KibanaExport:
    """Write the saved objects of the models in the spec file ``config`` (or only ``model``) to ``out``.

    Raises :class:`~sustain.errors.SpecError` for a bad spec file, :class:`~sustain.errors.ValidationError`
    for an unknown model or a bad prefix, and ``OSError`` when ``out`` cannot be written.
    """
    declared = load_config(config).models
    specs = [s for s in declared if model is None or s.name == model]
    if not specs:
        known = ", ".join(s.name for s in declared)
        raise ValidationError(f"model {model!r} is not in {config}; it declares {known}", field="model")
    objects = saved_objects(specs, prefix=prefix)
    path = Path(out)
    path.write_text(to_ndjson(objects), encoding="utf-8")
    counts: dict[str, int] = {}
    for o in objects:
        counts[o["type"]] = counts.get(o["type"], 0) + 1
    return KibanaExport(path, [s.name for s in specs], counts)
