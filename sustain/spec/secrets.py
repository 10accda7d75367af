"""Secrets in action options: which environment variables ``${NAME}`` may read, and redaction (``***``).

Action options may name environment variables (``url: "${SLACK_WEBHOOK_URL}"``); only an allow-list is ever
expanded: names starting ``SUSTAIN_SECRET_``, and the names the config file lists under ``action_env``. The
service's own credentials are never on it, so a spec sent over HTTP cannot send the tokens anywhere.

>>> policy = EnvPolicy(frozenset({"SLACK_WEBHOOK_URL"}))
>>> policy.allows("SUSTAIN_SECRET_PAGER"), policy.allows("SLACK_WEBHOOK_URL"), policy.allows("SUSTAIN_WRITE_TOKENS")
(True, True, False)

What the API shows of an action keeps the shape and hides the secret parts:

>>> redact_options("slack", {"url": "https://hooks.slack.com/services/T0/B0/abc"})
{'url': 'https://hooks.slack.com/***'}
>>> redact_options("webhook", {"url": "https://u:pw@pager.example/hook?token=t1&team=a", "secret": "s"})
{'url': 'https://***@pager.example/hook?token=***&team=***', 'secret': '***'}
>>> redact_options("webhook", {"url": "${SUSTAIN_SECRET_HOOK}", "secret": "${SUSTAIN_SECRET_KEY}"})
{'url': '${SUSTAIN_SECRET_HOOK}', 'secret': '${SUSTAIN_SECRET_KEY}'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

REDACTED = "***"
SECRET_PREFIX = "SUSTAIN_SECRET_"
# The service's own credentials: no config may put them on the allow-list.
SERVICE_CREDENTIALS = frozenset({"SUSTAIN_WRITE_TOKENS", "SUSTAIN_READ_TOKENS", "SUSTAIN_ADMIN_TOKENS"})
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Option names whose whole value is a secret (any action type, plugins included).
SECRET_KEYS = frozenset({"secret", "password", "token", "api_key", "apikey", "key", "credentials"})
# Action types whose URL is itself the credential (an incoming webhook).
SECRET_URL_TYPES = frozenset({"slack"})
# Action types that run a program on the server: only the config file may define them.
COMMAND_TYPES = frozenset({"command"})
COMMAND_OPTIONS = {"retrain": ("command", "mlflow_project")}


@dataclass(frozen=True)
class EnvPolicy:
    """The environment variables action options may read: ``SUSTAIN_SECRET_*`` and ``names``."""

    names: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        forbidden = sorted(self.names & SERVICE_CREDENTIALS)
        if forbidden:
            raise ValueError(f"action_env may not list the service's own credentials: {', '.join(forbidden)}")

    def allows(self, name: str) -> bool:
        if name in SERVICE_CREDENTIALS:
            return False
        return name.startswith(SECRET_PREFIX) or name in self.names

    def describe(self) -> str:
        listed = ", ".join(sorted(self.names))
        return f"{SECRET_PREFIX}* or a name listed under action_env in the config file" + (
            f" ({listed})" if listed else " (none listed)"
        )


def env_references(value: Any) -> Iterator[str]:
    """Every ``${NAME}`` in a (nested) option value."""
    if isinstance(value, str):
        yield from ENV_REFERENCE.findall(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from env_references(v)
    elif isinstance(value, list):
        for v in value:
            yield from env_references(v)


def runs_commands(action_type: str, options: dict[str, Any]) -> bool:
    """True when an action runs a program on the server (``command``; ``retrain`` by command or MLflow)."""
    if action_type in COMMAND_TYPES:
        return True
    return any(options.get(key) for key in COMMAND_OPTIONS.get(action_type, ()))


def _is_reference(value: str) -> bool:
    """The whole value is ``${NAME}``: a name, not a secret, and shown as it is."""
    return ENV_REFERENCE.fullmatch(value.strip()) is not None


def redact_url(url: str, *, whole_path: bool = False) -> str:
    """A URL fit to show: credentials, query values and (``whole_path``) the path replaced by ``***``."""
    if _is_reference(url):
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.hostname:
        return REDACTED
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = (f"{REDACTED}@" if parts.username or parts.password else "") + host + (f":{port}" if port else "")
    path = f"/{REDACTED}" if whole_path and parts.path.strip("/") else parts.path
    query = "&".join(f"{k}={REDACTED}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return SplitResult(parts.scheme, netloc, path, query, "").geturl()


def _redact_value(key: str, value: Any, action_type: str) -> Any:
    if isinstance(value, str) and _is_reference(value):
        return value
    lowered = key.lower()
    if lowered in SECRET_KEYS or lowered.endswith(("_secret", "_password", "_token", "_key")):
        return REDACTED if value not in (None, "") else value
    if lowered == "headers" and isinstance(value, dict):
        return {k: v if isinstance(v, str) and _is_reference(v) else REDACTED for k, v in value.items()}
    if isinstance(value, str) and (lowered == "url" or lowered.endswith("_url")):
        return redact_url(value, whole_path=action_type in SECRET_URL_TYPES)
    return value


def redact_options(action_type: str, options: dict[str, Any]) -> dict[str, Any]:
    """Action options as the API and dashboards show them (see the module docstring)."""
    return {k: _redact_value(k, v, action_type) for k, v in options.items()}


def redact_spec_json(body: dict[str, Any]) -> dict[str, Any]:
    """A dumped model spec (``model_dump(mode="json")``) with every action's secrets replaced by ``***``."""
    actions = body.get("actions")
    if not isinstance(actions, dict):
        return body
    shown = {}
    for name, action in actions.items():
        if isinstance(action, dict):
            kind = str(action.get("type", ""))
            fixed = {k: action[k] for k in ("type", "retries", "timeout", "backoff") if k in action}
            options = {k: v for k, v in action.items() if k not in fixed}
            shown[name] = {**fixed, **redact_options(kind, options)}
        else:
            shown[name] = action
    return {**body, "actions": shown}


def restore_redacted(sent: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Put the stored secrets back where a client sent an action option exactly as the API showed it.

    A client that reads a spec, changes a threshold and sends it back must not overwrite its webhook's
    secret with ``***``: an option equal to the redacted form of the stored value keeps the stored value.
    """
    sent_actions, stored_actions = sent.get("actions"), stored.get("actions")
    if not isinstance(sent_actions, dict) or not isinstance(stored_actions, dict):
        return sent
    merged = {}
    for name, action in sent_actions.items():
        before = stored_actions.get(name)
        if isinstance(action, dict) and isinstance(before, dict) and action.get("type") == before.get("type"):
            shown = redact_spec_json({"actions": {name: before}})["actions"][name]
            action = {k: before[k] if k in before and v == shown.get(k) != before[k] else v for k, v in action.items()}
        merged[name] = action
    return {**sent, "actions": merged}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (longest first) replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
