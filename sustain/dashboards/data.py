"""What the built-in web UI plots: window aggregates, indicator documents and alerts shaped into series.

Every series of a page shares one time axis: the starts of the chosen window's
buckets in the range (epoch-aligned, like the windows themselves). Counts come
from the window aggregates (so a window with no events is a real zero); drift,
label metrics and data quality come from the indicator documents, with their
statuses. Nothing here knows about HTTP: :mod:`sustain.api.dashboard` calls it.

>>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric"}, "windows": ["1m", "1h"]})
>>> choose_window(spec, 3600.0, None), choose_window(spec, 7 * 86400.0, None), choose_window(spec, 60.0, "1h")
('1m', '1h', '1h')
>>> worst(["ok", "insufficient", "warn"]), worst(["insufficient"])
('warn', None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import yaml

from sustain.alerting.documents import Alert, AlertStore
from sustain.durations import format_duration, parse_duration
from sustain.errors import ValidationError
from sustain.indicators.base import SEVERITY
from sustain.indicators.base import worst as worst_status
from sustain.indicators.defaults import default_indicators
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery, IndicatorStore
from sustain.spec import ModelSpec
from sustain.spec.secrets import redact_spec_json
from sustain.timestamps import iso as _iso
from sustain.timestamps import utc as _utc
from sustain.transforms.plan import ColumnPlan, TransformPlan
from sustain.transforms.profile import OTHER, ColumnProfile, ReferenceProfile
from sustain.transforms.protocols import Transformer, WindowStore
from sustain.transforms.window import CategorySummary, NumericSummary, WindowAggregates

MAX_AUTO_POINTS = 400  # the window picked automatically gives at most this many buckets in the range
MAX_POINTS = 5000  # a range holding more buckets of the chosen window is cut to its newest ones
MAX_RANGE = timedelta(days=366)
QUALITY = ("missing", "type_errors", "out_of_range", "unseen_categories")
LABEL_METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "mae", "rmse", "r2", "mape")

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class Sources:
    """Where the dashboard reads from (the engine's stores, and alerting's when it runs)."""

    documents: IndicatorStore
    windows: WindowStore
    transformer: Transformer
    alerts: AlertStore | None = None


@dataclass(frozen=True)
class TimeRange:
    since: datetime
    until: datetime

    @classmethod
    def parse(
        cls, since: datetime | None, until: datetime | None, span: str | None, now: datetime | None = None
    ) -> TimeRange:
        """``since``/``until`` (UTC when naive) or ``span`` back from ``until``; the last hour by default."""
        end = _utc(until) if until is not None else (now or datetime.now(UTC))
        if since is not None and span is not None:
            raise ValidationError("give either since or range, not both", field="range")
        if since is not None:
            start = _utc(since)
        else:
            try:
                seconds = parse_duration(span or "1h")
            except ValueError as exc:
                raise ValidationError(str(exc), field="range") from None
            start = end - timedelta(seconds=seconds)
        if start >= end:
            raise ValidationError("the range is empty: since must be before until", field="since")
        if end - start > MAX_RANGE:
            raise ValidationError("the range may span at most 366 days", field="range")
        return cls(start, end)

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


@dataclass(frozen=True)
class Axis:
    """The bucket starts (epoch seconds) of one window size across a range."""

    window: str
    seconds: float
    starts: tuple[int, ...]
    notice: str | None = None

    @classmethod
    def of(cls, window: str, span: TimeRange) -> Axis:
        size = parse_duration(window)
        first = math.floor(span.since.timestamp() / size) * size
        end = span.until.timestamp()
        count = max(1, math.ceil((end - first) / size))
        notice = None
        if count > MAX_POINTS:
            first += (count - MAX_POINTS) * size
            count = MAX_POINTS
            notice = f"showing the newest {MAX_POINTS} windows of {window}; choose a larger window to see the rest"
        return cls(window, size, tuple(round(first + i * size) for i in range(count)), notice)

    @property
    def since(self) -> datetime:
        return datetime.fromtimestamp(self.starts[0], UTC)

    @property
    def labels(self) -> list[str]:
        return [_iso(datetime.fromtimestamp(s, UTC)) for s in self.starts]

    def series(self, values: dict[int, Any]) -> list[Any]:
        return [values.get(s) for s in self.starts]


def _key(t: datetime) -> int:
    return round(_utc(t).timestamp())


def worst(statuses: Iterable[str]) -> str | None:
    """The worst of ok/warn/alert (an indicator error counts as warn); None when nothing was judged."""
    judged = [s for s in statuses if s in SEVERITY and s != "insufficient"]
    return None if not judged else ("ok", "warn", "alert")[SEVERITY[worst_status(judged)]]


def choose_window(spec: ModelSpec, span_seconds: float, wanted: str | None) -> str:
    """``wanted`` (one of the spec's windows), or the smallest window giving at most MAX_AUTO_POINTS buckets."""
    windows = sorted(spec.windows, key=parse_duration)
    if wanted:
        try:
            normal = format_duration(parse_duration(wanted))
        except ValueError as exc:
            raise ValidationError(str(exc), field="window") from None
        if normal not in windows:
            raise ValidationError(
                f"model {spec.name!r} has windows {', '.join(windows)}, not {wanted!r}", field="window"
            )
        return normal
    for window in windows:
        if span_seconds / parse_duration(window) <= MAX_AUTO_POINTS:
            return window
    return windows[-1]


def indicator_ids(spec: ModelSpec) -> dict[str, str]:
    """Indicator type → the id of the first indicator of that type in the spec (or the defaults)."""
    ids: dict[str, str] = {}
    for ind in spec.indicators if spec.indicators is not None else default_indicators(spec):
        ids.setdefault(ind.type, ind.id)
    return ids


class Docs:
    """Indicator documents of one window size, by (indicator id, feature, metric) and window start."""

    def __init__(self, docs: Iterable[IndicatorDoc]) -> None:
        self.by: dict[tuple[str, str | None, str | None], dict[int, IndicatorDoc]] = {}
        for d in docs:
            self.by.setdefault((d.indicator, d.feature, d.metric), {})[_key(d.window_start)] = d

    def features(self, indicator: str | None) -> list[str]:
        seen = {f for (i, f, _) in self.by if i == indicator and f is not None}
        return sorted(seen)

    def metrics(self, indicator: str | None) -> list[str]:
        return sorted({m for (i, f, m) in self.by if i == indicator and f is None and m is not None})

    def get(
        self, indicator: str | None, feature: str | None = None, metric: str | None = None
    ) -> dict[int, IndicatorDoc]:
        return self.by.get((indicator or "", feature, metric), {})

    def values(
        self, axis: Axis, indicator: str | None, feature: str | None = None, metric: str | None = None
    ) -> list[Any]:
        return axis.series({k: d.value for k, d in self.get(indicator, feature, metric).items()})


# -- overview ------------------------------------------------------------------------------------
def overview(
    sources: Sources,
    specs: Sequence[ModelSpec],
    span: TimeRange,
    failures: dict[str, list[dict[str, Any]]] | None = None,
) -> JSONDict:
    """Every model and version: status, traffic in the last hour, last alert and sparklines over ``span``, and
    the model's ``failures`` (a stage of the engine that fails for it: transforms, indicators, reference)."""
    models = []
    for spec in specs:
        failed = (failures or {}).get(spec.name, [])
        try:
            plans = _plans(sources, spec)
            latest = sources.documents.query(IndicatorQuery(model=spec.name, latest=True, limit=100_000))
            versions = _unique([*spec.versions, spec.effective_default_version, *sorted(d.version for d in latest)])
            cards = [
                _version_card(sources, spec, plans, span, v, [d for d in latest if d.version == v]) for v in versions
            ]
        except Exception as exc:  # one model that cannot be shown does not hide the others
            cards = []
            failed = [*failed, {"stage": "dashboard", "error": f"{type(exc).__name__}: {exc}"}]
        models.append({"model": spec.name, "description": spec.description, "versions": cards, "failures": failed})
    return {"since": _iso(span.since), "until": _iso(span.until), "models": models}


def _version_card(
    sources: Sources,
    spec: ModelSpec,
    plans: dict[str, TransformPlan],
    span: TimeRange,
    version: str,
    latest: list[IndicatorDoc],
) -> JSONDict:
    axis = Axis.of(choose_window(spec, span.seconds, None), span)
    plan = plans[axis.window]
    windows = sources.windows.read_windows(plan, version=version, since=axis.since, until=span.until)
    rows = {_key(w.start): w.rows for w in windows}
    p95 = {_key(w.start): w.latency.quantile(0.95, plan.latency_edges) for w in windows if w.latency.count}
    ids = indicator_ids(spec)
    drift = ids.get("drift")
    share: dict[int, Any] = {}
    if drift is not None:
        query = IndicatorQuery(
            model=spec.name, since=axis.since, until=span.until, indicator=drift, version=version, window=axis.window
        )
        share = {_key(d.window_start): d.value for d in sources.documents.query(query) if d.feature is None}
    return {
        "version": version,
        "status": worst(d.status for d in latest),
        "events_last_hour": _events_last_hour(sources, spec, plans, version, span.until),
        "last_alert": _last_alert(sources, spec.name, version),
        "window": axis.window,
        "sparkline": {
            "window_starts": axis.labels,
            "events": [rows.get(s, 0) for s in axis.starts],
            "latency_p95_ms": axis.series(p95),
            "drift_share": axis.series(share),
        },
    }


def _events_last_hour(
    sources: Sources, spec: ModelSpec, plans: dict[str, TransformPlan], version: str, now: datetime
) -> int:
    """Events in the windows of the smallest size that overlap the last hour."""
    plan = plans[min(spec.windows, key=parse_duration)]
    hour_ago = now - timedelta(hours=1)
    since = datetime.fromtimestamp(math.floor(hour_ago.timestamp() / plan.window_seconds) * plan.window_seconds, UTC)
    return sum(w.rows for w in sources.windows.read_windows(plan, version=version, since=since))


def _last_alert(sources: Sources, model: str, version: str) -> JSONDict | None:
    if sources.alerts is None:
        return None
    for alert in sources.alerts.query(model=model, limit=50):
        if alert.version in (version, "*", ""):
            return {
                "id": alert.id,
                "rule": alert.rule,
                "severity": alert.severity,
                "status": alert.status,
                "started_at": _iso(alert.started_at),
                "resolved_at": _iso(alert.resolved_at) if alert.resolved_at else None,
            }
    return None


def _plans(sources: Sources, spec: ModelSpec) -> dict[str, TransformPlan]:
    return {p.window: p for p in sources.transformer.plans(spec)}


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- one model -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelQuery:
    span: TimeRange
    window: str | None = None
    version: str | None = None


def model_view(sources: Sources, spec: ModelSpec, query: ModelQuery) -> JSONDict:
    """Everything the model page shows, for one version and window size over the range."""
    span = query.span
    window = choose_window(spec, span.seconds, query.window)
    axis = Axis.of(window, span)
    plan = _plans(sources, spec)[window]
    every = sources.windows.read_windows(plan, since=axis.since, until=span.until)
    traffic_by_version: dict[str, int] = {}
    for w in every:
        traffic_by_version[w.version] = traffic_by_version.get(w.version, 0) + w.rows
    version = query.version or _default_version(spec, traffic_by_version)
    windows = [w for w in every if w.version == version]
    docs = sources.documents.query(
        IndicatorQuery(
            model=spec.name, since=axis.since, until=span.until, version=version, window=window, limit=100_000
        )
    )
    index = Docs(docs)
    ids = indicator_ids(spec)
    latest = sources.documents.query(IndicatorQuery(model=spec.name, version=version, latest=True, limit=100_000))
    profile = sources.windows.get_profile(spec.name, version) or sources.windows.binning_profile(spec)
    return {
        "model": spec.name,
        "description": spec.description,
        "version": version,
        "versions": _unique([*spec.versions, spec.effective_default_version, *sorted(traffic_by_version)]),
        "window": window,
        "windows": sorted(spec.windows, key=parse_duration),
        "since": _iso(span.since),
        "until": _iso(span.until),
        "notice": axis.notice,
        "status": worst(d.status for d in latest),
        "window_starts": axis.labels,
        "traffic": _traffic(axis, windows),
        "latency": _latency(axis, plan, windows),
        "drift": _drift(axis, index, ids.get("drift"), plan),
        "distributions": _distributions(plan, windows, profile),
        "predictions": _predictions(axis, plan, windows),
        "labels": _labels(axis, index, ids),
        "quality": _quality(axis, index, ids),
        "alerts": _alerts(sources, spec.name, version, span),
        "spec": redact_spec_json(spec.model_dump(mode="json", by_alias=True)),
        "spec_yaml": spec_yaml(spec),
    }


def spec_yaml(spec: ModelSpec) -> str:
    """The spec as YAML, without the settings left at their defaults (``spec`` in the payload has them all);
    action secrets as ``***``."""
    body = redact_spec_json(spec.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    for key in ("features", "outputs"):  # written the way people write them: {name: {kind: ...}}
        if key in body:
            body[key] = {item.pop("name"): item for item in body[key]}
    return yaml.dump({"models": [body]}, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (``[18.0, 95.0]``), like the examples."""


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def _default_version(spec: ModelSpec, traffic: dict[str, int]) -> str:
    default = spec.effective_default_version
    if traffic.get(default) or not traffic:
        return default
    return max(traffic, key=lambda v: traffic[v])


def _traffic(axis: Axis, windows: list[WindowAggregates]) -> JSONDict:
    rows = {_key(w.start): w.rows for w in windows}
    errors = {_key(w.start): w.errors for w in windows}
    return {
        "events": [rows.get(s, 0) for s in axis.starts],
        "errors": [errors.get(s, 0) for s in axis.starts],
        "total": sum(rows.values()),
        "window_seconds": axis.seconds,
    }


def _latency(axis: Axis, plan: TransformPlan, windows: list[WindowAggregates]) -> JSONDict:
    out: JSONDict = {}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        out[name] = axis.series(
            {_key(w.start): w.latency.quantile(q, plan.latency_edges) for w in windows if w.latency.count}
        )
    out["mean"] = axis.series({_key(w.start): w.latency.mean for w in windows if w.latency.count})
    out["samples"] = sum(w.latency.count for w in windows)
    return out


def _drift(axis: Axis, index: Docs, indicator: str | None, plan: TransformPlan) -> JSONDict:
    """The heatmap: one row per feature (then output), one column per window; value, status and p-value."""
    order = {c.feature: i for i, c in enumerate(plan.columns)}
    features = sorted(index.features(indicator), key=lambda f: (order.get(f, len(order)), f))
    kinds = {c.feature: ("output" if c.is_output else "feature") for c in plan.columns}
    values, statuses, p_values = [], [], []
    for feature in features:
        found = index.get(indicator, feature)
        values.append(axis.series({k: d.value for k, d in found.items()}))
        statuses.append(axis.series({k: d.status for k, d in found.items()}))
        p_values.append(axis.series({k: d.p_value for k, d in found.items()}))
    overall = index.get(indicator)
    return {
        "indicator": indicator,
        "features": features,
        "roles": [kinds.get(f, "feature") for f in features],
        "values": values,
        "statuses": statuses,
        "p_values": p_values,
        "share": axis.series({k: d.value for k, d in overall.items()}),
        "share_status": axis.series({k: d.status for k, d in overall.items()}),
    }


# -- distributions -------------------------------------------------------------------------------
def _distributions(plan: TransformPlan, windows: list[WindowAggregates], profile: ReferenceProfile | None) -> JSONDict:
    """Each column's distribution in the newest window with events, next to the reference's."""
    current = next((w for w in reversed(windows) if w.rows), None)
    features: JSONDict = {}
    for col in plan.columns:
        ref = profile.columns.get(col.column) if profile is not None else None
        summary = current.columns.get(col.column) if current is not None else None
        role = "output" if col.is_output else "feature"
        if col.kind in ("categorical", "boolean"):
            cats = summary if isinstance(summary, CategorySummary) else None
            features[col.feature] = {"role": role, **categorical_distribution(col, ref, cats)}
        else:
            num = summary if isinstance(summary, NumericSummary) else None
            features[col.feature] = {"role": role, **numeric_distribution(col, ref, num)}
    return {
        "window_start": _iso(current.start) if current is not None else None,
        "window_end": _iso(current.end) if current is not None else None,
        "events": current.rows if current is not None else 0,
        "reference_version": profile.version if profile is not None else None,
        "features": features,
    }


def _shares(counts: Sequence[float]) -> list[float] | None:
    total = float(sum(counts))
    return [c / total for c in counts] if total > 0 else None


def numeric_distribution(col: ColumnPlan, ref: ColumnProfile | None, cur: NumericSummary | None) -> JSONDict:
    """Bins (finite display bounds for the two open outer bins) with the reference's and the window's shares.

    >>> col = ColumnPlan("f:x", "numeric", edges=(1.0, 2.0))
    >>> ref = ColumnProfile("f:x", "numeric", n=4, missing=0, edges=[1.0, 2.0], counts=[1, 2, 1], min=0.0, max=3.0)
    >>> d = numeric_distribution(col, ref, NumericSummary(count=2, min=0.5, max=4.0, bins=[0, 1, 1]))
    >>> d["lo"], d["hi"], d["reference"], d["current"], d["labels"]
    ([0.0, 1.0, 2.0], [1.0, 2.0, 4.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5], ['≤ 1', '(1, 2]', '> 2'])
    """
    edges = list(col.edges) if col.edges is not None else (list(ref.edges) if ref and ref.edges else None)
    body: JSONDict = {
        "kind": col.kind,
        "measured": {"text": "length", "embedding": "norm"}.get(col.kind, "value"),
        "current_n": cur.count if cur is not None else 0,
        "reference_n": (ref.n - ref.missing) if ref is not None else 0,
        "current_stats": _stats(cur),
        "reference_stats": {"mean": ref.mean, "std": ref.std, "min": ref.min, "max": ref.max} if ref else None,
    }
    if not edges:
        return {**body, "lo": [], "hi": [], "labels": [], "reference": None, "current": None}
    ref_counts = ref.counts if ref is not None and ref.counts and len(ref.counts) == len(edges) + 1 else None
    cur_counts = cur.bins if cur is not None and len(cur.bins) == len(edges) + 1 else None
    step = (edges[-1] - edges[0]) / (len(edges) - 1) if len(edges) > 1 else max(abs(edges[0]), 1.0)
    lows = [v for v in (ref.min if ref else None, cur.min if cur else None) if v is not None]
    highs = [v for v in (ref.max if ref else None, cur.max if cur else None) if v is not None]
    first = min(lows) if lows and min(lows) < edges[0] else edges[0] - step
    last = max(highs) if highs and max(highs) > edges[-1] else edges[-1] + step
    labels = [f"≤ {edges[0]:g}"] + [f"({a:g}, {b:g}]" for a, b in pairwise(edges)]
    labels.append(f"> {edges[-1]:g}")
    return {
        **body,
        "lo": [first, *edges],
        "hi": [*edges, last],
        "labels": labels,
        "reference": _shares(ref_counts) if ref_counts is not None else None,
        "current": _shares(cur_counts) if cur_counts is not None else None,
    }


def _stats(cur: NumericSummary | None) -> JSONDict | None:
    if cur is None:
        return None
    return {"mean": cur.mean, "std": cur.std, "min": cur.min, "max": cur.max, "missing": cur.missing}


def categorical_distribution(col: ColumnPlan, ref: ColumnProfile | None, cur: CategorySummary | None) -> JSONDict:
    """Shares per category: the reference's categories first (most frequent first), then values new in the window.

    >>> ref = ColumnProfile("f:c", "categorical", n=4, missing=0, categories={"a": 3, "b": 1})
    >>> d = categorical_distribution(ColumnPlan("f:c", "categorical"), ref, CategorySummary(counts={"b": 1, "z": 1}))
    >>> d["categories"], d["reference"], d["current"]
    (['a', 'b', 'z'], [0.75, 0.25, 0.0], [0.0, 0.5, 0.5])
    """
    known = dict(ref.categories or {}) if ref is not None else {}
    counts = cur.counts if cur is not None else {}
    order = sorted((k for k in known if k != OTHER), key=lambda k: (-known[k], k))
    order += list(col.categories or ())
    order += sorted((k for k in counts if k not in known), key=lambda k: (-counts[k], k))
    if OTHER in known:
        order.append(OTHER)
    categories = _unique(order)
    ref_shares = _shares([known.get(k, 0) for k in categories]) if known else None
    cur_shares = _shares([counts.get(k, 0) for k in categories]) if counts else None
    return {
        "kind": col.kind,
        "categories": categories,
        "reference": ref_shares,
        "current": cur_shares,
        "current_n": cur.count if cur is not None else 0,
        "reference_n": sum(known.values()),
        "unseen": sorted(k for k in counts if known and k not in known),
    }


# -- predictions, labels, quality, alerts ---------------------------------------------------------
def _predictions(axis: Axis, plan: TransformPlan, windows: list[WindowAggregates]) -> list[JSONDict]:
    """Each output over time: class shares for labels, mean and 10/50/90th percentiles for numbers."""
    out = []
    for col in plan.columns:
        if not col.is_output:
            continue
        if col.kind in ("categorical", "boolean"):
            summaries = {_key(w.start): w.categories(col.column) for w in windows}
            seen = {k for s in summaries.values() if s is not None for k in s.counts}
            classes = _unique([*(col.categories or ()), *sorted(seen)])
            shares: JSONDict = {}
            for cls in classes:
                shares[cls] = axis.series(
                    {k: s.counts.get(cls, 0) / s.count for k, s in summaries.items() if s is not None and s.count}
                )
            out.append({"name": col.feature, "kind": "categorical", "classes": classes, "shares": shares})
            continue
        numeric = {_key(w.start): w.numeric(col.column) for w in windows}
        present = {k: s for k, s in numeric.items() if s is not None and s.count}
        series: JSONDict = {
            "name": col.feature,
            "kind": "numeric",
            "mean": axis.series({k: s.mean for k, s in present.items()}),
        }
        for name, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
            edges = col.edges
            series[name] = axis.series(
                {k: s.quantile(q, edges) for k, s in present.items() if edges and len(s.bins) == len(edges) + 1}
            )
        out.append(series)
    return out


def _labels(axis: Axis, index: Docs, ids: dict[str, str]) -> JSONDict:
    labels = ids.get("label_metrics")
    estimated = ids.get("estimated_performance")
    available = index.metrics(labels)
    chosen = [m for m in LABEL_METRICS if m in available] or [
        m for m in available if m != "coverage" and not m.startswith("lag_")
    ]
    coverage = index.get(labels, None, "coverage")
    return {
        "coverage": axis.series({k: d.value for k, d in coverage.items()}),
        "labelled": axis.series({k: d.details.get("labelled") for k, d in coverage.items()}),
        "metrics": {m: index.values(axis, labels, None, m) for m in chosen},
        "statuses": {m: axis.series({k: d.status for k, d in index.get(labels, None, m).items()}) for m in chosen},
        "estimated": {m: index.values(axis, estimated, None, m) for m in index.metrics(estimated)},
        "lag_p50_seconds": index.values(axis, labels, None, "lag_p50_seconds"),
    }


def _quality(axis: Axis, index: Docs, ids: dict[str, str]) -> JSONDict:
    """Per data-quality indicator, the share per feature over time (and its status)."""
    out: JSONDict = {}
    for kind in QUALITY:
        indicator = ids.get(kind)
        features = index.features(indicator)
        if not features:
            continue
        out[kind] = {
            "features": features,
            "values": [index.values(axis, indicator, f) for f in features],
            "statuses": [axis.series({k: d.status for k, d in index.get(indicator, f).items()}) for f in features],
        }
    return out


def _alerts(sources: Sources, model: str, version: str, span: TimeRange) -> list[JSONDict]:
    """Alerts active in the range (newest first), with every action attempt and its outcome."""
    if sources.alerts is None:
        return []
    alerts: list[Alert] = sources.alerts.query(model=model, since=span.since, limit=500)
    out = []
    for alert in alerts:
        if alert.version not in (version, "*", "") or alert.started_at > span.until:
            continue
        body = alert.to_json()
        body["attempts"] = sorted(body["attempts"], key=lambda a: a["at"])
        out.append(body)
    return out
