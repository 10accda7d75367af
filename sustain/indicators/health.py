"""Service health per window: traffic, latency quantiles and the model's error rate.

All three read only the window's row count, error count and latency
histogram, so they cost nothing beyond the transform that already ran.

>>> from datetime import datetime, timezone
>>> from sustain.spec import ModelSpec
>>> from sustain.transforms.plan import plan_for
>>> from sustain.transforms.window import WindowAggregates
>>> from sustain.indicators.context import WindowContext
>>> spec = ModelSpec.model_validate({"name": "m", "features": {"x": "numeric"}})
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> window = WindowAggregates("m", "1", "1h", t, t, rows=200, errors=12)
>>> ctx = WindowContext(spec, plan_for(spec, "1h", None), window, None, [])
>>> [(v.value, v.status) for v in ErrorRate().compute(ctx)]
[(0.06, 'alert')]
"""

from __future__ import annotations

from collections.abc import Iterable

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext


class Traffic(Indicator):
    """Events per window (and per second), for dashboards and flatline rules.

    >>> from sustain.indicators.checks import sample_context
    >>> (traffic,) = Traffic(min_events=1000).compute(sample_context(rows=720))  # an hour of 720 events
    >>> traffic.value, traffic.details["per_second"], traffic.status
    (720.0, 0.2, 'alert')
    """

    name = "traffic"
    description = "events in the window"

    def __init__(self, min_events: int = 0) -> None:
        self.min_events = min_events

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        rows = ctx.window.rows
        seconds = (ctx.window.end - ctx.window.start).total_seconds()
        status: Status = "alert" if self.min_events and rows < self.min_events and not ctx.partial else "ok"
        yield IndicatorValue(
            None,
            float(rows),
            status=status,
            threshold=float(self.min_events) if self.min_events else None,
            n=rows,
            method="count",
            details={"per_second": rows / seconds if seconds > 0 else None},
        )


class Latency(Indicator):
    """p50, p95 and p99 latency (milliseconds) read from the window's latency histogram.

    >>> from sustain.indicators.checks import sample_context  # latencies of 5 to 44 ms, evenly
    >>> [(v.metric, round(v.value, 1), v.status) for v in Latency(p95_ms=50).compute(sample_context(rows=720))]
    [('p50', 24.7, 'ok'), ('p95', 52.4, 'alert'), ('p99', 55.5, 'ok'), ('mean', 24.5, 'ok')]
    """

    name = "latency"
    description = "latency quantiles (ms) from a log-spaced histogram, within one bin of the exact value"

    def __init__(self, p95_ms: float | None = None, p99_ms: float | None = None, min_samples: int = 20) -> None:
        self.p95_ms = p95_ms
        self.p99_ms = p99_ms
        self.min_samples = min_samples

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        latency = ctx.window.latency
        n = latency.count
        limits = {"p95": self.p95_ms, "p99": self.p99_ms}
        for metric, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            value = latency.quantile(q, ctx.plan.latency_edges) if n else None
            limit = limits.get(metric)
            status: Status = "insufficient" if n < self.min_samples else "ok"
            if status == "ok" and limit is not None and value is not None and value > limit:
                status = "alert"
            yield IndicatorValue(None, value, status=status, threshold=limit, n=n, method="histogram", metric=metric)
        yield IndicatorValue(
            None,
            latency.mean,
            status="insufficient" if n < self.min_samples else "ok",
            n=n,
            method="mean",
            metric="mean",
            details={"max": latency.max},
        )


class ErrorRate(Indicator):
    """Share of events the model answered with an error.

    >>> from sustain.indicators.checks import sample_context
    >>> def time_out(events):
    ...     for e in events[::25]:
    ...         e["error"] = "timeout"
    >>> [(v.value, v.status, v.threshold) for v in ErrorRate().compute(sample_context(rows=400, edit=time_out))]
    [(0.04, 'warn', 0.05)]
    """

    name = "error_rate"
    description = "share of events carrying the model's error"

    def __init__(self, max_rate: float = 0.05, min_samples: int = 20) -> None:
        self.max_rate = max_rate
        self.min_samples = min_samples

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        rows, errors = ctx.window.rows, ctx.window.errors
        rate = errors / rows if rows else None
        status: Status = "insufficient" if rows < self.min_samples or rate is None else "ok"
        if status == "ok" and rate is not None and rate > self.max_rate:
            status = "alert"
        elif status == "ok" and rate is not None and rate > self.max_rate / 2:
            status = "warn"
        yield IndicatorValue(
            None, rate, status=status, threshold=self.max_rate, n=rows, method="share", details={"errors": errors}
        )
