"""The built-in web UI in headless Chromium, against a real `sustain serve` loaded with demo data.

One server (with read and write tokens) gets a spec whose model has 10-second
windows, a reference uploaded over HTTP, four windows of normal events then
three windows where two features (``age``, ``plan``) drift and ``tenure`` goes
partly missing, labels for 60% of the events, and a webhook alert rule. The
pages are then read back: the numbers plotted must be the numbers logged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import httpx
import pyarrow as pa
import pytest
from playwright.sync_api import BrowserContext

from sustain.spec.loader import load_config_text
from sustain.synthetic import SyntheticModel
from tests.browser import ARTIFACTS, REPO, Watched, chromium, chromium_path
from tests.helpers import Receiver, ServerProcess, put_parquet_reference, wait_for, write_spec

SPEC = """
models:
  - name: churn
    description: Will a subscriber cancel next month?
    features:
      age: {kind: numeric, range: [18, 95]}
      income: numeric
      tenure: {kind: numeric, range: [0, 120]}
      plan: {kind: categorical, categories: [basic, standard, premium]}
      autopay: boolean
    outputs:
      prediction: {kind: class_label, classes: [stay, churn]}
      proba: {kind: class_scores, classes: [stay, churn]}
    label: {kind: class_label, classes: [stay, churn], positive_class: churn}
    windows: [10s, 1h]
    indicators:  # the defaults, with drift held to a family-wise false-alarm rate of 0.1% per window
      - {type: drift, params: {alpha: 0.001, correction: bonferroni}}
      - {type: missing}
      - {type: type_errors}
      - {type: out_of_range}
      - {type: unseen_categories}
      - {type: traffic}
      - {type: latency}
      - {type: error_rate}
      - {type: stability}
      - {type: label_metrics}
      - {type: estimated_performance}
    alerts:
      - name: feature-drift
        severity: critical
        when: {indicator: drift, feature: any, status: alert}
        actions: [team-hook]
    actions:
      team-hook: {type: webhook, url: "RECEIVER/hook", retries: 0}
  - name: quiet
    description: Registered, no traffic yet.
    features:
      x: numeric
    windows: [1m, 1h]
"""

READ, WRITE = "ui-read-token", "ui-write-token"
WINDOW = 10
PER_WINDOW = 50
NORMAL, DRIFTED = 36, 12
DRIFTED_FEATURES = {"age", "plan"}
STEADY_FEATURES = {"income", "tenure", "autopay"}
MISSING_TENURE = 5  # per drifted window: a 10% share
T = TypeVar("T")


@dataclass
class Loaded:
    server: ServerProcess
    receiver: Receiver
    starts: list[int]  # window starts (epoch seconds), oldest first
    drifted: list[int]
    counts: dict[int, int] = field(default_factory=dict)
    labelled: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {READ}"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def epoch(plotted: str) -> int:
    """A plotted x value (UTC, without a zone suffix) as epoch seconds."""
    return round(datetime.fromisoformat(plotted).replace(tzinfo=UTC).timestamp())


def _log_demo_data(loaded: Loaded, model: SyntheticModel) -> None:
    auth = {"Authorization": f"Bearer {WRITE}"}
    with httpx.Client(base_url=loaded.url, headers=auth, timeout=60) as client:
        r = put_parquet_reference(client, "churn", "1", pa.table(SyntheticModel(model.spec, seed=1).reference(4000)))
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = []
        labels: list[dict[str, Any]] = []
        for w, start in enumerate(loaded.starts):
            drifted = start in loaded.drifted
            batch = model.events(PER_WINDOW, dict.fromkeys(DRIFTED_FEATURES, 1.5) if drifted else None)
            truth = model.labels_for(batch)
            for j, event in enumerate(batch):
                rid = f"r{w}-{j}"
                event.update(
                    request_id=rid,
                    timestamp=iso(start + (j + 0.5) * WINDOW / PER_WINDOW),
                    latency_ms=round(5 + (w % 6) + (j % 17) * 1.5, 2),
                    version="1",
                )
                if drifted and j < MISSING_TENURE:
                    event["features"]["tenure"] = None
                if w == 0 and j < 2:
                    event["error"] = "upstream timeout"
                if j % 5 < 3:
                    labels.append({"request_id": rid, "label": truth[j]})
                    loaded.labelled[start] = loaded.labelled.get(start, 0) + 1
                events.append(event)
            loaded.counts[start] = PER_WINDOW
        r = client.post("/v1/models/churn/events", json=events)
        assert r.status_code == 200 and r.json()["errors"] is False, r.text
        r = client.post("/v1/models/churn/labels", json=labels)
        assert r.status_code == 200, r.text


def _ready(loaded: Loaded) -> bool:
    """Every window has its drift, coverage and traffic; the alert fired and its webhook was answered."""
    body = loaded.get("/v1/dashboard/models/churn", range="15m", window="10s")
    if body["traffic"]["total"] != loaded.total:
        return False
    starts = [epoch(s.removesuffix("Z")) for s in body["window_starts"]]
    column = {s: i for i, s in enumerate(starts)}
    drift = body["drift"]
    if not set(drift["features"]) >= DRIFTED_FEATURES | STEADY_FEATURES:
        return False
    for start in loaded.starts:
        i = column[start]
        if any(row[i] is None for row in drift["statuses"]):
            return False
        if body["labels"]["labelled"][i] != loaded.labelled[start]:
            return False
    return any(a["attempts"] and a["attempts"][0]["ok"] for a in body["alerts"])


@pytest.fixture(scope="module", autouse=True)
def _chromium_installed() -> None:
    """Fail every test at once, with the install command, when the browser is missing (never skip)."""
    chromium_path()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    workdir = tmp_path_factory.mktemp("web-ui")
    receiver = Receiver()
    env = {
        "SUSTAIN_TRANSFORM_INTERVAL": "0.5",
        "SUSTAIN_INDICATOR_INTERVAL": "0.5",
        "SUSTAIN_READ_TOKENS": READ,
        "SUSTAIN_WRITE_TOKENS": WRITE,
    }
    config = write_spec(workdir, SPEC.replace("RECEIVER", receiver.url))
    server = ServerProcess(workdir, config, env=env).start()
    now = time.time()
    last = int(now // WINDOW) * WINDOW  # the newest window ends here, so every logged window is closed
    starts = [last - WINDOW * (NORMAL + DRIFTED - i) for i in range(NORMAL + DRIFTED)]
    loaded = Loaded(server, receiver, starts, starts[NORMAL:])
    spec = load_config_text(SPEC).model("churn")
    assert spec is not None
    try:
        _log_demo_data(loaded, SyntheticModel(spec, seed=2))
        wait_for(lambda: _ready(loaded), timeout=90, what="indicator documents, labels and the alert's webhook")
        yield loaded
    finally:
        server.stop()
        receiver.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def watched(browser: BrowserContext) -> Iterator[Watched]:
    page = Watched.open(browser)
    yield page
    page.close()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


# -- the overview ------------------------------------------------------------------------------------
def test_overview_shows_every_model_with_status_traffic_alert_and_sparklines(loaded: Loaded, watched: Watched) -> None:
    watched.goto(f"{loaded.url}/?range=1h&token={READ}")
    page = watched.page
    assert "token" not in query_of(page.url), "the token must not stay in a URL someone may copy"
    stored = loaded.get("/v1/models/churn/events", limit=10_000)["count"]
    assert stored == loaded.total

    assert page.get_attribute('[data-testid="status-churn-1"]', "data-status") == "alert"
    assert page.inner_text('[data-testid="events-churn-1"]').replace(",", "") == str(stored)
    assert "feature-drift" in page.inner_text('[data-testid="alert-churn-1"]')
    (events,) = watched.traces("spark-churn-1-events")
    assert sum(events["y"]) == stored
    (drift,) = watched.traces("spark-churn-1-drift")
    assert max(v for v in drift["y"] if v is not None) > 0

    assert page.get_attribute('[data-testid="status-quiet-1"]', "data-status") == "none"
    assert page.inner_text('[data-testid="events-quiet-1"]') == "0"
    assert "no data" in page.inner_text('[data-testid="card-quiet-1"]')
    link = page.get_attribute('[data-testid="card-churn-1"] h2 a', "href")
    assert link is not None and query_of(link) == {"range": "1h", "refresh": "0", "version": "1"}
    watched.screenshot(ARTIFACTS / "overview.png")
    watched.assert_clean()


def test_overview_shows_the_engines_last_pass_and_its_slowest_model(loaded: Loaded, watched: Watched) -> None:
    engine = loaded.get("/v1/dashboard/overview", range="1h")["engine"]
    assert list(engine["phases"]) == ["transforms", "read", "indicators", "write", "alerts"]
    assert engine["slowest"]["model"] == "churn" and engine["slowest"]["freshness_seconds"] > 0
    watched.goto(f"{loaded.url}/?range=1h&token={READ}")
    page = watched.page
    assert page.inner_text('[data-testid="engine-slowest"]').startswith("churn: computed ")
    assert page.locator('[data-testid^="engine-phase-"]').count() == 5
    assert "models computed" in page.inner_text('[data-testid="engine-pass"]')
    watched.assert_clean()


# -- the model page ----------------------------------------------------------------------------------
def test_model_page_plots_the_logged_numbers(loaded: Loaded, watched: Watched) -> None:
    watched.goto(f"{loaded.url}/models/churn?range=15m&token={READ}")
    page = watched.page
    assert page.title() == "churn — sustain"
    assert page.get_attribute('[data-testid="model-status"]', "data-status") == "alert"

    # Traffic: the plotted counts are the stored events, in total and in the current (newest) window.
    events, errors = watched.traces("chart-traffic")
    plotted = {epoch(x): y for x, y in zip(events["x"], events["y"], strict=True) if y}
    assert sum(plotted.values()) == loaded.get("/v1/models/churn/events", limit=10_000)["count"] == loaded.total
    newest = max(plotted)
    in_window = loaded.get("/v1/models/churn/events", since=iso(newest), until=iso(newest + WINDOW - 0.001))
    assert plotted[newest] == in_window["count"] == PER_WINDOW
    assert plotted == loaded.counts
    assert sum(errors["y"]) == 2
    latency = {t["name"]: t for t in watched.traces("chart-latency")}
    assert set(latency) == {"p50", "p95", "p99"}
    p95 = loaded.get("/v1/models/churn/indicators", indicator="latency", metric="p95", window="10s", limit=10_000)
    expected = {epoch(d["window_start"].removesuffix("Z")): d["value"] for d in p95["indicators"]}
    drawn = {epoch(x): y for x, y in zip(latency["p95"]["x"], latency["p95"]["y"], strict=True) if y is not None}
    assert drawn == pytest.approx(expected) and len(drawn) == len(loaded.starts)

    # The heatmap marks the drifted features in the drifted windows, and only them, as the documents say.
    (heatmap,) = watched.traces("chart-drift")
    rows = {name: i for i, name in enumerate(heatmap["y"])}
    columns = {epoch(x): j for j, x in enumerate(heatmap["x"])}
    docs = loaded.get("/v1/models/churn/indicators", indicator="drift", window="10s", limit=10_000)["indicators"]
    checked = 0
    for doc in docs:
        if doc["feature"] is None or doc["feature"] not in rows:
            continue
        start = epoch(doc["window_start"].removesuffix("Z"))
        assert heatmap["customdata"][rows[doc["feature"]]][columns[start]] == doc["status"]
        checked += 1
    assert checked >= len(loaded.starts) * 5
    for feature in DRIFTED_FEATURES:
        statuses = [heatmap["customdata"][rows[feature]][columns[s]] for s in loaded.drifted]
        assert statuses == ["alert"] * DRIFTED, (feature, statuses)
    for feature in STEADY_FEATURES:
        row = heatmap["customdata"][rows[feature]]
        assert "alert" not in row, (feature, row)

    # The current window against the reference: shares that add up, drawn for the selected feature.
    reference, current = watched.traces("chart-distribution")
    assert reference["name"] == "reference" and current["name"] == "current window"
    assert sum(s for _, s in current["customdata"]) == pytest.approx(1.0)
    caption = page.inner_text('[data-testid="distribution-caption"]')
    assert caption.startswith("age:") and f"({PER_WINDOW} values)" in caption

    # Labels: the coverage plotted is the share of each window's events that got a label.
    coverage = next(t for t in watched.traces("chart-labels") if t["name"] == "label coverage")
    plotted_coverage = {epoch(x): y for x, y in zip(coverage["x"], coverage["y"], strict=True) if y is not None}
    assert plotted_coverage == pytest.approx({s: loaded.labelled[s] / PER_WINDOW for s in loaded.starts})

    # Data quality: tenure went 10% missing in the drifted windows.
    missing = {t["name"]: t for t in watched.traces("chart-quality-missing")}
    tenure = {epoch(x): y for x, y in zip(missing["tenure"]["x"], missing["tenure"]["y"], strict=True)}
    assert [tenure[s] for s in loaded.drifted] == pytest.approx([MISSING_TENURE / PER_WINDOW] * DRIFTED)
    assert all(tenure[s] == 0 for s in loaded.starts[:NORMAL])

    # Predictions over time, one chart per output column.
    shares = {t["name"]: t for t in watched.traces("chart-prediction-prediction")}
    assert set(shares) == {"stay", "churn"}
    assert watched.traces("chart-prediction-proba.churn")

    # Alerts: the rule fired, its webhook was called and the outcome is shown.
    assert loaded.receiver.requests, "the webhook was never called"
    row = page.locator('[data-testid="alert-row"][data-rule="feature-drift"]')
    assert row.count() >= 1
    assert row.first.locator('[data-testid="attempt"][data-ok="true"]').count() >= 1
    assert "team-hook" in row.first.inner_text()
    assert watched.traces("chart-alerts")

    spec = page.inner_text('[data-testid="spec"]')
    assert "name: churn" in spec and "windows: [10s, 1h]" in spec
    # docs/model-page.png (the README's picture) is refreshed on request, so `make test` leaves the tree clean
    update_docs = os.environ.get("SUSTAIN_UPDATE_SCREENSHOTS") == "1"
    watched.screenshot(ARTIFACTS / "model.png", *([REPO / "docs" / "model-page.png"] if update_docs else []))
    watched.assert_clean()


def test_range_feature_and_refresh_survive_a_reload(loaded: Loaded, watched: Watched) -> None:
    watched.goto(f"{loaded.url}/models/churn?token={READ}")
    page = watched.page
    assert page.input_value('[data-testid="range-picker"]') == "1h"  # the default

    page.select_option('[data-testid="range-picker"]', "6h")
    watched.wait_state("ready", loads=2)
    assert query_of(page.url)["range"] == "6h"
    assert page.inner_text('[data-testid="window-picker"] option:checked') == "auto (1h)"  # 6h of 10s is too many
    (events, _) = watched.traces("chart-traffic")
    assert sum(events["y"]) == loaded.total

    page.select_option('[data-testid="feature-picker"]', "plan")
    assert query_of(page.url)["feature"] == "plan"
    page.select_option('[data-testid="refresh-picker"]', "10")
    assert query_of(page.url) == {"range": "6h", "feature": "plan", "refresh": "10"}

    page.reload()
    watched.wait_state("ready", loads=1)
    assert page.input_value('[data-testid="range-picker"]') == "6h"
    assert page.input_value('[data-testid="feature-picker"]') == "plan"
    assert page.input_value('[data-testid="refresh-picker"]') == "10"
    reference, current = watched.traces("chart-distribution")
    assert reference["x"][:3] == current["x"][:3] == ["basic", "standard", "premium"]
    assert sum(current["y"]) == pytest.approx(1.0)
    assert page.inner_text('[data-testid="distribution-caption"]').startswith("plan:")
    crumb = page.get_attribute("#crumb-models", "href")
    assert crumb is not None and query_of(crumb) == {"range": "6h", "refresh": "10"}

    watched.page.wait_for_selector('body[data-loads="2"]', state="attached", timeout=25_000)  # auto-refresh ran
    page.select_option('[data-testid="refresh-picker"]', "0")
    watched.assert_clean()


def test_a_model_without_events_shows_empty_states(loaded: Loaded, watched: Watched) -> None:
    watched.goto(f"{loaded.url}/models/quiet?range=15m&token={READ}")
    page = watched.page
    assert page.get_attribute('[data-testid="model-status"]', "data-status") == "none"
    for chart in ("chart-traffic", "chart-latency", "chart-drift", "chart-distribution", "chart-labels"):
        assert page.is_hidden(f"#{chart}"), chart
        assert page.inner_text(f"#{chart}-empty") == "no events in this range yet", chart
    assert page.inner_text("#chart-alerts-empty") == "no alerts in this range"
    watched.assert_clean()


# -- read-only access --------------------------------------------------------------------------------
def test_read_token_gives_read_only_access_and_no_token_a_clear_message(loaded: Loaded, watched: Watched) -> None:
    assert httpx.get(f"{loaded.url}/v1/dashboard/overview").status_code == 401
    assert httpx.get(f"{loaded.url}/v1/dashboard/models/churn").status_code == 401
    read = {"Authorization": f"Bearer {READ}"}
    assert httpx.get(f"{loaded.url}/v1/dashboard/overview", headers=read).status_code == 200
    assert httpx.post(f"{loaded.url}/v1/models/churn/labels", json=[], headers=read).status_code == 403

    page = watched.page
    watched.goto(f"{loaded.url}/models/churn", state="auth")
    message = page.inner_text('[data-testid="message"]')
    assert "read token" in message and "?token=" in message
    assert watched.errors and all("401" in e for e in watched.errors), watched.errors
    assert not watched.failed
    watched.errors.clear()

    watched.goto(f"{loaded.url}/models/churn?range=15m&token={READ}")
    assert page.is_hidden('[data-testid="message"]')
    assert query_of(page.url) == {"range": "15m"}
    assert page.evaluate("sessionStorage.getItem('sustain.token')") == READ
    (events, _) = watched.traces("chart-traffic")
    assert sum(events["y"]) == loaded.total
    watched.assert_clean()


# -- the API and the static files --------------------------------------------------------------------
def test_dashboard_api_answers_bad_requests_with_sentences(loaded: Loaded) -> None:
    read = {"Authorization": f"Bearer {READ}"}
    with httpx.Client(base_url=loaded.url, headers=read, timeout=30) as client:
        assert client.get("/v1/dashboard/models/nope").status_code == 404
        r = client.get("/v1/dashboard/models/churn", params={"window": "5m"})
        assert r.status_code == 422 and "10s, 1h" in r.json()["error"]["message"]
        r = client.get("/v1/dashboard/models/churn", params={"range": "soon"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "range"
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert client.get("/v1/dashboard/overview", params={"since": since, "range": "1h"}).status_code == 422
        body = client.get("/v1/dashboard/models/churn", params={"since": since, "window": "1h"}).json()
        assert body["window"] == "1h" and body["traffic"]["total"] == loaded.total
        overview = client.get("/v1/dashboard/overview", params={"range": "15m"}).json()
        assert [m["model"] for m in overview["models"]] == ["churn", "quiet"]

    plotly = httpx.get(f"{loaded.url}/static/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000
    for name in ("app.js", "style.css", "icon.svg"):
        assert httpx.get(f"{loaded.url}/static/{name}").status_code == 200, name
    for name in ("missing.js", "..%2Fdata.py", "index.html"):
        assert httpx.get(f"{loaded.url}/static/{name}").status_code == 404, name
    page = httpx.get(f"{loaded.url}/models/churn")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in ("/", "/models/churn", "/static/app.js"):
        head = httpx.head(f"{loaded.url}{path}")
        assert head.status_code == 200 and head.content == b"", path
