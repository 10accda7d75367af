"""Where the Elasticsearch backend connects and what it names its indices.

A store URI names the cluster, the credentials and a few options::

    elasticsearch+https://user:pass@es1:9200,es2:9200?verify_certs=false&prefix=sustain
    elasticsearch+http://localhost:9200?api_key=<base64 or id:key>

Options: ``api_key``, ``verify_certs`` (default true), ``ca_certs`` (a PEM file),
``prefix`` (default ``sustain``; every index, data stream, transform and
pipeline name starts with it), ``request_timeout`` (seconds, default 30) and
``retention`` (how long events are kept, default ``30d``). User and password
may be percent-encoded.

>>> config = parse_elasticsearch_uri("elasticsearch+https://ann:p%40ss@es1:9200,es2?verify_certs=false")
>>> config.hosts, config.basic_auth, config.verify_certs, config.prefix
(('https://es1:9200', 'https://es2:9200'), ('ann', 'p@ss'), False, 'sustain')
>>> config.redacted
'elasticsearch+https://ann:***@es1:9200,es2:9200'
>>> parse_elasticsearch_uri("elasticsearch+http://h?colour=red")
Traceback (most recent call last):
...
sustain.errors.StoreError: unknown option 'colour' in the Elasticsearch store URI; known: api_key, ca_certs, ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sustain.backends.elasticsearch.mappings import DEFAULT_PREFIX, events_data_stream
from sustain.durations import parse_duration
from sustain.errors import StoreError

SCHEMES = ("elasticsearch+http", "elasticsearch+https")
DEFAULT_PORT = 9200
OPTIONS = ("api_key", "ca_certs", "prefix", "request_timeout", "retention", "verify_certs")
# Index names must be lowercase and may not start with -, _ or +; transform ids allow a-z0-9_- only.
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class ESConfig:
    """How to reach one Elasticsearch cluster, parsed from a store URI."""

    scheme: str
    hosts: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    prefix: str = DEFAULT_PREFIX
    request_timeout: float = 30.0
    retention: str = "30d"

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.username is None:
            return None
        return (self.username, self.password or "")

    @property
    def redacted(self) -> str:
        """The URI without secrets, for messages and logs."""
        user = f"{self.username}:***@" if self.username is not None else ""
        hosts = ",".join(h.split("://", 1)[1] for h in self.hosts)
        return f"{self.scheme}://{user}{hosts}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of ``elasticsearch.Elasticsearch`` besides the hosts."""
        options: dict[str, Any] = {"request_timeout": self.request_timeout}
        if self.basic_auth is not None:
            options["basic_auth"] = self.basic_auth
        if self.api_key is not None:
            key_id, colon, secret = self.api_key.partition(":")
            options["api_key"] = (key_id, secret) if colon else self.api_key
        if self.hosts[0].startswith("https://"):
            options["verify_certs"] = self.verify_certs
            if self.ca_certs is not None:
                options["ca_certs"] = self.ca_certs
        return options


def _flag(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise StoreError(f"option {name}={text!r} in the Elasticsearch store URI must be true or false")


def _hosts(scheme: str, netloc: str, path: str) -> tuple[str, ...]:
    protocol = scheme.split("+", 1)[1]
    hosts = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            raise StoreError("the Elasticsearch store URI names an empty host")
        if part.startswith("["):  # IPv6: [::1]:9200
            host, _, rest = part[1:].partition("]")
            host, port = f"[{host}]", rest.lstrip(":")
        else:
            host, _, port = part.partition(":")
        if not host or (port and not port.isdigit()):
            raise StoreError(f"{part!r} is not host[:port] in the Elasticsearch store URI")
        hosts.append(f"{protocol}://{host}:{port or DEFAULT_PORT}{path.rstrip('/')}")
    return tuple(hosts)


def parse_elasticsearch_uri(uri: str) -> ESConfig:
    """The connection settings in an ``elasticsearch+http(s)://`` store URI (raises StoreError naming the problem)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise StoreError(f"{uri.split('://', 1)[0]!r} is not an Elasticsearch store scheme; use one of {SCHEMES}")
    userinfo, at, netloc = parts.netloc.rpartition("@")
    if not netloc:
        raise StoreError("the Elasticsearch store URI names no host, e.g. elasticsearch+http://localhost:9200")
    username = password = None
    if at:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), unquote(secret)
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise StoreError(f"unknown option {unknown[0]!r} in the Elasticsearch store URI; known: {', '.join(OPTIONS)}")
    prefix = options.get("prefix", DEFAULT_PREFIX)
    if not _PREFIX.match(prefix):
        raise StoreError(f"prefix {prefix!r} must be 1-24 lowercase letters, digits, '_' or '-', starting alphanumeric")
    try:
        timeout = float(options.get("request_timeout", "30"))
        retention = options.get("retention", "30d")
        parse_duration(retention)
    except ValueError as exc:
        raise StoreError(f"bad option in the Elasticsearch store URI: {exc}") from None
    if timeout <= 0:
        raise StoreError("request_timeout in the Elasticsearch store URI must be positive")
    return ESConfig(
        scheme=scheme,
        hosts=_hosts(scheme, netloc, parts.path),
        username=username,
        password=password,
        api_key=options.get("api_key") or None,
        verify_certs=_flag("verify_certs", options.get("verify_certs", "true")),
        ca_certs=options.get("ca_certs") or None,
        prefix=prefix,
        request_timeout=timeout,
        retention=retention,
    )


@dataclass(frozen=True)
class IndexNames:
    """The names of everything the backend creates, all starting with the deployment's prefix.

    >>> names = IndexNames("sustain")
    >>> names.events("churn"), names.labels("churn"), names.reference("churn"), names.references
    ('sustain-events-churn', 'sustain-labels-churn', 'sustain-reference-churn', 'sustain-references')
    """

    prefix: str = DEFAULT_PREFIX

    def events(self, model: str) -> str:
        return events_data_stream(model, self.prefix)

    def labels(self, model: str) -> str:
        return f"{self.prefix}-labels-{model}"

    def reference(self, model: str) -> str:
        return f"{self.prefix}-reference-{model}"

    @property
    def references(self) -> str:
        """One document per (model, version) describing the stored reference rows."""
        return f"{self.prefix}-references"

    @property
    def specs(self) -> str:
        return f"{self.prefix}-specs"

    @property
    def pending(self) -> str:
        return f"{self.prefix}-pending"

    @property
    def profiles(self) -> str:
        return f"{self.prefix}-profiles"

    @property
    def indicators(self) -> str:
        return f"{self.prefix}-indicators"

    @property
    def leases(self) -> str:
        """Which replica computes each model (:mod:`sustain.backends.elasticsearch.leases`)."""
        return f"{self.prefix}-leases"

    @property
    def windows_pipeline(self) -> str:
        """The ingest pipeline stamping ``updated_at`` on transform destination documents."""
        return f"{self.prefix}-windows-updated"
