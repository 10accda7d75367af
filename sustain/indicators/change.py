"""Change detection on an indicator's series, with river's detectors (ADWIN, Page–Hinkley, KSWIN).

``change`` watches one series — an indicator listed earlier in the spec, one
feature and/or metric of it — and feeds each *closed* window's value to a
streaming detector, once, in order. Values are standardised with the mean and
spread of the first ``warmup`` windows, so the detectors' thresholds mean the
same for a PSI of 0.01 and a latency of 80 ms. The detector and what it has
seen are the indicator's state: saved after every run, restored at start-up,
so a restart continues the series instead of starting it again.

    indicators:
      - type: latency
      - type: change
        name: latency-shift
        params: {watch: latency, metric: p95, detector: page_hinkley}

>>> ChangeDetector(watch="drift", feature="age").params()["detector"]
'page_hinkley'
"""

from __future__ import annotations

import base64
import math
import pickle
from collections.abc import Iterable
from typing import Any

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext

DETECTORS = ("adwin", "page_hinkley", "kswin")
MAX_REMEMBERED = 500


def _make(detector: str, params: dict[str, Any], seed: int) -> Any:
    from river import drift

    factory: Any
    if detector == "adwin":
        factory, defaults = drift.ADWIN, {"delta": 0.002, "clock": 1}
    elif detector == "page_hinkley":
        factory, defaults = drift.PageHinkley, {"min_instances": 10, "delta": 0.5, "threshold": 25.0}
    else:
        factory, defaults = drift.KSWIN, {"alpha": 0.0001, "window_size": 60, "stat_size": 20, "seed": seed}
    return factory(**{**defaults, **params})


class _Series:
    """One version's series: warm-up statistics, the detector, and the windows already fed."""

    def __init__(self) -> None:
        self.warmup: list[float] = []
        self.mean = 0.0
        self.scale = 1.0
        self.detector: Any = None
        self.results: dict[str, tuple[float | None, Status, float | None]] = {}  # window start → (value, status, z)
        self.last: str | None = None


class ChangeDetector(Indicator):
    """A streaming detector on one series of another indicator's values, one closed window at a time.

    The p95 latency sits near 80 ms for fifteen hours, then near 95 ms; after the five warm-up windows that set
    its scale, Page–Hinkley flags the change on the second window after it:

    >>> from sustain.indicators.checks import series_contexts
    >>> p95 = [80.3, 79.7, 81.3, 80.2, 78.9, 80.7, 82.6, 81.9, 78.6, 77.5, 78.8, 80.1, 75.3, 79.6, 77.5,
    ...        93.5, 93.9, 94.4, 95.8, 97.1]
    >>> detector = ChangeDetector(watch="latency", metric="p95", warmup=5)
    >>> statuses = [v.status for ctx in series_contexts("latency", p95, metric="p95") for v in detector.compute(ctx)]
    >>> statuses[:5], statuses.index("alert")
    (['insufficient', 'insufficient', 'insufficient', 'insufficient', 'insufficient'], 16)
    """

    name = "change"
    description = "streaming change detection on another indicator's series"

    def __init__(
        self,
        watch: str,
        feature: str | None = None,
        metric: str | None = None,
        detector: str = "page_hinkley",
        warmup: int = 10,
        options: dict[str, Any] | None = None,
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")
        if warmup < 2:
            raise ValueError(f"warmup must be at least 2 windows, not {warmup}")
        self.watch = watch
        self.feature = feature
        self.metric = metric
        self.detector = detector
        self.warmup = warmup
        self.options = options or {}
        self._series: dict[str, _Series] = {}

    def _value(self, ctx: WindowContext) -> float | None:
        values = ctx.values.get(self.watch)
        if values is None:
            return None
        for v in values:
            if v.feature == self.feature and v.metric == self.metric:
                return None if v.value is None else float(v.value)
        return None

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        if self.watch not in ctx.values:
            reason = f"watches {self.watch!r}, which must be listed before it in the model's indicators"
            yield IndicatorValue(self.feature, None, status="error", metric=self.metric, details={"error": reason})
            return
        value = self._value(ctx)
        label = f"{self.detector} on {self.watch}"
        series = self._series.setdefault(ctx.version, _Series())
        start = ctx.window.start.isoformat()
        if start in series.results:
            stored, status, z = series.results[start]
            yield IndicatorValue(
                self.feature,
                stored,
                status=status,
                method=label,
                metric=self.metric,
                details={"z": z, "note": "this window was already fed to the detector"},
            )
            return

        def insufficient(reason: str) -> IndicatorValue:
            details = {"reason": reason}
            return IndicatorValue(
                self.feature, value, status="insufficient", method=label, metric=self.metric, details=details
            )

        if ctx.partial or value is None or not math.isfinite(value):
            yield insufficient("the window is still open" if ctx.partial else "no value to watch in this window")
            return
        if series.last is not None and start < series.last:
            yield insufficient("older than the last window the detector saw")
            return
        series.last = start
        if len(series.warmup) < self.warmup:
            series.warmup.append(value)
            if len(series.warmup) == self.warmup:
                mean = sum(series.warmup) / len(series.warmup)
                spread = math.sqrt(sum((x - mean) ** 2 for x in series.warmup) / (len(series.warmup) - 1))
                series.mean, series.scale = mean, spread if spread > 0 else max(abs(mean) * 0.1, 1e-12)
                series.detector = _make(self.detector, self.options, ctx.seed)
            series.results[start] = (value, "insufficient", None)
            yield insufficient(f"warming up ({len(series.warmup)}/{self.warmup} windows)")
            return
        z = (value - series.mean) / series.scale
        series.detector.update(z)
        status = "alert" if series.detector.drift_detected else "ok"
        series.results[start] = (value, status, z)
        if len(series.results) > MAX_REMEMBERED:
            for old in sorted(series.results)[: len(series.results) - MAX_REMEMBERED]:
                del series.results[old]
        yield IndicatorValue(
            self.feature,
            value,
            status=status,
            method=label,
            metric=self.metric,
            details={"z": z, "baseline_mean": series.mean, "baseline_scale": series.scale},
        )

    def state(self) -> dict[str, Any] | None:
        return {
            version: {
                "warmup": s.warmup,
                "mean": s.mean,
                "scale": s.scale,
                "last": s.last,
                "results": s.results,
                "detector": None if s.detector is None else base64.b64encode(pickle.dumps(s.detector)).decode(),
            }
            for version, s in self._series.items()
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for version, saved in state.items():
            s = _Series()
            s.warmup = list(saved["warmup"])
            s.mean, s.scale, s.last = saved["mean"], saved["scale"], saved["last"]
            s.results = {k: (v[0], v[1], v[2]) for k, v in saved["results"].items()}
            if saved.get("detector"):
                s.detector = pickle.loads(base64.b64decode(saved["detector"]))
            self._series[version] = s
