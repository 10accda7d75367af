"""WindowContext.rows() and reference_rows(): the stored events and reference under the spec's names, exactly."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sustain.backends.duckdb.sources import DuckDBWindowSource
from sustain.backends.elasticsearch.responses import columns_table, labels_by_id
from sustain.backends.elasticsearch.sources import joined_rows
from sustain.errors import MissingDependency
from sustain.indicators.checks import SAMPLE_SPEC, embedded_context, sample_context
from sustain.indicators.context import WindowContext
from sustain.indicators.rows import Rows
from sustain.spec import ModelSpec
from sustain.store.base import EventQuery
from sustain.store.layout import Layout
from sustain.synthetic import SyntheticModel
from tests.es_canned import EVENT_HITS, LABEL_DOCS
from tests.test_store_es_bodies import LABELLED

SPEC = ModelSpec.model_validate(SAMPLE_SPEC)
NAMES = ["age", "income", "plan", "active", "note", "prediction", "proba.no", "proba.yes", "label"]


def holey_window(rows: int = 400, seed: int = 1) -> WindowContext:
    """Synthetic events with missing values and a third of them unlabelled, through the embedded pipeline."""
    synthetic = SyntheticModel(SPEC, seed=seed)
    reference = synthetic.reference(1500)  # columns as a reference file holds them
    events = synthetic.events(rows)
    labels = [None if i % 3 == 0 else y for i, y in enumerate(synthetic.labels_for(events))]
    for i, event in enumerate(events):
        if i % 7 == 0:
            event["features"]["age"] = None
        if i % 11 == 0:
            event["features"]["plan"] = None
        if i % 13 == 0:
            event["features"]["active"] = None
    return embedded_context(SPEC, events, reference=reference, labels=labels, seed=seed)


def stored(ctx: WindowContext) -> list[tuple[Any, ...]]:
    """Every event of the window as the store reads it back (its event API, not the sample query), by name."""
    assert isinstance(ctx.source, DuckDBWindowSource)
    events = ctx.source.store.read_events(SPEC.name, EventQuery(limit=100_000))
    rows = []
    for e in events:
        f, o = e["features"], e["outputs"]
        label = e["label"]["value"] if e["label"] else None
        values = [f["age"], f["income"], f["plan"], f["active"], f["note"], o["prediction"]]
        rows.append(as_key([*values, o["proba"]["no"], o["proba"]["yes"], label]))
    return sorted(rows, key=repr)


def as_key(values: Sequence[Any]) -> tuple[Any, ...]:
    """Plain Python values, NaN as None: a row compares equal whichever path read it."""
    plain = [v.item() if isinstance(v, np.generic) else v for v in values]
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in plain)


def listed(rows: Rows) -> list[tuple[Any, ...]]:
    return sorted((as_key([rows[name][i] for name in NAMES]) for i in range(rows.n)), key=repr)


def test_the_window_rows_are_the_stored_events_under_the_spec_names() -> None:
    ctx = holey_window()
    rows = ctx.rows(10_000)
    assert rows.names == NAMES
    assert (rows.of, rows.n, rows.total, rows.sampled) == ("window", 400, 400, False)
    assert listed(rows) == stored(ctx)
    assert rows.columns_of("proba") == ["proba.no", "proba.yes"] and rows.columns_of("age") == ["age"]
    labels = rows["label"]
    assert sum(v is None for v in labels) == 134 and set(labels) == {None, "no", "yes"}  # i % 3 == 0 unlabelled
    assert rows["age"].dtype == np.float64 and np.isnan(rows["age"]).sum() == 58
    assert {type(v) for v in rows["active"]} == {bool, type(None)}
    scores = rows.scores("proba")
    assert scores.shape == (400, 2) and np.allclose(scores.sum(axis=1), 1.0)


def test_a_bounded_sample_says_how_many_of_how_many() -> None:
    ctx = holey_window()
    rows = ctx.rows(150)
    assert (rows.n, rows.total, rows.sampled, len(rows)) == (150, 400, True, 150)
    everything = stored(ctx)
    assert all(row in everything for row in listed(rows))
    assert listed(ctx.rows(150)) == listed(rows)  # seeded: the same draw
    assert rows.arrays()["proba.yes"].tolist() == rows["proba.yes"].tolist()
    # the draw is the one ctx.sample() makes, in its order
    raw = ctx.sample(["f:income"], 150).column("f:income").to_pylist()
    assert rows["income"].tolist() == raw
    with pytest.raises(ValueError, match="at least 1"):
        ctx.rows(0)


def test_the_frame_holds_the_same_columns_and_says_what_it_is() -> None:
    ctx = holey_window()
    rows = ctx.rows(150)
    frame = rows.frame()
    assert list(frame.columns) == NAMES and len(frame) == 150
    assert frame.attrs == {"of": "window", "n": 150, "total": 400}
    assert str(frame["active"].dtype) == "boolean" and str(frame["age"].dtype) == "float64"
    for name in NAMES:
        assert [as_key([v])[0] for v in frame[name].astype(object).where(frame[name].notna(), None)] == [
            as_key([v])[0] for v in rows[name]
        ], name
    assert list(rows.frame(["proba", "age"]).columns) == ["proba.no", "proba.yes", "age"]
    assert list(rows.arrays(["prediction"])) == ["prediction"]


def test_the_reference_rows_are_its_kept_sample() -> None:
    synthetic = SyntheticModel(SPEC, seed=2)
    raw = synthetic.reference(1500)
    reference = pa.table(raw)
    ctx = embedded_context(SPEC, synthetic.events(50), reference=reference)
    rows = ctx.reference_rows()
    assert (rows.of, rows.n, rows.total, rows.sampled) == ("reference", 1500, 1500, False)
    assert rows.names == NAMES
    want = sorted((as_key([raw[n][i] for n in NAMES]) for i in range(1500)), key=repr)
    assert listed(rows) == want

    smaller = SPEC.model_copy(update={"reference": SPEC.reference.model_copy(update={"sample_size": 300})})
    bounded = embedded_context(smaller, synthetic.events(50), reference=reference).reference_rows(["age"])
    assert (bounded.n, bounded.total, bounded.sampled, bounded.names) == (300, 1500, True, ["age", "label"])
    assert set(bounded["age"].tolist()) <= set(raw["age"])


def test_no_reference_and_no_source_give_empty_rows_not_none() -> None:
    ctx = sample_context(reference=False)
    empty = ctx.reference_rows()
    assert (empty.n, empty.total, empty.names) == (0, 0, NAMES)
    assert empty.frame().empty and list(empty.frame().columns) == NAMES
    ctx.source = None
    unread = ctx.rows()
    assert (unread.n, unread.total, unread.sampled) == (0, 500, True)


def test_names_labels_and_unknown_names() -> None:
    ctx = sample_context(rows=100)
    assert ctx.rows(names=["age", "proba"]).names == ["age", "proba.no", "proba.yes", "label"]
    assert ctx.rows(labels=False).names == NAMES[:-1]
    assert ctx.reference_rows(["plan"], labels=False).names == ["plan"]
    with pytest.raises(KeyError, match="'height': not a feature or output of 'conformance'"):
        ctx.rows(names=["height"])
    with pytest.raises(KeyError, match="no feature or output 'height'"):
        ctx.rows().columns_of("height")
    with pytest.raises(KeyError, match="no column 'proba'"):
        ctx.rows()["proba"]


def test_a_regression_label_is_a_number_and_a_spec_without_label_has_no_label_column() -> None:
    spec = {
        "name": "price",
        "features": {"x": "numeric", "kind": {"kind": "categorical", "categories": ["a", "b"]}},
        "outputs": {"price": {"kind": "regression"}},
        "label": {"kind": "regression"},
        "windows": ["1h"],
    }
    rows = sample_context(rows=120, spec=spec).rows()
    assert rows.names == ["x", "kind", "price", "label"] and rows["label"].dtype == np.float64
    assert not np.isnan(rows["label"]).any()
    unlabelled = {**spec, "name": "nolabel", "label": None}
    assert sample_context(rows=50, spec=unlabelled).rows().names == ["x", "kind", "price"]


def test_a_name_clash_is_refused_with_a_sentence() -> None:
    spec = {"name": "clash", "features": {"label": "numeric", "y": "numeric"}, "label": {"kind": "class_label"}}
    ctx = sample_context(rows=60, spec={**spec, "windows": ["1h"]})
    with pytest.raises(ValueError, match="two columns would be named 'label'"):
        ctx.rows()
    assert ctx.rows(labels=False).names == ["label", "y"]


class ScoresOnly:
    """A third-party window source written before sample_labelled existed."""

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        return pa.table({c: [0.5] * 10 for c in columns})


def test_a_source_without_sample_labelled_gives_rows_without_the_label() -> None:
    ctx = sample_context(rows=60)
    ctx.source = ScoresOnly()  # type: ignore[assignment]
    rows = ctx.rows(names=["proba"])
    assert rows.names == ["proba.no", "proba.yes"] and rows.n == 10


def test_frame_without_pandas_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = sample_context(rows=30).rows()
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(MissingDependency, match=r"needs pandas \(pip install pandas\); Rows.arrays\(\)") as caught:
        rows.frame()
    assert isinstance(caught.value, ImportError) and caught.value.exit_code == 2
    assert rows.arrays()["age"].shape == (30,)


def test_the_indicator_core_does_not_import_pandas() -> None:
    code = (
        "import sys, sustain.indicators.context, sustain.indicators.rows, sustain.indicators.checks\n"
        "print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "False"


def test_elasticsearch_samples_join_labels_like_the_embedded_store() -> None:
    """The Elasticsearch source keeps unlabelled events in a sample (label null) and drops them for labelled()."""
    spec = ModelSpec.model_validate(LABELLED)
    layout = Layout.of(spec)
    labels = labels_by_id(LABEL_DOCS)
    columns = ["f:age", "o:proba:churn"]
    sampled = joined_rows(layout, EVENT_HITS, labels, columns, unlabelled=True)
    assert [r["label"] for r in sampled] == ["churn", "stay", None]  # request id first, then event id
    assert [r["label"] for r in joined_rows(layout, EVENT_HITS, labels, columns, unlabelled=False)] == ["churn", "stay"]
    table = columns_table(layout, [*columns, "label"], sampled, "class_label")
    rows = Rows.from_table(spec, table, of="window", total=3)
    assert rows.names == ["age", "proba.churn", "label"]
    assert rows["age"].tolist()[0] == 41.0 and rows["proba.churn"].tolist()[0] == 0.8
    assert rows["label"].tolist() == ["churn", "stay", None]
