"""The action contract: one verb, ``run(event)``, raising :class:`ActionFailed` when a retry may help."""

from __future__ import annotations

import abc
import builtins
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from sustain.alerting.documents import Alert
from sustain.durations import parse_duration
from sustain.errors import SustainError
from sustain.spec.alerts import ActionSpec

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


class ActionFailed(SustainError):
    """The action did not succeed; ``retry`` says whether trying again may help."""

    code = "action_failed"

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class AlertEvent:
    """What an action is told: the alert and why it is told now (firing, repeat, resolved)."""

    kind: str
    alert: Alert
    delivery_id: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        a = self.alert
        return {
            "event": self.kind,
            "alert_id": a.id,
            "rule": a.rule,
            "model": a.model,
            "version": a.version,
            "severity": a.severity,
            "status": a.status,
            "summary": a.summary,
            "started_at": a.started_at.isoformat(),
            "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
            "evidence": a.evidence,
            **self.extra,
        }

    def payload(self) -> dict[str, Any]:
        return {"event": self.kind, "delivery_id": self.delivery_id, "alert": self.alert.to_json(), **self.extra}


def expand_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${NAME}`` with environment values (recursively); a missing variable is an error."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ActionFailed(f"environment variable {name} is not set", retry=False)
            return env[name]

        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def render(template: Any, fields: Mapping[str, Any]) -> Any:
    """Fill ``{{ name }}`` placeholders; a string that is one placeholder keeps the value's type."""
    if isinstance(template, str):
        whole = _FIELD.fullmatch(template.strip())
        if whole:
            return _lookup(fields, whole.group(1))
        return _FIELD.sub(lambda m: str(_lookup(fields, m.group(1))), template)
    if isinstance(template, dict):
        return {k: render(v, fields) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, fields) for v in template]
    return template


def _lookup(fields: Mapping[str, Any], path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


class Action(abc.ABC):
    """Base class of actions. Subclasses set ``type`` and implement ``run``."""

    type: ClassVar[str]
    options_model: ClassVar[builtins.type[BaseModel] | None] = (
        None  # a plugin's options, checked when the action is built
    )
    once_per_alert: ClassVar[bool] = False  # retrain: one run per firing, however often the rule re-fires

    def __init__(self, name: str, spec: ActionSpec) -> None:
        self.name = name
        self.spec = spec
        self.timeout = parse_duration(spec.timeout)
        self.retries = spec.retries
        self.backoff = parse_duration(spec.backoff)

    def option(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        options = self.spec.options
        if key not in options:
            if required:
                raise ActionFailed(f"action {self.name!r} ({self.type}) needs the option {key!r}", retry=False)
            return default
        return expand_env(options[key])

    @abc.abstractmethod
    def run(self, event: AlertEvent) -> str:
        """Do the action; return a short description of the outcome; raise ActionFailed on failure."""
