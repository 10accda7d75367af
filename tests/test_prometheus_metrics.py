"""Indicators and alerts at ``/metrics`` on a real app, and the example Grafana dashboard that reads them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sustain.api.app import create_app
from sustain.dashboards.prometheus import (
    STATUS_CODES,
    IndicatorCollector,
    IndicatorRegistry,
    register_metrics,
    series_labels,
)
from sustain.indicators.documents import IndicatorDoc
from sustain.settings import Settings
from sustain.spec.loader import load_config_text
from sustain.synthetic import SyntheticModel
from tests.helpers import put_parquet_reference

GRAFANA = Path(__file__).resolve().parent.parent / "examples" / "grafana-dashboard.json"
SPEC = """
models:
  - name: shop
    features:
      amount: numeric
      items: numeric
      channel: {kind: categorical, categories: [web, app, store]}
    outputs:
      score: probability
    windows: [1m, 1h]
    alerts:
      - name: busy
        severity: critical
        when: {indicator: traffic, above: 0}
  - name: quiet
    features:
      x: numeric
"""
SERIES = ("model", "version", "indicator", "feature", "metric", "window")


@dataclass
class Scrape:
    text: str
    families: dict[str, Any]  # name -> prometheus_client Metric
    latest: list[dict[str, Any]]  # GET /v1/models/shop/indicators?latest=true
    firing: list[dict[str, Any]]  # GET /v1/alerts?status=firing


def samples(scrape: Scrape, name: str) -> dict[tuple[str, ...], float]:
    family = scrape.families[name]
    keys = SERIES if name.startswith("sustain_indicator_") else ("model", "version", "rule", "severity")
    return {tuple(s.labels[k] for k in keys): s.value for s in family.samples if s.name == name}


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    """A real app: reference upload, events, one engine step, then one scrape of /metrics."""
    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "sustain.yaml").write_text(SPEC)
    settings = Settings(
        store=f"duckdb:///{tmp / 'm.duckdb'}",
        config=str(tmp / "sustain.yaml"),
        transform_interval=3600.0,  # the background engine runs once at start-up; the test steps it
        indicator_interval=3600.0,
    )
    spec = load_config_text(SPEC).model("shop")
    assert spec is not None
    model = SyntheticModel(spec, seed=3)
    with TestClient(create_app(settings)) as client:
        ctx = client.app.state.sustain  # type: ignore[attr-defined]
        reference = put_parquet_reference(client, "shop", "1", pa.table(model.reference(2000)))
        assert reference.status_code == 200, reference.text
        events = model.events(600, {"amount": 2.0})
        past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()  # a window already final: rules judge it
        for event in events:
            event["timestamp"] = past
        posted = client.post("/v1/models/shop/events", json=events)
        assert posted.status_code == 200, posted.text
        ctx.engine.step()
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        latest = client.get("/v1/models/shop/indicators", params={"latest": "true"}).json()["indicators"]
        firing = client.get("/v1/alerts", params={"status": "firing"}).json()["alerts"]
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    yield Scrape(response.text, families, latest, firing)


def test_indicator_values_equal_the_latest_documents_of_the_api(scrape: Scrape) -> None:
    expected = {tuple(d[k] or "" for k in SERIES): d["value"] for d in scrape.latest if d["value"] is not None}
    got = {k: v for k, v in samples(scrape, "sustain_indicator_value").items() if k[0] == "shop"}
    assert expected and set(got) == set(expected)
    assert got == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert {k[2] for k in got} >= {"drift", "traffic", "missing"}
    assert ("shop", "1", "traffic", "", "", "1h") in got and got[("shop", "1", "traffic", "", "", "1h")] == 600


def test_statuses_and_p_values_follow_the_documents(scrape: Scrape) -> None:
    statuses = samples(scrape, "sustain_indicator_status")
    p_values = samples(scrape, "sustain_indicator_p_value")
    for doc in scrape.latest:
        key = tuple(doc[k] or "" for k in SERIES)
        assert statuses[key] == STATUS_CODES[doc["status"]]  # every series has a status, even without a value
        assert (key in p_values) == (doc["p_value"] is not None)
        if doc["p_value"] is not None:
            assert p_values[key] == pytest.approx(doc["p_value"], rel=1e-12)
    drifted = [d for d in scrape.latest if d["indicator"] == "drift" and d["feature"] == "amount"]
    assert [d["status"] for d in drifted] == ["alert", "alert"]  # 1m and 1h: the shifted feature drifted
    assert p_values[("shop", "1", "drift", "amount", "", "1h")] < 0.01


def test_a_firing_alert_shows_as_one(scrape: Scrape) -> None:
    assert [(a["rule"], a["version"]) for a in scrape.firing] == [("busy", "1")]
    assert samples(scrape, "sustain_alert_firing") == {("shop", "1", "busy", "critical"): 1.0}
    (total,) = scrape.families["sustain_alerts_firing"].samples
    assert total.value == 1.0
    assert re.search(r'^sustain_alert_firing\{.*rule="busy".*\} 1\.0$', scrape.text, re.MULTILINE)


def test_the_service_metrics_are_still_there(scrape: Scrape) -> None:
    ingested = scrape.families["sustain_events_ingested"]
    assert [s.value for s in ingested.samples if s.name.endswith("_total") and s.labels == {"model": "shop"}] == [600]
    assert "sustain_commit_seconds" in scrape.families and "sustain_ingest_queue_events" in scrape.families
    errors = {s.labels["source"]: s.value for s in scrape.families["sustain_metrics_read_error"].samples}
    assert errors == {"indicators": 0.0, "alerts": 0.0}
    assert len(re.findall(r"^# TYPE sustain_indicator_value ", scrape.text, re.MULTILINE)) == 1


# -- the collector on its own --------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class CountingDocs:
    def __init__(self, docs: list[IndicatorDoc], fail: bool = False) -> None:
        self.docs, self.fail, self.reads = docs, fail, 0

    def latest_all(self) -> list[IndicatorDoc]:
        self.reads += 1
        if self.fail:
            raise RuntimeError("the store is down")
        return self.docs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def doc(value: float | None, status: str = "ok", **changes: Any) -> IndicatorDoc:
    fields: dict[str, Any] = {
        "model": "m",
        "version": "1",
        "indicator": "latency",
        "type": "latency",
        "feature": None,
        "window": "1m",
        "window_start": T0,
        "window_end": T0,
        "value": value,
        "status": status,
        "metric": "p95",
    }
    fields.update(changes)
    return IndicatorDoc(**fields)


def test_scrapes_within_the_cache_time_read_the_store_once() -> None:
    store, clock = CountingDocs([doc(12.0)]), Clock()
    registry = CollectorRegistry()
    registry.register(IndicatorCollector(store, None, cache_seconds=5.0, clock=clock))
    assert store.reads == 0  # registering never reads
    labels = dict(zip(SERIES, series_labels(doc(12.0)), strict=True))
    assert registry.get_sample_value("sustain_indicator_value", labels) == 12.0
    store.docs = [doc(30.0)]
    clock.now += 4.9
    assert registry.get_sample_value("sustain_indicator_value", labels) == 12.0 and store.reads == 1
    clock.now += 0.2
    assert registry.get_sample_value("sustain_indicator_value", labels) == 30.0 and store.reads == 2


def test_null_values_unknown_statuses_and_duplicates() -> None:
    later = T0.replace(hour=1)
    docs = [
        doc(None, "insufficient", indicator="drift", type="drift", feature="x", metric=None),
        doc(1.0, "ok"),
        doc(2.0, "warn", window_start=later),  # the same series, newer: kept
        doc(5.0, "error", indicator="mine", type="mine", metric=None),
    ]
    registry = CollectorRegistry()
    registry.register(IndicatorCollector(CountingDocs(docs), None))
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    values = {tuple(s.labels[k] for k in SERIES): s.value for s in families["sustain_indicator_value"].samples}
    assert values == {("m", "1", "latency", "", "p95", "1m"): 2.0, ("m", "1", "mine", "", "", "1m"): 5.0}
    statuses = {s.labels["indicator"]: s.value for s in families["sustain_indicator_status"].samples}
    assert statuses == {"drift": -1.0, "latency": 1.0, "mine": -1.0}
    assert "sustain_alert_firing" in families and families["sustain_alert_firing"].samples == []


def test_a_failing_store_answers_with_the_error_gauge() -> None:
    registry = CollectorRegistry()
    registry.register(IndicatorCollector(CountingDocs([doc(1.0)], fail=True), None))
    assert registry.get_sample_value("sustain_metrics_read_error", {"source": "indicators"}) == 1.0
    assert registry.get_sample_value("sustain_indicator_value", {k: "" for k in SERIES}) is None


def test_register_metrics_adds_the_registry_once(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(store=f"duckdb:///{tmp_path / 'r.duckdb'}"))) as client:
        ctx = client.app.state.sustain  # type: ignore[attr-defined]
        built = ctx.metrics_registries
        assert [type(r) for r in built] == [IndicatorRegistry]  # build_context registered it already
        assert register_metrics(ctx) is built[0] and len(ctx.metrics_registries) == 1
        ctx.metrics_registries = []
        added = register_metrics(ctx, cache_seconds=0.0)
        assert ctx.metrics_registries == [added] and added.collector.cache_seconds == 0.0
        assert "sustain_alerts_firing 0.0" in client.get("/metrics").text


# -- the example Grafana dashboard -----------------------------------------------------------------------

PROMQL_WORDS = frozenset(
    {"sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "topk", "and", "or"}
)
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def exposed(scrape: Scrape) -> dict[str, set[str]]:
    """Every metric name sustain exposes, with the label names of its family."""
    names: dict[str, set[str]] = {}
    for family in scrape.families.values():
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        for suffix in ("", *SUFFIXES.get(family.type, ())):
            names[family.name + suffix] = labels
    return names


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)", " ", text)
    return set(re.findall(r"(?<![$\w])[A-Za-z_:][A-Za-z0-9_:]*", text)) - PROMQL_WORDS


def test_grafana_dashboard_queries_only_what_sustain_exposes(scrape: Scrape) -> None:
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["schemaVersion"] >= 38
    known = exposed(scrape)
    assert {"sustain_indicator_value", "sustain_alert_firing", "sustain_events_ingested_total"} <= set(known)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"]["query"])
            assert found is not None, variable["query"]["query"]
            selector, label = found.groups()
            assert label in known[selector.partition("{")[0]]
            exprs.append(selector)
    for expr in exprs:
        used = metric_names(expr)
        assert used and used <= set(known), (expr, used - set(known))
        for name, matchers in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
            labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", re.sub(r'"(?:[^"\\]|\\.)*"', '""', matchers)))
            assert labels <= known[name], (expr, labels - known[name])
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ("drift per feature", "drifted", "traffic", "latency", "error rate", "label metrics", "alerts"):
        assert wanted in titles


def test_grafana_dashboard_uses_every_template_variable() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    variables = dashboard["templating"]["list"]
    assert {v["name"] for v in variables} >= {"DS_PROMETHEUS", "model", "version"}
    (datasource,) = [v for v in variables if v["type"] == "datasource"]
    assert datasource["name"] == "DS_PROMETHEUS" and datasource["query"] == "prometheus"
    for variable in variables:
        others = json.dumps([dashboard["panels"], [v for v in variables if v is not variable]])
        name = variable["name"]
        assert f"${{{name}}}" in others or re.search(rf"\${name}\b", others), f"${name} is never used"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
    model = next(v for v in variables if v["name"] == "model")
    assert model["query"]["query"] == "label_values(sustain_indicator_value, model)"
