"""The alerting part of a running service: alert store, dispatcher, evaluator, and the hook logic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sustain.alerting.conditions import Series, evaluate
from sustain.alerting.dispatcher import Dispatcher
from sustain.alerting.documents import Alert, AlertStore
from sustain.alerting.evaluator import AlertEvaluator, dedup_key, rule_window
from sustain.errors import Conflict, NotFound, ValidationError
from sustain.indicators.documents import IndicatorDoc, IndicatorStore
from sustain.spec import ModelSpec
from sustain.spec.secrets import EnvPolicy
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
        env_policy: EnvPolicy | None = None,
    ) -> None:
        self.alerts = alerts
        self.clock = clock
        self.dispatcher = (
            Dispatcher(alerts, clock=clock, env_policy=env_policy)
            if sleep is None
            else Dispatcher(alerts, clock=clock, sleep=sleep, env_policy=env_policy)
        )
        self.evaluator = AlertEvaluator(store, documents, alerts, self.dispatcher, clock)
        self.documents = documents

    def on_indicators(self, docs: list[IndicatorDoc]) -> None:
        """The engine's listener: evaluate every rule after each indicator run."""
        self.evaluator.evaluate()

    def hook(self, spec: ModelSpec, action: str, rule_name: str | None, payload: dict[str, Any]) -> Alert:
        """An external alerter asks for ``action`` of the spec's rule ``rule_name``. The rule's whole condition
        is confirmed here first (ElastAlert2 cannot express every combination); then the action runs on the
        rule's alert, once per firing. An unknown rule is NotFound; an action the rule does not run, or a
        condition that does not hold now, is a Conflict: nothing runs."""
        if not rule_name:
            raise ValidationError("name the alert rule: ?rule=NAME or a 'rule' field in the body", field="rule")
        rule = next((r for r in spec.alerts if r.name == rule_name), None)
        if rule is None:
            known = ", ".join(sorted(r.name for r in spec.alerts)) or "none"
            raise NotFound(f"model {spec.name!r} has no alert rule {rule_name!r} (known: {known})", field="rule")
        if action not in rule.actions:
            raise Conflict(
                f"rule {rule.name!r} of model {spec.name!r} does not run action {action!r} "
                f"(it runs: {', '.join(rule.actions) or 'none'})",
                field="action",
            )
        now = self.clock()
        version = str(payload.get("version") or "*")
        window = rule_window(spec, rule)  # confirmed on the newest final window, as the rule judges
        scope = None if version == "*" else version
        verdict = evaluate(rule.when, Series(self.documents, spec.name, now), window, scope, 0, "fire")
        if not verdict.holds:
            raise Conflict(
                f"rule {rule.name!r} of model {spec.name!r} does not hold now: sustain confirms the whole condition "
                "before it runs an action",
                field="rule",
            )
        key = dedup_key(spec.name, version, rule)
        alert = self.alerts.active(key)
        if alert is None:
            alert = Alert.new(key, rule.name, spec.name, version, rule.severity, now)
        alert.updated_at = now
        alert.evidence = verdict.evidence[:20]
        alert.summary = f"requested by an external alerter for action {action}"
        self.alerts.save(alert)
        self.dispatcher.dispatch(spec, alert, "firing", [action])
        return alert

    def close(self) -> None:
        self.dispatcher.close()
