"""Alert actions, registered by type (entry-point group ``sustain.actions`` for plugins).

>>> sorted(actions.names())[:4]
['command', 'email', 'log', 'retrain']
"""

from __future__ import annotations

from sustain.alerting.actions.base import Action, ActionFailed, AlertEvent, expand_env, render
from sustain.alerting.actions.http import Slack, Webhook
from sustain.alerting.actions.local import Command, Email, Log
from sustain.alerting.actions.retrain import Retrain
from sustain.errors import RegistryError, SpecError
from sustain.registry import Registry
from sustain.spec import ModelSpec
from sustain.spec.alerts import BUILTIN_OPTIONS, ActionSpec, check_options


def _builtins() -> dict[str, type[Action]]:
    return {cls.type: cls for cls in (Webhook, Slack, Log, Command, Email, Retrain)}


def _is_action(item: object) -> bool:
    return isinstance(item, type) and issubclass(item, Action)


actions: Registry[type[Action]] = Registry(
    "action", entry_point_group="sustain.actions", builtins=_builtins, check=_is_action
)


def build_action(name: str, spec: ActionSpec, registry: Registry[type[Action]] | None = None) -> Action:
    """The action ``name`` of a spec; its options checked by the type's ``options_model`` if it has one."""
    cls = (actions if registry is None else registry).get(spec.type)
    if cls.options_model is not None and spec.type not in BUILTIN_OPTIONS:  # built-ins are checked at load
        try:
            check_options(spec.type, cls.options_model, spec.options)
        except ValueError as exc:
            raise SpecError(str(exc), field=f"actions.{name}") from None
    return cls(name, spec)


def check_actions(spec: ModelSpec, registry: Registry[type[Action]] | None = None) -> None:
    """Every action of ``spec`` has a known type and valid options (SpecError naming the first that does not)."""
    for name, action_spec in spec.actions.items():
        try:
            build_action(name, action_spec, registry)
        except RegistryError as exc:
            raise SpecError(f"action {name!r}: {exc}", field=f"actions.{name}.type") from None


__all__ = ["Action", "ActionFailed", "AlertEvent", "actions", "build_action", "check_actions", "expand_env", "render"]
