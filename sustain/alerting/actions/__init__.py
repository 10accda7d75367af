"""Alert actions, registered by type (entry-point group ``sustain.actions`` for plugins).

>>> sorted(actions.names())[:4]
['command', 'email', 'log', 'retrain']
"""

from __future__ import annotations

from sustain.alerting.actions.base import Action, ActionFailed, AlertEvent, expand_env, render
from sustain.alerting.actions.http import Slack, Webhook
from sustain.alerting.actions.local import Command, Email, Log
from sustain.alerting.actions.retrain import Retrain
from sustain.registry import Registry
from sustain.spec_alerts import ActionSpec

actions: Registry[type[Action]] = Registry("action", entry_point_group="sustain.actions")
for _cls in (Webhook, Slack, Log, Command, Email, Retrain):
    actions.register(_cls.type, _cls)


def build_action(name: str, spec: ActionSpec) -> Action:
    return actions.get(spec.type)(name, spec)


__all__ = ["Action", "ActionFailed", "AlertEvent", "actions", "build_action", "expand_env", "render"]
