"""``sustain export kibana``: Kibana 8.x saved objects whose references resolve and whose fields exist.

No Kibana runs here. The checks are those of ../shared/reference/integrations.md §3 (JSON per line, the
embedded JSON strings parse, every ``*RefName`` has its reference, every reference its object, dashboard
attributes within the v1 schema), plus: every field a visualization reads exists, with a fitting type, in the
mappings the Elasticsearch engine creates.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sustain.backends.elasticsearch.documents import indicators_index_body
from sustain.backends.elasticsearch.kibana import saved_objects, to_ndjson
from sustain.backends.elasticsearch.mappings import events_data_stream
from sustain.backends.elasticsearch.transforms import dest_index_body, events_index_template, windows_alias
from sustain.spec import ModelSpec
from sustain.spec.loader import load_config_text
from sustain.transforms.plan import plan_for
from tests.helpers import CHURN_YAML

EXTRA_YAML = """
  - name: odd-names
    features:
      account age: numeric
      size.cm: numeric
    windows: [1m, 5m]
    indicators:
      - type: drift
      - type: traffic
"""
# The dashboard saved object's v1 schema (unknowns: 'forbid'), as listed in integrations.md §3.
V1_DASHBOARD_KEYS = {
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
# From a real 8.8 export (elastic/kibana kbn_archiver/lens/fundamental_config_errors_on_dashboard.json).
TYPE_MIGRATION = {"index-pattern": "8.0.0", "lens": "8.6.0", "dashboard": "8.7.0"}
NUMERIC = {"double", "long", "float", "integer", "scaled_float"}
JSON_STRINGS = ("panelsJSON", "optionsJSON", "searchSourceJSON")


def specs() -> list[ModelSpec]:
    return load_config_text(CHURN_YAML + EXTRA_YAML).models


@pytest.fixture(scope="module", params=["sustain", "acme-2"])
def export(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    prefix = request.param
    text = to_ndjson(saved_objects(specs(), prefix=prefix))
    assert text.endswith("\n")
    lines = text.splitlines()
    objects = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects) and len(objects) == len(lines)
    return prefix, objects


def parsed(attributes: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every (key, value) in the attributes, descending into the JSON strings Kibana stores."""
    for key, value in attributes.items():
        if key in JSON_STRINGS:
            value = json.loads(value)
        yield key, value
        if isinstance(value, dict):
            yield from parsed(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from parsed(item)


def test_envelopes_and_version_fields(export: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = export
    for o in objects:
        assert set(o) == {"type", "id", "attributes", "references", "coreMigrationVersion", "typeMigrationVersion"}
        assert o["coreMigrationVersion"] == "8.8.0" and o["typeMigrationVersion"] == TYPE_MIGRATION[o["type"]]
        assert all(set(r) == {"type", "id", "name"} for r in o["references"])
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(set(ids)) == len(ids)
    assert len({o["id"] for o in objects}) == len(objects)  # unique across types too
    kinds = [o["type"] for o in objects]
    assert kinds.index("lens") > max(i for i, k in enumerate(kinds) if k == "index-pattern")  # data views first


def test_json_strings_parse_and_dashboards_keep_to_the_v1_schema(export: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = export
    dashboards = [o for o in objects if o["type"] == "dashboard"]
    assert len(dashboards) == len(specs()) + 1
    for board in dashboards:
        attributes = board["attributes"]
        assert set(attributes) <= V1_DASHBOARD_KEYS, set(attributes) - V1_DASHBOARD_KEYS
        assert isinstance(attributes["title"], str) and attributes["title"]
        panels = json.loads(attributes["panelsJSON"])
        assert isinstance(json.loads(attributes["optionsJSON"]), dict)
        search = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert search["query"] == {"query": "", "language": "kuery"} and search["filter"] == []
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            grid = panel["gridData"]
            assert grid["i"] == panel["panelIndex"] and panel["version"] == "8.8.0" and panel["type"] == "lens"
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 48 and grid["h"] > 0
            mine = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not mine & cells, f"panel {panel['panelIndex']} overlaps another"
            cells |= mine
        assert len({p["panelIndex"] for p in panels}) == len(panels)


def test_every_ref_name_has_its_reference_and_every_reference_its_object(
    export: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = export
    present = {(o["type"], o["id"]) for o in objects}
    ref_names = 0
    for o in objects:
        names = [r["name"] for r in o["references"]]
        assert len(set(names)) == len(names)
        for key, value in parsed(o["attributes"]):
            if key.endswith("RefName"):
                ref_names += 1
                assert value in names or any(n.endswith(f":{value}") for n in names), (o["id"], key, value)
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in present, f"{o['id']} refers to a missing {ref['type']} {ref['id']}"
        if o["type"] == "dashboard":
            panels = json.loads(o["attributes"]["panelsJSON"])
            expected = {f"{p['panelIndex']}:{p['panelRefName']}" for p in panels}
            assert expected == set(names) and all(p["panelRefName"] == f"panel_{p['panelIndex']}" for p in panels)
            assert {r["type"] for r in o["references"]} == {"lens"}
        if o["type"] == "lens":
            layers = o["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
            assert set(names) == {f"indexpattern-datasource-layer-{layer}" for layer in layers}
            assert {r["type"] for r in o["references"]} == {"index-pattern"}
    assert ref_names >= len([o for o in objects if o["type"] == "lens"])  # every dashboard panel at least


def test_lens_states_are_consistent(export: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = export
    for o in (o for o in objects if o["type"] == "lens"):
        attributes = o["attributes"]
        assert set(attributes) <= {"title", "description", "visualizationType", "state"}
        state = attributes["state"]
        ((layer_id, layer),) = state["datasourceStates"]["formBased"]["layers"].items()
        assert layer["columnOrder"] == list(layer["columns"])
        columns = set(layer["columns"])
        visualization = state["visualization"]
        if attributes["visualizationType"] == "lnsXY":
            (vis,) = visualization["layers"]
            used = {vis["xAccessor"], *vis["accessors"], *([vis["splitAccessor"]] if "splitAccessor" in vis else [])}
        else:
            assert attributes["visualizationType"] == "lnsDatatable"
            vis = visualization
            used = {c["columnId"] for c in vis["columns"]}
        assert vis["layerId"] == layer_id and used == columns
        for column in layer["columns"].values():
            order = column.get("params", {}).get("orderBy", {})
            assert order.get("type") != "column" or order["columnId"] in columns


# -- fields against the mappings the Elasticsearch engine creates -------------------------------------------


def mappings_by_title(prefix: str) -> dict[str, list[dict[str, Any]]]:
    every = specs()
    events = {
        events_data_stream(s.name, prefix): events_index_template(s, prefix=prefix)["template"]["mappings"]
        for s in every
    }
    by_title = {title: [m] for title, m in events.items()}
    by_title[f"{prefix}-events-*"] = list(events.values())
    by_title[f"{prefix}-indicators"] = [indicators_index_body()["mappings"]]
    for s in every:
        by_title[",".join(windows_alias(s.name, w, prefix) for w in s.windows)] = [
            dest_index_body(plan_for(s, w, None))["mappings"] for w in s.windows
        ]
    return by_title


def field_type(mapping: dict[str, Any], path: str) -> str | None:
    """The type of a dotted field in an index mapping (resolved through ``properties``), None if absent."""
    node: dict[str, Any] = mapping
    parts = path.split(".")
    for i, part in enumerate(parts):
        child = node.get("properties", {}).get(part)
        if child is None:
            return None
        if i == len(parts) - 1:
            return str(child.get("type", "object"))
        node = child
    return None


def kql_fields(query: str) -> set[str]:
    """The field names of a KQL query (each ``field : value``)."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*:", unquoted))


def test_kql_fields_are_read_from_field_colon_value() -> None:
    assert kql_fields('(model : "a:b") and (not (feature : *)) and (type : ("x" or "y"))') == {
        "model",
        "feature",
        "type",
    }


def test_every_field_a_visualization_reads_exists_in_the_engine_mappings(
    export: tuple[str, list[dict[str, Any]]],
) -> None:
    prefix, objects = export
    titles = {o["id"]: o["attributes"] for o in objects if o["type"] == "index-pattern"}
    by_title = mappings_by_title(prefix)
    assert set(by_title) == {a["title"] for a in titles.values()}
    for attributes in titles.values():
        for mapping in by_title[attributes["title"]]:
            assert field_type(mapping, attributes["timeFieldName"]) == "date", attributes
    checked = 0
    for o in (o for o in objects if o["type"] == "lens"):
        (ref,) = o["references"]
        mappings = by_title[titles[ref["id"]]["title"]]
        state = o["attributes"]["state"]
        (layer,) = state["datasourceStates"]["formBased"]["layers"].values()
        wanted: dict[str, set[str] | None] = {f: None for f in kql_fields(state["query"]["query"])}
        for column in layer["columns"].values():
            operation = column["operationType"]
            if "filter" in column:
                assert column["filter"]["language"] == "kuery"
                for name in kql_fields(column["filter"]["query"]):
                    wanted.setdefault(name, None)
            if "sortField" in column.get("params", {}):
                wanted[column["params"]["sortField"]] = {"date"}
            if column["sourceField"] == "___records___":
                assert operation == "count"
                continue
            wanted[column["sourceField"]] = {"date_histogram": {"date"}, "terms": {"keyword"}}.get(operation, NUMERIC)
        for name, kinds in wanted.items():
            for mapping in mappings:
                found = field_type(mapping, name)
                assert found is not None, f"{o['id']} reads {name!r}, which {titles[ref['id']]['title']} does not map"
                assert kinds is None or found in kinds, (o["id"], name, found)
                checked += 1
    assert checked > 50


def test_panels_follow_what_each_model_computes(export: tuple[str, list[dict[str, Any]]]) -> None:
    prefix, objects = export
    lenses = {o["id"]: o for o in objects if o["type"] == "lens"}
    churn = {i.removeprefix(f"{prefix}-churn-") for i in lenses if i.startswith(f"{prefix}-churn-")}
    assert churn == {
        "traffic",
        "latency",
        "error_rate",
        "drift_share",
        "drift",
        "data_quality",
        "label_metrics",
        "estimated_performance",
    }
    odd = {i.removeprefix(f"{prefix}-odd-names-") for i in lenses if i.startswith(f"{prefix}-odd-names-")}
    assert odd == {"traffic", "latency", "drift_share", "drift"}  # no labels, no quality indicators declared
    drift = lenses[f"{prefix}-churn-drift"]["attributes"]
    assert '(window : "1h")' in drift["state"]["query"]["query"] and "1h windows" in drift["title"]
    assert '(window : "5m")' in lenses[f"{prefix}-odd-names-drift"]["attributes"]["state"]["query"]["query"]


def test_the_export_is_deterministic() -> None:
    assert to_ndjson(saved_objects(specs())) == to_ndjson(saved_objects(specs()))


# -- the command ----------------------------------------------------------------------------------------


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sustain.cli", "export", "kibana", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_the_command_writes_the_file_and_prints_the_import_command(tmp_path: Path) -> None:
    (tmp_path / "sustain.yaml").write_text(CHURN_YAML)
    result = run("--config", "sustain.yaml", "--out", "kibana.ndjson", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "kibana.ndjson").read_text().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    command = (
        'curl -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" -H "kbn-xsrf: true" --form file=@kibana.ndjson'
    )
    assert command in result.stdout.splitlines()
    assert f"wrote {len(lines)} saved objects" in result.stdout
    only = run("--config", "sustain.yaml", "--out", "price.ndjson", "--model", "price", "--json", cwd=tmp_path)
    assert only.returncode == 0, only.stderr
    summary = json.loads(only.stdout)
    assert summary["models"] == ["price"] and summary["import"].endswith("file=@price.ndjson")
    ids = [json.loads(line)["id"] for line in (tmp_path / "price.ndjson").read_text().splitlines()]
    assert sum(summary["objects"].values()) == len(ids) and not any("churn" in i for i in ids)


def test_the_command_reports_bad_input_as_sentences(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: m\n    features: {x: {kind: numbr}}\n")
    result = run("--config", str(bad), "--out", "x.ndjson", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: invalid monitor spec" in result.stderr and "bad.yaml:3" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.ndjson").exists()
    missing = run("--config", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yaml: no such file" in missing.stderr
    (tmp_path / "sustain.yaml").write_text(CHURN_YAML)
    unknown = run("--config", "sustain.yaml", "--model", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "model 'nope' is not in sustain.yaml" in unknown.stderr
    prefix = run("--config", "sustain.yaml", "--prefix", "Bad Prefix", cwd=tmp_path)
    assert prefix.returncode == 2 and "prefix 'Bad Prefix' must be" in prefix.stderr
    unwritable = run("--config", "sustain.yaml", "--out", str(tmp_path / "no" / "such" / "dir.ndjson"), cwd=tmp_path)
    assert unwritable.returncode == 1 and "cannot write" in unwritable.stderr
    for r in (missing, unknown, prefix, unwritable):
        assert "Traceback" not in r.stderr
    no_config = run(cwd=tmp_path)
    assert no_config.returncode == 2 and "--config" in no_config.stderr


def test_indicator_charts_bucket_by_the_window(export: tuple[str, list[dict[str, Any]]]) -> None:
    """One bucket per indicator window: Kibana's automatic interval (30m on a 24h range) breaks hourly lines."""
    prefix, objects = export
    intervals = {}
    for o in (o for o in objects if o["type"] == "lens"):
        (layer,) = o["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
        for column in layer["columns"].values():
            if column["operationType"] == "date_histogram" and column["sourceField"] == "window_start":
                intervals[o["id"]] = column["params"]["interval"]
    assert intervals and "auto" not in intervals.values()
    windows = {spec.name: set(spec.windows) for spec in specs()}
    checked = 0
    for lens_id, interval in intervals.items():
        owners = [m for m in windows if lens_id.startswith(f"{prefix}-{m}-")]
        if owners:  # a model's own chart: one of its windows (the overview takes the longest of all)
            assert interval in windows[max(owners, key=len)], (lens_id, interval)
            checked += 1
    assert checked >= 3
