"""The alert lifecycle: rules judge final windows, each once, in order; alerts fire, repeat, resolve, honour silences.

A window is *final* once its end plus the model's ``late_arrival`` delay has passed and the engine has
recomputed it (its indicator documents stop being ``partial``). After every indicator run each rule reads the
documents of final windows written since its last look (its cursor), and judges every window they belong to,
oldest first: windows that just closed, but also back-filled history and windows whose events came late. A
window is judged once; only if its documents change afterwards (late labels, late events) is it judged again,
and a recomputation with the same outcome (a restart) is not a change. What each rule has judged is kept in
the alert store, so a restart neither repeats nor skips a judgement. Open windows are never judged: each look
at a still-moving window would be another chance of a false alarm, and a window looked at 120 times would
spend the false-alarm budget 120 times over. Rules made only of ``flatline`` conditions are about time, not
windows (a silent model has no windows to judge): they are checked on every run.

One alert per (model, version, rule) at a time (the dedup key; ``dedup: model_rule`` drops the version). An
alert fires when its condition holds for a judged window and carries that window; while it keeps holding,
notifications repeat at most every ``cooldown``; it resolves once the condition has been cleared for
``resolve_after`` judged windows in a row (hysteresis, with ``clear`` thresholds where given). Silenced alerts
are tracked as usual, but their actions wait until the silence ends. Retraining runs once per firing, however
often the rule is evaluated.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from sustain.alerting.conditions import Series, evaluate
from sustain.alerting.dispatcher import Dispatcher
from sustain.alerting.documents import Alert, AlertStore, Silence
from sustain.durations import format_duration, parse_duration
from sustain.indicators.documents import IndicatorDoc, IndicatorQuery, IndicatorStore
from sustain.spec import ModelSpec
from sustain.spec.alerts import AlertRule, Flatline, Spike, Threshold
from sustain.spec.alerts import conditions as leaves
from sustain.store.base import Store

log = logging.getLogger("sustain.alerts")

# A rule seen for the first time judges the windows computed in the last this-many window lengths (the engine
# recomputes the 48 most recent windows when it starts), then everything computed after.
FIRST_LOOK_WINDOWS = 48


def dedup_key(model: str, version: str, rule: AlertRule) -> str:
    return f"{model}|{version if rule.dedup == 'model_version_rule' else '*'}|{rule.name}"


def rule_window(spec: ModelSpec, rule: AlertRule) -> str:
    """The window a rule judges: its own, or the model's smallest."""
    if rule.window is not None:
        return format_duration(parse_duration(rule.window))
    return min(spec.windows, key=parse_duration)


def _summary(rule: AlertRule, evidence: list[dict[str, object]]) -> str:
    parts = []
    for item in evidence[:5]:
        what = ".".join(str(x) for x in (item.get("indicator"), item.get("feature"), item.get("metric")) if x)
        value = item.get("value", item.get("events"))
        parts.append(f"{what}={value:.4g}" if isinstance(value, float) else f"{what}={value}")
    more = f" (+{len(evidence) - 5} more)" if len(evidence) > 5 else ""
    return f"{rule.description or rule.name}: " + ", ".join(parts) + more


@dataclass(frozen=True)
class Judged:
    """One final window a rule judges: ``version`` is ``*`` for rules deduplicated per model."""

    version: str
    window: str
    start: datetime
    end: datetime
    fingerprint: str

    @property
    def key(self) -> str:
        return f"{self.version}|{self.window}|{self.start.isoformat()}"


def _fingerprint(docs: list[IndicatorDoc]) -> str:
    parts = sorted(
        (d.version, d.indicator, d.feature or "", d.metric or "", d.status, repr(d.value), repr(d.n)) for d in docs
    )
    return hashlib.blake2b(orjson.dumps(parts), digest_size=8).hexdigest()


class AlertEvaluator:
    def __init__(
        self,
        store: Store,
        documents: IndicatorStore,
        alerts: AlertStore,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.documents = documents
        self.alerts = alerts
        self.dispatcher = dispatcher
        self.clock = clock
        self.evaluations = 0
        self.judgements = 0

    def evaluate(self) -> list[Alert]:
        """Judge every rule of every model on the final windows it has not judged; return the alerts that
        changed state (fired or resolved)."""
        now = self.clock()
        silences = self.alerts.silences(now)
        changed: list[Alert] = []
        for spec in self.store.list_specs():
            if not spec.alerts:
                continue
            for rule in spec.alerts:
                try:
                    if all(isinstance(leaf, Flatline) for leaf in leaves(rule.when)):
                        changed.extend(self._on_time(spec, rule, silences, now))
                    else:
                        changed.extend(self._on_windows(spec, rule, silences, now))
                except Exception:  # one broken rule must not stop the others
                    log.exception("evaluating alert rule %s of %s failed", rule.name, spec.name)
        self.evaluations += 1
        return changed

    # -- rules on windows -------------------------------------------------------------------------
    def _on_windows(self, spec: ModelSpec, rule: AlertRule, silences: list[Silence], now: datetime) -> list[Alert]:
        window = rule_window(spec, rule)
        indicators = {leaf.indicator for leaf in leaves(rule.when) if isinstance(leaf, Threshold | Spike)}
        state = self.alerts.rule_state(spec.name, rule.name)
        cursor = state.cursor
        if cursor is None:  # a new rule: what was computed lately, not the model's whole history
            cursor = now - timedelta(seconds=parse_duration(window) * FIRST_LOOK_WINDOWS)
        fresh = self.documents.query(
            IndicatorQuery(spec.name, window=window, computed_since=cursor, final=True, limit=1_000_000)
        )
        if not fresh:
            return []
        changed = []
        for judged in self._windows(rule, [d for d in fresh if d.indicator in indicators]):
            if state.judged.get(judged.key) == judged.fingerprint:
                continue  # already judged on these very documents
            alert = self._judge(spec, rule, judged, silences, now)
            self.judgements += 1
            state.remember(judged.key, judged.fingerprint)
            if alert is not None:
                changed.append(alert)
        state.cursor = max(d.computed_at for d in fresh)
        self.alerts.put_rule_state(state)
        return changed

    def _windows(self, rule: AlertRule, docs: list[IndicatorDoc]) -> list[Judged]:
        """The windows ``docs`` belong to, oldest first, with the fingerprint of each one's documents."""
        grouped: dict[tuple[str, datetime], list[IndicatorDoc]] = {}
        for d in docs:
            version = d.version if rule.dedup == "model_version_rule" else "*"
            grouped.setdefault((version, d.window_start), []).append(d)
        found = [
            Judged(version, group[0].window, start, group[0].window_end, _fingerprint(group))
            for (version, start), group in grouped.items()
        ]
        return sorted(found, key=lambda j: (j.start, j.version))

    def _judge(
        self, spec: ModelSpec, rule: AlertRule, judged: Judged, silences: list[Silence], now: datetime
    ) -> Alert | None:
        """Judge one final window: fire, keep firing, or resolve the rule's alert."""
        key = dedup_key(spec.name, judged.version, rule)
        scope = None if judged.version == "*" else judged.version
        series = Series(self.documents, spec.name, now, until=judged.end)
        verdict = evaluate(rule.when, series, judged.window, scope, 0, "fire")
        active = self.alerts.active(key)
        if verdict.holds:
            return self._holds(spec, rule, key, judged.version, verdict.evidence, active, silences, now, judged)
        if active is None:
            return None
        cleared = all(
            not evaluate(rule.when, series, judged.window, scope, offset, "clear").holds
            for offset in range(rule.resolve_after)
        )
        return self._clears(spec, rule, active, cleared, now)

    # -- rules on time ----------------------------------------------------------------------------
    def _on_time(self, spec: ModelSpec, rule: AlertRule, silences: list[Silence], now: datetime) -> list[Alert]:
        """A flatline rule, checked now: it is about time passing without traffic, not about a window."""
        window = rule_window(spec, rule)
        key = dedup_key(spec.name, "*", rule)
        series = Series(self.documents, spec.name, now)
        verdict = evaluate(rule.when, series, window, None, 0, "fire")
        active = self.alerts.active(key)
        if verdict.holds:
            alert = self._holds(spec, rule, key, "*", verdict.evidence, active, silences, now, None)
            return [alert] if alert is not None else []
        if active is None:
            return []
        cleared = all(
            not evaluate(rule.when, series, window, None, offset, "clear").holds for offset in range(rule.resolve_after)
        )
        alert = self._clears(spec, rule, active, cleared, now)
        return [alert] if alert is not None else []

    # -- the lifecycle ----------------------------------------------------------------------------
    def _holds(
        self,
        spec: ModelSpec,
        rule: AlertRule,
        key: str,
        version: str,
        evidence: list[dict[str, object]],
        active: Alert | None,
        silences: list[Silence],
        now: datetime,
        judged: Judged | None,
    ) -> Alert | None:
        if active is None:
            alert = Alert.new(key, rule.name, spec.name, version, rule.severity, now)
            alert.evidence, alert.summary = evidence, _summary(rule, evidence)
            if judged is not None:
                alert.window, alert.window_start, alert.window_end = judged.window, judged.start, judged.end
            alert.silenced = self._silenced(alert, silences, now)
            self.alerts.save(alert)
            log.warning("alert %s fired: %s", alert.id, alert.summary)
            if not alert.silenced:
                self.dispatcher.dispatch(spec, alert, "firing", rule.actions)
            return alert
        active.updated_at = now
        active.evidence, active.summary = evidence, _summary(rule, evidence)
        was_silenced, active.silenced = active.silenced, self._silenced(active, silences, now)
        self.alerts.save(active)
        if not active.silenced:
            if was_silenced and active.last_notified_at is None:
                self.dispatcher.dispatch(spec, active, "firing", rule.actions)  # the silence ended
            elif self._cooled_down(rule, active, now):
                self.dispatcher.dispatch(spec, active, "repeat", rule.actions)
                active.last_notified_at = now  # no repeat storm while the actions are still running
                self.alerts.save(active)
        return None

    def _clears(self, spec: ModelSpec, rule: AlertRule, active: Alert, cleared: bool, now: datetime) -> Alert | None:
        active.updated_at = now
        if not cleared:
            self.alerts.save(active)
            return None
        active.status, active.resolved_at = "resolved", now
        self.alerts.save(active)
        log.warning("alert %s resolved", active.id)
        if rule.notify_on_resolve and not active.silenced:
            self.dispatcher.dispatch(spec, active, "resolved", rule.actions)
        return active

    def _silenced(self, alert: Alert, silences: list[Silence], now: datetime) -> bool:
        return any(s.covers(alert, now) for s in silences)

    def _cooled_down(self, rule: AlertRule, alert: Alert, now: datetime) -> bool:
        last = alert.last_notified_at or alert.started_at
        return now - last >= timedelta(seconds=parse_duration(rule.cooldown))
