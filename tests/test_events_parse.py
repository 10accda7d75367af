from __future__ import annotations

from datetime import UTC, datetime

from sustain.collector.events import parse_events
from sustain.spec import ModelSpec
from sustain.spec.loader import parse_model_spec

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(**kw):
    base = {"features": {"age": 40, "income": 1000.5, "plan": "pro", "active": True, "note": "hi"}}
    base.update(kw)
    return base


def test_valid_batch_becomes_typed_columns(churn_spec: ModelSpec) -> None:
    items = [
        event(event_id="a", request_id="r1", outputs={"prediction": "churn", "proba": [0.3, 0.7]}, latency_ms=3),
        event(timestamp="2026-06-01T11:00:00+02:00", outputs={"proba": {"churn": 0.9, "stay": 0.1}}, version=7),
    ]
    parsed = parse_events(churn_spec, items, NOW)
    assert parsed.errors == []
    t = parsed.table.to_pylist()
    assert t[0]["f:age"] == 40.0 and t[0]["f:plan"] == "pro" and t[0]["f:active"] is True
    assert t[0]["o:proba:churn"] == 0.7 and t[1]["o:proba:churn"] == 0.9
    assert t[0]["version"] == "1" and t[1]["version"] == "7"
    assert t[1]["ts"] == datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert t[0]["ts"] == NOW


def test_envelope_problems_reject_only_that_item(churn_spec: ModelSpec) -> None:
    items = [
        event(),
        {"featurs": {}},
        [1, 2],
        event(latency_ms="fast"),
        event(timestamp="yesterday"),
        event(timestamp="2030-01-01T00:00:00Z"),
        {"outputs": {}},
        event(features=[1, 2]),
        event(tags="x"),
        event(event_id=""),
        event(version=""),
        event(error=5),
        event(),
    ]
    parsed = parse_events(churn_spec, items, NOW)
    assert parsed.table.num_rows == 2
    reasons = {e.index: (e.field, e.reason) for e in parsed.errors}
    assert reasons[1][0] == "featurs" and "unknown field" in reasons[1][1]
    assert "JSON object" in reasons[2][1]
    assert reasons[3][0] == "latency_ms"
    assert reasons[4][0] == "timestamp" and "ISO 8601" in reasons[4][1]
    assert "future" in reasons[5][1]
    assert reasons[6] == ("features", "features is required")
    assert reasons[7][0] == "features"
    assert reasons[8][0] == "tags"
    assert reasons[9][0] == "event_id"
    assert reasons[10][0] == "version"
    assert reasons[11][0] == "error"
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_wrong_value_types_are_kept_as_null_and_listed(churn_spec: ModelSpec) -> None:
    items = [
        event(
            features={"age": "old", "income": True, "plan": 3, "active": "yes", "note": 5},
            outputs={"proba": [0.5, 0.3, 0.2], "prediction": ["x"]},
        ),
    ]
    parsed = parse_events(churn_spec, items, NOW)
    row = parsed.table.to_pylist()[0]
    assert row["f:age"] is None and row["f:income"] == 1.0 and row["f:plan"] == "3" and row["f:active"] is True
    assert row["f:note"] is None
    assert row["o:proba:stay"] is None
    assert sorted(row["invalid"]) == ["age", "note", "outputs.prediction", "outputs.proba"]
    assert parsed.invalid_values == 5  # proba counts once per class column


def test_unknown_features_kept_or_rejected(churn_spec: ModelSpec) -> None:
    items = [event(features={"age": 1, "colour": "red"}, outputs={"extra_out": 1})]
    kept = parse_events(churn_spec, items, NOW)
    assert kept.table.num_rows == 1
    assert kept.table.to_pylist()[0]["extra"] == '{"features":{"colour":"red"},"outputs":{"extra_out":1}}'
    strict = parse_model_spec({**churn_spec.model_dump(), "unknown_features": "reject"})
    rejected = parse_events(strict, items, NOW)
    assert rejected.table.num_rows == 0
    assert rejected.errors[0].field == "features.colour"


def test_epoch_and_naive_timestamps() -> None:
    spec = parse_model_spec({"name": "m", "features": {"x": "numeric"}})
    parsed = parse_events(
        spec,
        [{"features": {"x": 1}, "timestamp": 1780000000.5}, {"features": {"x": 1}, "timestamp": "2026-05-01 10:00"}],
        NOW,
    )
    ts = parsed.table.column("ts").to_pylist()
    assert ts[0] == datetime.fromtimestamp(1780000000.5, UTC)
    assert ts[1] == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_embedding_dimension_is_checked() -> None:
    spec = parse_model_spec({"name": "m", "features": {"e": {"kind": "embedding", "dim": 3}}})
    parsed = parse_events(spec, [{"features": {"e": [1, 2, 3]}}, {"features": {"e": [1, 2]}}], NOW)
    rows = parsed.table.to_pylist()
    assert rows[0]["f:e"] == [1.0, 2.0, 3.0]
    assert rows[1]["f:e"] is None and rows[1]["invalid"] == ["e"]
