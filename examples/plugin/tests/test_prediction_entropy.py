from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sustain_example_plugin import PredictionEntropy, mean_entropy

from sustain.indicators import IndicatorValue, WindowContext
from sustain.indicators.checks import Check, check_indicator, sample_context, yield_checks


@pytest.mark.parametrize("check", list(yield_checks(PredictionEntropy())), ids=lambda c: c.__name__)
def test_conformance(check: Check) -> None:
    check(PredictionEntropy())


def test_the_whole_suite_at_once() -> None:
    check_indicator(PredictionEntropy(margin=0.05))


def test_entropy_of_sure_and_unsure_scores() -> None:
    assert mean_entropy(np.array([[1.0, 0.0], [0.0, 1.0]])) < 1e-9
    assert mean_entropy(np.array([[0.5, 0.5]])) == pytest.approx(1.0)


class CoinFlips:
    """A window source whose model has lost all confidence: every score is 50/50."""

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        return pa.table({c: [0.5] * 300 for c in columns})


def test_uncertain_windows_alert() -> None:
    ctx = sample_context(rows=800)
    (calm,) = PredictionEntropy().compute(ctx)
    assert calm.status == "ok" and calm.value is not None and calm.value < calm.details["reference"] + 0.05
    ctx.source = CoinFlips()  # type: ignore[assignment]
    (unsure,) = PredictionEntropy().compute(ctx)
    assert unsure.status == "alert" and unsure.value == pytest.approx(1.0)


class EntropyBefore(PredictionEntropy):
    """The plugin as it was written before ``ctx.rows()``: storage column keys, Arrow columns, reference dicts."""

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        for output in ctx.spec.outputs:
            if output.kind != "class_scores" or not output.classes:
                continue
            columns = [f"o:{output.name}:{c}" for c in output.classes]
            window = ctx.sample(columns, self.sample_size)
            rows = (
                np.column_stack([np.asarray(window.column(c).to_numpy(zero_copy_only=False), float) for c in columns])
                if window.num_rows
                else np.empty((0, len(columns)))
            )
            rows = rows[~np.isnan(rows).any(axis=1)]
            reference = ctx.reference.sample if ctx.reference is not None else {}
            if any(c not in reference for c in columns) or len(rows) < self.min_samples:
                reason = "needs the window's scores and a reference with scores"
                yield IndicatorValue(output.name, None, status="insufficient", n=len(rows), details={"reason": reason})
                continue
            ref_rows = np.array([[v if v is not None else np.nan for v in reference[c]] for c in columns], float).T
            ref_rows = ref_rows[~np.isnan(ref_rows).any(axis=1)]
            baseline = mean_entropy(ref_rows)
            value = mean_entropy(rows)
            limit = baseline + self.margin
            yield IndicatorValue(
                output.name,
                value,
                status="alert" if value > limit else "ok",
                threshold=limit,
                n=len(rows),
                method="mean normalised entropy",
                details={"reference": baseline},
            )


THREE_CLASSES = {
    "name": "three",
    "features": {"x": "numeric", "colour": {"kind": "categorical", "categories": ["red", "blue"]}},
    "outputs": {
        "scores": {"kind": "class_scores", "classes": ["a", "b", "c"]},
        "second": {"kind": "class_scores", "classes": ["u", "v"]},
    },
    "windows": ["1h"],
}


@pytest.mark.parametrize(
    ("context", "indicator"),
    [
        ({"rows": 800}, PredictionEntropy()),
        ({"rows": 500, "drift": {"age": 2.0, "income": 1.5}}, PredictionEntropy(margin=0.01)),
        ({"rows": 3000, "seed": 4}, PredictionEntropy(sample_size=700)),  # a sample of the window
        ({"rows": 40}, PredictionEntropy()),  # fewer than min_samples
        ({"rows": 0}, PredictionEntropy()),
        ({"reference": False}, PredictionEntropy()),
        ({"rows": 600, "spec": THREE_CLASSES}, PredictionEntropy(margin=0.0)),
    ],
    ids=["calm", "drifted", "sampled", "few", "empty", "no-reference", "two-outputs-three-classes"],
)
def test_the_short_plugin_gives_the_values_of_the_long_one(
    context: dict[str, Any], indicator: PredictionEntropy
) -> None:
    ctx = sample_context(**context)
    before = list(EntropyBefore(**indicator.params()).compute(ctx))
    after = list(indicator.compute(ctx))
    assert after == before and before


def test_the_plugin_is_twenty_lines() -> None:
    """Lines of code in the indicator class: no blank lines, comments or docstrings."""
    source = inspect.getsource(PredictionEntropy)
    tree = ast.parse(source)
    docstrings = {
        line
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and ast.get_docstring(node) is not None
        for line in range(node.body[0].lineno, node.body[0].end_lineno + 1)  # type: ignore[operator]
    }
    code = [
        line
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    ]
    assert len(code) <= 20, "\n".join(code)
    assert "o:" not in source and "to_numpy(zero_copy_only" not in source
