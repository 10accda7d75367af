"""Evaluate alert conditions on indicator documents of final windows.

A condition is judged at an *offset*: 0 is the window being judged (the newest
final window as of the :class:`Series`' ``until``), 1 the one before, and so
on. A rule fires when its condition holds at offset 0 (each leaf looking back
over its own ``for`` windows); it resolves when, at each of the last
``resolve_after`` offsets, the condition is cleared — and a leaf with ``clear``
only clears once the value crosses back over that second threshold
(hysteresis), not merely below the firing one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sustain.durations import parse_duration
from sustain.indicators.base import SEVERITY
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery, IndicatorStore
from sustain.spec.alerts import AllOf, AnyOf, Condition, Flatline, FlatlineCondition, Spike, SpikeCondition, Threshold
from sustain.timestamps import iso

Mode = Literal["fire", "clear"]
MAX_EVIDENCE = 20


@dataclass
class Verdict:
    holds: bool
    evidence: list[dict[str, Any]]


def _evidence(doc: IndicatorDoc, threshold: float | None = None) -> dict[str, Any]:
    return {
        "indicator": doc.indicator,
        "feature": doc.feature,
        "metric": doc.metric,
        "window": doc.window,
        "window_start": iso(doc.window_start),
        "value": doc.value,
        "status": doc.status,
        "threshold": threshold if threshold is not None else doc.threshold,
        "n": doc.n,
    }


class Series:
    """Final indicator documents of one model, grouped by window, as of ``until``: the windows that ended by
    then (the end of the window a rule is judging, or now), newest first. Documents of windows that are not
    final yet (``partial``) are never read: their values are still moving."""

    def __init__(self, documents: IndicatorStore, model: str, now: datetime, until: datetime | None = None) -> None:
        self.documents = documents
        self.model = model
        self.now = now
        self.until = until or now
        self._cache: dict[tuple[str, str, str | None], list[tuple[datetime, list[IndicatorDoc]]]] = {}

    def windows(self, indicator: str, window: str, version: str | None, count: int) -> list[list[IndicatorDoc]]:
        """Up to ``count`` windows of ``indicator``'s documents, newest first."""
        key = (indicator, window, version)
        if key not in self._cache:
            seconds = parse_duration(window)
            since = self.until - timedelta(seconds=seconds * (count + 2))
            docs = self.documents.query(
                IndicatorQuery(
                    self.model,
                    since=since,
                    until=self.until,
                    indicator=indicator,
                    window=window,
                    version=version,
                    limit=100_000,
                    final=True,
                )
            )
            grouped: dict[datetime, list[IndicatorDoc]] = defaultdict(list)
            for d in docs:
                if d.window_end <= self.until:
                    grouped[d.window_start].append(d)
            self._cache[key] = sorted(grouped.items(), key=lambda kv: kv[0], reverse=True)
        return [docs for _, docs in self._cache[key][:count]]

    def earliest(self, indicator: str, window: str) -> datetime | None:
        docs = self.documents.query(IndicatorQuery(self.model, indicator=indicator, window=window, limit=100_000))
        return min((d.window_start for d in docs), default=None)


def _doc_matches(leaf: Threshold, doc: IndicatorDoc, mode: Mode) -> bool:
    if leaf.status is not None:
        if leaf.status == "error":
            return doc.status == "error"
        return doc.status in ("warn", "alert") and SEVERITY[doc.status] >= SEVERITY[leaf.status]
    if doc.value is None:
        return False
    if leaf.above is not None:
        limit = leaf.clear if mode == "clear" and leaf.clear is not None else leaf.above
        return doc.value > limit
    assert leaf.below is not None
    limit = leaf.clear if mode == "clear" and leaf.clear is not None else leaf.below
    return doc.value < limit


def _window_matches(leaf: Threshold, docs: list[IndicatorDoc], mode: Mode) -> Verdict:
    docs = [d for d in docs if d.metric == leaf.metric]
    if leaf.share is not None:
        features = [d for d in docs if d.feature is not None and d.status != "insufficient"]
        hits = [d for d in features if _doc_matches(leaf, d, mode)]
        holds = bool(features) and len(hits) / len(features) >= leaf.share
        return Verdict(holds, [_evidence(d) for d in hits])
    if leaf.feature is None:
        chosen = [d for d in docs if d.feature is None]
    elif leaf.feature in ("any", "all"):
        chosen = [d for d in docs if d.feature is not None and d.status != "insufficient"]
    else:
        chosen = [d for d in docs if d.feature == leaf.feature]
    hits = [d for d in chosen if _doc_matches(leaf, d, mode)]
    if leaf.feature == "all":
        return Verdict(bool(chosen) and len(hits) == len(chosen), [_evidence(d) for d in hits])
    return Verdict(bool(hits), [_evidence(d) for d in hits])


def _threshold(leaf: Threshold, series: Series, window: str, version: str | None, offset: int, mode: Mode) -> Verdict:
    windows = series.windows(leaf.indicator, leaf.window or window, version, offset + leaf.for_)[offset:]
    if len(windows) < leaf.for_:
        return Verdict(False, [])
    evidence: list[dict[str, Any]] = []
    for docs in windows[: leaf.for_]:
        verdict = _window_matches(leaf, docs, mode)
        if not verdict.holds:
            return Verdict(False, [])
        evidence.extend(verdict.evidence)
    return Verdict(True, evidence)


def _spike(leaf: Spike, series: Series, window: str, version: str | None, offset: int) -> Verdict:
    windows = series.windows(leaf.indicator, leaf.window or window, version, offset + 1 + leaf.baseline)[offset:]
    values = []
    for docs in windows:
        found = [d for d in docs if d.feature == leaf.feature and d.metric == leaf.metric and d.value is not None]
        values.append(found[0] if found else None)
    if len(values) < 1 + leaf.baseline or values[0] is None:
        return Verdict(False, [])
    baseline = [d.value for d in values[1:] if d is not None and d.value is not None]
    if len(baseline) < max(2, leaf.baseline // 2):
        return Verdict(False, [])
    mean = sum(baseline) / len(baseline)
    current = values[0]
    assert current.value is not None
    up = mean > 0 and current.value >= leaf.factor * mean
    down = mean > 0 and current.value <= mean / leaf.factor
    holds = up if leaf.direction == "up" else down if leaf.direction == "down" else (up or down)
    return Verdict(holds, [{**_evidence(current), "baseline_mean": mean}] if holds else [])


def _flatline(leaf: Flatline, series: Series, window: str, offset: int) -> Verdict:
    seconds = parse_duration(window)
    period = parse_duration(leaf.for_)
    end = series.until - timedelta(seconds=seconds * offset)
    start = end - timedelta(seconds=period)
    count = int(period / seconds) + offset + 2
    total = 0.0
    for docs in _any_windows(series, window, count):
        for d in docs:
            if d.feature is None and d.metric is None and start <= d.window_start < end and d.value is not None:
                total += d.value
    earliest = series.earliest("traffic", window)
    if earliest is None or earliest >= start:
        return Verdict(False, [])  # a model that never had traffic before the period is not "silent"
    holds = total < leaf.below
    evidence = [
        {
            "indicator": "traffic",
            "window": window,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "events": total,
            "threshold": leaf.below,
        }
    ]
    return Verdict(holds, evidence if holds else [])


def _any_windows(series: Series, window: str, count: int) -> list[list[IndicatorDoc]]:
    """Traffic windows before ``series.until``, final or not: a flatline counts events, and a window's count
    only grows, so an open window can only make traffic look less silent, never raise a false alarm."""
    docs = series.documents.query(
        IndicatorQuery(
            series.model,
            since=series.until - timedelta(seconds=parse_duration(window) * (count + 2)),
            indicator="traffic",
            window=window,
            limit=100_000,
        )
    )
    grouped: dict[datetime, list[IndicatorDoc]] = defaultdict(list)
    for d in docs:
        grouped[d.window_start].append(d)
    return [grouped[k] for k in sorted(grouped, reverse=True)]


def evaluate(
    condition: Condition, series: Series, window: str, version: str | None, offset: int, mode: Mode
) -> Verdict:
    """Whether ``condition`` holds for ``version`` (None: all versions together) at ``offset`` windows back."""
    if isinstance(condition, AllOf):
        evidence: list[dict[str, Any]] = []
        for part in condition.all:
            verdict = evaluate(part, series, window, version, offset, mode)
            if not verdict.holds:
                return Verdict(False, [])
            evidence.extend(verdict.evidence)
        return Verdict(True, evidence[:MAX_EVIDENCE])
    if isinstance(condition, AnyOf):
        evidence = []
        holds = False
        for part in condition.any:
            verdict = evaluate(part, series, window, version, offset, mode)
            holds = holds or verdict.holds
            evidence.extend(verdict.evidence)
        return Verdict(holds, evidence[:MAX_EVIDENCE])
    if isinstance(condition, SpikeCondition):
        return _spike(condition.spike, series, window, version, offset)
    if isinstance(condition, FlatlineCondition):
        return _flatline(condition.flatline, series, window, offset)
    verdict = _threshold(condition, series, window, version, offset, mode)
    return Verdict(verdict.holds, verdict.evidence[:MAX_EVIDENCE])
