"""Indicator work made cheaper without changing a value: the multivariate encoder reads Arrow columns as it read
Python lists, and a unit's prefetched previous windows answer ``ctx.history(1)`` as the store does."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from sustain.indicators.checks import sample_context
from sustain.indicators.context import WindowSource
from sustain.indicators.documents import IndicatorDoc
from sustain.indicators.multivariate import MultivariateDrift, _Encoder
from sustain.indicators.runner import IndicatorRunner
from sustain.indicators.work import ModelWork, compute_model, window_seed
from sustain.transforms.plan import TransformPlan
from sustain.transforms.window import WindowAggregates


def test_the_encoder_reads_arrow_columns_as_it_reads_lists() -> None:
    ctx = sample_context(rows=1200, seed=4)
    features = [c for c in ctx.columns if not c.is_output]
    assert ctx.reference is not None
    encoder = _Encoder(features, ctx.reference, 10)
    table = ctx.sample(encoder.columns, 2000)
    odd = {c: table.column(c).to_pylist() for c in encoder.columns}
    for name in odd:  # nulls, and a category the reference never saw
        odd[name][::7] = [None] * len(odd[name][::7])
    categorical = [name for name, _ in encoder.categorical]
    assert categorical and any(name for name, _, _ in encoder.numeric)
    strings = [name for name in categorical if pa.types.is_string(table.column(name).type)]
    assert strings
    odd[strings[0]][3] = "never-seen"
    arrow = pa.table({c: pa.array(v, table.column(c).type) for c, v in odd.items()})
    assert np.array_equal(encoder.encode(odd, arrow.num_rows), encoder.encode_table(arrow))


def test_the_encoded_reference_is_kept_while_the_profile_stays() -> None:
    ctx = sample_context(rows=600, seed=5)
    indicator = MultivariateDrift()
    first = list(indicator.compute(ctx))
    assert len(indicator._encoded) == 1
    again = list(indicator.compute(ctx))
    assert first == again and len(indicator._encoded) == 1
    fresh = list(MultivariateDrift().compute(ctx))
    assert fresh == first


def test_prefetched_history_answers_as_the_store_does() -> None:
    ctx = sample_context(rows=700, seed=6, earlier=[None, {"age": 1.0}])
    assert ctx.source is not None
    step = timedelta(seconds=ctx.plan.window_seconds)
    previous = ctx.source.history(ctx.plan, ctx.version, ctx.window.start, 1)
    assert len(previous) == 1
    bare = ModelWork(ctx.spec, ctx.plan, [ctx.window], [False], {}, ctx.reference)
    key = (ctx.version, ctx.window.start - step)
    prefetched = dataclasses.replace(bare, before={key: previous[0]})
    runner = IndicatorRunner(_NoStates())  # type: ignore[arg-type]

    def strip(docs: list[IndicatorDoc]) -> list[tuple[object, ...]]:
        return [(d.indicator, d.feature, d.value, d.status, d.p_value, d.threshold, d.n, d.details) for d in docs]

    direct = compute_model(bare, runner, ctx.source)
    assert strip(compute_model(prefetched, runner, _NoHistory(ctx.source))) == strip(direct)
    stability = [d for d in direct if d.indicator == "stability"]
    assert stability and all(d.status != "insufficient" for d in stability)
    missing = dataclasses.replace(bare, before={key: None})  # no window before: as the store would say
    found = [d for d in compute_model(missing, runner, _NoHistory(ctx.source)) if d.indicator == "stability"]
    assert {d.status for d in found} == {"insufficient"}


class _NoStates:
    def get_states(self, model: str) -> dict[str, dict[str, object]]:
        return {}


class _NoHistory:
    """The source, except that reading history fails: the prefetched windows must answer."""

    def __init__(self, source: WindowSource) -> None:
        self.source = source

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        raise AssertionError("history was read from the store")

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        return self.source.sample(model, version, start, end, columns, n, seed)

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        return self.source.labelled(model, version, start, end, columns)

    def sample_labelled(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        return self.source.sample_labelled(model, version, start, end, columns, n, seed)


class _Counting:
    """The source, counting the samples it draws."""

    def __init__(self, source: WindowSource) -> None:
        self.source = source
        self.samples: list[tuple[tuple[str, ...], int]] = []

    def history(self, plan: TransformPlan, version: str, before: datetime, count: int) -> list[WindowAggregates]:
        return self.source.history(plan, version, before, count)

    def sample(
        self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str], n: int, seed: int
    ) -> pa.Table:
        self.samples.append((tuple(columns), n))
        return self.source.sample(model, version, start, end, columns, n, seed)

    def labelled(self, model: str, version: str, start: datetime, end: datetime, columns: Sequence[str]) -> pa.Table:
        return self.source.labelled(model, version, start, end, columns)


def test_a_sample_holding_the_whole_window_is_drawn_once_for_drift_and_multivariate_drift() -> None:
    """Under 1,000 events, drift's sample (its numbers) and multivariate drift's (numbers and categories) are
    the whole window: one draw serves both, and every value is what each computes with its own draw."""
    from sustain.indicators.drift import DataDrift

    ctx = sample_context(rows=700, seed=8, drift={"age": 0.5})
    assert ctx.source is not None
    counting = _Counting(ctx.source)
    work = ModelWork(ctx.spec, ctx.plan, [ctx.window], [False], {}, ctx.reference)
    docs = compute_model(work, IndicatorRunner(_NoStates()), counting)  # type: ignore[arg-type]
    assert len(counting.samples) == 1, counting.samples
    ctx = dataclasses.replace(ctx, seed=window_seed(ctx.spec.name, ctx.window))  # as compute_model seeds it
    own = {
        "drift": list(DataDrift().compute(dataclasses.replace(ctx, columns=list(ctx.plan.columns)))),
        "multivariate_drift": list(MultivariateDrift().compute(ctx)),
    }
    for name, values in own.items():
        found = [d for d in docs if d.indicator == name]
        assert [(d.feature, d.value, d.p_value, d.threshold, d.n, d.status) for d in found] == [
            (v.feature, v.value, v.p_value, v.threshold, v.n, v.status) for v in values
        ]
    by_sample = [d for d in docs if d.indicator == "drift" and "sample_n" in d.details]
    assert by_sample and all(d.details["sample_n"] > 600 for d in by_sample), "no column judged on the sample"


def test_a_sample_of_part_of_the_window_is_not_shared() -> None:
    """Over ``n`` events the reservoir's draw depends on ``n``: each request goes to the store."""
    from sustain.indicators.work import WindowSample

    ctx = sample_context(rows=700, seed=9)
    assert ctx.source is not None
    counting = _Counting(ctx.source)
    shared = WindowSample(counting, ctx.window, [c.column for c in ctx.plan.columns])  # type: ignore[arg-type]
    names = [c.column for c in ctx.plan.columns if c.kind == "numeric"][:2]
    w = ctx.window
    first = shared.sample(w.model, w.version, w.start, w.end, names, 300, 5)
    again = shared.sample(w.model, w.version, w.start, w.end, names, 300, 5)
    assert len(counting.samples) == 2 and first.num_rows == 300
    assert first.equals(ctx.source.sample(w.model, w.version, w.start, w.end, names, 300, 5)) and again.equals(first)
    whole = shared.sample(w.model, w.version, w.start, w.end, names, 5000, 5)  # the whole window, another seed's
    assert whole.num_rows == 700 and len(counting.samples) == 3


def test_the_multivariate_p_value_is_scipys_whatever_the_errors() -> None:
    """The unwrapped Mann-Whitney gives SciPy's public p-value on finite errors; others take the public one."""
    from scipy import stats

    from sustain.indicators.multivariate import _greater_p

    rng = np.random.default_rng(3)
    for _ in range(20):
        window, held = rng.gamma(2, 1, int(rng.integers(100, 900))), rng.gamma(2, 1, 1334)
        window[: int(rng.integers(0, 5))] = held[0]  # ties
        expected = stats.mannwhitneyu(window, held, alternative="greater", method="asymptotic").pvalue
        assert _greater_p(window, held) == float(expected)
    odd = rng.gamma(2, 1, 200)
    odd[3] = np.inf
    expected = stats.mannwhitneyu(odd, held, alternative="greater", method="asymptotic").pvalue
    assert _greater_p(odd, held) == float(expected)
    odd[5] = np.nan
    assert np.isnan(_greater_p(odd, held))
