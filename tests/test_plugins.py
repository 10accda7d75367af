"""The plugin API end to end: entry-point discovery, the conformance suite, and containment of broken plugins."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from sustain.backends.duckdb.engine import embedded_engine
from sustain.backends.duckdb.store import DuckDBStore
from sustain.collector.events import parse_events
from sustain.collector.reference import to_layout
from sustain.errors import SpecError
from sustain.indicators.builtin import BUILTIN
from sustain.indicators.change import ChangeDetector
from sustain.indicators.checks import check_indicator
from sustain.indicators.documents import IndicatorQuery
from sustain.indicators.registry import build, indicators
from sustain.spec import IndicatorSpec
from sustain.spec.loader import load_config_text, parse_model_spec
from sustain.store.base import EventBatch
from sustain.synthetic import SyntheticModel
from tests.conftest import make_client
from tests.helpers import CHURN_YAML

T0 = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.mark.parametrize("cls", BUILTIN, ids=lambda c: c.name)
def test_every_builtin_passes_the_conformance_suite(cls) -> None:
    check_indicator(cls(watch="traffic") if cls is ChangeDetector else cls())


def test_the_example_plugin_is_found_through_its_entry_point() -> None:
    cls = indicators.get("prediction_entropy")
    assert cls.__module__ == "sustain_example_plugin"
    check_indicator(cls())


def test_unknown_types_and_parameters_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="unknown indicator 'driftt'"):
        build(IndicatorSpec(type="driftt"))
    with pytest.raises(SpecError, match="has no parameter 'alfa'"):
        build(IndicatorSpec(type="drift", params={"alfa": 1}))
    with pytest.raises(SpecError, match="alpha must be between 0 and 1"):
        build(IndicatorSpec(type="drift", params={"alpha": 3}))


def test_plugin_values_appear_in_the_api(tmp_path: Path) -> None:
    spec = load_config_text(CHURN_YAML).model("churn")
    assert spec is not None
    with make_client(tmp_path, transform_interval=0.2, indicator_interval=0.2) as client:
        body = spec.model_dump(mode="json")
        body["indicators"] = [{"type": "prediction_entropy", "params": {"margin": 0.2}}]
        assert client.put("/v1/models/churn", json=body).status_code == 200
        model = SyntheticModel(spec, seed=2)
        ref = model.reference(3000)
        assert (
            client.put(
                "/v1/models/churn/reference",
                json=[dict(zip(ref, row, strict=True)) for row in zip(*ref.values(), strict=True)],
            ).status_code
            == 200
        )
        assert client.post("/v1/models/churn/events", json=model.events(500)).status_code == 200
        deadline = time.monotonic() + 20
        docs: list[dict] = []
        while time.monotonic() < deadline and not docs:
            reply = client.get("/v1/models/churn/indicators", params={"indicator": "prediction_entropy"}).json()
            docs = [d for d in reply["indicators"] if d["n"] == 500]
            time.sleep(0.2)
        assert docs and docs[0]["feature"] == "proba" and docs[0]["status"] == "ok"


def test_broken_plugins_are_contained(tmp_path: Path) -> None:
    spec = parse_model_spec(
        {
            "name": "m",
            "features": {"x": "numeric", "y": "numeric"},
            "windows": ["1h"],
            "plugins": ["tests.broken_plugins"],
            "indicators": [
                {"type": "broken_raises"},
                {"type": "broken_garbage"},
                {"type": "broken_nan"},
                {"type": "broken_slow", "params": {"seconds": 3.0}},
                {"type": "drift"},
            ],
        }
    )
    store = DuckDBStore(f"duckdb:///{tmp_path / 'b.duckdb'}")
    store.put_spec(spec)
    model = SyntheticModel(spec, seed=1)
    store.put_reference("m", "1", to_layout(spec, pa.table(model.reference(2000))).table)
    engine = embedded_engine(store, clock=lambda: T0 + timedelta(days=1), indicator_timeout=0.5)
    engine.on_reference("m", "1")
    events = model.events(300)
    for i, e in enumerate(events):
        e["timestamp"] = (T0 + timedelta(seconds=i)).isoformat()
    store.append_events([EventBatch("m", parse_events(spec, events, T0 + timedelta(days=1)).table)])
    engine.step()  # the slow plugin does not hold it: its value is an error once indicator_timeout passes
    docs = engine.documents.query(IndicatorQuery("m", limit=100))
    errors = {d.indicator: d.details["error"] for d in docs if d.status == "error"}
    assert "this plugin always fails" in errors["broken_raises"]
    assert "must yield IndicatorValue" in errors["broken_garbage"]
    assert "finite" in errors["broken_nan"]
    assert "timed out after 0.5s" in errors["broken_slow"]
    assert any(d.indicator == "drift" and d.status == "ok" for d in docs)  # the others still ran
    assert engine.stats.indicator_errors == 4
    engine.stop()
