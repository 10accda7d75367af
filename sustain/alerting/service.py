"""The alerting part of a running service: alert store, dispatcher, evaluator, and the hook logic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sustain.alerting.conditions import Series, evaluate
from sustain.alerting.dispatcher import Dispatcher
from sustain.alerting.documents import Alert, AlertStore
from sustain.alerting.evaluator import AlertEvaluator, dedup_key
from sustain.durations import parse_duration
from sustain.indicators.documents import IndicatorDoc, IndicatorStore
from sustain.spec import ModelSpec
from sustain.store.base import Store


class Alerting:
    def __init__(
        self,
        store: Store,
        documents: IndicatorStore,
        alerts: AlertStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.alerts = alerts
        self.clock = clock
        self.dispatcher = (
            Dispatcher(alerts, clock=clock) if sleep is None else Dispatcher(alerts, clock=clock, sleep=sleep)
        )
        self.evaluator = AlertEvaluator(store, documents, alerts, self.dispatcher, clock)
        self.documents = documents

    def on_indicators(self, docs: list[IndicatorDoc]) -> None:
        """The engine's listener: evaluate every rule after each indicator run."""
        self.evaluator.evaluate()

    def hook(self, spec: ModelSpec, action: str, rule_name: str | None, payload: dict[str, Any]) -> Alert | None:
        """An external alerter asks for ``action``. A named rule of the spec is confirmed here first (ElastAlert2
        cannot express every combination); then the action runs on the rule's alert, once per firing."""
        now = self.clock()
        version = str(payload.get("version") or "*")
        rule = next((r for r in spec.alerts if r.name == rule_name), None)
        if rule is not None:
            window = rule.window or min(spec.windows, key=parse_duration)
            scope = None if version == "*" else version
            verdict = evaluate(rule.when, Series(self.documents, spec.name, now), window, scope, 0, "fire")
            if not verdict.holds:
                return None
            key = dedup_key(spec.name, version, rule)
            severity: str = rule.severity
            evidence = verdict.evidence
        else:
            key = f"{spec.name}|{version}|hook:{rule_name or action}"
            severity, evidence = str(payload.get("severity", "warning")), [payload]
        alert = self.alerts.active(key)
        if alert is None:
            alert = Alert.new(key, rule_name or f"hook:{action}", spec.name, version, severity, now)
        alert.updated_at = now
        alert.evidence = evidence[:20]
        alert.summary = f"requested by an external alerter for action {action}"
        self.alerts.save(alert)
        self.dispatcher.dispatch(spec, alert, "firing", [action])
        return alert

    def close(self) -> None:
        self.dispatcher.close()
