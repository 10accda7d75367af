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
from sustain.spec.secrets import EnvPolicy, redact_options, scrub

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


def expand_env(
    value: Any,
    environ: Mapping[str, str] | None = None,
    policy: EnvPolicy | None = None,
    expanded: set[str] | None = None,
) -> Any:
    """Replace ``${NAME}`` with environment values (recursively).

    Only names ``policy`` allows are read (``SUSTAIN_SECRET_*`` by default); any other name, or a missing
    variable, is an error. Every value put in is added to ``expanded``, so callers can keep it out of logs.

    >>> expand_env("${SUSTAIN_SECRET_X}/hook", {"SUSTAIN_SECRET_X": "https://h"})
    'https://h/hook'
    >>> expand_env("${SUSTAIN_WRITE_TOKENS}", {"SUSTAIN_WRITE_TOKENS": "t"})
    Traceback (most recent call last):
    ...
    sustain.alerting.actions.base.ActionFailed: action options may not read ${SUSTAIN_WRITE_TOKENS}; use ...
    """
    env = os.environ if environ is None else environ
    allowed = policy or EnvPolicy()
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if not allowed.allows(name):
                raise ActionFailed(f"action options may not read ${{{name}}}; use {allowed.describe()}", retry=False)
            if name not in env:
                raise ActionFailed(f"environment variable {name} is not set", retry=False)
            if expanded is not None:
                expanded.add(env[name])
            return env[name]

        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, allowed, expanded) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, allowed, expanded) for v in value]
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


def _hidden(value: Any, shown: Any) -> list[str]:
    """The strings of ``value`` that its redacted form ``shown`` hides."""
    if isinstance(value, str):
        return [value] if value != shown else []
    if isinstance(value, dict) and isinstance(shown, dict):
        return [s for k, v in value.items() for s in _hidden(v, shown.get(k))]
    return []


class Action(abc.ABC):
    """Base class of actions. Subclasses set ``type`` and implement ``run``."""

    type: ClassVar[str]
    options_model: ClassVar[builtins.type[BaseModel] | None] = (
        None  # a plugin's options, checked when the action is built
    )
    once_per_alert: ClassVar[bool] = False  # retrain: one run per firing, however often the rule re-fires

    # The environment variables options may read; the dispatcher sets the service's (config ``action_env``).
    env_policy: EnvPolicy = EnvPolicy()

    def __init__(self, name: str, spec: ActionSpec) -> None:
        self.name = name
        self.spec = spec
        self.timeout = parse_duration(spec.timeout)
        self.retries = spec.retries
        self.backoff = parse_duration(spec.backoff)
        self._secrets: set[str] = set()

    def option(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        """An option's value with ``${NAME}`` expanded (allowed names only); what was put in counts as secret."""
        options = self.spec.options
        if key not in options:
            if required:
                raise ActionFailed(f"action {self.name!r} ({self.type}) needs the option {key!r}", retry=False)
            return default
        return expand_env(options[key], policy=self.env_policy, expanded=self._secrets)

    def redact(self, text: str) -> str:
        """``text`` fit for a log line or an alert document: expanded values and secret options as ``***``."""
        options = self.spec.options
        return scrub(text, [*self._secrets, *_hidden(options, redact_options(self.type, options))])

    @abc.abstractmethod
    def run(self, event: AlertEvent) -> str:
        """Do the action; return a short description of the outcome; raise ActionFailed on failure."""
