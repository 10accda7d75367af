from __future__ import annotations

import pytest

from sustain.errors import SpecError
from sustain.spec import ModelSpec
from sustain.spec.loader import load_config, load_config_text, parse_model_spec
from tests.helpers import CHURN_YAML


def problems(text: str) -> list[dict]:
    with pytest.raises(SpecError) as info:
        load_config_text(text, source="s.yaml")
    return info.value.details


def test_example_spec_loads(churn_spec: ModelSpec) -> None:
    assert [f.name for f in churn_spec.features] == ["age", "income", "plan", "active", "note"]
    age, proba = churn_spec.feature("age"), churn_spec.output("proba")
    assert age is not None and age.range == (18.0, 100.0)
    assert proba is not None and proba.classes == ["stay", "churn"]
    assert churn_spec.windows == ["1m", "1h"]
    assert churn_spec.effective_default_version == "1"


def test_repo_example_is_valid() -> None:
    config = load_config("examples/sustain.yaml")
    assert {m.name for m in config.models} >= {"churn", "delivery-time"}


def test_single_model_file_needs_no_models_wrapper() -> None:
    config = load_config_text("name: solo\nfeatures: {x: numeric}\n")
    assert config.models[0].name == "solo"


def test_errors_name_line_and_path() -> None:
    text = (
        "models:\n  - name: m\n    features:\n      age: {kind: numbr}\n"
        "      plan: {kind: categorical, range: [1, 2]}\n"
    )
    found = problems(text)
    assert found[0]["where"] == "s.yaml:4: models[0].features.age.kind"
    assert "numeric" in found[0]["message"]
    assert found[1]["where"].startswith("s.yaml:5: models[0].features.plan")
    assert "range applies to numeric features" in found[1]["message"]


@pytest.mark.parametrize(
    ("snippet", "reason"),
    [
        ("name: Bad Name\n    features: {x: numeric}", "lowercase"),
        ("name: m\n    features: {}", "at least 1"),
        ("name: m\n    features: {x: numeric}\n    windows: [7m]", "divide a day"),
        ("name: m\n    features: {x: numeric}\n    windows: [1h, 60m]", "distinct"),
        ("name: m\n    features: {x: numeric}\n    windows: [soon]", "not a duration"),
        ("name: m\n    features: {x: {kind: embedding}}", "needs dim"),
        ("name: m\n    features: {x: {kind: numeric, range: [5, 1]}}", "low <= high"),
        ("name: m\n    features: {x: numeric}\n    outputs: {p: {kind: class_scores}}", "needs classes"),
        ("name: m\n    features: {x: numeric}\n    outputs: {x: regression}", "unique"),
        ("name: m\n    features: {x: numeric}\n    label: {kind: class_label, classes: [a]}", "at least two"),
        ("name: m\n    features: {x: numeric}\n    label: {kind: regression, classes: [a, b]}", "do not apply"),
        ("name: m\n    features: {x: numeric}\n    colour: blue", "Extra inputs"),
        ("name: m\n    features: {x: numeric}\n    indicators: [{type: drift, features: [y]}]", "unknown feature"),
        ("name: m\n    features: {x: numeric}\n    cloudevents: {node: Prep_1}", "graph node name"),
        ("name: m\n    features: {x: numeric}\n    cloudevents: {node: prep, version_from: modelid}", "use endpoint"),
    ],
)
def test_invalid_specs_are_explained(snippet: str, reason: str) -> None:
    found = problems(f"models:\n  - {snippet}\n")
    assert any(reason in p["message"] for p in found), found


def test_duplicate_models_and_bad_yaml() -> None:
    assert (
        "unique"
        in problems("models:\n  - {name: a, features: {x: numeric}}\n  - {name: a, features: {x: numeric}}\n")[0][
            "message"
        ]
    )
    with pytest.raises(SpecError, match=r"s.yaml:3: not valid YAML"):
        load_config_text("models:\n  - name: [unclosed\n", source="s.yaml")
    with pytest.raises(SpecError, match="empty"):
        load_config_text("", source="s.yaml")


def test_two_models_cannot_follow_one_graph_node() -> None:
    follow = "cloudevents: {inference_service: churn, node: prep}"
    a, b = (f"{{name: {name}, features: {{x: numeric}}, {follow}}}" for name in "ab")
    text = f"models:\n  - {a}\n  - {b}\n"
    assert "models a and b both follow node 'prep' of inference service 'churn'" in problems(text)[0]["message"]
    ok = text.replace("node: prep}}\n  - {name: b", "node: score}}\n  - {name: b", 1)
    assert [m.cloudevents.follows(m.name) for m in load_config_text(ok).models] == [
        ("churn", "score"),
        ("churn", "prep"),
    ]


def test_missing_file_is_a_spec_error(tmp_path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_numbers_in_yaml_lists_become_strings() -> None:
    spec = parse_model_spec(
        {"name": "m", "versions": [1, 2], "features": {"c": {"kind": "categorical", "categories": [1, 2, True]}}}
    )
    assert spec.versions == ["1", "2"]
    feature = spec.feature("c")
    assert feature is not None and feature.categories == ["1", "2", "true"]


def test_spec_round_trips_through_json() -> None:
    spec = load_config_text(CHURN_YAML).models[0]
    assert ModelSpec.model_validate_json(spec.model_dump_json()) == spec


ACTIONS_YAML = """models:
  - name: churn
    features: {age: numeric}
    actions:
      team: {type: slack, url: "${SLACK_URL}"}
      pager: {type: webhook, secret: x}
      retrain: {type: retrain, log_dir: /tmp}
"""


def test_action_options_are_checked_when_the_spec_loads_with_their_line() -> None:
    with pytest.raises(SpecError) as failed:
        load_config_text(ACTIONS_YAML, source="sustain.yaml")
    problems = {p["where"]: p["message"] for p in failed.value.details}
    assert problems == {
        "sustain.yaml:6: models[0].actions.pager": "action type 'webhook' needs the option 'url'",
        "sustain.yaml:7: models[0].actions.retrain": "a retrain action needs url, command or mlflow_project",
    }


def test_a_misspelt_option_names_the_options_of_the_type() -> None:
    with pytest.raises(SpecError, match=r"action type 'slack' has no option 'uri' \(its options: text, url\)"):
        parse_model_spec({"name": "m", "features": {"x": "numeric"}, "actions": {"a": {"type": "slack", "uri": "u"}}})


def test_the_api_refuses_an_unknown_action_type_or_bad_plugin_options(client) -> None:
    spec = {"features": {"x": "numeric"}, "actions": {"a": {"type": "pagerduty", "key": "k"}}}
    r = client.put("/v1/models/m", json=spec)
    assert r.status_code == 422, r.text
    assert (
        r.json()["error"]["field"] == "actions.a.type" and "unknown action 'pagerduty'" in r.json()["error"]["message"]
    )
    assert client.get("/v1/models/m").status_code == 404  # nothing stored
