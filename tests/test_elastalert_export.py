"""``sustain export elastalert``: the translation, the CLI, and every generated file loaded by the real ElastAlert2."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from sustain.backends.elasticsearch.elastalert import export_rules, spike_height, write_rules
from sustain.errors import ValidationError
from sustain.spec import MonitorConfig
from sustain.spec.loader import load_config_text
from tests.elastalert import check

RICH_SPEC = """
models:
  - name: churn
    features:
      age: {kind: numeric, range: [18, 100]}
      plan: {kind: categorical, categories: [basic, pro]}
      income: numeric
    outputs:
      proba: {kind: class_scores, classes: [stay, churn]}
    label: {kind: class_label, classes: [stay, churn]}
    windows: [1h, 1d]
    alerts:
      - name: drift-any
        severity: critical
        description: "Some feature drifted"
        when: {indicator: drift, feature: any, status: alert}
        actions: [team-slack, retrain]
        cooldown: 6h
      - name: drift-effect-any
        when: {indicator: drift, feature: any, above: 0.2}
        actions: [team-slack]
      - name: accuracy-low
        when: {indicator: label_metrics, metric: accuracy, below: 0.8, window: 1d}
        actions: [team-slack]
      - name: age-drift-high
        when: {indicator: drift, feature: age, above: 0.3}
        actions: [team-slack]
      - name: drift-persistent
        when: {indicator: drift, feature: age, status: warn, for: 3}
        actions: [on-call]
        cooldown: 1d
      - name: drift-share
        when: {indicator: drift, share: 0.5, status: alert}
        actions: [retrain]
      - name: missing-share
        when: {indicator: missing, share: 0.3, above: 0.1}
        actions: [team-slack]
      - name: latency-spike
        when: {spike: {indicator: latency, metric: p95, factor: 3, baseline: 6, direction: up}}
        actions: [on-call]
      - name: silence
        when: {flatline: {below: 10, for: 30m}}
        actions: [on-call]
      - name: drift-and-accuracy
        severity: critical
        when:
          all:
            - {indicator: drift, feature: any, status: alert, for: 2}
            - {indicator: estimated_performance, metric: accuracy, below: 0.8}
            - any:
                - {indicator: error_rate, above: 0.05}
                - {flatline: {below: 5, for: 1h}}
        actions: [team-slack, retrain]
      - name: all-missing
        when: {indicator: missing, feature: all, status: alert}
        actions: [team-slack]
    actions:
      team-slack: {type: slack, url: "${SUSTAIN_SECRET_SLACK_URL}"}
      retrain: {type: retrain, url: "http://trainer:8080/retrain"}
      on-call: {type: webhook, url: "https://pager.example/hook"}
  - name: price
    features:
      size: numeric
    outputs:
      value: {kind: regression}
    windows: [15m]
    alerts:
      - name: value-drift
        dedup: model_rule
        when:
          any:
            - {indicator: drift, feature: value, status: alert}
            - {spike: {indicator: drift, feature: value, factor: 2, direction: both}}
        actions: [hook]
      - name: quiet
        when: {indicator: traffic, below: 100}
    actions:
      hook: {type: webhook, url: "https://ops.example/price"}
"""

# rule name -> (ElastAlert2 type, class the loader instantiates, number of post2 alerters)
EXPECTED = {
    "churn-drift-any": ("any", "AnyRule", 2),
    "churn-drift-effect-any": ("metric_aggregation", "MetricAggregationRule", 1),
    "churn-accuracy-low": ("metric_aggregation", "MetricAggregationRule", 1),
    "churn-age-drift-high": ("metric_aggregation", "MetricAggregationRule", 1),
    "churn-drift-persistent": ("frequency", "FrequencyRule", 1),
    "churn-drift-share": ("any", "AnyRule", 1),
    "churn-missing-share": ("percentage_match", "PercentageMatchRule", 1),
    "churn-latency-spike": ("spike_aggregation", "SpikeMetricAggregationRule", 1),
    "churn-silence": ("flatline", "FlatlineRule", 1),
    "churn-drift-and-accuracy-1": ("frequency", "FrequencyRule", 2),
    "churn-drift-and-accuracy-2": ("metric_aggregation", "MetricAggregationRule", 2),
    "churn-drift-and-accuracy-3": ("metric_aggregation", "MetricAggregationRule", 2),
    "churn-drift-and-accuracy-4": ("flatline", "FlatlineRule", 2),
    "churn-all-missing": ("percentage_match", "PercentageMatchRule", 1),
    "price-value-drift-1": ("any", "AnyRule", 1),
    "price-value-drift-2": ("spike_aggregation", "SpikeMetricAggregationRule", 1),
    "price-quiet": ("metric_aggregation", "MetricAggregationRule", 0),
}


@pytest.fixture(scope="module")
def config() -> MonitorConfig:
    return load_config_text(RICH_SPEC)


@pytest.fixture(scope="module")
def rules(config: MonitorConfig) -> dict[str, dict[str, Any]]:
    """The exported rule files, parsed, by rule name."""
    files = export_rules(config)
    parsed = {name: yaml.safe_load(text) for name, text in files.items() if name.startswith("rules/")}
    return {body["name"]: body for body in parsed.values()}


@pytest.fixture(scope="module")
def elastalert() -> Iterator[None]:
    if check.python312() is None:
        pytest.skip("Python 3.12 is not installed, and ElastAlert2 2.31 needs it (tests/elastalert/setup_venv.sh)")
    check.ensure_venv()
    yield


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sustain.cli", "export", "elastalert", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


# -- translation -----------------------------------------------------------------------------------------------


def test_every_rule_is_exported_with_a_unique_name_matching_its_file(config: MonitorConfig) -> None:
    files = export_rules(config)
    assert set(files) == {"config.yaml"} | {f"rules/{name}.yaml" for name in EXPECTED}
    for filename, text in files.items():
        assert text.startswith("# Generated by `sustain export elastalert`")
        if filename != "config.yaml":
            assert yaml.safe_load(text)["name"] == filename.removeprefix("rules/").removesuffix(".yaml")


def test_rule_types(rules: dict[str, dict[str, Any]]) -> None:
    assert {name: body["type"] for name, body in rules.items()} == {n: e[0] for n, e in EXPECTED.items()}


def test_names_stay_unique_when_model_and_rule_names_collide() -> None:
    config = load_config_text(
        """
models:
  - {name: a-b, features: {x: numeric}, alerts: [{name: c, when: {indicator: drift, status: alert}}]}
  - {name: a, features: {x: numeric}, alerts: [{name: b-c, when: {indicator: drift, status: alert}}]}
"""
    )
    names = [yaml.safe_load(text)["name"] for name, text in export_rules(config).items() if name != "config.yaml"]
    assert len(names) == len(set(names)) == 2


def test_hook_urls_carry_model_rule_and_action(rules: dict[str, dict[str, Any]]) -> None:
    alerts = rules["churn-drift-any"]["alert"]
    urls = [entry["post2"]["http_post2_url"] for entry in alerts]
    assert [urlsplit(u).path for u in urls] == ["/v1/hooks/team-slack", "/v1/hooks/retrain"]
    for url in urls:
        assert url.startswith("http://sustain:8000/")
        assert parse_qs(urlsplit(url).query) == {"model": ["churn"], "rule": ["drift-any"]}
    parts = [rules[f"churn-drift-and-accuracy-{n}"] for n in (1, 2, 3, 4)]
    for body in parts:
        queries = [parse_qs(urlsplit(e["post2"]["http_post2_url"]).query) for e in body["alert"]]
        assert queries == [{"model": ["churn"], "rule": ["drift-and-accuracy"]}] * 2
        assert body["http_post2_payload"]["rule"] == "drift-and-accuracy"
    assert rules["price-quiet"]["alert"] == ["debug"]  # a rule without actions only logs


def test_realert_is_the_cooldown_and_severity_the_priority(rules: dict[str, dict[str, Any]]) -> None:
    assert rules["churn-drift-any"]["realert"] == {"hours": 6}
    assert rules["churn-drift-persistent"]["realert"] == {"days": 1}
    assert rules["churn-age-drift-high"]["realert"] == {"hours": 1}
    assert rules["churn-drift-any"]["priority"] == 1 and rules["churn-age-drift-high"]["priority"] == 2


def test_indicator_rules_read_the_engine_index_by_window_end(rules: dict[str, dict[str, Any]]) -> None:
    for name, body in rules.items():
        assert body["use_strftime_index"] is False
        if body["type"] == "flatline":
            assert body["index"] == f"sustain-events-{name.split('-')[0]}"
            assert body["timestamp_field"] == "@timestamp"
        else:
            assert body["index"] == "sustain-indicators"
            assert body["timestamp_field"] == "window_end"
            assert {"term": {"model": name.split("-")[0]}} in body["filter"]


def test_value_thresholds_become_metric_aggregations(rules: dict[str, dict[str, Any]]) -> None:
    high = rules["churn-age-drift-high"]
    assert (high["metric_agg_key"], high["metric_agg_type"], high["max_threshold"]) == ("value", "max", 0.3)
    assert {"term": {"feature": "age"}} in high["filter"] and high["query_key"] == "version"
    assert high["buffer_time"] == {"hours": 1}  # one window per series in each aggregation
    low = rules["churn-accuracy-low"]
    assert (low["metric_agg_type"], low["min_threshold"], low["buffer_time"]) == ("min", 0.8, {"days": 1})
    assert {"term": {"metric": "accuracy"}} in low["filter"] and {"term": {"window": "1d"}} in low["filter"]
    assert rules["churn-drift-effect-any"]["query_key"] == ["feature", "version"]
    assert rules["churn-drift-effect-any"]["http_post2_payload"]["feature"] == "{{ feature }}"


def test_for_n_becomes_frequency_over_n_windows(rules: dict[str, dict[str, Any]]) -> None:
    body = rules["churn-drift-persistent"]
    assert (body["num_events"], body["timeframe"]) == (3, {"hours": 3})
    assert {"terms": {"status": ["warn", "alert"]}} in body["filter"]
    text = export_rules(load_config_text(RICH_SPEC))["rules/churn-drift-persistent.yaml"]
    assert "approximated" in text and "consecutive" in text


def test_share_uses_the_drift_summary_document(rules: dict[str, dict[str, Any]]) -> None:
    body = rules["churn-drift-share"]
    assert {"range": {"value": {"gte": 0.5}}} in body["filter"]
    assert {"bool": {"must_not": [{"exists": {"field": "feature"}}]}} in body["filter"]
    other = rules["churn-missing-share"]  # not drift: the share of matching feature documents
    assert other["match_bucket_filter"] == [{"range": {"value": {"gt": 0.1}}}]
    assert 29.99 < other["max_percentage"] < 30
    assert 99.99 < rules["churn-all-missing"]["max_percentage"] < 100


def test_spike_and_flatline(rules: dict[str, dict[str, Any]]) -> None:
    spike = rules["churn-latency-spike"]
    assert (spike["spike_type"], spike["timeframe"], spike["metric_agg_type"]) == ("up", {"hours": 6}, "avg")
    assert spike["spike_height"] == spike_height(3, 6, "up") == pytest.approx(4 / 3, abs=1e-6)
    assert spike_height(2, 10, "both") == min(spike_height(2, 10, "up"), spike_height(2, 10, "down"))
    flat = rules["churn-silence"]
    assert (flat["threshold"], flat["timeframe"], flat["use_count_query"]) == (10, {"minutes": 30}, True)
    assert "query_key" not in rules["price-value-drift-1"]  # dedup: model_rule keeps one alert across versions


def test_combinations_say_that_sustain_confirms_the_whole_condition(config: MonitorConfig) -> None:
    files = export_rules(config)
    for n in (1, 2, 3, 4):
        text = files[f"rules/churn-drift-and-accuracy-{n}.yaml"]
        assert f"part {n} of 4 of the rule's `all` condition" in text
        assert "rule=drift-and-accuracy" in text and "confirms the rule's whole condition" in text
    assert "of the rule's `any` condition" in files["rules/price-value-drift-1.yaml"]


def test_payload_header_and_options(config: MonitorConfig) -> None:
    files = export_rules(config, hook_url="https://mon.example/sustain/", index="acme-indicators", prefix="acme")
    body = yaml.safe_load(files["rules/churn-drift-any.yaml"])
    assert body["index"] == "acme-indicators"
    assert body["alert"][0]["post2"]["http_post2_url"].startswith("https://mon.example/sustain/v1/hooks/team-slack?")
    assert body["http_post2_payload"] == {
        "model": "churn",
        "rule": "drift-any",
        "indicator": "drift",
        "window": "1h",
        "version": "{{ version }}",
        "feature": "{{ feature }}",
        "elastalert_rule": "churn-drift-any",
    }
    assert body["http_post2_raw_fields"] == {"value": "value"}
    assert body["http_post2_headers"] == {"Authorization": "Bearer ${SUSTAIN_TOKEN}"}
    assert yaml.safe_load(files["rules/churn-silence.yaml"])["index"] == "acme-events-churn"
    plain = yaml.safe_load(export_rules(config, token_header=False)["rules/churn-drift-any.yaml"])
    assert "http_post2_headers" not in plain
    settings = yaml.safe_load(export_rules(config, es_host="es.internal", es_port=9243)["config.yaml"])
    assert settings["rules_folder"] == "rules" and (settings["es_host"], settings["es_port"]) == ("es.internal", 9243)
    assert settings["run_every"] == {"minutes": 1} and settings["writeback_index"] == "elastalert_status"
    with pytest.raises(ValidationError, match="hook URL"):
        export_rules(config, hook_url="sustain:8000")


def test_write_rules_replaces_stale_generated_files_only(config: MonitorConfig, tmp_path: Path) -> None:
    first = write_rules(export_rules(config), tmp_path)
    assert len(first.written) == len(EXPECTED) + 1 and first.removed == []
    mine = tmp_path / "rules" / "hand-written.yaml"
    mine.write_text("name: mine\n", encoding="utf-8")
    smaller = load_config_text(RICH_SPEC.replace("- name: all-missing", "- name: all-missing-renamed"))
    second = write_rules(export_rules(smaller), tmp_path)
    assert [p.name for p in second.removed] == ["churn-all-missing.yaml"]
    assert mine.exists() and (tmp_path / "rules" / "churn-all-missing-renamed.yaml").exists()


# -- the real ElastAlert2 ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_exported_rule_loads_in_elastalert2(config: MonitorConfig, tmp_path: Path, elastalert: None) -> None:
    written = write_rules(export_rules(config), tmp_path).written
    rule_files = [p for p in written if p.parent.name == "rules"]
    report = check.check(rule_files, tmp_path / "config.yaml")
    assert report.problems == []
    loaded = {rule["name"]: rule for rule in report.rules}
    assert set(loaded) == set(EXPECTED)
    for name, (_, cls, posts) in EXPECTED.items():
        assert loaded[name]["type"] == cls, name
        assert loaded[name]["alerters"] == (["HTTPPost2Alerter"] * posts or ["DebugAlerter"]), name
    assert [parse_qs(urlsplit(u).query)["rule"] for u in loaded["churn-drift-any"]["urls"]] == [["drift-any"]] * 2


@pytest.mark.slow
def test_the_harness_catches_a_broken_rule(config: MonitorConfig, tmp_path: Path, elastalert: None) -> None:
    files = export_rules(config)
    broken = files["rules/churn-age-drift-high.yaml"].replace("metric_agg_type: max", "metric_agg_type: average")
    assert broken != files["rules/churn-age-drift-high.yaml"]
    written = write_rules({"config.yaml": files["config.yaml"], "rules/churn-age-drift-high.yaml": broken}, tmp_path)
    problems = check.validate([p for p in written.written if p.parent.name == "rules"], tmp_path / "config.yaml")
    assert any("--schema-only" in p and "churn-age-drift-high.yaml" in p for p in problems), problems
    assert any("loader" in p and "'average' is not one of" in p for p in problems), problems


class Capture(BaseHTTPRequestHandler):
    """Stands in for sustain's hook: records every POST."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "auth": self.headers["Authorization"], "body": json.loads(body)})
        self.send_response(202)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (Capture,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join()


def _document(hour: int, status: str) -> dict[str, Any]:
    return {
        "window_end": f"2026-01-01T{hour:02d}:00:00Z",
        "model": "churn",
        "version": "3",
        "indicator": "drift",
        "feature": "age",
        "window": "1h",
        "value": 0.41,
        "status": status,
    }


@pytest.mark.slow
def test_elastalert2_posts_to_the_hook_with_model_rule_token_and_payload(
    config: MonitorConfig, tmp_path: Path, elastalert: None, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = hook
    write_rules(export_rules(config, hook_url=url), tmp_path)
    rule = tmp_path / "rules" / "churn-drift-any.yaml"
    done = check.run_on_documents(rule, tmp_path / "config.yaml", [_document(1, "alert")], {"SUSTAIN_TOKEN": "tk"})
    assert done.returncode == 0, done.stderr
    assert [r["path"] for r in received] == [
        "/v1/hooks/team-slack?model=churn&rule=drift-any",
        "/v1/hooks/retrain?model=churn&rule=drift-any",
    ]
    assert {r["auth"] for r in received} == {"Bearer tk"}  # ${SUSTAIN_TOKEN} expanded from ElastAlert2's environment
    assert received[0]["body"] == {
        "model": "churn",
        "rule": "drift-any",
        "indicator": "drift",
        "window": "1h",
        "version": "3",
        "feature": "age",
        "elastalert_rule": "churn-drift-any",
        "value": 0.41,
    }
    received.clear()
    persistent = tmp_path / "rules" / "churn-drift-persistent.yaml"  # for: 3
    with_gap = [_document(h, "warn") for h in (1, 2, 4)]
    assert check.run_on_documents(persistent, tmp_path / "config.yaml", with_gap).returncode == 0
    assert received == []
    in_a_row = [_document(h, "warn") for h in (1, 2, 3)]
    assert check.run_on_documents(persistent, tmp_path / "config.yaml", in_a_row).returncode == 0
    assert [r["path"] for r in received] == ["/v1/hooks/on-call?model=churn&rule=drift-persistent"]


# -- the command ----------------------------------------------------------------------------------------------------


def test_cli_writes_the_files(tmp_path: Path) -> None:
    (tmp_path / "sustain.yaml").write_text(RICH_SPEC, encoding="utf-8")
    done = run_cli("--config", "sustain.yaml", "--out", "elastalert", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(EXPECTED)} ElastAlert2 rule(s) and config.yaml to elastalert" in done.stdout
    assert (tmp_path / "elastalert" / "config.yaml").is_file()
    assert sorted(p.stem for p in (tmp_path / "elastalert" / "rules").glob("*.yaml")) == sorted(EXPECTED)
    as_json = run_cli("-c", "sustain.yaml", "--out", "elastalert", "--json", "--hook-url", "http://s:1", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["rules"] == len(EXPECTED) and "elastalert/config.yaml" in body["files"]
    assert "http://s:1/v1/hooks/" in (tmp_path / "elastalert" / "rules" / "churn-drift-any.yaml").read_text()


def test_cli_bad_config_is_a_sentence_with_exit_code_2(tmp_path: Path) -> None:
    missing = run_cli("--config", "nope.yaml", "--out", "out", cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope.yaml: no such file" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "bad.yaml").write_text("models: [{name: m}]\n", encoding="utf-8")
    invalid = run_cli("--config", "bad.yaml", "--out", "out", cwd=tmp_path)
    assert invalid.returncode == 2
    assert "invalid monitor spec" in invalid.stderr and "Traceback" not in invalid.stderr
    (tmp_path / "sustain.yaml").write_text(RICH_SPEC, encoding="utf-8")
    url = run_cli("--config", "sustain.yaml", "--out", "out", "--hook-url", "ftp://x", cwd=tmp_path)
    assert url.returncode == 2 and "the hook URL must be" in url.stderr and "Traceback" not in url.stderr
    assert not (tmp_path / "out").exists()
