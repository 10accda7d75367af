from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest
from sustain_example_plugin import PredictionEntropy, mean_entropy

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
