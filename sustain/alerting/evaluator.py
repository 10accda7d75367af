"""The alert lifecycle: evaluate every rule after each indicator run, fire, repeat, resolve, honour silences.

One alert per (model, version, rule) at a time (the dedup key; ``dedup: model_rule`` drops the version). An
alert fires when its condition holds; while it keeps holding, notifications repeat at most every
``cooldown``; it resolves once the condition has been cleared for ``resolve_after`` windows in a row
(hysteresis, with ``clear`` thresholds where given). Silenced alerts are tracked as usual, but their actions
wait until the silence ends. Retraining runs once per firing, however often the rule is evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sustain.alerting.conditions import Series, evaluate, versions_seen
from sustain.alerting.dispatcher import Dispatcher
from sustain.alerting.documents import Alert, AlertStore, Silence
from sustain.durations import format_duration, parse_duration
from sustain.indicators.documents import IndicatorStore
from sustain.spec import ModelSpec
from sustain.spec.alerts import AlertRule, Flatline
from sustain.spec.alerts import conditions as leaves
from sustain.store.base import Store

log = logging.getLogger("sustain.alerts")


def dedup_key(model: str, version: str, rule: AlertRule) -> str:
    return f"{model}|{version if rule.dedup == 'model_version_rule' else '*'}|{rule.name}"


def _summary(rule: AlertRule, evidence: list[dict[str, object]]) -> str:
    parts = []
    for item in evidence[:5]:
        what = ".".join(str(x) for x in (item.get("indicator"), item.get("feature"), item.get("metric")) if x)
        value = item.get("value", item.get("events"))
        parts.append(f"{what}={value:.4g}" if isinstance(value, float) else f"{what}={value}")
    more = f" (+{len(evidence) - 5} more)" if len(evidence) > 5 else ""
    return f"{rule.description or rule.name}: " + ", ".join(parts) + more


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

    def evaluate(self) -> list[Alert]:
        """Evaluate every rule of every model once; return the alerts that changed state."""
        now = self.clock()
        silences = self.alerts.silences(now)
        changed: list[Alert] = []
        for spec in self.store.list_specs():
            if not spec.alerts:
                continue
            series = Series(self.documents, spec.name, now)
            for rule in spec.alerts:
                try:
                    changed.extend(self._rule(spec, rule, series, silences, now))
                except Exception:  # one broken rule must not stop the others
                    log.exception("evaluating alert rule %s of %s failed", rule.name, spec.name)
        self.evaluations += 1
        return changed

    def _window(self, spec: ModelSpec, rule: AlertRule) -> str:
        if rule.window is not None:
            return format_duration(parse_duration(rule.window))
        return min(spec.windows, key=parse_duration)

    def _rule(
        self, spec: ModelSpec, rule: AlertRule, series: Series, silences: list[Silence], now: datetime
    ) -> list[Alert]:
        window = self._window(spec, rule)
        only_flatline = all(isinstance(leaf, Flatline) for leaf in leaves(rule.when))
        if rule.dedup == "model_rule" or only_flatline:
            versions = {"*"}
        else:
            versions = versions_seen(series, rule.when, window)
            versions |= {
                a.version
                for a in self.alerts.query(model=spec.name, status="firing", limit=1000)
                if a.rule == rule.name
            }
        changed = []
        for version in sorted(versions):
            alert = self._version(spec, rule, series, window, version, silences, now)
            if alert is not None:
                changed.append(alert)
        return changed

    def _version(
        self,
        spec: ModelSpec,
        rule: AlertRule,
        series: Series,
        window: str,
        version: str,
        silences: list[Silence],
        now: datetime,
    ) -> Alert | None:
        key = dedup_key(spec.name, version, rule)
        active = self.alerts.active(key)
        scope = None if version == "*" else version
        verdict = evaluate(rule.when, series, window, scope, 0, "fire")
        if verdict.holds:
            if active is None:
                alert = Alert.new(key, rule.name, spec.name, version, rule.severity, now)
                alert.evidence, alert.summary = verdict.evidence, _summary(rule, verdict.evidence)
                alert.silenced = self._silenced(alert, silences, now)
                self.alerts.save(alert)
                log.warning("alert %s fired: %s", alert.id, alert.summary)
                if not alert.silenced:
                    self.dispatcher.dispatch(spec, alert, "firing", rule.actions)
                return alert
            active.updated_at = now
            active.evidence, active.summary = verdict.evidence, _summary(rule, verdict.evidence)
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
        if active is None:
            return None
        cleared = all(
            not evaluate(rule.when, series, window, scope, offset, "clear").holds
            for offset in range(rule.resolve_after)
        )
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
