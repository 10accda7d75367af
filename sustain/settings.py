"""Service settings: typed, read from the command line and the environment.

Every limit has a name users can find in ``sustain serve --help`` and an
environment variable ``SUSTAIN_<NAME>``.

>>> s = Settings.from_env({"SUSTAIN_WRITE_TOKENS": "a,b", "SUSTAIN_READ_TOKENS": "r", "SUSTAIN_ADMIN_TOKENS": "z"})
>>> s.scope_of("b"), s.scope_of("r"), s.scope_of("z"), s.scope_of("x")
('write', 'read', 'admin', None)
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

Scope = Literal["read", "write", "admin"]

# Each scope includes the ones before it: an admin token may write, a write token may read.
SCOPE_RANK: dict[Scope, int] = {"read": 0, "write": 1, "admin": 2}


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
    admin_tokens: tuple[str, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    max_reference_bytes: int = 512 * 1024 * 1024
    max_inflight_bytes: int = 256 * 1024 * 1024
    max_pending_events: int = 500_000
    max_answer_seconds: float = 5.0  # a request that changes data is answered within this, or refused (429)
    max_write_requests: int = 32  # data-changing requests worked on at once; one more gets 429 at once
    max_reference_rows: int = 1_000_000
    transform_interval: float = 10.0
    indicator_interval: float = 30.0
    retention_interval: float = 60.0  # how often raw events, labels and dedup ids past their horizons go
    # The embedded store's memory (DuckDB's memory_limit) unless the store URI sets ?memory_limit=: past it, cached
    # table blocks are evicted and large queries spill to disk. DuckDB's own default is 80% of the machine's RAM.
    store_memory: str = "1GiB"
    engine_workers: int = 0  # worker processes computing indicators of large passes (0: in the engine's process)
    null_cache_entries: int = 32_768  # null distributions kept per process at least (~1.8 kB each; 192 per model)
    engine: bool = True
    alert_store: str = "duckdb:///./data/alerts.duckdb"  # where alert episodes live when the store is Elasticsearch
    demo_traffic: bool = False
    # The release pipeline runs when a registry is named (sustain serve --registry URI, or MLFLOW_TRACKING_URI).
    registry: str | None = None
    release_dir: str = "./data/releases"  # serving bundles, one folder per model version
    release_poll: float = 30.0  # seconds between polls of the registry for new versions; 0: webhooks only
    release_store: str = "duckdb:///./data/releases.duckdb"  # where releases live when the store is Elasticsearch
    mlflow_webhook_secret: str | None = None  # shared with MLflow's webhook; unsigned deliveries are refused
    public_url: str | None = None  # how MLflow reaches this service; default http://HOST:PORT
    target_options: str = ""  # deploy target options, comma-separated TARGET.KEY=VALUE (kubernetes.namespace=ml)
    redis: str | None = None  # the inference units' Redis: their queues at /v1/inference/status and /metrics
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"SUSTAIN_{f.name.upper()}")
            if raw is None or f.name == "extra":
                continue
            if f.name in ("write_tokens", "read_tokens", "admin_tokens"):
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
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def store_uri(self) -> str:
        """``store``, with ``store_memory`` as the embedded store's memory limit unless the URI sets its own.

        >>> Settings(store="duckdb:///x.duckdb", store_memory="256MiB").store_uri
        'duckdb:///x.duckdb?memory_limit=256MiB'
        >>> Settings(store="duckdb:///x.duckdb?threads=2&memory_limit=2GiB").store_uri
        'duckdb:///x.duckdb?threads=2&memory_limit=2GiB'
        """
        if not self.store.startswith("duckdb:") or "memory_limit=" in self.store:
            return self.store
        return f"{self.store}{'&' if '?' in self.store else '?'}memory_limit={self.store_memory}"

    @property
    def admission_seconds(self) -> float:
        """How long a data-changing request may take to reach the writer (the rest of the bound is the
        writer's: its queue, then the commit)."""
        return 0.4 * self.max_answer_seconds

    @property
    def max_queue_seconds(self) -> float:
        """The writer refuses events it would not get to within this long (at its measured commit rate)."""
        return 0.3 * self.max_answer_seconds

    @property
    def auth_enabled(self) -> bool:
        return bool(self.write_tokens or self.read_tokens or self.admin_tokens)

    def scope_of(self, token: str) -> Scope | None:
        """The widest scope a bearer token grants, compared in constant time against every configured token."""
        scope: Scope | None = None
        given = token.encode()
        grants: tuple[tuple[Scope, tuple[str, ...]], ...] = (
            ("read", self.read_tokens),
            ("write", self.write_tokens),
            ("admin", self.admin_tokens),
        )
        for granted, tokens in grants:
            for t in tokens:
                if hmac.compare_digest(t.encode(), given):
                    scope = granted
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
