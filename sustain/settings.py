"""Service settings: typed, read from the command line and the environment.

Every limit has a name users can find in ``sustain serve --help`` and an
environment variable ``SUSTAIN_<NAME>``.

>>> s = Settings.from_env({"SUSTAIN_WRITE_TOKENS": "a,b", "SUSTAIN_READ_TOKENS": "r"})
>>> s.scope_of("b"), s.scope_of("r"), s.scope_of("x")
('write', 'read', None)
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from sustain.errors import ConfigError
from sustain.store import DEFAULT_STORE_URI

Scope = Literal["read", "write"]


def _tokens(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(t.strip() for t in text.split(",") if t.strip())


@dataclass(frozen=True)
class Settings:
    store: str = DEFAULT_STORE_URI
    host: str = "127.0.0.1"
    port: int = 8000
    config: str | None = None
    write_tokens: tuple[str, ...] = ()
    read_tokens: tuple[str, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    max_reference_bytes: int = 512 * 1024 * 1024
    max_inflight_bytes: int = 256 * 1024 * 1024
    max_pending_events: int = 500_000
    transform_interval: float = 10.0
    indicator_interval: float = 30.0
    engine: bool = True
    alert_store: str = "duckdb:///./data/alerts.duckdb"  # where alert episodes live when the store is Elasticsearch
    demo_traffic: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"SUSTAIN_{f.name.upper()}")
            if raw is None or f.name == "extra":
                continue
            if f.name in ("write_tokens", "read_tokens"):
                values[f.name] = _tokens(raw)
            elif f.type in ("int", int):
                values[f.name] = _parse_int(f.name, raw)
            elif f.type in ("float", float):
                values[f.name] = _parse_float(f.name, raw)
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def auth_enabled(self) -> bool:
        return bool(self.write_tokens or self.read_tokens)

    def scope_of(self, token: str) -> Scope | None:
        """The scope a bearer token grants, compared in constant time."""
        scope: Scope | None = None
        for t in self.write_tokens:
            if hmac.compare_digest(t.encode(), token.encode()):
                scope = "write"
        if scope is None:
            for t in self.read_tokens:
                if hmac.compare_digest(t.encode(), token.encode()):
                    scope = "read"
        return scope

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without tokens: anyone could read or write models' data."""
        if self.auth_enabled:
            return
        if not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without authentication; set SUSTAIN_WRITE_TOKENS and "
                "SUSTAIN_READ_TOKENS (comma-separated bearer tokens), or bind to 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"SUSTAIN_{name.upper()} must be a whole number, got {raw!r}") from None


def _parse_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"SUSTAIN_{name.upper()} must be a number, got {raw!r}") from None
