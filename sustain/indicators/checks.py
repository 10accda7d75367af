"""The conformance suite plugin authors run in their own tests (river's ``yield_checks`` idea).

>>> from sustain.indicators.health import ErrorRate
>>> check_indicator(ErrorRate())

or, one pytest case per check::

    @pytest.mark.parametrize("check", yield_checks(MyIndicator()), ids=lambda c: c.__name__)
    def test_conformance(check):
        check(MyIndicator())

Each check raises ``AssertionError`` with a sentence naming what is wrong. The
contexts are real: synthetic events go through an in-memory embedded store and
the same transforms the service runs, so an indicator that passes here sees the
same data in production.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from sustain.durations import parse_duration
from sustain.indicators.base import STATUSES, Indicator, IndicatorValue
from sustain.indicators.context import WindowContext, select_columns
from sustain.registry import Registry
from sustain.spec import ModelSpec

Check = Callable[[Indicator], None]

SAMPLE_SPEC: dict[str, Any] = {
    "name": "conformance",
    "features": {
        "age": {"kind": "numeric", "range": [0, 120]},
        "income": "numeric",
        "plan": {"kind": "categorical", "categories": ["basic", "pro", "team"]},
        "active": "boolean",
        "note": "text",
    },
    "outputs": {
        "prediction": {"kind": "class_label", "classes": ["no", "yes"]},
        "proba": {"kind": "class_scores", "classes": ["no", "yes"]},
    },
    "label": {"kind": "class_label", "classes": ["no", "yes"]},
    "windows": ["1h"],
}
START = datetime(2026, 1, 5, 10, tzinfo=UTC)


def sample_context(
    rows: int = 500,
    drift: dict[str, float] | None = None,
    *,
    reference: bool = True,
    labels: bool = True,
    seed: int = 0,
    spec: dict[str, Any] | None = None,
    earlier: Sequence[dict[str, float] | None] = (),
    edit: Callable[[list[dict[str, Any]]], object] | None = None,
) -> WindowContext:
    """A closed one-hour window of synthetic events (optionally drifted) with its reference profile.

    ``earlier`` adds windows of ``rows`` events before it, one per entry (its drift, or None), oldest first;
    ``edit`` may change the window's events before they are collected (lose values, add errors).
    """
    from sustain.synthetic import SyntheticModel

    model_spec = ModelSpec.model_validate(spec or SAMPLE_SPEC)
    synthetic = SyntheticModel(model_spec, seed=seed)
    reference_table = pa.table(synthetic.reference(2000)) if reference else None
    events = synthetic.events(rows, drift)
    truth = synthetic.labels_for(events) if labels and model_spec.label is not None and rows else None
    before = [synthetic.events(rows, d) for d in earlier]
    if edit is not None:
        edit(events)
    return embedded_context(model_spec, events, reference=reference_table, labels=truth, seed=seed, earlier=before)


def embedded_context(
    spec: ModelSpec,
    events: list[dict[str, Any]],
    *,
    reference: pa.Table | Mapping[str, Sequence[Any]] | None = None,
    labels: Sequence[Any] | None = None,
    seed: int = 0,
    earlier: Sequence[list[dict[str, Any]]] = (),
) -> WindowContext:
    """The window of ``events`` as the service builds it: collected into an in-memory embedded store, aggregated
    by the same transforms, with the profile of ``reference`` (columns as a reference file holds them: features
    and outputs by name, class scores as ``<output>.<class>``, ``label``; a table or a mapping of columns).

    Events (``{"features": ..., "outputs": ...}``, an ``error`` if you like) are spread over one window of the
    spec's longest length; ``labels`` holds one label per event (None: not labelled). ``earlier`` holds the
    events of the windows before it, oldest first (for indicators that read ``ctx.history()``).
    """
    from sustain.backends.duckdb.runner import TransformRunner
    from sustain.backends.duckdb.sources import DuckDBWindowSource
    from sustain.backends.duckdb.store import DuckDBStore
    from sustain.backends.duckdb.tables import DuckDBWindows
    from sustain.collector.events import parse_events
    from sustain.collector.labels import parse_labels
    from sustain.collector.reference import to_layout
    from sustain.store.base import EventBatch
    from sustain.transforms.references import profile_reference
    from sustain.transforms.window import WindowAggregates

    longest = max(spec.windows, key=parse_duration)
    spec = spec.model_copy(update={"windows": [longest]})
    seconds = parse_duration(longest)
    length = timedelta(seconds=seconds)
    start = datetime.fromtimestamp(START.timestamp() // seconds * seconds, UTC)  # where windows of that length begin
    store = DuckDBStore("duckdb:///:memory:")
    store.put_spec(spec)
    windows = DuckDBWindows(store)
    if reference is not None:
        table = reference if isinstance(reference, pa.Table) else pa.table(dict(reference))
        store.put_reference(spec.name, "1", to_layout(spec, table).table)
        profile_reference(store, windows, spec, "1")
    now = start + max(timedelta(days=1), length + timedelta(hours=1))  # the window is closed
    batches = [*earlier, events]
    for back, batch in enumerate(reversed(batches)):
        begins, prefix = start - back * length, f"e{back}-" if back else ""
        stamped = [
            {
                **e,
                "request_id": f"{prefix}r{i}",
                "timestamp": (begins + timedelta(seconds=(seconds - 1) * i / max(len(batch), 1))).isoformat(),
                "latency_ms": 5.0 + i % 40,
            }
            for i, e in enumerate(batch)
        ]
        if stamped:
            store.append_events([EventBatch(spec.name, parse_events(spec, stamped, now).table)])
    given = [{"request_id": f"r{i}", "label": y} for i, y in enumerate(labels or []) if y is not None]
    if spec.label is not None and given:
        batch, _ = parse_labels(spec, given, now)
        store.append_labels([batch])
    runner = TransformRunner(store, windows)
    (plan,) = runner.plans(spec)
    runner.run_plan(plan)
    found = [w for w in windows.read_windows(plan) if w.start == start]
    window = found[0] if found else WindowAggregates(spec.name, "1", longest, start, start + length)
    return WindowContext(
        spec=spec,
        plan=plan,
        window=window,
        reference=windows.binning_profile(spec),
        columns=select_columns(spec, plan, None),
        source=DuckDBWindowSource(store, windows),
        seed=seed,
    )


def series_contexts(
    watch: str, values: Sequence[float | None], *, feature: str | None = None, metric: str | None = None
) -> list[WindowContext]:
    """Consecutive closed hourly windows in which the indicator ``watch`` gave ``values``, one each (for
    indicators that read other indicators' values, such as ``change``). No events: only the values."""
    from sustain.transforms.plan import plan_for
    from sustain.transforms.window import WindowAggregates

    spec = ModelSpec.model_validate(SAMPLE_SPEC)
    plan = plan_for(spec, "1h", None)
    contexts = []
    for i, value in enumerate(values):
        begins = START + timedelta(hours=i)
        window = WindowAggregates(spec.name, "1", "1h", begins, begins + timedelta(hours=1))
        seen = {watch: [IndicatorValue(feature, value, metric=metric)]}
        contexts.append(WindowContext(spec, plan, window, None, list(plan.columns), values=seen))
    return contexts


def _values(indicator: Indicator, ctx: WindowContext) -> list[IndicatorValue]:
    out = indicator.compute(ctx)
    assert out is not None, "compute() returned None; yield IndicatorValue objects (or return a list of them)"
    values = list(out)
    for v in values:
        assert isinstance(v, IndicatorValue), f"compute() yielded {type(v).__name__}, not IndicatorValue"
    return values


def check_has_a_name(indicator: Indicator) -> None:
    name = getattr(type(indicator), "name", None)
    assert isinstance(name, str) and name, "set a class attribute 'name' (the type users write in the spec)"
    Registry[object]("check").register(name, object())  # raises on a name the registry would refuse


def check_params_are_stored_under_their_names(indicator: Indicator) -> None:
    signature = inspect.signature(type(indicator).__init__)
    for name, p in signature.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        assert hasattr(indicator, name), f"store the constructor argument {name!r} as self.{name}"
    clone = indicator.clone()
    assert type(clone) is type(indicator) and clone.params() == indicator.params(), "clone() must equal the original"
    assert repr(indicator).startswith(type(indicator).__name__ + "(")


def check_values_are_well_formed(indicator: Indicator) -> None:
    assert_well_formed(_values(indicator, sample_context()))


def assert_well_formed(values: list[IndicatorValue]) -> None:
    """Known statuses, finite numbers, p-values in [0, 1], details that serialise to JSON."""
    for v in values:
        assert v.status in STATUSES, f"status {v.status!r} is not one of {STATUSES}"
        for field in ("value", "p_value", "threshold"):
            number = getattr(v, field)
            assert number is None or (isinstance(number, int | float) and math.isfinite(number)), (
                f"{field}={number!r}: numbers must be finite floats or None"
            )
        if v.p_value is not None:
            assert 0.0 <= v.p_value <= 1.0, f"p_value {v.p_value} is not a probability"
        orjson.dumps(dict(v.details), option=orjson.OPT_SERIALIZE_NUMPY)  # details must serialise to JSON


def check_empty_window_does_not_alert(indicator: Indicator) -> None:
    for v in _values(indicator, sample_context(rows=0)):
        assert v.status != "alert", "an empty window raised an alert; report 'insufficient' instead"


def check_works_without_reference(indicator: Indicator) -> None:
    for v in _values(indicator, sample_context(reference=False)):
        assert v.status != "alert" or not indicator.needs_reference, "no reference: report 'insufficient'"


def check_is_deterministic(indicator: Indicator) -> None:
    ctx = sample_context(seed=3)
    first = _values(indicator.clone(), ctx)
    second = _values(indicator.clone(), ctx)
    assert [(v.feature, v.metric, v.value, v.status) for v in first] == [
        (v.feature, v.metric, v.value, v.status) for v in second
    ], "the same window gave different values: seed any randomness with ctx.seed"


def check_state_round_trips(indicator: Indicator) -> None:
    fresh = indicator.clone()
    _values(fresh, sample_context())
    state = fresh.state()
    if state is None:
        return
    restored_state = orjson.loads(orjson.dumps(state))
    restored = indicator.clone()
    restored.load_state(restored_state)
    assert orjson.loads(orjson.dumps(restored.state())) == restored_state, "load_state(state()) must restore the state"


def check_is_fast(indicator: Indicator, max_seconds: float = 2.0) -> None:
    ctx = sample_context(rows=2000)
    started = time.perf_counter()
    _values(indicator, ctx)
    elapsed = time.perf_counter() - started
    assert elapsed < max_seconds, f"compute() took {elapsed:.2f}s on a 2,000-event window; the engine allows 30s"


CHECKS: tuple[Check, ...] = (
    check_has_a_name,
    check_params_are_stored_under_their_names,
    check_values_are_well_formed,
    check_empty_window_does_not_alert,
    check_works_without_reference,
    check_is_deterministic,
    check_state_round_trips,
    check_is_fast,
)


def yield_checks(indicator: Indicator) -> Iterator[Check]:
    """Every check that applies to ``indicator``."""
    yield from CHECKS


def check_indicator(indicator: Indicator) -> None:
    """Run every check; the first failure raises AssertionError naming the check."""
    for check in yield_checks(indicator):
        try:
            check(indicator)
        except AssertionError as exc:
            raise AssertionError(f"{type(indicator).__name__} fails {check.__name__}: {exc}") from exc
