"""One exception tree for all of sustain.

Every error carries a stable machine-readable ``code`` and the HTTP status the
service answers with, so the API, the CLI and the client all speak the same
language::

    SustainError                      500  internal
    ├── SpecError                     422  spec_invalid
    ├── ValidationError               422  invalid
    ├── NotFound                      404  not_found
    ├── Conflict                      409  conflict
    ├── Unauthorized                  401  unauthorized
    ├── Forbidden                     403  forbidden
    ├── PayloadTooLarge               413  payload_too_large
    ├── UnsupportedMediaType          415  unsupported_media_type
    ├── Overloaded                    429  overloaded
    ├── ConfigError                   400  config_invalid
    ├── RegistryError                 400  registry
    ├── StoreError                    503  store_unavailable
    ├── PluginError                   500  plugin_failed
    └── MissingDependency             500  missing_dependency  (also an ImportError)

Third-party exceptions are translated at the boundary with
``raise StoreError(...) from exc`` so callers never need to know which library
failed.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SustainError(Exception):
    """Base of every error sustain raises on purpose."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return body


class SpecError(SustainError):
    """A monitor spec is invalid; ``details`` lists every problem with its path."""

    code = "spec_invalid"
    http_status = 422
    exit_code = 2


class ValidationError(SustainError):
    """A request or record is malformed."""

    code = "invalid"
    http_status = 422
    exit_code = 2


class NotFound(SustainError):
    code = "not_found"
    http_status = 404


class Conflict(SustainError):
    code = "conflict"
    http_status = 409


class Unauthorized(SustainError):
    code = "unauthorized"
    http_status = 401


class Forbidden(SustainError):
    code = "forbidden"
    http_status = 403


class PayloadTooLarge(SustainError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(SustainError):
    code = "unsupported_media_type"
    http_status = 415


class Overloaded(SustainError):
    """The service is at capacity; ``retry_after`` says when to come back (seconds)."""

    code = "overloaded"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(SustainError):
    """Settings or command-line options are wrong."""

    code = "config_invalid"
    http_status = 400
    exit_code = 2


class RegistryError(SustainError):
    """A plugin registry was misused (name clash, unknown name)."""

    code = "registry"
    http_status = 400


class StoreError(SustainError):
    """The storage backend failed."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 3


class PluginError(SustainError):
    """A plugin (indicator, action, store) failed."""

    code = "plugin_failed"
    http_status = 500


class MissingDependency(SustainError, ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""

    code = "missing_dependency"
    exit_code = 2
